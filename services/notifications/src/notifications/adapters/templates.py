"""The words of the e-mails we send, in Danish (default) and English.

Plain functions over small tables: month and weekday names are our own, so the output never depends on the
process locale. A locale we do not know ("de", "", None) gets Danish, as does any "da-*" variant; "en-*" gets English.
Every name, title and place put into a text goes through `one_line` first, so whatever a member or organiser typed
stays on its own line: it cannot end a header, start a paragraph of its own or break the layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from .safe_text import one_line, uri_text

DEFAULT_LOCALE = "da"
LOCALES = ("da", "en")

MONTHS = {
    "da": (
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
    ),
    "en": (
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
    ),
}
WEEKDAYS = {
    "da": ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
AGENDA_KINDS = {
    "da": {"check_in": "Check-in", "talk": "Oplæg", "discussion": "Drøftelse", "break": "Pause", "other": "Andet"},
    "en": {"check_in": "Check-in", "talk": "Talk", "discussion": "Discussion", "break": "Break", "other": "Other"},
}

_TEXT = {
    "da": {
        "welcome_subject": "Velkommen i {group}",
        "welcome_body": (
            "Kære {name}\n"
            "\n"
            "Velkommen i {group}. Vi er glade for, at du vil være med.\n"
            "\n"
            "I netværksgruppen mødes vi for at dele viden og erfaringer, sparre med hinanden og tage de faglige "
            "drøftelser, der fylder i hverdagen. Når det næste møde er planlagt, får du en invitation med "
            "dagsorden og en kalenderinvitation.\n"
            "\n"
            "Har du et emne, du gerne vil have på dagsordenen, så tag endelig fat i gruppens koordinator.\n"
            "\n"
            "Vi glæder os til at se dig.\n"
            "\n"
            "Venlig hilsen\n"
            "{group}\n"
            "Dansk IT\n"
        ),
        "invitation_subject": "Invitation: {title} – {date}",
        "invitation_intro": "Kære {name}\n\nDu inviteres hermed til møde i {group}.",
        "when": "Tid",
        "where": "Sted",
        "online": "Online",
        "tba": "oplyses senere",
        "agenda": "Dagsorden",
        "outro": (
            "Kalenderinvitationen er vedhæftet, så du nemt kan svare og få mødet i din kalender.\n"
            "\n"
            "Vi glæder os til at se dig.\n"
            "\n"
            "Venlig hilsen\n"
            "{group}\n"
            "Dansk IT\n"
        ),
    },
    "en": {
        "welcome_subject": "Welcome to {group}",
        "welcome_body": (
            "Dear {name}\n"
            "\n"
            "Welcome to {group}. We are glad to have you with us.\n"
            "\n"
            "In the network group we meet to share knowledge and experience, exchange ideas and discuss the "
            "professional questions that matter in our daily work. When the next meeting is planned, you will "
            "receive an invitation with the agenda and a calendar invitation.\n"
            "\n"
            "If there is a topic you would like on the agenda, please get in touch with the group's coordinator.\n"
            "\n"
            "We look forward to seeing you.\n"
            "\n"
            "Kind regards\n"
            "{group}\n"
            "Dansk IT\n"
        ),
        "invitation_subject": "Invitation: {title} – {date}",
        "invitation_intro": "Dear {name}\n\nYou are invited to a meeting of {group}.",
        "when": "When",
        "where": "Where",
        "online": "Online",
        "tba": "to be announced",
        "agenda": "Agenda",
        "outro": (
            "The calendar invitation is attached, so you can reply and add the meeting to your calendar.\n"
            "\n"
            "We look forward to seeing you.\n"
            "\n"
            "Kind regards\n"
            "{group}\n"
            "Dansk IT\n"
        ),
    },
}


def normalize_locale(locale: str | None) -> str:
    """'da', 'en', 'en-GB', 'EN_us' -> 'da' or 'en'; anything else -> Danish."""
    primary = (locale or "").replace("_", "-").split("-", 1)[0].strip().lower()
    return primary if primary in LOCALES else DEFAULT_LOCALE


def format_date(locale: str | None, value: datetime) -> str:
    """'10. marts 2026' (Danish) or '10 March 2026' (English)."""
    loc = normalize_locale(locale)
    month = MONTHS[loc][value.month - 1]
    return f"{value.day}. {month} {value.year}" if loc == "da" else f"{value.day} {month} {value.year}"


def format_long_date(locale: str | None, value: datetime) -> str:
    """'tirsdag den 10. marts 2026' or 'Tuesday 10 March 2026'."""
    loc = normalize_locale(locale)
    weekday = WEEKDAYS[loc][value.weekday()]
    return f"{weekday} den {format_date(loc, value)}" if loc == "da" else f"{weekday} {format_date(loc, value)}"


def format_time(locale: str | None, value: datetime) -> str:
    """'17.00' (Danish style, as Dansk Sprognævn recommends) or '17:00'."""
    sep = "." if normalize_locale(locale) == "da" else ":"
    return f"{value.hour:02d}{sep}{value.minute:02d}"


def format_period(locale: str | None, starts_at_local: datetime, ends_at_local: datetime) -> str:
    """'tirsdag den 10. marts 2026 kl. 17.00–19.00' / 'Tuesday 10 March 2026, 17:00–19:00'.

    Both dates are written in full when the meeting runs past midnight.
    """
    loc = normalize_locale(locale)
    at = " kl. " if loc == "da" else ", "
    start = f"{format_long_date(loc, starts_at_local)}{at}{format_time(loc, starts_at_local)}"
    if starts_at_local.date() == ends_at_local.date():
        return f"{start}–{format_time(loc, ends_at_local)}"
    return f"{start} – {format_long_date(loc, ends_at_local)}{at}{format_time(loc, ends_at_local)}"


def agenda_kind_name(locale: str | None, kind: Any) -> str:
    names = AGENDA_KINDS[normalize_locale(locale)]
    return names.get(str(kind), names["other"])


def _field(item: Any, name: str) -> Any:
    # Agenda items arrive as dicts (from JSON) or as contract models; read both the same way.
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _agenda_lines(locale: str, agenda: Iterable[Any], starts_at_local: datetime | None) -> list[str]:
    items = sorted(agenda, key=lambda item: _field(item, "position") or 0)
    lines = []
    clock = starts_at_local
    by = "v/" if locale == "da" else "–"
    for number, item in enumerate(items, start=1):
        minutes = int(_field(item, "minutes") or 0)
        line = f"{agenda_kind_name(locale, _field(item, 'kind'))}: {one_line(_field(item, 'title'))}"
        speaker = one_line(_field(item, "speaker"))
        if speaker:
            organisation = one_line(_field(item, "speaker_organisation"))
            line += f" {by} {speaker}" + (f", {organisation}" if organisation else "")
        if minutes:
            line += f" ({minutes} min)"
        if clock is not None:
            lines.append(f"{format_time(locale, clock)}  {line}")
            clock = clock + timedelta(minutes=minutes)
        else:
            lines.append(f"{number}. {line}")
    return lines


def agenda_description(locale: str | None, agenda: Iterable[Any], *, starts_at_local: datetime | None = None) -> str:
    """The agenda as plain text for the ICS DESCRIPTION ('' when there is none).

    Items are ordered by position; with `starts_at_local` each line starts with its clock time, otherwise a number.
    """
    loc = normalize_locale(locale)
    lines = _agenda_lines(loc, agenda, starts_at_local)
    if not lines:
        return ""
    return f"{_TEXT[loc]['agenda']}:\n" + "\n".join(lines)


def render_welcome(locale: str | None, *, member_name: str, group_name: str) -> tuple[str, str]:
    """(subject, text body) of the mail a member gets on joining a group."""
    text = _TEXT[normalize_locale(locale)]
    member_name, group_name = one_line(member_name), one_line(group_name)
    subject = text["welcome_subject"].format(group=group_name)
    return subject, text["welcome_body"].format(name=member_name, group=group_name)


def render_invitation(
    locale: str | None,
    *,
    member_name: str,
    group_name: str,
    title: str,
    starts_at_local: datetime,
    ends_at_local: datetime,
    location: str | None,
    online_url: str | None,
    agenda: Iterable[Any],
) -> tuple[str, str]:
    """(subject, text body) of a meeting invitation; times are already in the meeting's local time zone."""
    loc = normalize_locale(locale)
    text = _TEXT[loc]
    member_name, group_name, title = one_line(member_name), one_line(group_name), one_line(title)
    location, online_url = one_line(location), uri_text(online_url)
    subject = text["invitation_subject"].format(title=title, date=format_date(loc, starts_at_local))

    parts = [text["invitation_intro"].format(name=member_name, group=group_name), ""]
    facts = [title, f"{text['when']}: {format_period(loc, starts_at_local, ends_at_local)}"]
    if location or not online_url:
        facts.append(f"{text['where']}: {location or text['tba']}")
    if online_url:
        facts.append(f"{text['online']}: {online_url}")
    parts.append("\n".join(facts))
    lines = _agenda_lines(loc, agenda, starts_at_local)
    if lines:
        parts += ["", text["agenda"], *lines]
    parts += ["", text["outro"].format(group=group_name)]
    return subject, "\n".join(parts)
