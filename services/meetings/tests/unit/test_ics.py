"""The iCalendar writer, held against a real parser (the icalendar package): RFC 5545 documents whose meetings keep
their wall-clock time across daylight-saving changes, with a VTIMEZONE that agrees with the zone database, stable
UIDs, SEQUENCE, STATUS:CANCELLED, escaped text and lines folded at 75 octets."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import icalendar
import pytest

from meetings.adapters.ics import CalendarAgendaItem, CalendarMeeting, calendar, uid, vtimezone

CPH = ZoneInfo("Europe/Copenhagen")
STAMP = datetime(2027, 1, 5, 8, 0, tzinfo=UTC)


def at(year, month, day, hour, minute=0, zone=CPH) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def entry(starts: datetime, hours: float = 3, **kw) -> CalendarMeeting:
    return CalendarMeeting(
        meeting_id=kw.pop("meeting_id", uuid4()),
        title=kw.pop("title", "Netværksmøde"),
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
        timezone=kw.pop("timezone", "Europe/Copenhagen"),
        sequence=kw.pop("sequence", 0),
        changed_at=STAMP,
        **kw,
    )


def parse(text: str) -> icalendar.Calendar:
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")  # CRLF only
    for line in text.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75, line
    return icalendar.Calendar.from_ical(text)


def test_meetings_across_both_daylight_saving_changes_keep_their_local_time():
    # 13:00 Copenhagen time, before and after summer time starts (28 March 2027) and ends (31 October 2027)
    days = [(2027, 3, 9), (2027, 3, 30), (2027, 10, 26), (2027, 11, 2)]
    meetings = [entry(at(*d, 13)) for d in days]
    cal = parse(calendar("Offentlig digitalisering øst", meetings))
    events = cal.walk("VEVENT")
    assert len(events) == 4
    for event, meeting, offset in zip(events, meetings, (1, 2, 2, 1), strict=True):
        start, end = event.decoded("DTSTART"), event.decoded("DTEND")
        assert (start.hour, start.minute) == (13, 0) and start.utcoffset() == timedelta(hours=offset)
        assert start == meeting.starts_at and end == meeting.ends_at
        assert event["DTSTART"].params["TZID"] == "Europe/Copenhagen"
        assert str(event["UID"]) == uid(meeting.meeting_id)
    [tz] = cal.walk("VTIMEZONE")
    assert tz["TZID"] == "Europe/Copenhagen"


def test_the_vtimezone_agrees_with_the_zone_database():
    lines = vtimezone("Europe/Copenhagen", 2026, 2036)
    cal = parse(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:test\r\n"
        + "".join(f"{line}\r\n" for line in lines)
        + "END:VCALENDAR\r\n"
    )
    [tz] = cal.walk("VTIMEZONE")
    observances = tz.subcomponents
    assert len(observances) == 1 + 2 * 11  # the one in force at the start, then two changes a year
    for obs in observances[1:]:
        onset_local = obs.decoded("DTSTART")  # naive wall-clock time, in the offset before the change
        before, after = obs.decoded("TZOFFSETFROM"), obs.decoded("TZOFFSETTO")
        instant = (onset_local - before).replace(tzinfo=UTC)
        assert (instant - timedelta(seconds=1)).astimezone(CPH).utcoffset() == before
        assert instant.astimezone(CPH).utcoffset() == after
        assert obs.name == ("DAYLIGHT" if after == timedelta(hours=2) else "STANDARD")
        if obs.name == "DAYLIGHT":  # last Sunday of March, 02:00 becomes 03:00
            assert onset_local.month == 3 and onset_local.weekday() == 6 and onset_local.hour == 2
        else:  # last Sunday of October, 03:00 becomes 02:00
            assert onset_local.month == 10 and onset_local.weekday() == 6 and onset_local.hour == 3


def test_icalendar_reads_the_times_through_our_vtimezone_as_the_zone_database_does():
    """icalendar resolves TZIDs it knows by name; under an unknown TZID it must use the document's own VTIMEZONE.
    Renamed, our VTIMEZONE alone has to give every meeting its instant."""
    meetings = [entry(at(2027, month, 12, 13)) for month in range(1, 13)]
    text = calendar("Gruppe", meetings).replace("Europe/Copenhagen", "Netvaerk-Test/Copenhagen")
    events = parse(text).walk("VEVENT")
    assert [e.decoded("DTSTART") for e in events] == [m.starts_at for m in meetings]


def test_the_repeated_hour_when_summer_time_ends_is_given_in_utc():
    first = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 summer time
    second = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # 02:30 again, winter time
    text = calendar("Gruppe", [entry(first, 0.5), entry(second, 0.5)])
    assert "DTSTART;TZID=Europe/Copenhagen:20271031T023000" in text and "DTSTART:20271031T013000Z" in text
    # (compared in UTC: Python never finds an ambiguous wall-clock time equal to a time in another zone)
    starts = [e.decoded("DTSTART").astimezone(UTC) for e in parse(text).walk("VEVENT")]
    assert starts == [first, second]


@pytest.mark.parametrize("zone", ["America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"])
def test_other_zones_north_south_and_without_summer_time(zone):
    tz = ZoneInfo(zone)
    meetings = [entry(at(2027, m, 10, 10, zone=tz), timezone=zone) for m in (1, 4, 7, 10)]
    events = parse(calendar("Gruppe", meetings)).walk("VEVENT")
    assert [e.decoded("DTSTART") for e in events] == [m.starts_at for m in meetings]
    assert all(e.decoded("DTSTART").hour == 10 for e in events)


def test_sequence_status_and_text_as_clients_need_them():
    meeting_id = uuid4()
    title = 'Udbud, SKI; og "data" \\ ansvar ' + "æøå" * 30
    agenda = (
        CalendarAgendaItem("check_in", "Runde", 20),
        CalendarAgendaItem("talk", "AI, og ansvar", 40, "Mette Eksempel", "Eksempel Kommune"),
    )
    scheduled = entry(at(2027, 3, 9, 13), meeting_id=meeting_id, title=title, agenda=agenda, group_name="Øst")
    moved = entry(
        at(2027, 3, 30, 13),
        meeting_id=meeting_id,
        title=title,
        sequence=2,
        status="cancelled",
        venue_name="Rådhuset",
        venue_address="Rådhuspladsen 1, 1550 København V",
        online_url="https://meet.example.org/moede?id=1,2",
    )
    [a] = parse(calendar("Gruppe", [scheduled])).walk("VEVENT")
    [b] = parse(calendar("Gruppe", [moved])).walk("VEVENT")
    assert a["UID"] == b["UID"] == uid(meeting_id)
    assert (a["SEQUENCE"], a["STATUS"]) == (0, "CONFIRMED") and (b["SEQUENCE"], b["STATUS"]) == (2, "CANCELLED")
    assert str(a["SUMMARY"]) == f"Øst: {title}" and str(b["SUMMARY"]) == title
    assert str(a["DESCRIPTION"]).splitlines() == [
        "Runde: Runde, 20 min.",
        "Oplæg: AI, og ansvar (Mette Eksempel, Eksempel Kommune), 40 min.",
    ]
    assert str(b["LOCATION"]) == "Rådhuset, Rådhuspladsen 1, 1550 København V"
    assert str(b["URL"]) == "https://meet.example.org/moede?id=1,2"
    assert str(b["DESCRIPTION"]).startswith("Mødet er aflyst.")
    assert a.decoded("DTSTAMP") == STAMP


def test_the_same_meetings_give_the_same_document():
    meetings = [entry(at(2027, 3, 9, 13), meeting_id=uuid4()) for _ in range(3)]
    assert calendar("Gruppe", meetings) == calendar("Gruppe", list(meetings))
    empty = parse(calendar("Gruppe", []))
    assert empty.walk("VEVENT") == [] and empty["VERSION"] == "2.0" and empty["PRODID"]
