"""What a notification is, when it is owed, and how its delivery goes. Pure Python: no database, no clock, no I/O.

A `Delivery` is one message owed to one member for one cause. Its life:

    owed (pending) --lease--> leased --mark_sent--> sent --refused_after_sent--> pending | failed
                                     --attempt_failed--> pending again, after a backoff | failed
                                     --wait_for_data--> pending again, soon (no attempt counted) | failed
                                     --release--> owed (given back untried)
    failed --retry (an operator)--> owed, with fresh attempts
                                     --skip--> skipped (the member turned the kind off, or the meeting was cancelled)
    owed (held or not) --withdraw--> skipped (the member left the meeting's group)

"leased" is a pending delivery with a lease: one instance holds it until `lease_until`, and only the holder may move
it on. Reaching `sent` records NotificationSent, reaching `failed` records NotificationFailed (`events`), except
for the kinds the v1 contract does not name yet (UNANNOUNCED).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any
from uuid import UUID

from .errors import LeaseLost, NotFailed, NotReady, Suppressed
from .events import NotificationFailed, NotificationSent

WELCOME = "welcome"
INVITATION = "invitation"
MEETING_UPDATE = "meeting_update"  # the meeting moved, or its place, link, seats or deadline changed
CANCELLATION = "cancellation"
AGENDA_UPDATE = "agenda_update"
RSVP_CONFIRMATION = "rsvp_confirmation"
WAITLIST_PROMOTION = "waitlist_promotion"  # a seat came free and is now the member's
PROPOSAL_ACCEPTED = "proposal_accepted"
REMINDER = "reminder"  # days before a meeting, to those who answered attending or tentative
NUDGE = "nudge"  # days before a meeting, to members of its group who have not answered
SIGN_IN = "sign_in"  # the web gateway's single-use sign-in link, on its request (HTTP, not an event)
KINDS = (
    WELCOME,
    INVITATION,
    MEETING_UPDATE,
    CANCELLATION,
    AGENDA_UPDATE,
    RSVP_CONFIRMATION,
    WAITLIST_PROMOTION,
    PROPOSAL_ACCEPTED,
    REMINDER,
    NUDGE,
    SIGN_IN,
)
EMAIL = "email"

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
SKIPPED = "skipped"  # never sent, by rule: the member turned its kind off, or the meeting was cancelled meanwhile

# What a member may turn off (preferences), and which kinds of message each covers. A kind in none of them is
# transactional and always goes: the welcome on joining, a cancellation, the receipt of one's own answer, a seat
# that is now one's own and a sign-in link. Reminders and nudges are `reminders`.
ANNOUNCEMENTS = "announcements"
REMINDERS = "reminders"
AGENDA_UPDATES = "agenda_updates"
CATEGORIES = (ANNOUNCEMENTS, REMINDERS, AGENDA_UPDATES)
CATEGORY_OF = {
    INVITATION: ANNOUNCEMENTS,
    MEETING_UPDATE: ANNOUNCEMENTS,
    PROPOSAL_ACCEPTED: ANNOUNCEMENTS,
    AGENDA_UPDATE: AGENDA_UPDATES,
    REMINDER: REMINDERS,
    NUDGE: REMINDERS,
}
LANGUAGES = ("da", "en")
# Messages about the meeting as planned: once it is cancelled, one still owed would put it back in calendars.
AS_PLANNED = (INVITATION, MEETING_UPDATE, AGENDA_UPDATE, REMINDER, NUDGE)
# Messages about the member alone: made of their contact only (no group, no meeting).
PERSONAL = (SIGN_IN,)
# Kinds whose outcome is not published as NotificationSent/NotificationFailed: the v1 contract's NotificationKind
# (shared/, netvaerk_shared.contracts.notifications) does not list them, so no valid event could name them. Once it
# does, take the kind out of here and the NOTIFICATIONS stream (and the webhooks) carry it like the others.
UNANNOUNCED = (SIGN_IN,)

# A sign-in mail: at most SIGN_IN_LIMIT to a member per SIGN_IN_WINDOW, however many links the gateway makes (it
# limits too; this protects the inbox). The mail says the link works for SIGN_IN_LINK_MINUTES, as the gateway's do.
SIGN_IN_LIMIT = 5
SIGN_IN_WINDOW = timedelta(minutes=15)
SIGN_IN_LINK_MINUTES = 15

SCHEDULED = "scheduled"
CANCELLED = "cancelled"
HELD = "held"
# The MeetingScheduled fields a MeetingRescheduled brings anew (all but the agenda, which AgendaUpdated brings).
MEETING_FIELDS = (
    "series_id",
    "title",
    "starts_at",
    "ends_at",
    "timezone",
    "venue",
    "online_url",
    "capacity",
    "rsvp_deadline",
)


def category_of(kind: str) -> str | None:
    """The preference that covers `kind`; None: transactional, always sent."""
    return CATEGORY_OF.get(kind)


# -- what messages are made of (copies of what the other services published) -------------------------------------
@dataclass(frozen=True)
class Contact:
    """A member's contact as MEMBERS last told it (`profile_at`: that profile's time). `undeliverable_at` and its
    reason: a permanent SMTP refusal marked this address; nothing more is tried to it until the address changes or the
    administration clears the mark."""

    member_id: UUID
    name: str
    email: str
    locale: str
    organisation_id: UUID | None = None
    profile_at: datetime | None = None
    undeliverable_at: datetime | None = None
    undeliverable_reason: str | None = None


@dataclass(frozen=True)
class Group:
    group_id: UUID
    name: str


@dataclass(frozen=True)
class Meeting:
    """Our copy of a meeting, put together from the MEETINGS events whatever order they arrive in: `data` has the
    shape of MeetingScheduled's data (messages are rendered from it); its fields are those of the newest
    scheduled/rescheduled event (`fields_sequence`), its agenda that of the newest scheduled/agenda event
    (`agenda_sequence`); `sequence` is the highest seen (the RFC 5545 SEQUENCE of what we send now)."""

    meeting_id: UUID
    group_id: UUID
    sequence: int
    data: dict[str, Any]
    status: str = SCHEDULED
    fields_sequence: int | None = None
    agenda_sequence: int | None = None

    @property
    def ready(self) -> bool:
        """Its title and times have arrived (a reschedule or an agenda may overtake the MeetingScheduled)."""
        return all(self.data.get(k) for k in ("title", "starts_at", "ends_at"))


def changed_meeting(
    known: Meeting | None,
    meeting_id: UUID,
    group_id: UUID,
    sequence: int,
    *,
    fields: dict[str, Any] | None = None,
    agenda: list[Any] | None = None,
    status: str | None = None,
) -> Meeting:
    """The copy after one event at `sequence`: its fields and agenda replace ours unless ours are newer; a
    cancellation is final; the sequence only rises."""
    data = dict(known.data) if known else {}
    fields_sequence = known.fields_sequence if known else None
    agenda_sequence = known.agenda_sequence if known else None
    if fields is not None and (fields_sequence is None or sequence >= fields_sequence):
        data.update({name: fields.get(name) for name in MEETING_FIELDS})
        fields_sequence = sequence
    if agenda is not None and (agenda_sequence is None or sequence >= agenda_sequence):
        data["agenda"] = list(agenda)
        agenda_sequence = sequence
    now_status = known.status if known else SCHEDULED
    if status == CANCELLED or (status == HELD and now_status != CANCELLED):
        now_status = status
    highest = max(sequence, known.sequence if known else sequence)
    data.update(meeting_id=str(meeting_id), group_id=str(group_id), sequence=highest)
    data.setdefault("agenda", [])
    return Meeting(meeting_id, group_id, highest, data, now_status, fields_sequence, agenda_sequence)


@dataclass(frozen=True)
class Preference:
    """What a member chose for one category of messages: email on or off, and the language (None: their
    profile's)."""

    member_id: UUID
    category: str
    email: bool = True
    language: str | None = None


@dataclass(frozen=True)
class Material:
    """What one message is made of: the member's contact, the group, the meeting (all but a welcome) and the
    member's preference for the message's category (None: the defaults)."""

    contact: Contact
    group: Group | None
    meeting: Meeting | None
    preference: Preference | None = None

    @property
    def locale(self) -> str:
        """The language of the message: the one chosen for its category, else the member's profile's."""
        if self.preference is not None and self.preference.language:
            return self.preference.language
        return self.contact.locale


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


UNDELIVERABLE = "address marked undeliverable"


def marked_undeliverable(contact: Contact) -> Failure | None:
    """A message to an address marked undeliverable is not attempted: it fails at once (no SMTP round trip), until a
    member.updated brings another address or the administration clears the mark."""
    if contact.undeliverable_at is None:
        return None
    why = contact.undeliverable_reason or "no reason"
    return cannot_be_sent(f"{UNDELIVERABLE} since {contact.undeliverable_at.isoformat()} ({why})", UNDELIVERABLE)


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


def agenda_slot(last_at: datetime | None, now: datetime, window: timedelta) -> datetime:
    """When the agenda notice for an edit at `now` goes, given when the last one was owed to go (`last_at`): at once
    when none went within the window; the one still to come when it has not gone yet (it shows this edit too); else
    one window after the last. So a meeting's members get at most one agenda notice a window, however often it is
    edited, and the last edit always reaches them."""
    if last_at is None or now >= last_at + window:
        return now
    if last_at > now:
        return last_at
    return last_at + window


@dataclass(eq=False)
class Delivery:
    """One message owed to one member, for one cause. `dedupe_key` makes it owed once, however often the cause is
    seen. `payload` names what the message is about (`group_id` or `meeting_id`, as text). `secret`: what the message
    carries that must not outlive it (a sign-in link), kept apart from the payload and only while the delivery may
    still go: it is blanked when the delivery is sent, fails for good or is skipped, and never in its repr."""

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
    secret: str | None = field(default=None, repr=False)
    events: list[NotificationSent | NotificationFailed] = field(default_factory=list)

    # -- what it is about ---------------------------------------------------------------------------------------
    @property
    def about(self) -> UUID:
        """The group a welcome is for, the member a personal message (a sign-in link) is for, the meeting every
        other kind is about. KeyError or ValueError for a payload that does not say: such a delivery can never be
        built."""
        if self.kind in PERSONAL:
            return self.member_id
        return UUID(self.payload["group_id" if self.kind == WELCOME else "meeting_id"])

    @property
    def not_before(self) -> datetime | None:
        """An agenda notice held back to its slot (`agenda_slot`) is never brought forward before it."""
        value = self.payload.get("not_before")
        return datetime.fromisoformat(value) if value else None

    def made_of(
        self,
        contact: Contact | None,
        group: Group | None,
        meeting: Meeting | None,
        preference: Preference | None = None,
    ) -> Material:
        """What the message is made of, or NotReady for what has not arrived from the other services yet, or
        Suppressed when it must not go: the member turned its category off (transactional kinds have none), or the
        meeting was cancelled since a message about it as planned was owed. Messages about a meeting go without
        their group's name; a welcome needs its group; a personal message only the contact."""
        if contact is None:
            raise NotReady("contact", f"no contact yet for member {self.member_id}")
        if self.kind == WELCOME and group is None:
            raise NotReady("group", f"group {self.payload.get('group_id')} not known yet")
        if self.kind != WELCOME and self.kind not in PERSONAL and meeting is None:
            raise NotReady("meeting", f"meeting {self.payload.get('meeting_id')} not known yet")
        category = category_of(self.kind)
        if category is not None and preference is not None and not preference.email:
            raise Suppressed(f"the member turned {category} off")
        if self.kind in AS_PLANNED and meeting is not None and meeting.status == CANCELLED:
            raise Suppressed("the meeting was cancelled")
        return Material(contact, group, meeting, preference)

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
        self.secret = None  # on its way: the link is the member's now, and ours no more
        if self.kind not in UNANNOUNCED:
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

    def skip(self, owner: str, reason: str, now: datetime) -> None:
        """It must not go (Suppressed): `skipped`, for good, with the reason; nothing is announced."""
        self._require_lease(owner)
        self.status, self.last_error, self.next_attempt_at = SKIPPED, reason, now
        self._end_lease()
        self.secret = None

    def withdraw(self, reason: str, now: datetime) -> bool:
        """It must not go any more, decided outside the worker (the member left the meeting's group): `skipped`
        with the reason, whoever holds it (a worker holding it then finds it changed and does not send it). False
        when it is no longer pending."""
        if self.status != PENDING:
            return False
        self.status, self.last_error, self.next_attempt_at = SKIPPED, reason, now
        self._end_lease()
        self.secret = None
        return True

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
        earliest = max(now, self.not_before or now)
        if earliest >= self.next_attempt_at:
            return False
        self.next_attempt_at = earliest
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
        self.last_error = self._without_secret(failure.error)
        self.next_attempt_at = now + retry_delay(self.attempts)
        self._end_lease()
        if give_up:
            reason = self._without_secret(failure.reason)
            self.secret = None  # it will not go: nothing needs the link any more
            if self.kind in UNANNOUNCED:
                return
            permanent = failure.permanent if announce_permanent is None else announce_permanent
            self.events.append(NotificationFailed(notification_id=self.id, reason=reason, permanent=permanent))

    def _without_secret(self, text: str) -> str:
        # an error may quote what it choked on: the link never reaches the delivery log, an event or a log line
        return text.replace(self.secret, "[link]") if self.secret else text


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


def _owed(
    kind: str,
    key: str,
    member_id: UUID,
    cause_event_id: UUID,
    now: datetime,
    payload: dict[str, str],
    traceparent: str | None,
    due: datetime | None = None,
) -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        dedupe_key=f"{kind}:{key}:{member_id}",
        member_id=member_id,
        kind=kind,
        cause_event_id=cause_event_id,
        created_at=now,
        next_attempt_at=due or now,
        payload=payload,
        traceparent=traceparent,
    )


