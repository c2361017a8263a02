"""What a notification is, when it is owed, and how its delivery goes. Pure Python: no database, no clock, no I/O.

A `Delivery` is one message owed to one member for one cause. Its life:

    owed (pending) --lease--> leased --mark_sent--> sent --refused_after_sent--> pending | failed
                                     --attempt_failed--> pending again, after a backoff | failed
                                     --wait_for_data--> pending again, soon (no attempt counted) | failed
                                     --release--> owed (given back untried)
    failed --retry (an operator)--> owed, with fresh attempts

"leased" is a pending delivery with a lease: one instance holds it until `lease_until`, and only the holder may move
it on. Reaching `sent` records NotificationSent, reaching `failed` records NotificationFailed (`events`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from .errors import LeaseLost, NotFailed, NotReady
from .events import NotificationFailed, NotificationSent

WELCOME = "welcome"
INVITATION = "invitation"
EMAIL = "email"

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


# -- what messages are made of (copies of what the other services published) -------------------------------------
@dataclass(frozen=True)
class Contact:
    member_id: UUID
    name: str
    email: str
    locale: str


@dataclass(frozen=True)
class Group:
    group_id: UUID
    name: str


@dataclass(frozen=True)
class Meeting:
    meeting_id: UUID
    group_id: UUID
    sequence: int
    data: dict[str, Any]  # the MeetingScheduled data, as published: the invitation is rendered from it


@dataclass(frozen=True)
class Material:
    """What one message is made of: the member's contact, the group and, for an invitation, the meeting."""

    contact: Contact
    group: Group | None
    meeting: Meeting | None


@dataclass(frozen=True)
class Failure:
    """Why an attempt did not send. `error` is the whole story, for our own database; `reason` the short one, free of
    personal data, for NotificationFailed. `permanent`: retrying cannot help. `counts`: the attempt counts towards
    the delivery's limit of attempts (trouble of the server's, not the message's, is retried until it passes)."""

    error: str
    reason: str
    permanent: bool
    counts: bool


def cannot_be_sent(error: str, reason: str) -> Failure:
    """The message cannot be built or put on the wire, or the server refused it for good: it never will go."""
    return Failure(error, reason, permanent=True, counts=True)


def temporary(error: str, reason: str) -> Failure:
    """The server is away, or answered 4xx: try again later, however often it takes."""
    return Failure(error, reason, permanent=False, counts=False)


# -- the rules ----------------------------------------------------------------------------------------------------
def retry_delay(attempts: int) -> timedelta:
    """Backoff for a delivery that could not go yet: 2 s, 4 s, ... capped at 10 minutes."""
    return timedelta(seconds=min(600, 2 ** max(1, attempts)))


def wait_delay(waited_seconds: float) -> timedelta:
    """How soon a delivery waiting for its data looks again: soon at first, every 10 s at most after a while."""
    return timedelta(seconds=min(10.0, max(0.5, waited_seconds / 10)))


def gives_up(attempts: int, max_attempts: int, permanent: bool) -> bool:
    return permanent or attempts >= max_attempts


