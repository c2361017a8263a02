"""Deliveries, and the copies of contacts, groups, rosters and meetings they are made of, with SQLAlchemy Core on
the unit of work's connection. The only place this service writes SQL (the read side is views.py).

A delivery is saved only if nobody changed it since it was loaded (same status, same lease holder): otherwise
`save` raises LeaseLost and changes nothing, so a worker whose lease ran out can never undo what another did."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from netvaerk_shared.db import dialect_insert, is_sqlite
from netvaerk_shared.gdpr import scrub_messaging

from ..domain.commands import Join
from ..domain.errors import LeaseLost
from ..domain.model import (
    PENDING,
    PERSONAL,
    PLANNED,
    SKIPPED,
    WELCOME,
    Contact,
    Delivery,
    Group,
    Meeting,
    PlannedReminder,
    Preference,
    ReminderSettings,
    Rsvp,
    category_of,
)
from . import orm
from .safe_text import error_text
from .webhook_repository import WebhookRepository

CHUNK = 500  # rows a statement
d = orm.deliveries


class Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.webhooks = WebhookRepository(conn)  # the webhook subscribers and their deliveries
        self.seen: list[Delivery] = []  # deliveries handed out: their events go out with the commit
        self._loaded: dict[UUID, tuple[str, str | None]] = {}  # id -> (status, lease_owner) as loaded or saved

    # -- the directory and roster copy ---------------------------------------------------------------------------
    async def record_group(self, group: Group) -> None:
        stmt = dialect_insert(self.conn, orm.groups).values(group_id=group.group_id, name=group.name)
        await self.conn.execute(stmt.on_conflict_do_update(index_elements=["group_id"], set_={"name": group.name}))

    async def record_contacts(self, contacts: Sequence[Contact], now: datetime) -> None:
        """Upsert contacts, a statement a chunk; the last of a member in `contacts` wins."""
        erased = await self._erased([c.member_id for c in contacts])  # arrived after the erasure: not kept
        latest: dict[UUID, dict[str, Any]] = {}
        for c in contacts:  # the newest profile of a member in `contacts` (by profile_at; a tie: the later one)
            if c.member_id in erased:
                continue
            known = latest.get(c.member_id)
            if known is not None and c.profile_at is not None and known["profile_at"] is not None:
                if c.profile_at < known["profile_at"]:
                    continue
            latest[c.member_id] = {
                "member_id": c.member_id,
                "name": c.name,
                "email": c.email,
                "locale": c.locale,
                "organisation_id": c.organisation_id,
                "profile_at": c.profile_at,
            }
        rows = [{**row, "updated_at": now} for row in latest.values()]
        ct = orm.contacts
        for i in range(0, len(rows), CHUNK):
            stmt = dialect_insert(self.conn, ct).values(rows[i : i + CHUNK])
            await self.conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["member_id"],
                    set_={
                        "name": stmt.excluded.name,
                        "email": stmt.excluded.email,
                        "locale": stmt.excluded.locale,
                        "updated_at": stmt.excluded.updated_at,
                        "organisation_id": func.coalesce(stmt.excluded.organisation_id, ct.c.organisation_id),
                        "profile_at": func.coalesce(stmt.excluded.profile_at, ct.c.profile_at),
                        # a different address clears the mark of the old one (the same address keeps it)
                        "undeliverable_at": case(
                            (ct.c.email == stmt.excluded.email, ct.c.undeliverable_at), else_=None
                        ),
                        "undeliverable_reason": case(
                            (ct.c.email == stmt.excluded.email, ct.c.undeliverable_reason), else_=None
                        ),
                    },
                    # an older profile that arrives later (member.registered after member.updated: two durables)
                    # changes nothing
                    where=or_(
                        ct.c.profile_at.is_(None),
                        stmt.excluded.profile_at.is_(None),
                        ct.c.profile_at <= stmt.excluded.profile_at,
                    ),
                )
            )

    async def mark_undeliverable(self, member_id: UUID, email: str, now: datetime, reason: str) -> bool:
        """A permanent refusal of `email`: the contact's address is marked, if it is still that address."""
        ct = orm.contacts
        result = await self.conn.execute(
            update(ct)
            .where(ct.c.member_id == member_id, ct.c.email == email)
            .values(undeliverable_at=now, undeliverable_reason=reason[:200])
        )
        return bool(result.rowcount)

    async def clear_undeliverable(self, member_id: UUID) -> bool:
        """The administration clears the mark. False for a member this service has no contact of."""
        ct = orm.contacts
        result = await self.conn.execute(
            update(ct).where(ct.c.member_id == member_id).values(undeliverable_at=None, undeliverable_reason=None)
        )
        return bool(result.rowcount)

    async def record_memberships(self, joins: Sequence[Join]) -> set[tuple[UUID, UUID]]:
        """Upsert roster rows, a statement a chunk; the last role of a member in a group in `joins` wins. A join
        older than the member's leaving of that group (MemberLeft came first, on its own durable) does not bring
        them back: those (group_id, member_id) are returned, not recorded."""
        gm = orm.group_members
        erased = await self._erased([j.member_id for j in joins])
        newest: dict[tuple[UUID, UUID], Join] = {}
        for j in joins:
            key = (j.group_id, j.member_id)
            if j.member_id not in erased and (key not in newest or _not_older(j.joined_at, newest[key].joined_at)):
                newest[key] = j
        refused: set[tuple[UUID, UUID]] = set()
        pairs = list(newest)
        for i in range(0, len(pairs), CHUNK):
            chunk = pairs[i : i + CHUNK]
            stmt = select(gm.c.group_id, gm.c.member_id, gm.c.left_at).where(
                gm.c.member_id.in_([m for _, m in chunk]), gm.c.left_at.is_not(None)
            )
            for g, m, left_at in (await self.conn.execute(stmt)).all():
                join = newest.get((g, m))
                if join is not None and (join.joined_at is None or join.joined_at <= left_at):
                    refused.add((g, m))
        rows = [
            {"group_id": g, "member_id": m, "role": j.role, "joined_at": j.joined_at}
            for (g, m), j in newest.items()
            if (g, m) not in refused
        ]
        for i in range(0, len(rows), CHUNK):
            upsert = dialect_insert(self.conn, gm).values(rows[i : i + CHUNK])
            new = upsert.excluded
            await self.conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=["group_id", "member_id"],
                    set_={
                        "role": case((gm.c.role_at > new.joined_at, gm.c.role), else_=new.role),
                        "joined_at": new.joined_at,
                        "left_at": None,
                    },
                    where=or_(gm.c.joined_at.is_(None), new.joined_at.is_(None), new.joined_at >= gm.c.joined_at)
                    & or_(gm.c.left_at.is_(None), new.joined_at > gm.c.left_at),
                )
            )
        return refused

    async def record_leaving(self, group_id: UUID, member_id: UUID, left_at: datetime) -> None:
        """MemberLeft: the row stays with `left_at` set, so a late, older join does not bring the member back (as
        the meetings service does); a row is made when the leaving comes before the join it ends."""
        if await self._erased([member_id]):
            return
        gm = orm.group_members
        stmt = dialect_insert(self.conn, gm).values(
            group_id=group_id, member_id=member_id, role="member", joined_at=left_at, left_at=left_at
        )
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["group_id", "member_id"],
                set_={"left_at": stmt.excluded.left_at},
                where=or_(gm.c.joined_at.is_(None), gm.c.joined_at <= stmt.excluded.left_at)
                & or_(gm.c.left_at.is_(None), gm.c.left_at < stmt.excluded.left_at),
            )
        )

    async def record_role(self, group_id: UUID, member_id: UUID, role: str, changed_at: datetime) -> None:
        """MemberRoleChanged: the role now, unless a newer join or role change is known. A role change that
        overtakes its join (another durable) makes the row; the join then keeps the newer role."""
        if await self._erased([member_id]):
            return
        gm = orm.group_members
        upsert = dialect_insert(self.conn, gm).values(
            group_id=group_id, member_id=member_id, role=role, role_at=changed_at
        )
        new = upsert.excluded
        await self.conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["group_id", "member_id"],
                set_={"role": new.role, "role_at": new.role_at},
                where=or_(gm.c.role_at.is_(None), gm.c.role_at <= new.role_at)
                & or_(gm.c.joined_at.is_(None), gm.c.joined_at <= new.role_at),
            )
        )

    async def role_of(self, group_id: UUID, member_id: UUID) -> str | None:
        """The member's role in the group, None when they are not (or no longer) in it."""
        gm = orm.group_members
        stmt = select(gm.c.role).where(gm.c.group_id == group_id, gm.c.member_id == member_id, gm.c.left_at.is_(None))
        role: str | None = (await self.conn.execute(stmt)).scalar_one_or_none()
        return role

    async def group_known(self, group_id: UUID) -> bool:
        g, gm = orm.groups, orm.group_members
        if (await self.conn.execute(select(g.c.group_id).where(g.c.group_id == group_id))).first() is not None:
            return True
        return (
            await self.conn.execute(select(gm.c.group_id).where(gm.c.group_id == group_id).limit(1))
        ).first() is not None

    async def record_meeting(self, meeting: Meeting) -> None:
        """Write our copy of a meeting as the domain put it together (model.changed_meeting)."""
        values = {
            "group_id": meeting.group_id,
            "sequence": meeting.sequence,
            "data": meeting.data,
            "status": meeting.status,
            "fields_sequence": meeting.fields_sequence,
            "agenda_sequence": meeting.agenda_sequence,
        }
        stmt = dialect_insert(self.conn, orm.meetings).values(meeting_id=meeting.meeting_id, **values)
        await self.conn.execute(stmt.on_conflict_do_update(index_elements=["meeting_id"], set_=values))

    async def meeting(self, meeting_id: UUID) -> Meeting | None:
        m = orm.meetings
        stmt = select(m).where(m.c.meeting_id == meeting_id)
        if not is_sqlite(self.conn):
            stmt = stmt.with_for_update()  # two events of one meeting on two durables: one after the other
        row = (await self.conn.execute(stmt)).mappings().first()
        return _meeting(row) if row else None

    async def agenda_notice(self, meeting_id: UUID) -> datetime | None:
        a = orm.agenda_notices
        stmt = select(a.c.last_at).where(a.c.meeting_id == meeting_id)
        if not is_sqlite(self.conn):
            stmt = stmt.with_for_update()
        value: datetime | None = (await self.conn.execute(stmt)).scalar()
        return value

    async def record_agenda_notice(self, meeting_id: UUID, last_at: datetime) -> None:
        stmt = dialect_insert(self.conn, orm.agenda_notices).values(meeting_id=meeting_id, last_at=last_at)
        await self.conn.execute(stmt.on_conflict_do_update(index_elements=["meeting_id"], set_={"last_at": last_at}))

    # -- preferences --------------------------------------------------------------------------------------------
    async def knows(self, member_id: UUID) -> bool:
        """A member whose contact this service has (so not one erased, nor one it never heard of)."""
        c = orm.contacts
        return (await self.conn.execute(select(c.c.member_id).where(c.c.member_id == member_id))).first() is not None

    async def preferences(self, member_id: UUID) -> dict[str, Preference]:
        p = orm.preferences
        rows = (await self.conn.execute(select(p).where(p.c.member_id == member_id))).mappings()
        return {r["category"]: _preference(r) for r in rows}

    async def set_preferences(self, preferences: Sequence[Preference], now: datetime) -> None:
        for pref in preferences:
            values = {"email": pref.email, "language": pref.language, "updated_at": now}
            stmt = dialect_insert(self.conn, orm.preferences).values(
                member_id=pref.member_id, category=pref.category, **values
            )
            await self.conn.execute(stmt.on_conflict_do_update(index_elements=["member_id", "category"], set_=values))

    async def turned_off(self, member_ids: Sequence[UUID], category: str) -> set[UUID]:
        """Those of `member_ids` who turned email for `category` off."""
        p = orm.preferences
        found: set[UUID] = set()
        unique = list(dict.fromkeys(member_ids))
        for i in range(0, len(unique), CHUNK):
            stmt = select(p.c.member_id).where(
                p.c.member_id.in_(unique[i : i + CHUNK]), p.c.category == category, p.c.email.is_(False)
            )
            found.update((await self.conn.execute(stmt)).scalars())
        return found

    async def members_of(self, group_id: UUID) -> list[UUID]:
        """The group's members now (not those who left it)."""
        gm = orm.group_members
        result = await self.conn.execute(
            select(gm.c.member_id).where(gm.c.group_id == group_id, gm.c.left_at.is_(None))
        )
        return list(result.scalars().all())

    async def owed_about_group(self, member_id: UUID, group_id: UUID) -> list[Delivery]:
        """The member's pending deliveries about meetings of the group (any kind; the caller picks)."""
        m = orm.meetings
        meeting_ids = {
            str(x) for x in (await self.conn.execute(select(m.c.meeting_id).where(m.c.group_id == group_id))).scalars()
        }
        stmt = select(d).where(d.c.member_id == member_id, d.c.status == PENDING)
        rows = [
            r
            for r in (await self.conn.execute(stmt)).mappings()
            if (r["payload"] or {}).get("meeting_id") in meeting_ids
        ]
        return [self._loaded_from(r) for r in rows]

    # -- answers and reminders ----------------------------------------------------------------------------------
    async def record_rsvp(self, answer: Rsvp) -> None:
        """Keep the member's latest answer to the meeting: an older one arriving late changes nothing."""
        r = orm.rsvps
        if await self._erased([answer.member_id]):
            return
        values = {
            "group_id": answer.group_id,
            "response": answer.response,
            "status": answer.status,
            "waitlist_position": answer.waitlist_position,
            "answered_at": answer.answered_at,
        }
        stmt = dialect_insert(self.conn, r).values(meeting_id=answer.meeting_id, member_id=answer.member_id, **values)
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["meeting_id", "member_id"],
                set_={k: stmt.excluded[k] for k in values},
                where=stmt.excluded.answered_at >= r.c.answered_at,
            )
        )

    async def record_seat(self, meeting_id: UUID, member_id: UUID) -> None:
        """WaitlistPromoted: the member's answer now holds a seat."""
        r = orm.rsvps
        await self.conn.execute(
            update(r)
            .where(r.c.meeting_id == meeting_id, r.c.member_id == member_id)
            .values(status="confirmed", waitlist_position=None)
        )

    async def rsvps_of(self, meeting_id: UUID) -> list[Rsvp]:
        r = orm.rsvps
        rows = (await self.conn.execute(select(r).where(r.c.meeting_id == meeting_id))).mappings()
        return [
            Rsvp(
                x["meeting_id"],
                x["member_id"],
                x["group_id"],
                x["response"],
                x["status"],
                x["waitlist_position"],
                x["answered_at"],
            )
            for x in rows
        ]

    async def reminder_settings(self, group_id: UUID) -> ReminderSettings | None:
        s = orm.reminder_settings
        row = (await self.conn.execute(select(s).where(s.c.group_id == group_id))).mappings().first()
        if row is None:
            return None
        return ReminderSettings(tuple(int(x) for x in row["reminder_days"]), row["nudge_days"], row["local_hour"])

    async def set_reminder_settings(self, group_id: UUID, settings: ReminderSettings, now: datetime) -> None:
        values = {
            "reminder_days": list(settings.reminder_days),
            "nudge_days": settings.nudge_days,
            "local_hour": settings.local_hour,
            "updated_at": now,
        }
        stmt = dialect_insert(self.conn, orm.reminder_settings).values(group_id=group_id, **values)
        await self.conn.execute(stmt.on_conflict_do_update(index_elements=["group_id"], set_=values))

    async def meetings_of(self, group_id: UUID) -> list[Meeting]:
        m = orm.meetings
        rows = (
            await self.conn.execute(select(m).where(m.c.group_id == group_id, m.c.status == "scheduled"))
        ).mappings()
        return [_meeting(row) for row in rows]

    async def plan_reminders(self, meeting_id: UUID, planned: Sequence[PlannedReminder], now: datetime) -> None:
        """The meeting's reminders anew: those still planned go, these come; one already done (or skipped) for the
        same kind, day and start stays as it is, so nothing is reminded of twice."""
        rm = orm.reminders
        await self.conn.execute(delete(rm).where(rm.c.meeting_id == meeting_id, rm.c.status == PLANNED))
        rows = [
            {
                "id": p.id,
                "meeting_id": p.meeting_id,
                "kind": p.kind,
                "days_before": p.days_before,
                "starts_at": p.starts_at,
                "due_at": p.due_at,
                "status": p.status,
                "reason": p.reason,
                "created_at": now,
            }
            for p in planned
        ]
        if rows:
            stmt = dialect_insert(self.conn, rm).values(rows)
            await self.conn.execute(
                stmt.on_conflict_do_nothing(index_elements=["meeting_id", "kind", "days_before", "starts_at"])
            )

    async def drop_reminders(self, meeting_id: UUID, reason: str, now: datetime) -> None:
        rm = orm.reminders
        await self.conn.execute(
            update(rm)
            .where(rm.c.meeting_id == meeting_id, rm.c.status == PLANNED)
            .values(status=SKIPPED, reason=reason, done_at=now)
        )

    async def due_reminders(self, now: datetime, limit: int) -> list[PlannedReminder]:
        """Planned reminders due at `now`, oldest first; on PostgreSQL locked until the transaction ends, and
        skipped by other instances (SKIP LOCKED)."""
        rm = orm.reminders
        stmt = select(rm).where(rm.c.status == PLANNED, rm.c.due_at <= now).order_by(rm.c.due_at).limit(limit)
        if not is_sqlite(self.conn):
            stmt = stmt.with_for_update(skip_locked=True)
        return [
            PlannedReminder(
                r["meeting_id"],
                r["kind"],
                r["days_before"],
                r["starts_at"],
                r["due_at"],
                r["status"],
                r["reason"],
                r["id"],
            )
            for r in (await self.conn.execute(stmt)).mappings()
        ]

    async def finish_reminder(self, reminder_id: UUID, status: str, reason: str | None, now: datetime) -> None:
        rm = orm.reminders
        await self.conn.execute(
            update(rm).where(rm.c.id == reminder_id).values(status=status, reason=reason, done_at=now)
        )

    async def material(
        self, delivery: Delivery, about: UUID
    ) -> tuple[Contact | None, Group | None, Meeting | None, Preference | None]:
        """The contact, group and meeting a delivery's message is made of, each None while not known here yet (a
        meeting whose title and times have not arrived counts as not known), and the member's preference for the
        message's category (None: no choice made, or a transactional kind). `about`: the group of a welcome, the
        meeting of every other kind (`Delivery.about`)."""
        c, g, m, p = orm.contacts, orm.groups, orm.meetings, orm.preferences
        row = (await self.conn.execute(select(c).where(c.c.member_id == delivery.member_id))).mappings().first()
        contact = _contact(row) if row else None
        if delivery.kind in PERSONAL:  # about the member alone, and transactional: no group, meeting or preference
            return contact, None, None, None
        meeting = None
        if delivery.kind != WELCOME:
            row = (await self.conn.execute(select(m).where(m.c.meeting_id == about))).mappings().first()
            meeting = _meeting(row) if row else None
            if meeting is not None and not meeting.ready:
                meeting = None
        group_id = about if meeting is None else meeting.group_id
        row = (await self.conn.execute(select(g).where(g.c.group_id == group_id))).mappings().first()
        group = Group(row["group_id"], row["name"]) if row else None
        preference = None
        category = category_of(delivery.kind)
        if category is not None:
            stmt = select(p).where(p.c.member_id == delivery.member_id, p.c.category == category)
            row = (await self.conn.execute(stmt)).mappings().first()
            preference = _preference(row) if row else None
        return contact, group, meeting, preference

    # -- GDPR erasure -------------------------------------------------------------------------------------------
    async def _erased(self, member_ids: Sequence[UUID]) -> set[UUID]:
        e = orm.erased_members
        found: set[UUID] = set()
        unique = list(dict.fromkeys(member_ids))
        for i in range(0, len(unique), CHUNK):
            stmt = select(e.c.member_id).where(e.c.member_id.in_(unique[i : i + CHUNK]))
            found.update((await self.conn.execute(stmt)).scalars())
        return found

    async def forget_member(self, member_id: UUID, erased_at: datetime) -> dict[str, int]:
        """Delete the member's contact, roster rows, preferences, answers and deliveries (sent, failed or still owed:
        none goes out any more; a delivery the worker holds is gone when it comes to mark it, so it is not finished),
        remember the id as erased, and scrub the messaging tables. Counts only; a second call finds nothing."""
        counts: dict[str, int] = {}
        for table in (orm.contacts, orm.group_members, orm.deliveries, orm.preferences, orm.rsvps):
            result = await self.conn.execute(delete(table).where(table.c.member_id == member_id))
            counts[table.name] = result.rowcount or 0
        stmt = dialect_insert(self.conn, orm.erased_members).values(member_id=member_id, erased_at=erased_at)
        await self.conn.execute(stmt.on_conflict_do_nothing(index_elements=["member_id"]))
        counts["webhook_deliveries"] = await self.webhooks.forget_member(member_id)
        scrubbed = await scrub_messaging(self.conn, orm.messaging, member_id)
        counts["outbox"], counts["dead_letters"] = scrubbed.outbox, scrubbed.dead_letters
        return counts

    # -- deliveries ----------------------------------------------------------------------------------------------
    async def owe(self, deliveries: Sequence[Delivery]) -> None:
        """Record deliveries owed; one whose dedupe key is owed already is left out (an event seen twice owes
        nothing twice)."""
        erased = await self._erased([delivery.member_id for delivery in deliveries])
        rows = [_row(delivery) for delivery in deliveries if delivery.member_id not in erased]
        for i in range(0, len(rows), CHUNK):
            stmt = dialect_insert(self.conn, d).values(rows[i : i + CHUNK])
            await self.conn.execute(stmt.on_conflict_do_nothing(index_elements=["dedupe_key"]))

    async def is_owed(self, dedupe_key: str) -> bool:
        """A delivery with this key is owed already (whatever became of it)."""
        return (await self.conn.execute(select(d.c.id).where(d.c.dedupe_key == dedupe_key))).first() is not None

    async def owed_since(self, member_id: UUID, kind: str, since: datetime) -> list[datetime]:
        """When the member was owed deliveries of `kind` after `since` (whatever became of them)."""
        stmt = select(d.c.created_at).where(d.c.member_id == member_id, d.c.kind == kind, d.c.created_at > since)
        return list((await self.conn.execute(stmt)).scalars())

    async def lock_contact(self, member_id: UUID) -> bool:
        """The member is in the directory; on PostgreSQL their contact row stays locked until the transaction ends
        (SQLite's BEGIN IMMEDIATE already holds the one writer lock), so what is decided for one member is decided
        one request at a time."""
        ct = orm.contacts
        stmt = select(ct.c.member_id).where(ct.c.member_id == member_id)
        if not is_sqlite(self.conn):
            stmt = stmt.with_for_update()
        return (await self.conn.execute(stmt)).first() is not None

    async def get(self, delivery_id: UUID) -> Delivery | None:
        row = (await self.conn.execute(select(d).where(d.c.id == delivery_id))).mappings().first()
        return self._loaded_from(row) if row else None

    async def due(self, now: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries due at `now` that nobody holds (or whose holder's lease ran out), oldest first. On
        PostgreSQL they stay locked until the transaction ends and other instances skip them (SKIP LOCKED), so no
        two instances ever lease the same one; SQLite has one writer at a time."""
        stmt = (
            select(d)
            .where(d.c.status == PENDING, d.c.next_attempt_at <= now)
            .where(or_(d.c.lease_until.is_(None), d.c.lease_until < now))
            .order_by(d.c.created_at)
            .limit(limit)
        )
        if not is_sqlite(self.conn):
            stmt = stmt.with_for_update(skip_locked=True)
        return [self._loaded_from(row) for row in (await self.conn.execute(stmt)).mappings()]

    async def not_yet_due(self, member_ids: Sequence[UUID], now: datetime) -> list[Delivery]:
        """Pending deliveries of these members that are not due yet (waiting for their data, or backing off)."""
        out: list[Delivery] = []
        for i in range(0, len(member_ids), CHUNK):
            stmt = select(d).where(
                d.c.member_id.in_(member_ids[i : i + CHUNK]), d.c.status == PENDING, d.c.next_attempt_at > now
            )
            out += [self._loaded_from(row) for row in (await self.conn.execute(stmt)).mappings()]
        return out

    async def save(self, delivery: Delivery) -> None:
        """Write a delivery's changes, unless somebody changed it since we loaded it (then LeaseLost)."""
        status, owner = self._loaded[delivery.id]
        unchanged: ColumnElement[bool] = d.c.lease_owner.is_(None) if owner is None else d.c.lease_owner == owner
        result = await self.conn.execute(
            update(d)
            .where(and_(d.c.id == delivery.id, d.c.status == status, unchanged))
            .values(
                status=delivery.status,
                attempts=delivery.attempts,
                next_attempt_at=delivery.next_attempt_at,
                lease_owner=delivery.lease_owner,
                lease_until=delivery.lease_until,
                to_email=delivery.to_email,
                subject=delivery.subject,
                message_id=delivery.message_id,
                last_error=error_text(delivery.last_error) if delivery.last_error is not None else None,
                sent_at=delivery.sent_at,
                created_at=delivery.created_at,
                secret=delivery.secret,  # blanked once the delivery ends (the domain says when)
            )
        )
        if result.rowcount != 1:
            raise LeaseLost(f"delivery {delivery.id} was changed by another instance")
        self._loaded[delivery.id] = (delivery.status, delivery.lease_owner)

    async def save_leases(self, deliveries: Sequence[Delivery]) -> None:
        """Write the leases of deliveries just taken with `due`, in one statement: `due` locked their rows (on
        SQLite the transaction holds the one writer lock), so nobody can have changed them since."""
        if not deliveries:
            return
        stmt = (
            update(d)
            .where(d.c.id == bindparam("delivery_id"))
            .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
        )
        await self.conn.execute(
            stmt, [{"delivery_id": x.id, "owner": x.lease_owner, "until": x.lease_until} for x in deliveries]
        )
        for delivery in deliveries:
            self._loaded[delivery.id] = (delivery.status, delivery.lease_owner)

    def _loaded_from(self, row: RowMapping) -> Delivery:
        delivery = _delivery(row)
        self._loaded[delivery.id] = (delivery.status, delivery.lease_owner)
        self.seen.append(delivery)
        return delivery


def _row(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "dedupe_key": delivery.dedupe_key,
        "member_id": delivery.member_id,
        "kind": delivery.kind,
        "channel": delivery.channel,
        "cause_event_id": delivery.cause_event_id,
        "payload": {**delivery.payload, "traceparent": delivery.traceparent},
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "secret": delivery.secret,
    }


def _delivery(row: RowMapping) -> Delivery:
    payload: dict[str, Any] = dict(row["payload"] or {})
    traceparent = payload.pop("traceparent", None)
    return Delivery(
        id=row["id"],
        dedupe_key=row["dedupe_key"],
        member_id=row["member_id"],
        kind=row["kind"],
        cause_event_id=row["cause_event_id"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        payload=payload,
        traceparent=traceparent,
        channel=row["channel"],
        status=row["status"],
        attempts=row["attempts"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        to_email=row["to_email"],
        subject=row["subject"],
        message_id=row["message_id"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
        secret=row["secret"],
    )


def _not_older(a: datetime | None, b: datetime | None) -> bool:
    return a is None or b is None or a >= b


def _meeting(row: RowMapping) -> Meeting:
    return Meeting(
        row["meeting_id"],
        row["group_id"],
        row["sequence"],
        dict(row["data"] or {}),
        row["status"],
        row["fields_sequence"],
        row["agenda_sequence"],
    )


def _contact(row: RowMapping) -> Contact:
    return Contact(
        row["member_id"],
        row["name"],
        row["email"],
        row["locale"],
        organisation_id=row["organisation_id"],
        profile_at=row["profile_at"],
        undeliverable_at=row["undeliverable_at"],
        undeliverable_reason=row["undeliverable_reason"],
    )


def _preference(row: RowMapping) -> Preference:
    return Preference(row["member_id"], row["category"], bool(row["email"]), row["language"])