def meeting_updates(
    meeting_id: UUID,
    sequence: int,
    member_ids: list[UUID],
    cause_event_id: UUID,
    *,
    previous_starts_at: datetime,
    now: datetime,
    traceparent: str | None = None,
) -> list[Delivery]:
    """Every member of the group is owed an update for each new version (`sequence`) of a moved or changed
    meeting: with the calendar entry that replaces theirs (same UID, higher SEQUENCE)."""
    payload = {"meeting_id": str(meeting_id), "previous_starts_at": previous_starts_at.isoformat()}
    return [
        _owed(MEETING_UPDATE, f"{meeting_id}:{sequence}", m, cause_event_id, now, payload, traceparent)
        for m in sorted(set(member_ids))
    ]


def cancellations(
    meeting_id: UUID,
    member_ids: list[UUID],
    cause_event_id: UUID,
    *,
    reason: str,
    now: datetime,
    traceparent: str | None = None,
) -> list[Delivery]:
    """Every member of the group is owed one cancellation of a meeting (transactional: always sent)."""
    payload = {"meeting_id": str(meeting_id), "reason": reason[:2000]}
    return [
        _owed(CANCELLATION, str(meeting_id), m, cause_event_id, now, payload, traceparent)
        for m in sorted(set(member_ids))
    ]


