"""What the notifications service is asked to do: record what the other services published (facts, not requests to
judge), move deliveries on for the delivery worker, and retry a failed one for an operator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from .model import Contact, Failure, Meeting, Preference, ReminderSettings


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
    joined_at: datetime | None = None  # orders it against a MemberLeft (None: as before 0005, always wins)


@dataclass(frozen=True)
class RecordJoins:
    """Members joined groups: the roster copy, and the welcomes owed."""

    joins: tuple[Join, ...]


@dataclass(frozen=True)
class RecordLeaving:
    """A member left a group (MemberLeft): off the roster copy, and what is still owed to them about the group's
    meetings that they may turn off (invitations, updates, agenda notices, reminders) is skipped. Transactional mail
    already owed (a cancellation, the receipt of their own answer, a seat) still goes."""

    member_id: UUID
    group_id: UUID
    left_at: datetime


@dataclass(frozen=True)
class RecordRole:
    """A member's role in a group changed (MemberRoleChanged): who may set the group's reminder timings."""

    member_id: UUID
    group_id: UUID
    role: str
    changed_at: datetime | None = None  # the event's time: orders it against the join (None: now)


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
    answered_at: datetime | None = None  # orders the member's answers (None: not kept, as before 0005)


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
    refused_address: str | None = None  # the server refused this address for good: it is marked undeliverable


@dataclass(frozen=True)
class ClearUndeliverable:
    """The administration clears a member's address of its undeliverable mark (it was fixed at the mail server)."""

    member_id: UUID


@dataclass(frozen=True)
class UndoSent:
    """The server refused the final "." after "sent" was committed."""

    delivery_id: UUID
    failure: Failure


# -- the reminder worker's ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendDueReminders:
    """Turn the reminders that are due into deliveries, each at most once; returns (reminders handled, deliveries
    owed)."""

    limit: int


# -- a coordinator's (or the administration's) -------------------------------------------------------------------
@dataclass(frozen=True)
class SetReminderSettings:
    """A group's reminder timings (bounded: ReminderSettings.check); the meetings still to come are planned anew.
    `by`: the member acting (None: the administration); Forbidden unless they coordinate the group."""

    group_id: UUID
    settings: ReminderSettings
    by: UUID | None = None


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


# -- the web gateway's (as the administration) --------------------------------------------------------------------
@dataclass(frozen=True)
class SendSignInMail:
    """Owe the member one mail with the sign-in link the gateway made (`link_id` names it): once per link, at most
    SIGN_IN_LIMIT a member per SIGN_IN_WINDOW (else TooMany); NotFound for a member not in the directory. The link
    is a secret: kept out of the repr, so out of any log line that shows the command."""

    member_id: UUID
    link_id: UUID
    link: str = field(repr=False)
    traceparent: str | None = None


# -- an operator's ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryDelivery:
    delivery_id: UUID
