"""The seats of a meeting, pure: who gets a seat, the waiting list in arrival order, promotion, colleagues, leaving,
erasure and attendance."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from meetings.domain.errors import Conflict, Forbidden, Invalid
from meetings.domain.rsvp import AnswerRecorded, AttendanceNoted, Promoted, Seating

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
START = datetime(2027, 3, 11, 15, 0, tzinfo=UTC)


def seating(capacity=2, **kw) -> Seating:
    return Seating(meeting_id=uuid4(), group_id=uuid4(), starts_at=START, capacity=capacity, **kw)


def answer(s: Seating, member, response="attending", now=NOW, on_roster=True):
    return s.answer(member, response, now, on_roster=on_roster)


def test_seats_then_the_waiting_list_in_arrival_order():
    s = seating(capacity=2)
    a, b, c, d = (uuid4() for _ in range(4))
    assert [answer(s, m).status for m in (a, b, c, d)] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [x.member_id for x in s.waiting] == [c, d]
    assert s.waitlist_position(d) == 2
    recorded = [e for e in s.events if isinstance(e, AnswerRecorded)]
    assert [(e.member_id, e.status, e.waitlist_position) for e in recorded] == [
        (a, "confirmed", None),
        (b, "confirmed", None),
        (c, "waitlisted", 1),
        (d, "waitlisted", 2),
    ]


def test_a_decline_promotes_the_first_waiting_member_automatically():
    s = seating(capacity=1)
    a, b, c = uuid4(), uuid4(), uuid4()
    for m in (a, b, c):
        answer(s, m)
    s.events.clear()
    answer(s, a, "declined")
    assert s.answers[b].status == "confirmed" and s.answers[c].status == "waitlisted"
    assert s.waitlist_position(c) == 1
    assert [type(e) for e in s.events] == [AnswerRecorded, Promoted]
    assert s.events[1].member_id == b


def test_answering_attending_again_keeps_ones_place_and_records_nothing():
    s = seating(capacity=1)
    a, b = uuid4(), uuid4()
    answer(s, a)
    answer(s, b)
    s.events.clear()
    assert answer(s, b).status == "waitlisted"
    assert s.events == []


def test_declining_and_coming_back_goes_to_the_end_of_the_line():
    s = seating(capacity=1)
    a, b, c = uuid4(), uuid4(), uuid4()
    for m in (a, b, c):
        answer(s, m)
    answer(s, b, "declined")
    answer(s, b)
    assert [x.member_id for x in s.waiting] == [c, b]


def test_tentative_holds_no_seat_and_no_limit_means_everyone_gets_one():
    s = seating(capacity=None)
    members = [uuid4() for _ in range(30)]
    for m in members:
        answer(s, m)
    assert len(s.confirmed) == 30
    t = uuid4()
    assert answer(s, t, "tentative").status == "noted"


def test_only_members_of_the_group_before_the_deadline_and_the_start():
    s = seating(rsvp_deadline=NOW + timedelta(days=1))
    with pytest.raises(Forbidden, match="members of the group"):
        answer(s, uuid4(), on_roster=False)
    with pytest.raises(Conflict, match="deadline"):
        answer(s, uuid4(), now=NOW + timedelta(days=2))
    with pytest.raises(Conflict, match="begun"):
        seating().answer(uuid4(), "attending", START, on_roster=True)
    with pytest.raises(Conflict, match="cancelled"):
        answer(seating(cancelled=True), uuid4())
    with pytest.raises(Invalid):
        answer(s, uuid4(), "maybe")
    assert s.answers == {} and s.events == []


def test_a_colleague_takes_over_the_seat_or_the_place_in_line():
    s = seating(capacity=1)
    a, b, colleague = uuid4(), uuid4(), uuid4()
    answer(s, a)
    answer(s, b)
    s.events.clear()
    got = s.send_colleague(b, colleague, NOW, same_organisation=True)
    assert (got.status, got.on_behalf_of, s.waitlist_position(colleague)) == ("waitlisted", b, 1)
    assert s.answers[b].response == "declined" and s.answers[b].status == "noted"
    assert [e.member_id for e in s.events] == [colleague, b]
    # the colleague (not on the roster) may decline the seat they were sent to; the line moves on
    answer(s, a, "declined")
    assert s.answers[colleague].status == "confirmed"
    assert answer(s, colleague, "declined", on_roster=False).status == "noted"


def test_a_colleague_must_be_of_the_same_organisation_and_the_member_must_hold_something():
    s = seating()
    a, c = uuid4(), uuid4()
    with pytest.raises(Conflict, match="holds a seat"):
        s.send_colleague(a, c, NOW, same_organisation=True)
    answer(s, a)
    with pytest.raises(Invalid, match="same organisation"):
        s.send_colleague(a, c, NOW, same_organisation=False)
    with pytest.raises(Invalid, match="own place"):
        s.send_colleague(a, a, NOW, same_organisation=True)
    answer(s, c)
    with pytest.raises(Conflict, match="already holds"):
        s.send_colleague(a, c, NOW, same_organisation=True)


def test_leaving_withdraws_and_the_waiting_list_moves_up():
    s = seating(capacity=1)
    a, b = uuid4(), uuid4()
    answer(s, a)
    answer(s, b)
    s.events.clear()
    assert s.withdraw(a, NOW)
    assert s.answers[a].status == "withdrawn" and s.answers[b].status == "confirmed"
    assert [type(e) for e in s.events] == [AnswerRecorded, Promoted]
    assert not s.withdraw(a, NOW)  # twice: nothing more
    assert not s.withdraw(b, START)  # once it began, what happened stays


def test_a_cancelled_meeting_promotes_nobody_when_a_seat_is_given_up():
    s = seating(capacity=1)
    a, b, c = uuid4(), uuid4(), uuid4()
    for m in (a, b, c):
        answer(s, m)
    s.cancelled = True  # the meeting was called off afterwards
    s.events.clear()
    assert s.withdraw(a, NOW)  # a leaves the group
    s.release_erased(b, NOW)  # b is erased
    assert s.answers[a].status == "withdrawn" and s.answers[b].status == "withdrawn"
    assert s.answers[c].status == "waitlisted"
    assert not [e for e in s.events if isinstance(e, Promoted)]  # no "you have a seat" for a meeting that is off
    s.refill(NOW)
    assert s.answers[c].status == "waitlisted"


def test_a_seat_transfer_hands_the_seat_to_the_colleague():
    s = seating(capacity=1)
    a, b, new = uuid4(), uuid4(), uuid4()
    answer(s, a)
    answer(s, b)
    assert s.transfer(a, new, NOW)
    assert s.answers[new].status == "confirmed" and s.answers[new].on_behalf_of == a
    assert s.answers[a].status == "withdrawn" and s.answers[b].status == "waitlisted"


def test_an_erased_members_seat_goes_to_the_next_quietly():
    s = seating(capacity=1)
    a, b = uuid4(), uuid4()
    answer(s, a)
    answer(s, b)
    s.events.clear()
    s.release_erased(a, NOW)
    assert all(e.member_id != a for e in s.events)  # no event names the erased member again
    assert [type(e) for e in s.events] == [Promoted]


def test_attendance_by_the_coordinator_at_or_after_the_start():
    s = seating()
    a = uuid4()
    with pytest.raises(Conflict, match="begun"):
        s.check_in(a, True, NOW, on_roster=True)
    with pytest.raises(Invalid, match="neither"):
        s.check_in(a, True, START, on_roster=False)
    s.check_in(a, True, START, on_roster=True)
    s.check_in(a, True, START, on_roster=True)  # again: no second event
    s.check_in(a, False, START + timedelta(hours=1), on_roster=True)  # corrected
    assert [(type(e), e.attended) for e in s.events] == [(AttendanceNoted, True), (AttendanceNoted, False)]
    with pytest.raises(Conflict, match="cancelled"):
        seating(cancelled=True).check_in(a, True, START, on_roster=True)


def test_a_raised_capacity_fills_from_the_waiting_list():
    s = seating(capacity=1)
    a, b, c = uuid4(), uuid4(), uuid4()
    for m in (a, b, c):
        answer(s, m)
    s.capacity = 2
    s.events.clear()
    s.refill(NOW)
    assert [x.member_id for x in s.confirmed] == [a, b] and s.waitlist_position(c) == 1
    assert [(type(e), e.member_id) for e in s.events] == [(Promoted, b)]