def agenda_updates(
    meeting_id: UUID,
    slot: datetime,
    member_ids: list[UUID],
    cause_event_id: UUID,
    *,
    now: datetime,
    traceparent: str | None = None,
) -> list[Delivery]:
    """Every member of the group is owed one agenda notice per slot (`agenda_slot`), due at the slot: edits that
    fall into the same slot owe nothing more, and the notice shows the agenda as it is when it goes."""
    payload = {"meeting_id": str(meeting_id), "not_before": slot.isoformat()}
    return [
        _owed(AGENDA_UPDATE, f"{meeting_id}:{slot.isoformat()}", m, cause_event_id, now, payload, traceparent, slot)
        for m in sorted(set(member_ids))
    ]


def rsvp_confirmation(
    meeting_id: UUID,
    member_id: UUID,
    cause_event_id: UUID,
    *,
    response: str,
    status: str,
    waitlist_position: int | None,
    on_behalf_of: UUID | None,
    now: datetime,
    traceparent: str | None = None,
) -> Delivery | None:
    """The member is owed a receipt of their answer (what they answered; a seat, or their place in line). None for
    an answer withdrawn because they left the group: nothing to confirm."""
    if status == "withdrawn":
        return None
    payload = {"meeting_id": str(meeting_id), "response": response, "status": status}
    if waitlist_position is not None:
        payload["waitlist_position"] = str(waitlist_position)
    if on_behalf_of is not None:
        payload["on_behalf_of"] = str(on_behalf_of)
    return _owed(RSVP_CONFIRMATION, str(cause_event_id), member_id, cause_event_id, now, payload, traceparent)


