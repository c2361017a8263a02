"""What callers ask the meetings service to do: schedule meetings, and keep its copy of the group rosters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from .model import DEFAULT_TIMEZONE, AgendaItem, Venue


@dataclass(frozen=True)
class ScheduleMeeting:
    group_id: UUID
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str = DEFAULT_TIMEZONE
    venue: Venue | None = None
    online_url: str | None = None
    capacity: int | None = None
    agenda: tuple[AgendaItem, ...] = ()  # in order; the meeting numbers them


# The roster commands come from the members service's events: facts to record, not requests to judge.
@dataclass(frozen=True)
class RecordGroup:
    group_id: UUID
    name: str
    slug: str
    region: str


@dataclass(frozen=True)
class RecordMembership:
    group_id: UUID
    member_id: UUID
    role: str
    joined_at: datetime


@dataclass(frozen=True)
class RecordMemberships:
    """Many RecordMembership at once (a batch of MemberJoined events), recorded in a few statements."""

    memberships: tuple[RecordMembership, ...]
