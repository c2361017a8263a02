"""The meeting's life (move, cancel, minutes), its agenda and the year's plan, with the clock passed in."""

import copy
from datetime import UTC, date, datetime, time, timedelta, timezone
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from meetings.domain import events
from meetings.domain.errors import Conflict, Invalid
from meetings.domain.model import AgendaItem, Meeting, Venue
from meetings.domain.series import Recurrence, Series, nth_weekday, occurrences

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CPH = ZoneInfo("Europe/Copenhagen")
WINTER = timezone(timedelta(hours=1))
GROUP = uuid4()


def meeting(**overrides) -> Meeting:
    args = dict(
        group_id=GROUP,
        title="Vintermøde",
        now=NOW,
        starts_at=datetime(2026, 12, 10, 13, 0, tzinfo=WINTER),
        ends_at=datetime(2026, 12, 10, 16, 0, tzinfo=WINTER),
        venue=Venue(name="Rådhuset", host_organisation="Eksempel Kommune"),
        capacity=30,
        agenda=[AgendaItem(kind="check_in", title="Runden", minutes=30)],
    )
    args.update(overrides)
    m = Meeting.schedule(**args)
    m.events.clear()
    return m


def test_a_move_raises_the_sequence_and_records_the_previous_start():
    m = meeting()
    before = m.starts_at
    assert m.reschedule(
        now=NOW,
        starts_at=datetime(2026, 12, 17, 13, 0, tzinfo=WINTER),
        ends_at=datetime(2026, 12, 17, 16, 0, tzinfo=WINTER),
    )
    assert m.starts_at == datetime(2026, 12, 17, 12, 0, tzinfo=UTC) and m.sequence == 1
    assert m.events == [events.MeetingRescheduled(m.id, before)]
    # the same change again is no change: no event, no new sequence
    assert not m.reschedule(now=NOW, starts_at=datetime(2026, 12, 17, 12, 0, tzinfo=UTC))
    assert m.sequence == 1 and len(m.events) == 1
    assert m.reschedule(now=NOW, capacity=40, online_url="https://meet.example.org/x")
    assert (m.capacity, m.online_url, m.sequence) == (40, "https://meet.example.org/x", 2)
    assert m.reschedule(now=NOW, venue=None, capacity=None) and m.venue is None and m.capacity is None


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(starts_at=datetime(2026, 12, 10, 17, 0, tzinfo=WINTER)), "end after it starts"),
        (dict(starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=2)), "past"),
        (dict(ends_at=datetime(2026, 12, 10, 13, 20, tzinfo=WINTER)), "agenda takes 30 minutes"),
        (dict(capacity=0), "Capacity"),
        (dict(online_url="ftp://example.org"), "http"),
        (dict(venue=Venue(name=" ")), "venue"),
        (dict(title=" "), "title"),
        (dict(rsvp_deadline=datetime(2026, 12, 11, 12, 0, tzinfo=UTC)), "no later than"),
        (dict(rsvp_deadline=NOW - timedelta(days=1)), "future"),
        (dict(starts_at=datetime(2026, 12, 10, 13, 0)), "UTC offset"),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(change, message):
    m = meeting()
    before = copy.deepcopy(m)
    with pytest.raises(Invalid, match=message):
        m.reschedule(now=NOW, **change)
    assert m == before and m.sequence == 0 and m.events == []


def test_a_kept_rsvp_deadline_must_still_fall_before_a_new_start():
    m = meeting(rsvp_deadline=datetime(2026, 12, 8, 12, 0, tzinfo=UTC))
    with pytest.raises(Invalid, match="deadline too"):
        m.reschedule(
            now=NOW,
            starts_at=datetime(2026, 12, 7, 13, 0, tzinfo=WINTER),
            ends_at=datetime(2026, 12, 7, 16, 0, tzinfo=WINTER),
        )
    assert m.reschedule(
        now=NOW,
        starts_at=datetime(2026, 12, 7, 13, 0, tzinfo=WINTER),
        ends_at=datetime(2026, 12, 7, 16, 0, tzinfo=WINTER),
        rsvp_deadline=datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
    )


