"""The words of the e-mails we send, in Danish (default) and English.

Plain functions; every word comes from the gettext catalogues (catalogues.py,
`locale/<lang>/LC_MESSAGES/notifications.po`), month and weekday names from Babel's CLDR data with the
catalogue's date patterns, so the output never depends on the process locale.
A locale we do not know ("de", "", None) gets Danish, as does any "da-*" variant; "en-*" gets English.
Every name, title and place put into a text goes through `one_line` first, so whatever a member or organiser typed
stays on its own line: it cannot end a header, start a paragraph of its own or break the layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from babel.dates import format_date as cldr_date
from babel.dates import format_time as cldr_time

from .catalogues import DEFAULT_LOCALE as DEFAULT_LOCALE  # re-exported: where callers always found them
from .catalogues import LOCALES as LOCALES
from .catalogues import TEXT, Family, normalize_locale
from .safe_text import one_line, uri_text

# id -> text per language, and the closed families of ids (agenda_kind_talk, response_attending, ...)
_TEXT = TEXT
AGENDA_KINDS = Family("agenda_kind_", ("check_in", "talk", "discussion", "break", "other"))
RESPONSES = Family("response_", ("attending", "tentative", "declined"))


def format_date(locale: str | None, value: datetime) -> str:
    """'10. marts 2026' (Danish) or '10 March 2026' (English): the catalogue's `date_format`, names from CLDR."""
    loc = normalize_locale(locale)
    return cldr_date(value.date(), _TEXT[loc]["date_format"], locale=loc)


def format_long_date(locale: str | None, value: datetime) -> str:
    """'tirsdag den 10. marts 2026' or 'Tuesday 10 March 2026' (`long_date_format`)."""
    loc = normalize_locale(locale)
    return cldr_date(value.date(), _TEXT[loc]["long_date_format"], locale=loc)


def format_time(locale: str | None, value: datetime) -> str:
    """'17.00' (Danish style, as Dansk Sprognævn recommends) or '17:00' (`time_format`), the wall time as given."""
    loc = normalize_locale(locale)
    return cldr_time(value.time(), _TEXT[loc]["time_format"], locale=loc)


def format_date_time(locale: str | None, value: datetime) -> str:
    """'tirsdag den 10. marts 2026 kl. 17.00' / 'Tuesday 10 March 2026, 17:00' (`date_time`)."""
    loc = normalize_locale(locale)
    return _TEXT[loc]["date_time"].format(date=format_long_date(loc, value), time=format_time(loc, value))


def format_period(locale: str | None, starts_at_local: datetime, ends_at_local: datetime) -> str:
    """'tirsdag den 10. marts 2026 kl. 17.00–19.00' / 'Tuesday 10 March 2026, 17:00–19:00'.

    Both dates are written in full when the meeting runs past midnight.
    """
    loc = normalize_locale(locale)
    start = format_date_time(loc, starts_at_local)
    if starts_at_local.date() == ends_at_local.date():
        return f"{start}–{format_time(loc, ends_at_local)}"
    return f"{start} – {format_date_time(loc, ends_at_local)}"


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
    for number, item in enumerate(items, start=1):
        minutes = int(_field(item, "minutes") or 0)
        line = f"{agenda_kind_name(locale, _field(item, 'kind'))}: {one_line(_field(item, 'title'))}"
        speaker = one_line(_field(item, "speaker"))
        if speaker:
            organisation = one_line(_field(item, "speaker_organisation"))
            line += " " + _TEXT[locale]["agenda_speaker"].format(speaker=speaker)
            line += f", {organisation}" if organisation else ""
        if minutes:
            line += " " + _TEXT[locale]["agenda_minutes"].format(minutes=minutes)
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
        previous = format_date_time(loc, previous_starts_at_local)
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


def render_sign_in(locale: str | None, *, member_name: str, link: str, minutes: int) -> tuple[str, str]:
    """The mail with the member's single-use sign-in link (the web gateway's), the link on a line of its own."""
    text = _TEXT[normalize_locale(locale)]
    intro = text["sign_in_intro"].format(name=one_line(member_name))
    return text["sign_in_subject"], "\n".join(
        [intro, "", uri_text(link), "", text["sign_in_outro"].format(minutes=minutes)]
    )
