"""The words of the e-mails we send, in Danish (default) and English.

Plain functions over small tables: month and weekday names are our own, so the output never depends on the
process locale. A locale we do not know ("de", "", None) gets Danish, as does any "da-*" variant; "en-*" gets English.
Every name, title and place put into a text goes through `one_line` first, so whatever a member or organiser typed
stays on its own line: it cannot end a header, start a paragraph of its own or break the layout.
"""

from __future__ import annotations

import html
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

RESPONSES = {
    "da": {"attending": "jeg deltager", "tentative": "måske", "declined": "jeg deltager ikke"},
    "en": {"attending": "I will attend", "tentative": "maybe", "declined": "I will not attend"},
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
        "regards": "Venlig hilsen\n{group}\nDansk IT\n",
        "update_subject": "Ændret: {title} – {date}",
        "update_intro": "Kære {name}\n\nMødet i {group} er ændret. Sådan ser det ud nu:",
        "moved": "Mødet er flyttet. Det skulle have været {previous}.",
        "update_outro": "Den vedhæftede kalenderinvitation opdaterer mødet i din kalender.",
        "cancel_subject": "Aflyst: {title} – {date}",
        "cancel_intro": "Kære {name}\n\nMødet i {group} er desværre aflyst:",
        "reason": "Begrundelse",
        "cancel_outro": "Den vedhæftede kalenderbesked fjerner mødet fra din kalender.",
        "agenda_subject": "Ny dagsorden: {title} – {date}",
        "agenda_intro": "Kære {name}\n\nDagsordenen for mødet i {group} er opdateret.",
        "rsvp_subject": "Dit svar: {title} – {date}",
        "rsvp_intro": "Kære {name}\n\nTak for dit svar til mødet i {group}.",
        "answered": "Du har svaret: {response}.",
        "confirmed": "Du har en plads.",
        "waitlisted": (
            "Mødet er fuldt, så du står på ventelisten som nummer {position}. Bliver en plads ledig, får du den "
            "og en e-mail om det."
        ),
        "waitlisted_unknown": "Mødet er fuldt, så du står på ventelisten.",
        "on_behalf": "En kollega har givet dig sin plads.",
        "seat_subject": "Du har fået en plads: {title} – {date}",
        "seat_intro": "Kære {name}\n\nEn plads er blevet ledig til mødet i {group}, og den er nu din.",
        "seat_outro": "Kan du alligevel ikke komme, så meld afbud, så pladsen kan gå videre til den næste.",
        "proposal_subject": "Dit forslag er på dagsordenen: {title}",
        "proposal_intro": (
            "Kære {name}\n\nTak for dit forslag. Det er nu punkt {position} på dagsordenen for mødet i {group}."
        ),
        "item": "Punkt {position}: {item}",
        "reminder_subject": "Påmindelse: {title} – {date}",
        "reminder_intro": "Kære {name}\n\nHusk mødet i {group} {when}.",
        "reminder_outro": "Kan du alligevel ikke komme, så meld gerne afbud, så pladsen kan gå videre.",
        "nudge_subject": "Kommer du? {title} – {date}",
        "nudge_intro": "Kære {name}\n\nMødet i {group} er {when}, og vi har endnu ikke hørt, om du kommer.",
        "nudge_outro": "Svar gerne på invitationen, så vi kan planlægge mødet.",
        "today": "i dag",
        "tomorrow": "i morgen",
        "in_days": "om {days} dage",
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
        "regards": "Kind regards\n{group}\nDansk IT\n",
        "update_subject": "Updated: {title} – {date}",
        "update_intro": "Dear {name}\n\nThe meeting of {group} has changed. This is how it stands now:",
        "moved": "The meeting has moved. It was to be held {previous}.",
        "update_outro": "The attached calendar invitation updates the meeting in your calendar.",
        "cancel_subject": "Cancelled: {title} – {date}",
        "cancel_intro": "Dear {name}\n\nUnfortunately, the meeting of {group} has been cancelled:",
        "reason": "Reason",
        "cancel_outro": "The attached calendar message removes the meeting from your calendar.",
        "agenda_subject": "Agenda updated: {title} – {date}",
        "agenda_intro": "Dear {name}\n\nThe agenda of the meeting of {group} has been updated.",
        "rsvp_subject": "Your reply: {title} – {date}",
        "rsvp_intro": "Dear {name}\n\nThank you for replying to the meeting of {group}.",
        "answered": "You replied: {response}.",
        "confirmed": "You have a seat.",
        "waitlisted": (
            "The meeting is full, so you are number {position} on the waiting list. If a seat comes free, it is "
            "yours and you will get an e-mail about it."
        ),
        "waitlisted_unknown": "The meeting is full, so you are on the waiting list.",
        "on_behalf": "A colleague has given you their seat.",
        "seat_subject": "You have a seat: {title} – {date}",
        "seat_intro": "Dear {name}\n\nA seat has come free at the meeting of {group}, and it is now yours.",
        "seat_outro": "If you cannot come after all, please send your apologies, so the seat can go to the next.",
        "proposal_subject": "Your proposal is on the agenda: {title}",
        "proposal_intro": (
            "Dear {name}\n\nThank you for your proposal. It is now item {position} on the agenda of the meeting of "
            "{group}."
        ),
        "item": "Item {position}: {item}",
        "reminder_subject": "Reminder: {title} – {date}",
        "reminder_intro": "Dear {name}\n\nA reminder of the meeting of {group} {when}.",
        "reminder_outro": "If you cannot come after all, please send your apologies, so the seat can go to another.",
        "nudge_subject": "Will you come? {title} – {date}",
        "nudge_intro": (
            "Dear {name}\n\nThe meeting of {group} is {when}, and we have not yet heard whether you will come."
        ),
        "nudge_outro": "Please reply to the invitation, so we can plan the meeting.",
        "today": "today",
        "tomorrow": "tomorrow",
        "in_days": "in {days} days",
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


# -- the meeting's life after the invitation (all return (subject, text body); times in the meeting's zone) -------
def _facts(
    loc: str,
    title: str,
    starts_at_local: datetime,
    ends_at_local: datetime,
    location: str | None,
    online_url: str | None,
) -> str:
    text = _TEXT[loc]
    facts = [title, f"{text['when']}: {format_period(loc, starts_at_local, ends_at_local)}"]
    if location or not online_url:
        facts.append(f"{text['where']}: {location or text['tba']}")
    if online_url:
        facts.append(f"{text['online']}: {online_url}")
    return "\n".join(facts)


def _meeting_message(
    kind: str,
    locale: str | None,
    *,
    member_name: str,
    group_name: str,
    title: str,
    starts_at_local: datetime,
    ends_at_local: datetime,
    location: str | None,
    online_url: str | None,
    intro_extra: Mapping[str, Any] | None = None,
    before: Iterable[str] = (),
    after: Iterable[str] = (),
    agenda: Iterable[Any] | None = None,
) -> tuple[str, str]:
    loc = normalize_locale(locale)
    text = _TEXT[loc]
    member_name, group_name, title = one_line(member_name), one_line(group_name), one_line(title)
    location, online_url = one_line(location), uri_text(online_url)
    subject = text[f"{kind}_subject"].format(title=title, date=format_date(loc, starts_at_local))
    parts = [text[f"{kind}_intro"].format(name=member_name, group=group_name, **(intro_extra or {})), ""]
    for paragraph in before:
        parts += [paragraph, ""]
    parts.append(_facts(loc, title, starts_at_local, ends_at_local, location, online_url))
    lines = _agenda_lines(loc, agenda or (), starts_at_local)
    if lines:
        parts += ["", text["agenda"], *lines]
    for paragraph in after:
        parts += ["", paragraph]
    parts += ["", text["regards"].format(group=group_name)]
    return subject, "\n".join(parts)


def render_update(locale: str | None, *, previous_starts_at_local: datetime | None, **meeting: Any) -> tuple[str, str]:
    """A meeting moved or changed: how it stands now, and where it was to be held when it moved."""
    loc = normalize_locale(locale)
    text = _TEXT[loc]
    before = []
    if previous_starts_at_local is not None and previous_starts_at_local != meeting["starts_at_local"]:
        at = " kl. " if loc == "da" else ", "
        previous = f"{format_long_date(loc, previous_starts_at_local)}{at}{format_time(loc, previous_starts_at_local)}"
        before.append(text["moved"].format(previous=previous))
    return _meeting_message("update", loc, before=before, after=[text["update_outro"]], **meeting)


def render_cancellation(locale: str | None, *, reason: str | None, **meeting: Any) -> tuple[str, str]:
    loc = normalize_locale(locale)
    text = _TEXT[loc]
    after = [f"{text['reason']}: {one_line(reason)}"] if one_line(reason) else []
    return _meeting_message("cancel", loc, after=[*after, text["cancel_outro"]], **meeting)


def render_agenda_update(locale: str | None, *, agenda: Iterable[Any], **meeting: Any) -> tuple[str, str]:
    return _meeting_message("agenda", locale, agenda=agenda, **meeting)


def render_rsvp_confirmation(
    locale: str | None,
    *,
    response: str,
    status: str,
    waitlist_position: int | None,
    on_behalf: bool,
    **meeting: Any,
) -> tuple[str, str]:
    """The receipt of a member's answer: what they answered, and a seat or their place in line."""
    loc = normalize_locale(locale)
    text = _TEXT[loc]
    responses = RESPONSES[loc]
    before = [text["answered"].format(response=responses.get(response, one_line(response)))]
    if on_behalf:
        before.append(text["on_behalf"])
    if status == "confirmed":
        before.append(text["confirmed"])
    elif status == "waitlisted":
        before.append(
            text["waitlisted"].format(position=waitlist_position) if waitlist_position else text["waitlisted_unknown"]
        )
    return _meeting_message("rsvp", loc, before=before, **meeting)


def render_waitlist_promotion(locale: str | None, **meeting: Any) -> tuple[str, str]:
    loc = normalize_locale(locale)
    return _meeting_message("seat", loc, after=[_TEXT[loc]["seat_outro"]], **meeting)


def render_proposal_accepted(
    locale: str | None, *, position: int, item_title: str | None, **meeting: Any
) -> tuple[str, str]:
    loc = normalize_locale(locale)
    before = [_TEXT[loc]["item"].format(position=position, item=one_line(item_title))] if item_title else []
    subject, body = _meeting_message("proposal", loc, intro_extra={"position": position}, before=before, **meeting)
    return subject, body


def _when(loc: str, days_before: int) -> str:
    text = _TEXT[loc]
    if days_before <= 0:
        return text["today"]
    return text["tomorrow"] if days_before == 1 else text["in_days"].format(days=days_before)


def render_reminder(
    locale: str | None,
    *,
    days_before: int,
    response: str,
    status: str,
    waitlist_position: int | None,
    agenda: Iterable[Any] = (),
    **meeting: Any,
) -> tuple[str, str]:
    """A reminder before a meeting to a member who answered attending or tentative: what they answered, and for
    one on the waiting list their place in line."""
    loc = normalize_locale(locale)
    text = _TEXT[loc]
    before = [text["answered"].format(response=RESPONSES[loc].get(response, one_line(response)))]
    if status == "waitlisted":
        before.append(
            text["waitlisted"].format(position=waitlist_position) if waitlist_position else text["waitlisted_unknown"]
        )
    return _meeting_message(
        "reminder",
        loc,
        intro_extra={"when": _when(loc, days_before)},
        before=before,
        after=[text["reminder_outro"]],
        agenda=agenda,
        **meeting,
    )


def render_nudge(locale: str | None, *, days_before: int, **meeting: Any) -> tuple[str, str]:
    """A nudge before a meeting to a member of its group who has not answered."""
    loc = normalize_locale(locale)
    return _meeting_message(
        "nudge", loc, intro_extra={"when": _when(loc, days_before)}, after=[_TEXT[loc]["nudge_outro"]], **meeting
    )


def text_to_html(locale: str | None, body: str) -> str:
    """The HTML alternative of a text body: the same words, escaped; a paragraph per blank-line-separated block,
    its lines kept apart with <br>."""
    paragraphs = [p for p in body.strip().split("\n\n") if p.strip()]
    inner = "\n".join("<p>" + "<br>\n".join(html.escape(line) for line in p.split("\n")) + "</p>" for p in paragraphs)
    lang = normalize_locale(locale)
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head><meta charset="utf-8"></head>\n'
        f'<body style="font-family: sans-serif; line-height: 1.4">\n{inner}\n</body>\n</html>\n'
    )