def test_cancel_needs_a_reason_and_ends_the_meeting_s_changes():
    m = meeting()
    with pytest.raises(Invalid, match="why"):
        m.cancel(reason="  ", now=NOW)
    m.cancel(reason=" Oplægsholderen er syg ", now=NOW)
    assert (m.status, m.cancel_reason, m.sequence) == ("cancelled", "Oplægsholderen er syg", 1)
    assert m.events == [events.MeetingCancelled(m.id)]
    for act in (
        lambda: m.cancel(reason="igen", now=NOW),
        lambda: m.reschedule(now=NOW, capacity=10),
        lambda: m.replace_agenda([], now=NOW),
        lambda: m.record_minutes("Referat", now=m.starts_at + timedelta(hours=1)),
    ):
        with pytest.raises(Conflict, match="cancelled"):
            act()
    assert m.sequence == 1


def test_a_meeting_that_has_begun_can_no_longer_be_moved_or_cancelled():
    m = meeting()
    during = m.starts_at + timedelta(minutes=5)
    with pytest.raises(Conflict, match="begun"):
        m.reschedule(now=during, capacity=10)
    with pytest.raises(Conflict, match="begun"):
        m.cancel(reason="For sent", now=during)


def test_the_agenda_anew_must_fit_and_records_agenda_updated():
    m = meeting()
    talk = AgendaItem(
        kind="talk",
        title="Agile kontrakter",
        minutes=60,
        speaker="Oplægsholder",
        speaker_organisation="Eksempel Leverandør A/S",
        tags=("SKI", "udbud"),
        materials=(" https://example.org/slides.pdf ",),
    )
    assert m.replace_agenda([AgendaItem(kind="check_in", title="Runden", minutes=30), talk], now=NOW)
    assert [(i.position, i.kind) for i in m.agenda] == [(1, "check_in"), (2, "talk")]
    assert m.agenda[1].materials == ("https://example.org/slides.pdf",)
    assert m.events == [events.AgendaUpdated(m.id)] and m.sequence == 1
    assert not m.replace_agenda(list(m.agenda), now=NOW)  # the same agenda: nothing happens
    with pytest.raises(Invalid, match="181 minutes"):
        m.replace_agenda([AgendaItem(kind="discussion", title="Lang", minutes=181)], now=NOW)
    with pytest.raises(Invalid, match="materials must be an http"):
        m.replace_agenda([AgendaItem(kind="talk", title="x", minutes=5, materials=("javascript:x",))], now=NOW)
    with pytest.raises(Invalid, match="at most 10 links"):
        m.replace_agenda([AgendaItem(kind="talk", title="x", minutes=5, materials=("https://e.org",) * 11)], now=NOW)
    placed = m.add_agenda_item(AgendaItem(kind="discussion", title="Drøftelse", minutes=45), now=NOW)
    assert placed.position == 3 and m.sequence == 2


def test_minutes_once_the_meeting_has_begun_make_it_held():
    m = meeting()
    with pytest.raises(Conflict, match="once the meeting has begun"):
        m.record_minutes("Referat", now=NOW)
    with pytest.raises(Invalid, match="empty"):
        m.record_minutes("  \n", now=m.ends_at)
    m.record_minutes("Referat\n\n- SKI 02.19 drøftet", now=m.ends_at + timedelta(days=1))
    assert (m.status, m.minutes, m.sequence) == ("held", "Referat\n\n- SKI 02.19 drøftet", 1)
    assert m.events == [events.AgendaUpdated(m.id)]
    with pytest.raises(Conflict, match="begun"):
        m.reschedule(now=m.ends_at + timedelta(days=1), capacity=5)


def test_nth_weekday_of_a_month():
    assert nth_weekday(2027, 3, "tuesday", 2) == date(2027, 3, 9)
    assert nth_weekday(2027, 3, "tuesday", -1) == date(2027, 3, 30)
    assert nth_weekday(2027, 3, "tuesday", 5) == date(2027, 3, 30)
    assert nth_weekday(2027, 2, "tuesday", 5) is None


