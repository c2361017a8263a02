"""Events published by the meetings service on stream MEETINGS (subjects meetings.>)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .base import EventData, register


class AgendaKind(StrEnum):
    check_in = "check_in"
    talk = "talk"
    discussion = "discussion"
    break_ = "break"
    other = "other"


class Venue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    address: str | None = None
    host_organisation: str | None = None


class AgendaItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    position: int = Field(ge=1)
    kind: AgendaKind
    title: str
    speaker: str | None = None
    speaker_organisation: str | None = None
    minutes: int = Field(ge=0, le=600)
    tags: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()  # links (http/https) to slides, papers, recordings


@register
class MeetingScheduled(EventData):
    """A meeting of a network group was put in the calendar. Times are UTC instants; `timezone` is where it is held."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "meeting"
    event: ClassVar[str] = "scheduled"
    subject_field: ClassVar[str] = "meeting_id"

    meeting_id: UUID
    group_id: UUID
    series_id: UUID | None = None
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str = "Europe/Copenhagen"
    venue: Venue | None = None
    online_url: str | None = None
    capacity: int | None = None
    rsvp_deadline: datetime | None = None
    agenda: tuple[AgendaItem, ...] = ()
    sequence: int = 0


# --- the meeting's life, its agenda and the year's plan (issue 9: plan) ---------------------------------------------


class MeetingStatus(StrEnum):
    scheduled = "scheduled"
    cancelled = "cancelled"
    held = "held"


@register
class MeetingRescheduled(EventData):
    """A meeting was moved, or its place, link, seats or RSVP deadline changed: the fields give the meeting as it is
    now. `sequence` rises with every change (RFC 5545 SEQUENCE), so the newest wins whatever order events arrive in."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "meeting"
    event: ClassVar[str] = "rescheduled"
    subject_field: ClassVar[str] = "meeting_id"

    meeting_id: UUID
    group_id: UUID
    series_id: UUID | None = None
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str = "Europe/Copenhagen"
    venue: Venue | None = None
    online_url: str | None = None
    capacity: int | None = None
    rsvp_deadline: datetime | None = None
    previous_starts_at: datetime
    sequence: int = Field(ge=1)


@register
class MeetingCancelled(EventData):
    """A meeting was called off, with the reason the coordinator gave. It stays in the plan (and calendars) as
    cancelled."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "meeting"
    event: ClassVar[str] = "cancelled"
    subject_field: ClassVar[str] = "meeting_id"

    meeting_id: UUID
    group_id: UUID
    series_id: UUID | None = None
    starts_at: datetime
    reason: str
    sequence: int = Field(ge=1)


@register
class AgendaUpdated(EventData):
    """A meeting's agenda is now `agenda` (the whole of it, in order), or its minutes were written after the meeting
    (then `status` is held)."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "agenda"
    event: ClassVar[str] = "updated"
    subject_field: ClassVar[str] = "meeting_id"

    meeting_id: UUID
    group_id: UUID
    agenda: tuple[AgendaItem, ...] = ()
    minutes: str | None = None
    status: MeetingStatus = MeetingStatus.scheduled
    sequence: int = Field(ge=1)


# --- RSVP, waiting lists, attendance (issue 9: seats) ---------------------------------------------------------------


class RsvpResponse(StrEnum):
    attending = "attending"
    tentative = "tentative"
    declined = "declined"


class RsvpStatus(StrEnum):
    """What the answer holds: a seat (confirmed), a place in the waiting list (waitlisted), nothing because the answer
    is tentative or declined (noted), or nothing because it was withdrawn when the member left the group."""

    confirmed = "confirmed"
    waitlisted = "waitlisted"
    noted = "noted"
    withdrawn = "withdrawn"


@register
class RsvpRecorded(EventData):
    """A member answered a meeting's invitation (or was sent in a colleague's place, `on_behalf_of`), or their answer
    was withdrawn because they left the group. Ids only; the subject is the meeting."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "rsvp"
    event: ClassVar[str] = "recorded"
    subject_field: ClassVar[str] = "meeting_id"

    meeting_id: UUID
    group_id: UUID
    member_id: UUID
    response: RsvpResponse
    status: RsvpStatus
    waitlist_position: int | None = Field(default=None, ge=1)
    on_behalf_of: UUID | None = None
    answered_at: datetime


@register
class WaitlistPromoted(EventData):
    """A seat came free and the first member on the meeting's waiting list got it. Ids only; the subject is the
    meeting."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "waitlist"
    event: ClassVar[str] = "promoted"
    subject_field: ClassVar[str] = "meeting_id"

    meeting_id: UUID
    group_id: UUID
    member_id: UUID
    promoted_at: datetime


@register
class AttendanceRecorded(EventData):
    """A coordinator (or the administration) recorded whether a member was at a meeting. Ids only; the subject is the
    meeting."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "attendance"
    event: ClassVar[str] = "recorded"
    subject_field: ClassVar[str] = "meeting_id"

    meeting_id: UUID
    group_id: UUID
    member_id: UUID
    attended: bool
    recorded_at: datetime


# --- topic proposals (issue 9: proposals) ---------------------------------------------------------------------------


class ProposalKind(StrEnum):
    topic = "topic"  # something the group should talk about
    talk = "talk"  # a talk (oplæg) the member offers to give, or to have a colleague give


@register
class ProposalSubmitted(EventData):
    """A member of a group proposed a topic or offered a talk, for a coming meeting or for the group's next ones."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "proposal"
    event: ClassVar[str] = "submitted"
    subject_field: ClassVar[str] = "proposal_id"

    proposal_id: UUID
    group_id: UUID
    member_id: UUID
    kind: ProposalKind
    title: str
    for_meeting_id: UUID | None = None


@register
class ProposalAccepted(EventData):
    """A coordinator took the proposal into a meeting's agenda, at `agenda_position`. `member_id` is the proposer,
    to be told."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "proposal"
    event: ClassVar[str] = "accepted"
    subject_field: ClassVar[str] = "proposal_id"

    proposal_id: UUID
    group_id: UUID
    member_id: UUID
    meeting_id: UUID
    agenda_position: int = Field(ge=1)


@register
class ProposalDeclined(EventData):
    """A coordinator declined the proposal, saying why. `member_id` is the proposer, to be told."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "proposal"
    event: ClassVar[str] = "declined"
    subject_field: ClassVar[str] = "proposal_id"

    proposal_id: UUID
    group_id: UUID
    member_id: UUID
    reason: str
