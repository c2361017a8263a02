"""The delivery worker: sends what is owed, exactly once as far as SMTP allows, and records it.

Each due delivery is leased (so several instances never send the same one), rendered, and handed to the two-phase
mailer: the message body goes out inside DATA, then "sent" and the NotificationSent outbox row commit together, and
only then does the final "." make the server take the message. A crash before that commit leaves nothing delivered
and the lease runs out, so another attempt follows; the worst case left is a lost message in the microseconds between
the commit and the ".", never a duplicate.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update

from netvaerk_shared import contracts, tracing
from netvaerk_shared.db import is_sqlite
from netvaerk_shared.envelope import make_event
from netvaerk_shared.outbox import enqueue, notify_channel

from ..adapters import orm
from ..adapters.calendar import build_invitation_ics
from ..adapters.mailer import SmtpError, SmtpOutcomeUnknown, SmtpRejected, build_message
from ..adapters.templates import agenda_description, render_invitation, render_welcome
from ..domain import model

log = logging.getLogger(__name__)
d = orm.deliveries


class NotReady(Exception):
    """What the message needs (contact, group, meeting) has not arrived yet: try again later."""


class LeaseLost(Exception):
    """Another instance took this delivery over (our lease ran out): send nothing."""


class DeliveryWorker:
    def __init__(self, runtime, settings, mailer, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.settings = settings
        self.mailer = mailer
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    handled = await self.run_once()
                except Exception:
                    log.exception("delivery worker: batch failed; retrying in 2s")
                    handled = 0
                    await asyncio.sleep(2)
                if handled:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.mailer.close()

    async def run_once(self) -> int:
        rows = await self._claim()
        for i, row in enumerate(rows):
            if not await self._deliver(row):
                # the SMTP server is away: give the rest back instead of knocking on a closed door for each
                await self._release(rows[i + 1:])
                return 0
        return len(rows)

    async def _release(self, rows) -> None:
        if rows:
            async with self.engine.begin() as conn:
                await conn.execute(update(d).where(and_(d.c.id.in_([r.id for r in rows]),
                                                        d.c.lease_owner == self.owner))
                                   .values(lease_owner=None, lease_until=None))

    async def _claim(self):
        now = self.clock()
        due = (
            select(d.c.id)
            .where(d.c.status == "pending", d.c.next_attempt_at <= now,
                   or_(d.c.lease_until.is_(None), d.c.lease_until < now))
            .order_by(d.c.created_at)
            .limit(self.settings.delivery_batch_size)
        )
        if not is_sqlite(self.engine):
            due = due.with_for_update(skip_locked=True)
        lease_until = now + timedelta(seconds=self.settings.delivery_lease_seconds)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(d).where(d.c.id.in_(due)).values(lease_owner=self.owner, lease_until=lease_until)
                .returning(*d.c))
            rows = result.all()
        return sorted(rows, key=lambda r: r.created_at)

    async def _deliver(self, row) -> bool:
        """False when the SMTP server could not be reached (the caller stops the batch)."""
        token = tracing.current_traceparent.set(tracing.child_of((row.payload or {}).get("traceparent")))
        try:
            try:
                message, subject, to_email = await self._render(row)
            except NotReady as exc:
                await self._retry(row, str(exc), permanent=False, counts=True)
                return True

            pending: list[asyncio.Future] = []

            async def commit_point() -> None:
                await self._mark_sent(row, subject, to_email, message["Message-ID"], pending)

            try:
                try:
                    await self.mailer.send(message, before_commit_point=commit_point)
                finally:
                    for task in pending:
                        try:
                            await task
                        except Exception:
                            # the "." went out but "sent" did not commit: the delivery stays pending and will be
                            # sent again -- the one case left that can double a message (a database failing its COMMIT)
                            log.exception("delivery %s: commit failed after the message was released", row.id)
            except LeaseLost:
                log.info("delivery %s taken over by another instance", row.id)
                return True
            except SmtpOutcomeUnknown as exc:
                log.error("delivery %s: no reply to the final dot; kept as sent (may be lost): %s", row.id, exc)
                return True
            except SmtpError as exc:
                permanent = isinstance(exc, SmtpRejected) and exc.permanent
                if exc.committed:
                    await self._undo_sent(row, str(exc), permanent)
                else:
                    # SMTP trouble that is not the message's fault is retried until it passes: never given up on
                    await self._retry(row, str(exc), permanent, counts=permanent)
                return isinstance(exc, SmtpRejected)
            self.sent += 1
            log.info("sent %s to member %s", row.kind, row.member_id, extra={"delivery_id": str(row.id)})
            return True
        finally:
            tracing.current_traceparent.reset(token)

    async def _render(self, row):
        async with self.engine.connect() as conn:
            contact = (await conn.execute(
                select(orm.contacts).where(orm.contacts.c.member_id == row.member_id))).first()
            if contact is None:
                raise NotReady(f"no contact yet for member {row.member_id}")
            if row.kind == model.WELCOME:
                group = (await conn.execute(select(orm.groups).where(
                    orm.groups.c.group_id == uuid.UUID(row.payload["group_id"])))).first()
                if group is None:
                    raise NotReady(f"group {row.payload['group_id']} not known yet")
                subject, body = render_welcome(contact.locale, member_name=contact.name, group_name=group.name)
                ics = None
            else:
                meeting = (await conn.execute(select(orm.meetings).where(
                    orm.meetings.c.meeting_id == uuid.UUID(row.payload["meeting_id"])))).first()
                if meeting is None:
                    raise NotReady(f"meeting {row.payload['meeting_id']} not known yet")
                group = (await conn.execute(select(orm.groups).where(
                    orm.groups.c.group_id == meeting.group_id))).first()
                subject, body, ics = self._invitation(contact, meeting.data, group.name if group else "")
        message = build_message(
            message_id=str(row.id), from_addr=f"{self.settings.mail_from_name} <{self.settings.mail_from}>",
            to_addr=contact.email, to_name=contact.name, subject=subject, text_body=body, ics=ics,
            locale=contact.locale)
        return message, subject, contact.email

    def _invitation(self, contact, data: dict, group_name: str):
        meeting = contracts.MeetingScheduled.model_validate(data)
        zone = ZoneInfo(meeting.timezone)
        start_local, end_local = meeting.starts_at.astimezone(zone), meeting.ends_at.astimezone(zone)
        location = None
        if meeting.venue is not None:
            location = ", ".join(p for p in (meeting.venue.name, meeting.venue.address) if p)
        agenda = [a.model_dump(mode="json") for a in meeting.agenda]
        subject, body = render_invitation(
            contact.locale, member_name=contact.name, group_name=group_name, title=meeting.title,
            starts_at_local=start_local, ends_at_local=end_local, location=location,
            online_url=meeting.online_url, agenda=agenda)
        ics = build_invitation_ics(
            meeting_id=str(meeting.meeting_id), sequence=meeting.sequence, title=meeting.title,
            starts_at=meeting.starts_at, ends_at=meeting.ends_at, timezone=meeting.timezone, location=location,
            online_url=meeting.online_url,
            description=agenda_description(contact.locale, agenda, starts_at_local=start_local),
            organizer_email=self.settings.mail_from, organizer_name=self.settings.mail_from_name,
            attendee_email=contact.email, attendee_name=contact.name, dtstamp=self.clock())
        return subject, body, ics

    async def _mark_sent(self, row, subject: str, to_email: str, message_id: str, pending: list) -> None:
        """The commit point: "sent" and its NotificationSent outbox row, in one transaction.

        On PostgreSQL the COMMIT is put on the wire and this returns at once, so the mailer writes the final "." in
        the same breath: a process killed between the two writes is the only way to lose a message, and a kill
        after both still commits (the server has the COMMIT) and delivers (the SMTP server has the "."). The commit's
        outcome is awaited after the send (`pending`). On SQLite the commit is local and finishes first."""
        now = self.clock()
        event = make_event(contracts.NotificationSent(
            notification_id=row.id, member_id=row.member_id, kind=row.kind, channel="email",
            cause_event_id=row.cause_event_id, sent_at=now), causationid=str(row.cause_event_id))
        conn = await self.engine.connect()
        trans = await conn.begin()
        try:
            result = await conn.execute(
                update(d).where(and_(d.c.id == row.id, d.c.status == "pending", d.c.lease_owner == self.owner))
                .values(status="sent", sent_at=now, subject=subject[:300], to_email=to_email, message_id=message_id,
                        attempts=d.c.attempts + 1, lease_owner=None, lease_until=None, last_error=None))
            if result.rowcount != 1:
                raise LeaseLost(str(row.id))
            await enqueue(conn, orm.messaging, [event], [f"notifications.notification.sent.v1.{row.id}"],
                          notify=notify_channel("notifications") if self.runtime.relay is None else None)
        except BaseException:
            await trans.rollback()
            await conn.close()
            raise

        async def finish() -> None:
            try:
                await trans.commit()
            finally:
                await conn.close()
            self.runtime.wake_relay()

        if is_sqlite(self.engine):
            await finish()
            return
        task = asyncio.ensure_future(finish())
        pending.append(task)
        await asyncio.sleep(0)  # one step: asyncpg has written the COMMIT to its socket

    async def _retry(self, row, error: str, permanent: bool, counts: bool) -> None:
        attempts = row.attempts + 1
        give_up = counts and model.gives_up(attempts, self.settings.delivery_max_attempts, permanent)
        async with self.engine.begin() as conn:
            # Only while the lease is ours: after a slow attempt another instance may have taken over (or sent it).
            result = await conn.execute(update(d).where(and_(d.c.id == row.id, d.c.status == "pending",
                                                             d.c.lease_owner == self.owner)).values(
                status="failed" if give_up else "pending", attempts=attempts, last_error=error[:2000],
                next_attempt_at=self.clock() + model.retry_delay(attempts), lease_owner=None, lease_until=None))
        if result.rowcount != 1:
            log.info("delivery %s taken over by another instance; leaving it alone (%s)", row.id, error)
            return
        (log.error if give_up else log.warning)("delivery %s %s: %s", row.id,
                                                "failed for good" if give_up else "will be retried", error)

    async def _undo_sent(self, row, error: str, permanent: bool) -> None:
        """The server refused at the final dot, after we committed "sent": put the delivery back (or fail it)."""
        attempts = row.attempts + 1
        give_up = permanent  # a 4xx at the dot is the server's trouble, not the message's: retried until it passes
        async with self.engine.begin() as conn:
            await conn.execute(update(d).where(d.c.id == row.id).values(
                status="failed" if give_up else "pending", sent_at=None, last_error=error[:2000],
                next_attempt_at=self.clock() + model.retry_delay(attempts)))
        log.error("delivery %s refused after commit (%s); NotificationSent for it was already published", row.id,
                  error)
