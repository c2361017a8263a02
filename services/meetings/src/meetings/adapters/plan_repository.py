"""Load and save Meetings for changes (move, cancel, agenda, minutes) and the year's plans, on the unit of work's
connection (`uow.repo.plan`). Meetings it loads join the unit of work's `seen` list, so their events go out with the
commit.

Two changes of one meeting at once must not both win: `get` locks the row (FOR UPDATE on PostgreSQL; SQLite has one
writer at a time), and `update` writes only where the sequence is still the one it read, else Conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import Conflict
from ..domain.model import AgendaItem, Meeting, Venue
from ..domain.series import Series
from . import orm

if TYPE_CHECKING:
    from .repository import MeetingRepository


class PlanRepository:
    def __init__(self, conn: AsyncConnection, meetings: MeetingRepository) -> None:
        self.conn = conn
        self.meetings = meetings  # new meetings (a series' occurrences) are added through it
        self.seen = meetings.seen
        self._read_sequence: dict[UUID, int] = {}

    async def coordinates(self, group_id: UUID, member_id: UUID) -> bool:
        """Whether the member is a coordinator of the group in the roster copy (and has not left it)."""
        gm = orm.group_members
        row = (
            await self.conn.execute(
                select(gm.c.role).where(gm.c.group_id == group_id, gm.c.member_id == member_id, gm.c.left_at.is_(None))
            )
        ).first()
        return row is not None and row.role == "coordinator"

    async def get(self, meeting_id: UUID) -> Meeting | None:
        m = orm.meetings
        row = (await self.conn.execute(select(m).where(m.c.id == meeting_id).with_for_update())).mappings().first()
        if row is None:
            return None
        meeting = _meeting(row, await self._agenda(meeting_id))
        self._read_sequence[meeting.id] = meeting.sequence
        self.seen.append(meeting)
        return meeting

    async def update(self, meeting: Meeting) -> None:
        m = orm.meetings
        venue = meeting.venue
        result = await self.conn.execute(
            update(m)
            .where(m.c.id == meeting.id, m.c.sequence == self._read_sequence[meeting.id])
            .values(
                title=meeting.title,
                starts_at=meeting.starts_at,
                ends_at=meeting.ends_at,
                venue_name=venue.name if venue else None,
                venue_address=venue.address if venue else None,
                venue_host_organisation=venue.host_organisation if venue else None,
                online_url=meeting.online_url,
                capacity=meeting.capacity,
                rsvp_deadline=meeting.rsvp_deadline,
                status=meeting.status,
                cancel_reason=meeting.cancel_reason,
                minutes=meeting.minutes,
                sequence=meeting.sequence,
            )
        )
        if result.rowcount != 1:
            raise Conflict("The meeting was changed by someone else at the same time; load it again and retry.")
        self._read_sequence[meeting.id] = meeting.sequence

    async def save_agenda(self, meeting: Meeting) -> None:
        a = orm.agenda_items
        await self.conn.execute(delete(a).where(a.c.meeting_id == meeting.id))
        if meeting.agenda:
            await self.conn.execute(insert(a), [agenda_row(meeting.id, item) for item in meeting.agenda])

    # -- the year's plan ------------------------------------------------------------------------------------------
    async def add_series(self, series: Series, meetings: Sequence[Meeting]) -> None:
        rule = series.rule
        await self.conn.execute(
            insert(orm.series),
            {
                "id": series.id,
                "group_id": series.group_id,
                "title": series.title,
                "timezone": series.timezone,
                "rule": {
                    "months": list(rule.months),
                    "weekday": rule.weekday,
                    "week": rule.week,
                    "starts": rule.starts.strftime("%H:%M"),
                    "ends": rule.ends.strftime("%H:%M"),
                },
                "first_day": series.first_day,
                "count": series.count,
                "planned_at": series.planned_at,
            },
        )
        for meeting in meetings:
            await self.meetings.add(meeting)

    async def series_group(self, series_id: UUID) -> UUID | None:
        s = orm.series
        return (await self.conn.execute(select(s.c.group_id).where(s.c.id == series_id))).scalar_one_or_none()

    async def series_meetings(self, series_id: UUID) -> list[Meeting]:
        """The series' meetings, each loaded (and locked) for a change, by start time."""
        m = orm.meetings
        ids = (
            (await self.conn.execute(select(m.c.id).where(m.c.series_id == series_id).order_by(m.c.starts_at)))
            .scalars()
            .all()
        )
        out = []
        for meeting_id in ids:
            meeting = await self.get(meeting_id)
            if meeting is not None:
                out.append(meeting)
        return out

    async def _agenda(self, meeting_id: UUID) -> tuple[AgendaItem, ...]:
        a = orm.agenda_items
        rows = (
            (await self.conn.execute(select(a).where(a.c.meeting_id == meeting_id).order_by(a.c.position)))
            .mappings()
            .all()
        )
        return tuple(
            AgendaItem(
                kind=r["kind"],
                title=r["title"],
                minutes=r["minutes"],
                speaker=r["speaker"],
                speaker_organisation=r["speaker_organisation"],
                tags=tuple(r["tags"] or ()),
                materials=tuple(r["materials"] or ()),
                position=r["position"],
            )
            for r in rows
        )


def agenda_row(meeting_id: UUID, item: AgendaItem) -> dict[str, Any]:
    return {
        "meeting_id": meeting_id,
        "position": item.position,
        "kind": item.kind,
        "title": item.title,
        "speaker": item.speaker,
        "speaker_organisation": item.speaker_organisation,
        "minutes": item.minutes,
        "tags": list(item.tags),
        "materials": list(item.materials),
    }


def _meeting(row: Any, agenda: tuple[AgendaItem, ...]) -> Meeting:
    venue = None
    if row["venue_name"] is not None:
        venue = Venue(
            name=row["venue_name"], address=row["venue_address"], host_organisation=row["venue_host_organisation"]
        )
    return Meeting(
        id=row["id"],
        group_id=row["group_id"],
        title=row["title"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        timezone=row["timezone"],
        scheduled_at=row["scheduled_at"],
        venue=venue,
        online_url=row["online_url"],
        capacity=row["capacity"],
        agenda=agenda,
        sequence=row["sequence"],
        status=row["status"],
        rsvp_deadline=row["rsvp_deadline"],
        series_id=row["series_id"],
        cancel_reason=row["cancel_reason"],
        minutes=row["minutes"],
    )
