"""The invitation ICS, parsed back with icalendar as a calendar client would."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from icalendar import Calendar

from notifications.adapters.calendar import build_invitation_ics, meeting_uid

UTC = UTC
MEETING_ID = "3f6c1e2a-8d4b-4c1e-9a77-0b6f2d5e9c10"


def ics_for(**overrides) -> bytes:
    args = dict(
        meeting_id=MEETING_ID,
        sequence=0,
        title="Forårsmøde: data, AI; og ansvar",
        starts_at=datetime(2026, 6, 10, 15, 0, tzinfo=UTC),
        ends_at=datetime(2026, 6, 10, 17, 0, tzinfo=UTC),
        timezone="Europe/Copenhagen",
        location="Eksempel Kommune, Rådhuspladsen 1, 1550 København V",
        online_url=None,
        description="Dagsorden:\n1. Check-in: Runde (20 min)\n2. Oplæg: AI i sagsbehandlingen (30 min)",
        organizer_email="netvaerk@danskit.example.org",
        organizer_name="Dansk IT Netværk",
        attendee_email="mette.jensen@kommune.example.org",
        attendee_name="Mette Jensen",
        dtstamp=datetime(2026, 5, 1, 8, 30, tzinfo=UTC),
    )
    args.update(overrides)
    return build_invitation_ics(**args)


def parse(ics: bytes) -> tuple[Calendar, object]:
    calendar = Calendar.from_ical(ics)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return calendar, events[0]


def raw_line(ics: bytes, name: str) -> str:
    """The VEVENT's unfolded content line for property `name` (e.g. 'DTSTART')."""
    unfolded = ics.decode("utf-8").replace("\r\n ", "")
    event = unfolded.split("BEGIN:VEVENT\r\n", 1)[1].split("END:VEVENT\r\n", 1)[0]
    lines = [line for line in event.split("\r\n") if line.split(";")[0].split(":")[0] == name]
    assert len(lines) == 1, lines
    return lines[0]


def test_calendar_is_a_request_with_our_prodid():
    calendar, _ = parse(ics_for())
    assert calendar["METHOD"] == "REQUEST"
    assert calendar["PRODID"] == "-//Dansk IT//Netvaerk//DA"
    assert calendar["VERSION"] == "2.0"
    assert calendar["CALSCALE"] == "GREGORIAN"


def test_output_uses_crlf_and_is_deterministic():
    first, second = ics_for(), ics_for()
    assert first == second
    assert first.startswith(b"BEGIN:VCALENDAR\r\n")
    assert b"\n" not in first.replace(b"\r\n", b"")


def test_uid_is_stable_per_meeting_and_the_same_for_every_attendee():
    _, for_mette = parse(ics_for())
    _, for_jonas = parse(ics_for(attendee_email="jonas.holm@leverandoer.example.org", attendee_name="Jonas Holm"))
    assert str(for_mette["UID"]) == str(for_jonas["UID"]) == f"meeting-{MEETING_ID}@netvaerk.danskit.example.org"
    assert meeting_uid(MEETING_ID) == str(for_mette["UID"])
    _, other_meeting = parse(ics_for(meeting_id="another-meeting"))
    assert str(other_meeting["UID"]) != str(for_mette["UID"])


@pytest.mark.parametrize(
    ("starts_at", "local_wall_time"),
    [
        (datetime(2026, 6, 10, 15, 0, tzinfo=UTC), "20260610T170000"),  # summer, CEST = UTC+2
        (datetime(2026, 1, 15, 16, 30, tzinfo=UTC), "20260115T173000"),  # winter, CET = UTC+1
        (datetime(2026, 10, 25, 8, 0, tzinfo=UTC), "20261025T090000"),  # the day summer time ends
    ],
)
def test_dtstart_is_local_wall_time_with_tzid(starts_at, local_wall_time):
    ics = ics_for(starts_at=starts_at, ends_at=starts_at + timedelta(hours=2))
    assert raw_line(ics, "DTSTART") == f"DTSTART;TZID=Europe/Copenhagen:{local_wall_time}"
    assert raw_line(ics, "DTEND").startswith("DTEND;TZID=Europe/Copenhagen:")
    _, event = parse(ics)
    assert event["DTSTART"].params["TZID"] == "Europe/Copenhagen"
    # Read back, it is the same instant.
    assert event.start == starts_at
    assert event.end == starts_at + timedelta(hours=2)


def test_vtimezone_for_the_zone_is_included_with_both_offsets():
    calendar, _ = parse(ics_for())
    timezones = calendar.walk("VTIMEZONE")
    assert [str(tz["TZID"]) for tz in timezones] == ["Europe/Copenhagen"]
    offsets = {sub.name: sub["TZOFFSETTO"].td for sub in timezones[0].subcomponents}
    assert offsets == {"STANDARD": timedelta(hours=1), "DAYLIGHT": timedelta(hours=2)}
    assert calendar.get_missing_tzids() == set()


def test_event_fields():
    ics = ics_for(sequence=3)
    _, event = parse(ics)
    assert str(event["SUMMARY"]) == "Forårsmøde: data, AI; og ansvar"
    assert str(event["LOCATION"]) == "Eksempel Kommune, Rådhuspladsen 1, 1550 København V"
    assert str(event["DESCRIPTION"]).splitlines()[1] == "1. Check-in: Runde (20 min)"
    assert event["SEQUENCE"] == 3
    assert str(event["STATUS"]) == "CONFIRMED"
    assert "URL" not in event
    assert raw_line(ics, "DTSTAMP") == "DTSTAMP:20260501T083000Z"


def test_organizer_and_attendee():
    _, event = parse(ics_for())
    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:netvaerk@danskit.example.org"
    assert organizer.params["CN"] == "Dansk IT Netværk"
    attendee = event["ATTENDEE"]
    assert not isinstance(attendee, list)
    assert str(attendee) == "mailto:mette.jensen@kommune.example.org"
    assert attendee.params["CN"] == "Mette Jensen"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert attendee.params["RSVP"] == "TRUE"


def test_online_meeting_has_url_and_online_only_uses_it_as_location():
    _, hybrid = parse(ics_for(online_url="https://moede.example.org/foraar"))
    assert str(hybrid["URL"]) == "https://moede.example.org/foraar"
    assert str(hybrid["LOCATION"]).startswith("Eksempel Kommune")
    _, online = parse(ics_for(location=None, online_url="https://moede.example.org/foraar"))
    assert str(online["LOCATION"]) == "https://moede.example.org/foraar"


def test_dtstamp_given_in_another_zone_is_written_in_utc():
    cet = timezone(timedelta(hours=1))
    ics = ics_for(dtstamp=datetime(2026, 5, 1, 9, 30, tzinfo=cet))
    assert raw_line(ics, "DTSTAMP") == "DTSTAMP:20260501T083000Z"


@pytest.mark.parametrize("field", ["starts_at", "ends_at", "dtstamp"])
def test_naive_datetimes_are_refused(field):
    with pytest.raises(ValueError, match=field):
        ics_for(**{field: datetime(2026, 6, 10, 15, 0)})


def test_end_before_start_is_refused():
    with pytest.raises(ValueError, match="ends_at"):
        ics_for(ends_at=datetime(2026, 6, 10, 14, 0, tzinfo=UTC))