FOUR_A_YEAR = Recurrence(months=(3, 6, 9, 12), weekday="tuesday", week=2, starts=time(13), ends=time(16))


def test_four_a_year_second_tuesday_keeps_13_00_on_both_sides_of_daylight_saving():
    got = occurrences(FOUR_A_YEAR, "Europe/Copenhagen", date(2027, 1, 1), 4)
    local = [(s.astimezone(CPH), e.astimezone(CPH)) for s, e in got]
    assert [s.date() for s, _ in local] == [date(2027, 3, 9), date(2027, 6, 8), date(2027, 9, 14), date(2027, 12, 14)]
    assert all((s.time(), e.time()) == (time(13), time(16)) for s, e in local)
    # winter 12:00 UTC, summer 11:00 UTC: the same wall-clock time
    assert [s.hour for s, _ in got] == [12, 11, 11, 12]
    assert all(s.utcoffset() == timedelta(0) for s, _ in got)


def test_a_series_starting_mid_year_runs_on_into_the_next():
    got = occurrences(FOUR_A_YEAR, "Europe/Copenhagen", date(2027, 6, 9), 3)
    assert [s.astimezone(CPH).date() for s, _ in got] == [date(2027, 9, 14), date(2027, 12, 14), date(2028, 3, 14)]


def test_a_wall_clock_time_skipped_by_daylight_saving_is_refused():
    # Copenhagen puts its clocks forward at 02:00 on the last Sunday of March
    rule = Recurrence(months=(3,), weekday="sunday", week=-1, starts=time(2, 30), ends=time(4))
    with pytest.raises(Invalid, match="does not exist"):
        occurrences(rule, "Europe/Copenhagen", date(2027, 1, 1), 1)


def test_planning_a_series_gives_each_meeting_its_own_id_and_the_series_id():
    series, meetings = Series.plan(
        group_id=GROUP,
        title="Netværksmøde",
        rule=FOUR_A_YEAR,
        first_day=date(2027, 1, 1),
        count=4,
        now=NOW,
        capacity=40,
        agenda=(AgendaItem(kind="check_in", title="Runden", minutes=30),),
        rsvp_days_before=7,
    )
    assert len({m.id for m in meetings}) == 4 and all(m.series_id == series.id for m in meetings)
    assert all(m.events == [events.MeetingScheduled(m.id)] for m in meetings)
    assert meetings[0].rsvp_deadline == meetings[0].starts_at - timedelta(days=7)
    assert series.rule.months == (3, 6, 9, 12) and series.events == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(count=0), "1 to 24"),
        (dict(count=25), "1 to 24"),
        (dict(rule=Recurrence((3, 3), "tuesday", 2, time(13), time(16))), "once"),
        (dict(rule=Recurrence((13,), "tuesday", 2, time(13), time(16))), "12"),
        (dict(rule=Recurrence((3,), "tirsdag", 2, time(13), time(16))), "weekday"),
        (dict(rule=Recurrence((3,), "tuesday", 0, time(13), time(16))), "week"),
        (dict(rule=Recurrence((3,), "tuesday", 2, time(16), time(13))), "end after"),
        (dict(rule=Recurrence((2,), "tuesday", 5, time(13), time(16)), count=2), "fewer than 2"),
        (dict(first_day=date(2026, 1, 1)), r"Meeting 1 of the series \(2026-03-10 13:00\).*past"),
        (dict(agenda=(AgendaItem(kind="talk", title="Langt", minutes=181),)), "Meeting 1.*181 minutes"),
        (dict(title=" "), "title"),
        (dict(timezone="Europe/Kbh"), "time zone"),
        (dict(rsvp_days_before=91), "rsvp_days_before"),
    ],
)
def test_a_bad_series_is_refused_whole(overrides, message):
    args = dict(group_id=GROUP, title="Netværksmøde", rule=FOUR_A_YEAR, first_day=date(2027, 1, 1), count=4, now=NOW)
    args.update(overrides)
    with pytest.raises(Invalid, match=message):
        Series.plan(**args)
