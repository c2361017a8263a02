"""The scheduling rules of a meeting, with the clock passed in."""

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from meetings.domain import events
from meetings.domain.errors import Invalid
from meetings.domain.model import AgendaItem, Meeting, Venue

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CPH_WINTER = timezone(timedelta(hours=1))
GROUP = uuid4()


def schedule(**overrides) -> Meeting:
    args = dict(
        group_id=GROUP,
        title="Vintermøde: udbud og SKI",
        now=NOW,
        starts_at=datetime(2026, 12, 10, 16, 0, tzinfo=CPH_WINTER),
        ends_at=datetime(2026, 12, 10, 18, 0, tzinfo=CPH_WINTER),
    )
    args.update(overrides)
    return Meeting.schedule(**args)


def test_a_scheduled_meeting_keeps_utc_instants_and_its_zone_and_records_the_event():
    meeting = schedule()
    assert meeting.starts_at == datetime(2026, 12, 10, 15, 0, tzinfo=UTC)
    assert meeting.starts_at.utcoffset() == timedelta(0)
    assert meeting.ends_at == datetime(2026, 12, 10, 17, 0, tzinfo=UTC)
    assert meeting.timezone == "Europe/Copenhagen"
    assert meeting.sequence == 0
    assert meeting.scheduled_at == NOW
    assert meeting.events == [events.MeetingScheduled(meeting.id)]


def test_each_meeting_gets_its_own_id():
    assert schedule().id != schedule().id


def test_agenda_items_are_numbered_one_to_n_in_the_given_order_whatever_positions_came_in():
    meeting = schedule(
        agenda=[
            AgendaItem(kind="check_in", title=" Runde ", minutes=15, position=7),
            AgendaItem(
                kind="talk",
                title="AI i sagsbehandlingen",
                minutes=30,
                speaker="Mette Eksempel",
                speaker_organisation="Eksempel Kommune",
                tags=("ai", " ", "jura "),
            ),
            AgendaItem(kind="break", title="Kaffe", minutes=10),
        ]
    )
    assert [(i.position, i.kind, i.title) for i in meeting.agenda] == [
        (1, "check_in", "Runde"),
        (2, "talk", "AI i sagsbehandlingen"),
        (3, "break", "Kaffe"),
    ]
    assert meeting.agenda[1].tags == ("ai", "jura")


@pytest.mark.parametrize("title", ["", "   "])
def test_a_meeting_needs_a_title(title):
    with pytest.raises(Invalid, match="title"):
        schedule(title=title)


@pytest.mark.parametrize("minutes", [0, -30])
def test_a_meeting_must_end_after_it_starts(minutes):
    starts = datetime(2026, 12, 10, 16, 0, tzinfo=CPH_WINTER)
    with pytest.raises(Invalid, match="end after it starts"):
        schedule(starts_at=starts, ends_at=starts + timedelta(minutes=minutes))


def test_end_and_start_are_compared_as_instants_not_wall_clock_times():
    # 17:30 in Copenhagen is 16:30 UTC: before the 17:00 UTC start, though the wall clock says later.
    with pytest.raises(Invalid, match="end after it starts"):
        schedule(
            starts_at=datetime(2026, 12, 10, 17, 0, tzinfo=UTC),
            ends_at=datetime(2026, 12, 10, 17, 30, tzinfo=CPH_WINTER),
        )


def test_a_meeting_cannot_start_in_the_past_by_the_clock_it_is_given():
    with pytest.raises(Invalid, match="past"):
        schedule(starts_at=NOW - timedelta(minutes=1), ends_at=NOW + timedelta(hours=1))
    with pytest.raises(Invalid, match="past"):
        schedule(starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    # the same times are fine for a clock an hour earlier
    assert schedule(starts_at=NOW, ends_at=NOW + timedelta(hours=1), now=NOW - timedelta(hours=1))


def test_naive_times_are_refused():
    with pytest.raises(Invalid, match="UTC offset"):
        schedule(starts_at=datetime(2026, 12, 10, 16, 0), ends_at=datetime(2026, 12, 10, 18, 0, tzinfo=UTC))
    with pytest.raises(Invalid, match="UTC offset"):
        schedule(ends_at=datetime(2026, 12, 10, 18, 0))


@pytest.mark.parametrize("zone", ["Europe/Kobenhavn", "CET+1", "", "../../etc/passwd", "Mars/Olympus_Mons"])
def test_the_timezone_must_be_an_iana_zone(zone):
    with pytest.raises(Invalid, match="time zone"):
        schedule(timezone=zone)


@pytest.mark.parametrize("zone", ["Europe/Copenhagen", "Atlantic/Faroe", "America/Nuuk", "UTC"])
def test_known_zones_are_accepted(zone):
    assert schedule(timezone=zone).timezone == zone


def test_venue_link_and_capacity():
    meeting = schedule(
        venue=Venue(name=" Rådhuset ", address="Rådhuspladsen 1, 1550 København V", host_organisation=" "),
        online_url="https://meet.example.org/vinter",
        capacity=40,
    )
    assert meeting.venue == Venue(name="Rådhuset", address="Rådhuspladsen 1, 1550 København V")
    assert meeting.online_url == "https://meet.example.org/vinter"
    assert meeting.capacity == 40
    with pytest.raises(Invalid, match="Capacity"):
        schedule(capacity=0)
    with pytest.raises(Invalid, match="online link"):
        schedule(online_url="javascript:alert(1)")
    with pytest.raises(Invalid, match="venue"):
        schedule(venue=Venue(name="  "))


@pytest.mark.parametrize(
    "item, message",
    [
        (AgendaItem(kind="lecture", title="Oplæg", minutes=30), "kind"),
        (AgendaItem(kind="talk", title=" ", minutes=30), "title"),
        (AgendaItem(kind="talk", title="Oplæg", minutes=-1), "minutes"),
        (AgendaItem(kind="talk", title="Oplæg", minutes=601), "minutes"),
    ],
)
def test_bad_agenda_items_are_refused_with_their_position(item, message):
    with pytest.raises(Invalid, match=f"Agenda item 2.*{message}"):
        schedule(agenda=[AgendaItem(kind="check_in", title="Runde", minutes=10), item])


@pytest.mark.parametrize(
    "starts_at",
    [
        datetime(1, 1, 1, 0, 0, tzinfo=CPH_WINTER),  # year 0 in UTC: astimezone overflows (schemathesis found it)
        datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),  # year 10000 in UTC
        datetime(2201, 1, 1, 12, 0, tzinfo=UTC),
    ],
)
def test_times_at_the_ends_of_the_calendar_are_refused_not_a_crash(starts_at):
    with pytest.raises(Invalid, match="between the years"):
        schedule(starts_at=starts_at, ends_at=datetime(2026, 12, 10, 18, 0, tzinfo=CPH_WINTER))
