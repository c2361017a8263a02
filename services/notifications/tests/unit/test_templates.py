"""Subjects and bodies of the welcome and invitation mails, in Danish and English."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from netvaerk_shared.contracts.meetings import AgendaItem
from notifications.adapters.templates import (
    agenda_description,
    format_date,
    normalize_locale,
    render_invitation,
    render_welcome,
)

CPH = ZoneInfo("Europe/Copenhagen")
GROUP = "Offentlig digitalisering øst"
STARTS = datetime(2026, 3, 10, 17, 0, tzinfo=CPH)  # a Tuesday
ENDS = datetime(2026, 3, 10, 19, 0, tzinfo=CPH)

# Deliberately out of order: the mails list items by position.
AGENDA = [
    {"position": 3, "kind": "break", "title": "Kaffe og kage", "minutes": 10},
    {"position": 1, "kind": "check_in", "title": "Runde: hvad fylder lige nu?", "minutes": 20},
    {"position": 4, "kind": "discussion", "title": "Erfaringer med SKI-aftaler", "minutes": 40},
    {"position": 2, "kind": "talk", "title": "AI i sagsbehandlingen", "speaker": "Mette Jensen", "minutes": 30},
    {"position": 5, "kind": "other", "title": "Næste møde", "minutes": 10},
]


def invitation(locale, **overrides):
    args = dict(
        member_name="Jonas Holm",
        group_name=GROUP,
        title="Forårsmøde",
        starts_at_local=STARTS,
        ends_at_local=ENDS,
        location="Eksempel Kommune, Rådhuspladsen 1, København V",
        online_url="https://moede.example.org/foraar",
        agenda=AGENDA,
    )
    args.update(overrides)
    return render_invitation(locale, **args)


def test_welcome_subject_danish_is_exact():
    subject, body = render_welcome("da", member_name="Jonas Holm", group_name=GROUP)
    assert subject == "Velkommen i Offentlig digitalisering øst"
    assert body.startswith("Kære Jonas Holm\n")
    assert GROUP in body
    assert body.rstrip().endswith("Dansk IT")


def test_welcome_subject_english():
    subject, body = render_welcome("en", member_name="Jonas Holm", group_name=GROUP)
    assert subject == "Welcome to Offentlig digitalisering øst"
    assert body.startswith("Dear Jonas Holm\n")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("da", "da"),
        ("da-DK", "da"),
        ("en", "en"),
        ("en-GB", "en"),
        ("EN_us", "en"),
        ("de", "da"),
        ("", "da"),
        (None, "da"),
    ],
)
def test_locale_normalisation_falls_back_to_danish(locale, expected):
    assert normalize_locale(locale) == expected
    subject, _ = render_welcome(locale, member_name="A", group_name="G")
    assert subject == ("Velkommen i G" if expected == "da" else "Welcome to G")


def test_invitation_subject_danish():
    subject, _ = invitation("da")
    assert subject == "Invitation: Forårsmøde – 10. marts 2026"


def test_invitation_subject_english():
    subject, _ = invitation("en")
    assert subject == "Invitation: Forårsmøde – 10 March 2026"


DANISH_MONTHS = [
    "januar",
    "februar",
    "marts",
    "april",
    "maj",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "december",
]
ENGLISH_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@pytest.mark.parametrize("month", range(1, 13))
def test_month_names_come_from_our_tables(month):
    day = datetime(2027, month, 1, 9, 0, tzinfo=CPH)
    assert format_date("da", day) == f"1. {DANISH_MONTHS[month - 1]} 2027"
    assert format_date("en", day) == f"1 {ENGLISH_MONTHS[month - 1]} 2027"
    subject, _ = invitation("da", starts_at_local=day, ends_at_local=day.replace(hour=11))
    assert subject.endswith(f"– 1. {DANISH_MONTHS[month - 1]} 2027")


def test_invitation_body_danish():
    _, body = invitation("da")
    assert body.startswith("Kære Jonas Holm\n")
    assert f"møde i {GROUP}" in body
    assert "Tid: tirsdag den 10. marts 2026 kl. 17.00–19.00" in body
    assert "Sted: Eksempel Kommune, Rådhuspladsen 1, København V" in body
    assert "Online: https://moede.example.org/foraar" in body
    agenda = body.split("Dagsorden\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert agenda == [
        "17.00  Check-in: Runde: hvad fylder lige nu? (20 min)",
        "17.20  Oplæg: AI i sagsbehandlingen v/ Mette Jensen (30 min)",
        "17.50  Pause: Kaffe og kage (10 min)",
        "18.00  Drøftelse: Erfaringer med SKI-aftaler (40 min)",
        "18.40  Andet: Næste møde (10 min)",
    ]


def test_invitation_body_english():
    _, body = invitation("en")
    assert body.startswith("Dear Jonas Holm\n")
    assert "When: Tuesday 10 March 2026, 17:00–19:00" in body
    assert "Where: Eksempel Kommune" in body
    agenda = body.split("Agenda\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert agenda == [
        "17:00  Check-in: Runde: hvad fylder lige nu? (20 min)",
        "17:20  Talk: AI i sagsbehandlingen – Mette Jensen (30 min)",
        "17:50  Break: Kaffe og kage (10 min)",
        "18:00  Discussion: Erfaringer med SKI-aftaler (40 min)",
        "18:40  Other: Næste møde (10 min)",
    ]


def test_invitation_without_place_or_link_says_so():
    _, body = invitation("da", location=None, online_url=None)
    assert "Sted: oplyses senere" in body
    assert "Online:" not in body


def test_online_only_invitation_has_no_place_line():
    _, body = invitation("da", location=None)
    assert "Sted:" not in body
    assert "Online: https://moede.example.org/foraar" in body


def test_invitation_without_agenda_has_no_agenda_heading():
    _, body = invitation("da", agenda=[])
    assert "Dagsorden" not in body


def test_meeting_past_midnight_shows_both_dates():
    _, body = invitation("da", ends_at_local=datetime(2026, 3, 11, 1, 0, tzinfo=CPH))
    assert "Tid: tirsdag den 10. marts 2026 kl. 17.00 – onsdag den 11. marts 2026 kl. 01.00" in body


def test_unknown_agenda_kind_reads_as_other():
    item = {"position": 1, "kind": "workshop", "title": "Værksted", "minutes": 15}
    assert agenda_description("da", [item]) == "Dagsorden:\n1. Andet: Værksted (15 min)"
    assert agenda_description("en", [item]) == "Agenda:\n1. Other: Værksted (15 min)"


def test_agenda_description_for_the_calendar():
    assert agenda_description("da", AGENDA).splitlines() == [
        "Dagsorden:",
        "1. Check-in: Runde: hvad fylder lige nu? (20 min)",
        "2. Oplæg: AI i sagsbehandlingen v/ Mette Jensen (30 min)",
        "3. Pause: Kaffe og kage (10 min)",
        "4. Drøftelse: Erfaringer med SKI-aftaler (40 min)",
        "5. Andet: Næste møde (10 min)",
    ]
    with_times = agenda_description("en", AGENDA, starts_at_local=STARTS).splitlines()
    assert with_times[0] == "Agenda:"
    assert with_times[2] == "17:20  Talk: AI i sagsbehandlingen – Mette Jensen (30 min)"
    assert agenda_description("da", []) == ""


def test_agenda_items_may_be_contract_models():
    items = [
        AgendaItem(position=2, kind="break", title="Pause", minutes=10),
        AgendaItem(
            position=1,
            kind="talk",
            title="Cloud i staten",
            speaker="Sara Lund",
            speaker_organisation="Eksempelstyrelsen",
            minutes=25,
        ),
    ]
    assert agenda_description("da", items).splitlines()[1:] == [
        "1. Oplæg: Cloud i staten v/ Sara Lund, Eksempelstyrelsen (25 min)",
        "2. Pause: Pause (10 min)",
    ]
