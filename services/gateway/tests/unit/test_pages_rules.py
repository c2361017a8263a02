"""The gateway's small rules on their own: every text a template asks for exists in Danish and English, redirects
stay on the site, meeting times carry Copenhagen's offset of that day, and the sign-in windows count."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.bootstrap import Window
from gateway.entrypoints.pages import meeting_times, normalised_email
from gateway.entrypoints.session import safe_next
from gateway.i18n import MESSAGES, local_time, translate

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "gateway" / "templates"
SOURCES = Path(__file__).resolve().parents[2] / "src" / "gateway"


def test_every_key_the_templates_and_routes_use_is_there_in_both_languages():
    used: set[str] = set()
    for path in [*TEMPLATES.glob("*.html"), *SOURCES.rglob("*.py")]:
        text = path.read_text()
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']""", text))
        used |= set(re.findall(r"""["']((?:error|login|groups|meeting|profile|admin|logout)\.[a-z_.]+)["']""", text))
    used = {key for key in used if not key.endswith((".", ".html"))}
    missing = sorted(key for key in used if key not in MESSAGES)
    assert not missing, missing
    untranslated = sorted(key for key, (da, en) in MESSAGES.items() if not da.strip() or not en.strip())
    assert not untranslated
    assert len(used) > 60  # the scan found the templates' keys, not nothing


def test_dynamic_keys_exist_for_every_value_they_are_built_from():
    for state in ("expired", "used", "unknown"):
        assert f"login.{state}" in MESSAGES and f"login.{state}.title" in MESSAGES
    for status in ("joined", "pending", "waitlisted"):
        assert f"groups.{status}" in MESSAGES
    for kind in ("check_in", "talk", "discussion", "break", "other"):
        assert f"agenda.{kind}" in MESSAGES
    for answer in ("attending", "tentative", "declined", "none"):
        assert f"answer.{answer}" in MESSAGES


def test_danish_is_the_default_and_english_is_there():
    assert translate("da", "login.title") == "Log ind"
    assert translate("en", "login.title") == "Sign in"
    assert translate("fr", "login.title") == "Log ind"
    assert translate("da", "dash.hello", name="Mette") == "Hej Mette"
    assert translate("da", "no.such.key") == "no.such.key"


def test_redirects_stay_on_the_site():
    assert safe_next("/groups/1") == "/groups/1"
    for bad in (
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        None,
        "/a\r\nb",
        "/" + "a" * 600,
    ):
        assert safe_next(bad) == "/"


def test_meeting_times_carry_the_offset_of_that_day_across_daylight_saving():
    winter, errors = meeting_times({"date": "2030-03-12", "start": "13:00", "end": "16:00"})
    assert (
        not errors
        and winter["starts_at"] == "2030-03-12T13:00:00+01:00"
        and winter["ends_at"].endswith("16:00:00+01:00")
    )
    summer, _ = meeting_times({"date": "2030-06-11", "start": "13:00", "end": "16:00"})
    assert summer["starts_at"] == "2030-06-11T13:00:00+02:00"
    _, errors = meeting_times({"date": "12/03/2030", "start": "1300", "end": ""})
    assert set(errors) == {"date", "end"}


def test_local_time_reads_as_a_dane_reads_it():
    assert local_time("2030-03-12T12:00:00+00:00", "da") == "tirsdag 12. marts 2030 kl. 13:00"
    assert local_time("2030-06-11T11:00:00+00:00", "en") == "Tuesday 11 June 2030, 13:00"


def test_addresses_are_normalised_and_hostile_ones_refused():
    assert normalised_email("  Mette.Eksempel@Example.ORG ") == "mette.eksempel@example.org"
    for bad in ("", "no-at-sign", "a@b@example.org", "mette\n@example.org", "x" * 250 + "@example.org", "a@\x00.org"):
        assert normalised_email(bad) is None


def test_a_window_lets_through_its_limit_per_key_then_refuses_until_it_slides():
    window = Window(limit=3)
    assert [window.allow("a", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert window.allow("b", now=3)
    assert window.allow("a", now=15 * 60 + 0.5)