@dataclass(eq=False)
class Delivery:
    """One message owed to one member, for one cause. `dedupe_key` makes it owed once, however often the cause is
    seen. `payload` names what the message is about (`group_id` or `meeting_id`, as text)."""

    id: UUID
    dedupe_key: str
    member_id: UUID
    kind: str
    cause_event_id: UUID
    created_at: datetime
    next_attempt_at: datetime
    payload: dict[str, str] = field(default_factory=dict)
    traceparent: str | None = None  # the trace of the cause: the message and its events continue it
    channel: str = EMAIL
    status: str = PENDING
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None
    to_email: str | None = None
    subject: str | None = None
    message_id: str | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    events: list[NotificationSent | NotificationFailed] = field(default_factory=list)

    # -- what it is about ---------------------------------------------------------------------------------------
    @property
    def about(self) -> UUID:
        """The group a welcome is for, the meeting an invitation is for. KeyError or ValueError for a payload that
        does not say: such a delivery can never be built."""
        return UUID(self.payload["group_id" if self.kind == WELCOME else "meeting_id"])

    def made_of(self, contact: Contact | None, group: Group | None, meeting: Meeting | None) -> Material:
        """What the message is made of, or NotReady for what has not arrived from the other services yet. An
        invitation goes without its group's name; a welcome needs its group."""
        if contact is None:
            raise NotReady("contact", f"no contact yet for member {self.member_id}")
        if self.kind == WELCOME and group is None:
            raise NotReady("group", f"group {self.payload.get('group_id')} not known yet")
        if self.kind == INVITATION and meeting is None:
            raise NotReady("meeting", f"meeting {self.payload.get('meeting_id')} not known yet")
        return Material(contact, group, meeting)

    # -- transitions --------------------------------------------------------------------------------------------
    def lease(self, owner: str, now: datetime, until: datetime) -> None:
        """Take the delivery for one attempt: only a pending one that is due and that nobody holds (or whose holder's
        lease ran out: that instance died)."""
        if self.status != PENDING or self.next_attempt_at > now:
            raise LeaseLost(f"delivery {self.id} is not due")
        if self.lease_until is not None and self.lease_until >= now:
            raise LeaseLost(f"delivery {self.id} is leased by {self.lease_owner}")
        self.lease_owner, self.lease_until = owner, until

    def release(self, owner: str) -> bool:
        """Give the delivery back untried (due at once, for any instance). False when it was not ours."""
        if self.status != PENDING or self.lease_owner != owner:
            return False
        self._end_lease()
        return True

    def mark_sent(self, owner: str, now: datetime, *, to_email: str, subject: str, message_id: str) -> None:
        """The message is on its way (the commit point of the two-phase send): sent, announced by NotificationSent."""
        self._require_lease(owner)
        self.status, self.sent_at, self.attempts, self.last_error = SENT, now, self.attempts + 1, None
        self.to_email, self.subject, self.message_id = to_email, subject[:300], message_id
        self._end_lease()
        self.events.append(NotificationSent(notification_id=self.id, sent_at=now))

    def attempt_failed(self, owner: str, failure: Failure, now: datetime, *, max_attempts: int) -> None:
        """An attempt that did not send: pending again after a backoff, or `failed` (with NotificationFailed) when
        the failure is permanent or, if it counts, the attempts are used up."""
        self._require_lease(owner)
        self.attempts += 1
        self._record_failure(failure, now, failure.counts and gives_up(self.attempts, max_attempts, failure.permanent))

    def wait_for_data(self, owner: str, missing: NotReady, now: datetime, *, wait_seconds: int) -> None:
        """What the message needs has not arrived (`made_of`): look again soon, without counting an attempt, and
        fail only once it has waited `wait_seconds` since it was owed, announced as not permanent: an upstream outage
        is waited out, the cause was never the message's own."""
        self._require_lease(owner)
        waited = (now - self.created_at).total_seconds()
        if waited >= wait_seconds:
            self.attempts += 1
            failure = cannot_be_sent(f"{missing} after {waited:.0f} s", f"not ready: no {missing.missing}")
            self._record_failure(failure, now, True, announce_permanent=False)
            return
        self.last_error = f"waiting: {missing}"
        self.next_attempt_at = now + wait_delay(waited)
        self._end_lease()

    def refused_after_sent(self, failure: Failure, now: datetime) -> None:
        """The server refused the final "." after "sent" was committed (and NotificationSent written, which is not
        taken back): a 4xx puts the delivery back to pending, a permanent refusal fails it (NotificationFailed
        follows the NotificationSent)."""
        if self.status != SENT:
            raise LeaseLost(f"delivery {self.id} is {self.status}, not sent")
        self.sent_at = None
        self._record_failure(failure, now, failure.permanent)

    def retry(self, now: datetime) -> None:
        """An operator sends a failed delivery again (after fixing an address, a template, the SMTP account): pending
        with fresh attempts and a fresh wait for its data. Still at most once: a delivery that was sent never is."""
        if self.status != FAILED:
            raise NotFailed(f"Delivery {self.id} has not failed: only failed deliveries can be retried.")
        self.status, self.attempts, self.next_attempt_at, self.created_at = PENDING, 0, now, now
        self._end_lease()

    def bring_forward(self, now: datetime) -> bool:
        """Its contact arrived: a delivery waiting for its data is due now, not at its next look. One backing off
        after a failed attempt keeps its backoff. True when it changed."""
        if self.status != PENDING or self.attempts != 0 or self.next_attempt_at <= now:
            return False
        self.next_attempt_at = now
        return True

    # -- helpers ------------------------------------------------------------------------------------------------
    def _require_lease(self, owner: str) -> None:
        # After a slow attempt our lease may have run out and another instance taken over (or sent it already).
        if self.status != PENDING or self.lease_owner != owner:
            raise LeaseLost(f"delivery {self.id} is no longer ours ({self.status}, held by {self.lease_owner})")

    def _end_lease(self) -> None:
        self.lease_owner, self.lease_until = None, None

    def _record_failure(
        self, failure: Failure, now: datetime, give_up: bool, *, announce_permanent: bool | None = None
    ) -> None:
        self.status = FAILED if give_up else PENDING
        self.last_error = failure.error
        self.next_attempt_at = now + retry_delay(self.attempts)
        self._end_lease()
        if give_up:
            permanent = failure.permanent if announce_permanent is None else announce_permanent
            self.events.append(NotificationFailed(notification_id=self.id, reason=failure.reason, permanent=permanent))


# -- what is owed -------------------------------------------------------------------------------------------------
def welcome(
    member_id: UUID, group_id: UUID, cause_event_id: UUID, *, now: datetime, traceparent: str | None = None
) -> Delivery:
    """Where the welcome is decided: a member who joins a group is owed one welcome to it, whatever the role, once
    however often the join is seen (or the member leaves and joins again)."""
    return Delivery(
        id=uuid.uuid4(),
        dedupe_key=f"welcome:{group_id}:{member_id}",
        member_id=member_id,
        kind=WELCOME,
        cause_event_id=cause_event_id,
        created_at=now,
        next_attempt_at=now,
        payload={"group_id": str(group_id)},
        traceparent=traceparent,
    )


def invitations(
    meeting_id: UUID,
    sequence: int,
    member_ids: list[UUID],
    cause_event_id: UUID,
    *,
    now: datetime,
    traceparent: str | None = None,
) -> list[Delivery]:
    """Every member of the meeting's group is owed an invitation to each version (`sequence`) of the meeting."""
    return [
        Delivery(
            id=uuid.uuid4(),
            dedupe_key=f"invitation:{meeting_id}:{sequence}:{member_id}",
            member_id=member_id,
            kind=INVITATION,
            cause_event_id=cause_event_id,
            created_at=now,
            next_attempt_at=now,
            payload={"meeting_id": str(meeting_id)},
            traceparent=traceparent,
        )
        for member_id in sorted(set(member_ids))
    ]
