"""What callers ask the meetings service to do: schedule meetings, and keep its copy of the group rosters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from .model import DEFAULT_TIMEZONE, KEEP, AgendaItem, Venue
from .series import Recurrence


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
    rsvp_deadline: datetime | None = None
    by: UUID | None = None  # the member asking (a coordinator of the group); None: the administration


# The roster commands come from the members service's events: facts to record, not requests to judge.
@dataclass(frozen=True)
class RecordGroup:
    group_id: UUID
    name: str
    slug: str
    region: str


@dataclass(frozen=True)
class RecordGroupChange:
    """group.updated: the group as it is now. An archived group stays archived (the members service never reopens
    one), whatever order its updates are consumed in."""

    group_id: UUID
    name: str
    slug: str
    region: str
    status: str  # open / closed / archived


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


@dataclass(frozen=True)
class ForgetMember:
    """A member was erased (GDPR): off the roster copy; their answers and attendance keep counting under random ids."""

    member_id: UUID
    erased_at: datetime


# -- the meeting's life, its agenda and the year's plan (issue 9: plan) ------------------------------------------
# `by`: the member asking, who must coordinate the meeting's group; None is the association's administration.
@dataclass(frozen=True)
class RescheduleMeeting:
    meeting_id: UUID
    by: UUID | None = None
    title: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    venue: Any = KEEP  # KEEP: unchanged; None: taken away
    online_url: Any = KEEP
    capacity: Any = KEEP
    rsvp_deadline: Any = KEEP


@dataclass(frozen=True)
class CancelMeeting:
    meeting_id: UUID
    reason: str
    by: UUID | None = None


@dataclass(frozen=True)
class ReplaceAgenda:
    meeting_id: UUID
    agenda: tuple[AgendaItem, ...]
    by: UUID | None = None


@dataclass(frozen=True)
class RecordMinutes:
    meeting_id: UUID
    minutes: str
    by: UUID | None = None


@dataclass(frozen=True)
class PlanSeries:
    group_id: UUID
    title: str
    rule: Recurrence
    first_day: date
    count: int
    timezone: str = DEFAULT_TIMEZONE
    venue: Venue | None = None
    online_url: str | None = None
    capacity: int | None = None
    agenda: tuple[AgendaItem, ...] = ()
    rsvp_days_before: int | None = None
    by: UUID | None = None


@dataclass(frozen=True)
class CancelSeries:
    """Cancel every occurrence still to come; those already held or cancelled stay as they are."""

    series_id: UUID
    reason: str
    by: UUID | None = None


# -- topic proposals and calendar feeds (issue 9: proposals + calendar) ----------------------------------------------
# `by`: the member asking; None is the association's administration.
@dataclass(frozen=True)
class SubmitProposal:
    group_id: UUID
    by: UUID | None
    kind: str  # topic / talk
    title: str
    description: str = ""
    for_meeting_id: UUID | None = None
    speaker: str | None = None
    speaker_organisation: str | None = None


@dataclass(frozen=True)
class BackProposal:
    proposal_id: UUID
    by: UUID | None


@dataclass(frozen=True)
class WithdrawBacking:
    proposal_id: UUID
    by: UUID | None


@dataclass(frozen=True)
class AcceptProposal:
    proposal_id: UUID
    meeting_id: UUID
    minutes: int
    by: UUID | None = None


@dataclass(frozen=True)
class DeclineProposal:
    proposal_id: UUID
    reason: str
    by: UUID | None = None


@dataclass(frozen=True)
class CreateCalendarFeed:
    """A secret feed URL for a group's meetings (group_id) or for every group a member is in (member_id)."""

    by: UUID | None
    group_id: UUID | None = None
    member_id: UUID | None = None


@dataclass(frozen=True)
class RevokeCalendarFeed:
    feed_id: UUID
    by: UUID | None


# -- RSVP, waiting lists, attendance (issue 9: seats); `by` is who asks: a member, or None (the administration) ----
@dataclass(frozen=True)
class AnswerInvitation:
    meeting_id: UUID
    member_id: UUID
    response: str  # attending / tentative / declined


@dataclass(frozen=True)
class SendColleague:
    """A member who holds a seat (or waits for one) sends a colleague of the same organisation in their place."""

    meeting_id: UUID
    member_id: UUID
    colleague_id: UUID


@dataclass(frozen=True)
class RecordAttendance:
    meeting_id: UUID
    member_id: UUID
    attended: bool
    by: UUID | None = None


# The roster's upkeep, from the members service's events: facts to record.
@dataclass(frozen=True)
class RecordLeaving:
    group_id: UUID
    member_id: UUID
    left_at: datetime
    reason: str


@dataclass(frozen=True)
class RecordRole:
    group_id: UUID
    member_id: UUID
    role: str


@dataclass(frozen=True)
class RecordSeatTransfer:
    group_id: UUID
    organisation_id: UUID
    from_member_id: UUID
    to_member_id: UUID


@dataclass(frozen=True)
class RecordOrganisation:
    member_id: UUID
    organisation_id: UUID
    at: datetime  # the profile's time (registered_at / updated_at)
