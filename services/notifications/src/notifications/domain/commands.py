"""What the notifications service is asked to do: record what the other services published (facts, not requests to
judge), move deliveries on for the delivery worker, and retry a failed one for an operator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .model import Contact, Failure, Meeting, Preference


# -- from MEMBERS and MEETINGS events -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordGroup:
    group_id: UUID
    name: str


@dataclass(frozen=True)
class RecordContacts:
    """Members registered (or changed their profile): the last profile of a member wins."""

    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class Join:
    member_id: UUID
    group_id: UUID
    role: str
    cause_event_id: UUID  # the MemberJoined event: NotificationSent names it
    traceparent: str | None = None


@dataclass(frozen=True)
class RecordJoins:
    """Members joined groups: the roster copy, and the welcomes owed."""

    joins: tuple[Join, ...]


@dataclass(frozen=True)
class RecordMeeting:
    """A meeting was scheduled (or changed: a new sequence): kept to render from, and an invitation owed to each
    member of its group."""

    meeting: Meeting
    cause_event_id: UUID
    traceparent: str | None = None


@dataclass(frozen=True)
class RecordReschedule:
    """A meeting was moved or changed (MeetingRescheduled): the copy takes the new fields, and every member of its
    group is owed an update with the calendar entry that replaces theirs."""

    meeting_id: UUID
    group_id: UUID
    sequence: int
    fields: dict[str, Any]  # the MeetingScheduled fields as published (MEETING_FIELDS)
    previous_starts_at: datetime
    cause_event_id: UUID
    traceparent: str | None = None


@dataclass(frozen=True)
class RecordCancellation:
    meeting_id: UUID
    group_id: UUID
    sequence: int
    reason: str
    cause_event_id: UUID
    traceparent: str | None = None


@dataclass(frozen=True)
class RecordAgenda:
    """A meeting's agenda changed (or its minutes were written: `held`). At most one notice a meeting per
    `window_seconds` (the service's AGENDA_UPDATE_WINDOW_SECONDS)."""

    meeting_id: UUID
    group_id: UUID
    sequence: int
    agenda: tuple[dict[str, Any], ...]
    held: bool
    window_seconds: int
    cause_event_id: UUID
    traceparent: str | None = None


@dataclass(frozen=True)
class RecordRsvp:
    meeting_id: UUID
    group_id: UUID
    member_id: UUID
    response: str
    status: str
    waitlist_position: int | None
    on_behalf_of: UUID | None
    cause_event_id: UUID
    traceparent: str | None = None


@dataclass(frozen=True)
class RecordPromotion:
    meeting_id: UUID
    member_id: UUID
    cause_event_id: UUID
    traceparent: str | None = None


@dataclass(frozen=True)
class RecordProposalAccepted:
    proposal_id: UUID
    meeting_id: UUID
    member_id: UUID
    agenda_position: int
    cause_event_id: UUID
    traceparent: str | None = None


@dataclass(frozen=True)
class ForgetMember:
    """A member was erased (GDPR): their contact, roster rows and deliveries go, and nothing is owed to them again."""

    member_id: UUID
    erased_at: datetime


# -- the delivery worker's ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeaseDeliveries:
    owner: str  # the worker instance
    limit: int
    lease_seconds: int  # a delivery held by a process that died is taken over after this


@dataclass(frozen=True)
class ReleaseDeliveries:
    owner: str
    delivery_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class PrepareDelivery:
    """Gather what the message is made of; when something has not arrived yet, record the wait instead."""

    delivery_id: UUID
    owner: str
    wait_seconds: int
    max_attempts: int


@dataclass(frozen=True)
class MarkSent:
    delivery_id: UUID
    owner: str
    to_email: str
    subject: str
    message_id: str


@dataclass(frozen=True)
class RecordFailure:
    delivery_id: UUID
    owner: str
    failure: Failure
    max_attempts: int


@dataclass(frozen=True)
class UndoSent:
    """The server refused the final "." after "sent" was committed."""

    delivery_id: UUID
    failure: Failure


# -- a member's (or the administration's) ------------------------------------------------------------------------
@dataclass(frozen=True)
class SetPreferences:
    """The member's choices for every category (NotFound for a member this service does not know)."""

    member_id: UUID
    preferences: tuple[Preference, ...]


@dataclass(frozen=True)
class Unsubscribe:
    """One-click unsubscribe (RFC 8058): email off for one category, the rest as it was. Idempotent."""

    member_id: UUID
    category: str


# -- an operator's ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryDelivery:
    delivery_id: UUID
