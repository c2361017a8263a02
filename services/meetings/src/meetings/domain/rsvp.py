"""The seats of one meeting: who answered what, who holds a seat, the waiting list in order of arrival, and who was
there. Pure Python: no database, no clock, no framework.

`Seating` is the aggregate. The repository loads it with the meeting's row locked, so answers to one meeting are
decided one at a time: "arrival" is the order in which they were decided, and the waiting list is kept in it. A seat
that comes free goes to the first on the waiting list at once (`WaitlistPromoted`), whatever freed it: a decline, a
member leaving the group or being erased.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from .errors import Conflict, Forbidden, Invalid

RESPONSES = ("attending", "tentative", "declined")
SEATED = ("confirmed", "waitlisted")  # statuses of an "attending" answer: a seat, or a place in the queue


# -- domain events -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnswerRecorded:
    meeting_id: UUID
    member_id: UUID
    response: str
    status: str
    waitlist_position: int | None
    on_behalf_of: UUID | None
    answered_at: datetime


@dataclass(frozen=True)
class Promoted:
    meeting_id: UUID
    member_id: UUID
    promoted_at: datetime


@dataclass(frozen=True)
class AttendanceNoted:
    meeting_id: UUID
    member_id: UUID
    attended: bool
    recorded_at: datetime


SeatEvent = AnswerRecorded | Promoted | AttendanceNoted


@dataclass
class Answer:
    member_id: UUID
    response: str  # attending / tentative / declined
    status: str  # confirmed / waitlisted / noted / withdrawn
    arrival: int  # the order the answer was decided in, per meeting: the waiting list's order
    answered_at: datetime
    on_behalf_of: UUID | None = None  # the colleague whose place this member takes


@dataclass
class Seating:
    meeting_id: UUID
    group_id: UUID
    starts_at: datetime
    capacity: int | None = None  # None: no limit
    rsvp_deadline: datetime | None = None
    cancelled: bool = False
    answers: dict[UUID, Answer] = field(default_factory=dict)
    attendance: dict[UUID, tuple[bool, datetime]] = field(default_factory=dict)  # attended?, recorded when
    last_arrival: int = 0
    events: list[SeatEvent] = field(default_factory=list, repr=False, compare=False)
    changed: set[UUID] = field(default_factory=set, repr=False, compare=False)  # answers to save
    checked_in: set[UUID] = field(default_factory=set, repr=False, compare=False)  # attendance to save

    # -- reading ----------------------------------------------------------------------------------------------
    @property
    def confirmed(self) -> list[Answer]:
        return sorted((a for a in self.answers.values() if a.status == "confirmed"), key=lambda a: a.arrival)

    @property
    def waiting(self) -> list[Answer]:
        return sorted((a for a in self.answers.values() if a.status == "waitlisted"), key=lambda a: a.arrival)

    def waitlist_position(self, member_id: UUID) -> int | None:
        for position, answer in enumerate(self.waiting, start=1):
            if answer.member_id == member_id:
                return position
        return None

    def _free_seats(self) -> bool:
        return self.capacity is None or len(self.confirmed) < self.capacity

    # -- what members do --------------------------------------------------------------------------------------
    def answer(self, member_id: UUID, response: str, now: datetime, *, on_roster: bool) -> Answer:
        """A member's answer. Only members of the group may answer (or one sent in a colleague's place), only
        before the deadline and the start, never to a cancelled meeting. Saying "attending" again keeps one's seat
        or place; saying it after a decline joins the end of the line."""
        if response not in RESPONSES:
            raise Invalid(f"The answer must be one of {', '.join(RESPONSES)}.")
        existing = self.answers.get(member_id)
        substitute = existing is not None and existing.on_behalf_of is not None and existing.status in SEATED
        if not on_roster and not substitute:
            raise Forbidden("Only members of the group may answer this meeting's invitation.")
        self._open_for_answers(now)
        if existing and existing.response == response and existing.status != "withdrawn":
            return existing  # nothing changes: no event
        was_confirmed = existing is not None and existing.status == "confirmed"
        if response == "attending":
            self._promote(now)  # a seat freed earlier (the capacity raised) goes to those already waiting first
            status = "confirmed" if self._free_seats() and not self.waiting else "waitlisted"
            arrival = self._arrive()
        else:
            status = "noted"
            arrival = existing.arrival if existing else self._arrive()
        answer = Answer(member_id, response, status, arrival, now, on_behalf_of=None)
        self._record(answer)
        if was_confirmed:
            self._promote(now)
        return answer

    def send_colleague(self, member_id: UUID, colleague_id: UUID, now: datetime, *, same_organisation: bool) -> Answer:
        """A member who holds a seat (or a place in the waiting list) sends a colleague of the same organisation in
        their place: the colleague takes over the seat or place as it is, the member's answer becomes a decline.
        Allowed until the meeting starts (it changes no count), also after the RSVP deadline."""
        self._open(now)
        existing = self.answers.get(member_id)
        if existing is None or existing.status not in SEATED:
            raise Conflict("Only a member who holds a seat or a place in the waiting list can send a colleague.")
        if colleague_id == member_id:
            raise Invalid("A member cannot be sent in their own place.")
        if not same_organisation:
            raise Invalid("The colleague must belong to the same organisation as the member.")
        other = self.answers.get(colleague_id)
        if other is not None and other.status in SEATED:
            raise Conflict("The colleague already holds a seat or a place in the waiting list of this meeting.")
        colleague = Answer(
            colleague_id,
            "attending",
            existing.status,
            existing.arrival,
            now,
            on_behalf_of=existing.on_behalf_of or member_id,
        )
        self._record(colleague)
        self._record(Answer(member_id, "declined", "noted", self._arrive(), now))
        return colleague

    def withdraw(self, member_id: UUID, now: datetime) -> bool:
        """The member left the group: their answer is withdrawn and the waiting list moves up. False when there
        was nothing to withdraw (or the meeting began: what happened stays as it was)."""
        existing = self.answers.get(member_id)
        if existing is None or existing.status == "withdrawn" or now >= self.starts_at:
            return False
        was_confirmed = existing.status == "confirmed"
        self._record(
            Answer(member_id, existing.response, "withdrawn", existing.arrival, now, on_behalf_of=existing.on_behalf_of)
        )
        if was_confirmed:
            self._promote(now)
        return True

    def transfer(self, from_member: UUID, to_member: UUID, now: datetime) -> bool:
        """The members service moved a group seat from one colleague to another: a seat or place held for a coming
        meeting goes with it (the new member takes it as sent in the other's place); other answers are withdrawn."""
        existing = self.answers.get(from_member)
        if existing is None or existing.status == "withdrawn" or now >= self.starts_at:
            return False
        other = self.answers.get(to_member)
        if existing.status in SEATED and not (other is not None and other.status in SEATED):
            self._record(
                Answer(
                    to_member,
                    "attending",
                    existing.status,
                    existing.arrival,
                    now,
                    on_behalf_of=existing.on_behalf_of or from_member,
                )
            )
            self._record(Answer(from_member, existing.response, "withdrawn", existing.arrival, now))
            return True
        return self.withdraw(from_member, now)

    def release_erased(self, member_id: UUID, now: datetime) -> None:
        """An erased member's seat or place in a coming meeting is given up, quietly (no event names them again);
        the waiting list moves up as it would for anyone."""
        existing = self.answers.get(member_id)
        if existing is None or existing.status not in SEATED or now >= self.starts_at:
            return
        was_confirmed = existing.status == "confirmed"
        existing.status = "withdrawn"
        self.changed.add(member_id)
        if was_confirmed:
            self._promote(now)

    def refill(self, now: datetime) -> None:
        """After the capacity was raised: the waiting list fills the new seats, first come first."""
        if not self.cancelled and now < self.starts_at:
            self._promote(now)

    def check_in(self, member_id: UUID, attended: bool, now: datetime, *, on_roster: bool) -> None:
        """A coordinator notes who came (or corrects it), at or after the start."""
        if self.cancelled:
            raise Conflict("The meeting was cancelled: there is no attendance to record.")
        if now < self.starts_at:
            raise Conflict("Attendance can be recorded once the meeting has begun.")
        if not on_roster and member_id not in self.answers:
            raise Invalid("The member is neither in the group nor answered this meeting's invitation.")
        if member_id in self.attendance and self.attendance[member_id][0] == attended:
            return
        self.attendance[member_id] = (attended, now)
        self.checked_in.add(member_id)
        self.events.append(AttendanceNoted(self.meeting_id, member_id, attended, now))

    # -- inside -----------------------------------------------------------------------------------------------
    def _open(self, now: datetime) -> None:
        if self.cancelled:
            raise Conflict("The meeting was cancelled.")
        if now >= self.starts_at:
            raise Conflict("The meeting has begun: answers can no longer be changed.")

    def _open_for_answers(self, now: datetime) -> None:
        self._open(now)
        if self.rsvp_deadline is not None and now > self.rsvp_deadline:
            raise Conflict(f"The deadline for answers was {self.rsvp_deadline.isoformat()}; it has passed.")

    def _arrive(self) -> int:
        self.last_arrival += 1
        return self.last_arrival

    def _record(self, answer: Answer) -> None:
        self.answers[answer.member_id] = answer
        self.changed.add(answer.member_id)
        self.events.append(
            AnswerRecorded(
                self.meeting_id,
                answer.member_id,
                answer.response,
                answer.status,
                self.waitlist_position(answer.member_id),
                answer.on_behalf_of,
                answer.answered_at,
            )
        )

    def _promote(self, now: datetime) -> None:
        if self.cancelled:
            return  # a cancelled meeting has no seat to give: nobody in line is told they got one
        while self._free_seats() and self.waiting:
            first = self.waiting[0]
            first.status = "confirmed"
            self.changed.add(first.member_id)
            self.events.append(Promoted(self.meeting_id, first.member_id, now))