def waitlist_promotion(
    meeting_id: UUID, member_id: UUID, cause_event_id: UUID, *, now: datetime, traceparent: str | None = None
) -> Delivery:
    """The first in line got a seat that came free: they are owed word of it."""
    payload = {"meeting_id": str(meeting_id)}
    return _owed(WAITLIST_PROMOTION, str(cause_event_id), member_id, cause_event_id, now, payload, traceparent)


def proposal_accepted(
    meeting_id: UUID,
    member_id: UUID,
    proposal_id: UUID,
    agenda_position: int,
    cause_event_id: UUID,
    *,
    now: datetime,
    traceparent: str | None = None,
) -> Delivery:
    """The proposer is owed word that their proposal was taken into a meeting's agenda, once per proposal."""
    payload = {"meeting_id": str(meeting_id), "proposal_id": str(proposal_id), "agenda_position": str(agenda_position)}
    return _owed(PROPOSAL_ACCEPTED, str(proposal_id), member_id, cause_event_id, now, payload, traceparent)


def sign_in_mail(
    member_id: UUID, link_id: UUID, link: str, *, now: datetime, traceparent: str | None = None
) -> Delivery:
    """The web gateway made a single-use sign-in link for the member: they are owed one mail with it, once per link
    however often the gateway asks (its link's id is the cause). The link is the delivery's `secret`."""
    delivery = _owed(SIGN_IN, str(link_id), member_id, link_id, now, {}, traceparent)
    delivery.secret = link
    return delivery


def sign_in_wait(owed_at: Iterable[datetime], now: datetime) -> timedelta | None:
    """None when another sign-in mail may be owed to a member who was owed ones at `owed_at`; else how long until
    one may: at most SIGN_IN_LIMIT within any SIGN_IN_WINDOW."""
    within = sorted(t for t in owed_at if t > now - SIGN_IN_WINDOW)
    if len(within) < SIGN_IN_LIMIT:
        return None
    return within[-SIGN_IN_LIMIT] + SIGN_IN_WINDOW - now


# -- reminders and nudges -----------------------------------------------------------------------------------------
# A group's timings, within bounds (the HTTP edge checks them; `ReminderSettings.check` says why not).
REMINDER_DAYS_MAX = 60  # no reminder further ahead than this
REMINDERS_MAX = 4  # reminders per meeting
HOUR_EARLIEST, HOUR_LATEST = 6, 21  # a reminder goes between 06:00 and 21:00 local time, never in the night
PLANNED = "planned"
DONE = "done"
REMINDED = ("attending", "tentative")  # the answers a reminder goes to


@dataclass(frozen=True)
class ReminderSettings:
    """When a group's members are reminded: `reminder_days` before the meeting (to those attending or tentative),
    a nudge `nudge_days` before it (to members who have not answered; None: no nudge), each at `local_hour` o'clock
    in the meeting's time zone."""

    reminder_days: tuple[int, ...] = (7, 1)
    nudge_days: int | None = 10
    local_hour: int = 9

    def check(self) -> None:
        """ValueError naming what is out of bounds."""
        days = self.reminder_days
        if len(days) > REMINDERS_MAX or len(set(days)) != len(days):
            raise ValueError(f"at most {REMINDERS_MAX} reminders, each on a day of its own")
        for value in (*days, *(() if self.nudge_days is None else (self.nudge_days,))):
            if not 0 <= value <= REMINDER_DAYS_MAX:
                raise ValueError(f"days before the meeting must be between 0 and {REMINDER_DAYS_MAX}")
        if not HOUR_EARLIEST <= self.local_hour <= HOUR_LATEST:
            raise ValueError(f"the local hour must be between {HOUR_EARLIEST} and {HOUR_LATEST}")


@dataclass(frozen=True)
class Rsvp:
    """A member's latest answer to a meeting, as RsvpRecorded told it (`answered_at` orders them)."""

    meeting_id: UUID
    member_id: UUID
    group_id: UUID
    response: str
    status: str
    waitlist_position: int | None
    answered_at: datetime

    @property
    def answered(self) -> bool:
        """An answer that stands (one withdrawn on leaving the group is none)."""
        return self.status != "withdrawn"


def newer_rsvp(known: Rsvp | None, answer: Rsvp) -> bool:
    """The answer replaces ours unless ours was given later (events of one meeting may arrive out of order)."""
    return known is None or answer.answered_at >= known.answered_at


@dataclass(frozen=True)
class PlannedReminder:
    """One reminder (or nudge) of a meeting, due at `due_at`; `status` planned, or skipped with the reason when its
    time had passed (or fell after the start) when it was planned: it is never sent late."""

    meeting_id: UUID
    kind: str
    days_before: int
    starts_at: datetime
    due_at: datetime
    status: str = PLANNED
    reason: str | None = None
    id: UUID = field(default_factory=uuid.uuid4)  # the cause its deliveries name


def plan_reminders(
    meeting_id: UUID, starts_at: datetime, zone: tzinfo, settings: ReminderSettings, now: datetime
) -> list[PlannedReminder]:
    """The reminders and the nudge of a meeting starting at `starts_at`: each at `settings.local_hour` o'clock on
    its day in the meeting's `zone`, so the hour stays right across a change to or from summer time. One whose time
    has passed already, or falls after the start, is skipped: none goes late at night or after the meeting."""
    local_day = starts_at.astimezone(zone).date()
    wanted = [(REMINDER, d) for d in sorted(set(settings.reminder_days), reverse=True)]
    if settings.nudge_days is not None:
        wanted.append((NUDGE, settings.nudge_days))
    planned = []
    for kind, days in wanted:
        day = local_day - timedelta(days=days)
        due = datetime.combine(day, time(settings.local_hour), tzinfo=zone).astimezone(starts_at.tzinfo)
        status, reason = PLANNED, None
        if due >= starts_at:
            status, reason = SKIPPED, "its time falls after the meeting starts"
        elif due < now:
            status, reason = SKIPPED, "its time had passed when it was planned"
        planned.append(PlannedReminder(meeting_id, kind, days, starts_at, due, status, reason))
    return planned


LATE_AFTER = timedelta(hours=12)  # a reminder the service could not send for this long (it was down) is dropped


def not_to_remind(planned: PlannedReminder, meeting: Meeting | None, now: datetime) -> str | None:
    """Why a reminder that is due must not go (None: it goes): the meeting was cancelled or moved since it was
    planned, it has begun, or the reminder is more than LATE_AFTER late (never a reminder in the night after an
    outage; one a few minutes late after a restart still goes)."""
    if meeting is None or meeting.status != SCHEDULED:
        return "the meeting is no longer scheduled"
    starts = meeting.data.get("starts_at")
    if not starts or datetime.fromisoformat(starts) != planned.starts_at:
        return "the meeting moved since it was planned"
    if now >= planned.starts_at:
        return "the meeting has begun"
    if now > planned.due_at + LATE_AFTER:
        return "too late: its time passed long ago"
    return None


def reminders_owed(
    planned: PlannedReminder,
    roster: list[UUID],
    answers: list[Rsvp],
    cause_event_id: UUID,
    *,
    now: datetime,
) -> list[Delivery]:
    """Who a reminder that is due goes to, decided when it is due: a reminder to the members of the group whose
    answer is attending or tentative (one on the waiting list is told their place), a nudge to those of them who
    have not answered. Once per member for each reminder (kind, days before, the start it reminds of)."""
    members = set(roster)
    standing = {a.member_id: a for a in answers if a.answered and a.member_id in members}
    key = f"{planned.meeting_id}:{planned.days_before}:{planned.starts_at.isoformat()}"
    base = {"meeting_id": str(planned.meeting_id), "days_before": str(planned.days_before)}
    owed = []
    if planned.kind == REMINDER:
        for member_id in sorted(m for m, a in standing.items() if a.response in REMINDED):
            answer = standing[member_id]
            payload = {**base, "response": answer.response, "status": answer.status}
            if answer.status == "waitlisted" and answer.waitlist_position is not None:
                payload["waitlist_position"] = str(answer.waitlist_position)
            owed.append(_owed(REMINDER, key, member_id, cause_event_id, now, payload, None))
    else:
        for member_id in sorted(members - set(standing)):
            owed.append(_owed(NUDGE, key, member_id, cause_event_id, now, dict(base), None))
    return owed
