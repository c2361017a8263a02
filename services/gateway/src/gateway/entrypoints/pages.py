"""The members' pages: sign-in by email link, the overview, groups and their directory, meetings with RSVP and the
calendar, proposals, the profile with consents, preferences, the delivery log, export and erasure; the coordinators'
tools on the group and meeting pages; the administrators' page. Each route turns the form into a call to the service
that owns the data and renders the answer; a refused form comes back with the member's input and the service's
message next to the field."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..adapters.services import Refused, Services, Unavailable
from ..i18n import COPENHAGEN, LANGUAGES
from .session import (
    LANG_COOKIE,
    SESSION_COOKIE,
    Forbidden,
    SignInRequired,
    Viewer,
    admin,
    csrf_ok,
    gateway,
    language,
    read_form,
    redirect,
    render,
    safe_next,
    signed_in,
    viewer,
)

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

CONSENTS = ("meeting_invitations", "reminders", "news", "show_email", "show_phone")
CATEGORIES = ("announcements", "reminders", "agenda_updates")
ANSWERS = ("attending", "tentative", "declined")


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise LookupError from exc


def normalised_email(text: str) -> str | None:
    text = text.strip()
    if not text or len(text) > 254 or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return None
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


# -- sign-in ----------------------------------------------------------------------------------------------------------
@router.get("/login")
async def login_page(request: Request) -> Response:
    if await viewer(request) is not None:
        return redirect("/")
    return await render(request, "login.html")


@router.post("/login")
async def login_request(request: Request) -> Response:
    gw = gateway(request)
    form = await read_form(request)
    values = {"email": form.get("email", "")}
    if not csrf_ok(request, form, None):
        return await render(request, "login.html", 400, values=values, errors={"form": "error.csrf"})
    email = normalised_email(values["email"])
    if email is None:
        return await render(request, "login.html", 422, values=values, errors={"email": "error.email"})
    client = (request.client.host if request.client else "?")[:64]
    if not gw.per_client.allow(client) or not gw.per_address.allow(email):
        return await render(request, "login.html", 429, values=values, errors={"form": "login.slow"})
    await _send_link(request, email)
    # the same answer whether or not the address is a member's (and whether or not a mail went out)
    return await render(request, "login_sent.html")


async def member_with_address(services: Services, email: str) -> dict[str, Any] | None:
    """The member whose address is `email` (normalised), asked as the administration; None when there is none."""
    page = await services.call("members", "GET", "/admin/members", member=None, params={"q": email, "limit": 5})
    return next((hit for hit in page.get("items", []) if str(hit.get("email", "")).lower() == email), None)


async def _send_link(request: Request, email: str) -> None:
    gw = gateway(request)
    member = await member_with_address(gw.services, email)
    if member is None or member.get("status") == "ended":
        return
    member_id = UUID(member["member_id"])
    now = gw.clock()
    if await gw.store.links_since(member_id, now - timedelta(minutes=15)) >= gw.settings.sign_ins_per_address:
        return
    link_id, token = await gw.store.create_link(member_id, now, timedelta(minutes=gw.settings.link_minutes))
    link = f"{gw.settings.public_url.rstrip('/')}/login/{token}"
    try:
        await gw.services.call(
            "notifications",
            "POST",
            f"/members/{member_id}/sign-in-mail",
            member=None,
            json={"link_id": str(link_id), "link": link},
        )
    except Refused as exc:  # e.g. the directory has not heard of the member yet: no mail, and no hint either
        log.warning("sign-in mail refused by notifications: %s", exc.status)


@router.get("/login/{token}")
async def login_link(request: Request, token: str) -> Response:
    gw = gateway(request)
    state = await gw.store.peek_link(token, gw.clock())
    if state.value != "ok":
        return await render(request, "login.html", 410 if state.value != "unknown" else 404, link_state=state.value)
    return await render(request, "login_confirm.html", token=token)


@router.post("/login/{token}")
async def login_use(request: Request, token: str) -> Response:
    gw = gateway(request)
    form = await read_form(request)
    if not csrf_ok(request, form, None):
        return await render(request, "login_confirm.html", 400, token=token, errors={"form": "error.csrf"})
    state, member_id = await gw.store.use_link(token, gw.clock())
    if member_id is None:
        return await render(request, "login.html", 410 if state.value != "unknown" else 404, link_state=state.value)
    session_token, _ = await gw.store.create_session(member_id, gw.clock(), timedelta(days=gw.settings.session_days))
    response = redirect("/")
    response.set_cookie(
        SESSION_COOKIE,
        session_token,
        httponly=True,
        samesite="lax",
        secure=gw.settings.secure_cookies,
        max_age=gw.settings.session_days * 86400,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    gw = gateway(request)
    who = await viewer(request)
    form = await read_form(request)
    if who is not None and csrf_ok(request, form, who):
        if form.get("everywhere"):
            await gw.store.end_all_sessions(who.member_id)
        else:
            await gw.store.end_session(who.session_id)
    response = redirect("/login", "logout.done")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/sprog/{lang}")
async def switch_language(request: Request, lang: str) -> Response:
    response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
    return response


# -- the overview -----------------------------------------------------------------------------------------------------
async def upcoming(request: Request, who: Viewer, me: dict[str, Any]) -> list[dict[str, Any]]:
    """The member's next meetings in their groups, soonest first, each with the member's answer (one call)."""
    svc = gateway(request).services
    entries = await svc.call(
        "meetings", "GET", f"/members/{who.member_id}/upcoming", member=who.member_id, params={"limit": 10}
    )
    names = {g["group_id"]: g["name"] for g in me.get("groups", [])}
    return [{**e["meeting"], "group_name": names.get(e["meeting"]["group_id"], ""), "rsvp": e["rsvp"]} for e in entries]


async def own_profile(request: Request, who: Viewer) -> dict[str, Any]:
    """The member's profile; a member the members service no longer has (erased by the administration) is forgotten
    here too: their sessions and links go, and the page asks them to sign in."""
    gw = gateway(request)
    try:
        me: dict[str, Any] = await gw.services.call("members", "GET", f"/members/{who.member_id}", member=who.member_id)
    except Refused as exc:
        if exc.status == 404:
            await gw.store.forget(who.member_id)
            raise SignInRequired from exc
        raise
    return me


@router.get("/")
async def dashboard(request: Request) -> Response:
    who = await signed_in(request)
    me = await own_profile(request, who)
    meetings = await upcoming(request, who, me)
    return await render(request, "dashboard.html", me=me, meetings=meetings)


# -- groups -----------------------------------------------------------------------------------------------------------
@router.get("/groups")
async def groups_page(request: Request) -> Response:
    who = await signed_in(request)
    svc = gateway(request).services
    groups, me = await asyncio.gather(
        svc.call("members", "GET", "/groups", member=who.member_id),
        svc.call("members", "GET", f"/members/{who.member_id}", member=who.member_id),
    )
    mine = {g["group_id"] for g in me.get("groups", [])}
    return await render(request, "groups.html", groups=[g for g in groups if g["status"] != "archived"], mine=mine)


def role_in(group: dict[str, Any], who: Viewer) -> str | None:
    """The viewer's role in the group, from the roster its GET /groups/{id} answer carries (no second call)."""
    return next((m["role"] for m in group.get("members", []) if m["member_id"] == str(who.member_id)), None)


@router.get("/groups/{group_id}")
async def group_page(request: Request, group_id: str) -> Response:
    who = await signed_in(request)
    gid = _uuid(group_id)
    return await _group(request, who, gid)


async def _group(request: Request, who: Viewer, gid: UUID, status: int = 200, **extra: Any) -> Response:
    svc = gateway(request).services
    group = await svc.call("members", "GET", f"/groups/{gid}", member=who.member_id)
    role = role_in(group, who)
    directory: list[dict[str, Any]] | None = None
    proposals: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    meetings: list[dict[str, Any]] = []
    if role is not None or who.is_admin:
        calls = [
            svc.call("members", "GET", f"/groups/{gid}/directory", member=who.member_id),
            svc.call("meetings", "GET", f"/groups/{gid}/meetings", member=who.member_id),
            svc.call("meetings", "GET", f"/groups/{gid}/proposals", member=who.member_id, params={"status": "open"}),
        ]
        if role == "coordinator":
            calls.append(svc.call("members", "GET", f"/groups/{gid}/requests", member=who.member_id))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, Unavailable):
                raise result
        directory = results[0] if isinstance(results[0], list) else None
        meetings = results[1] if isinstance(results[1], list) else []
        proposals = results[2] if isinstance(results[2], list) else []
        if role == "coordinator" and isinstance(results[3], list):
            requests = results[3]
    names = {d["member_id"]: d["name"] for d in directory or []}
    now = gateway(request).clock()
    upcoming = [m for m in meetings if m["status"] == "scheduled" and datetime.fromisoformat(m["starts_at"]) > now]
    return await render(
        request,
        "group.html",
        status,
        upcoming=sorted(upcoming, key=lambda m: m["starts_at"]),
        group=group,
        role=role,
        directory=directory,
        meetings=sorted(meetings, key=lambda m: m["starts_at"]),
        proposals=proposals,
        requests=requests,
        names=names,
        **extra,
    )


@router.post("/groups/{group_id}/join")
async def join_group(request: Request, group_id: str) -> Response:
    who = await signed_in(request)
    gid = _uuid(group_id)
    form = await read_form(request)
    if not csrf_ok(request, form, who):
        return redirect(f"/groups/{gid}")
    answer = await gateway(request).services.call(
        "members", "POST", f"/groups/{gid}/members", member=who.member_id, json={"member_id": str(who.member_id)}
    )
    return redirect(f"/groups/{gid}", f"groups.{answer.get('status', 'joined')}")


@router.post("/groups/{group_id}/leave")
async def leave_group(request: Request, group_id: str) -> Response:
    who = await signed_in(request)
    gid = _uuid(group_id)
    form = await read_form(request)
    if csrf_ok(request, form, who):
        await gateway(request).services.call(
            "members", "DELETE", f"/groups/{gid}/members/{who.member_id}", member=who.member_id
        )
    return redirect("/groups", "groups.left")


@router.post("/groups/{group_id}/requests/{member_id}/{decision}")
async def decide_request(request: Request, group_id: str, member_id: str, decision: str) -> Response:
    who = await signed_in(request)
    gid, mid = _uuid(group_id), _uuid(member_id)
    if decision not in ("approve", "decline"):
        raise LookupError
    form = await read_form(request)
    if csrf_ok(request, form, who):
        await gateway(request).services.call(
            "members", "POST", f"/groups/{gid}/requests/{mid}/{decision}", member=who.member_id
        )
    return redirect(f"/groups/{gid}", "saved")


@router.post("/groups/{group_id}/proposals")
async def propose(request: Request, group_id: str) -> Response:
    who = await signed_in(request)
    gid = _uuid(group_id)
    form = await read_form(request)
    values = {k: form.get(k, "") for k in ("topic", "details", "kind")}  # not title: the schedule form has one
    if not csrf_ok(request, form, who):
        return await _group(request, who, gid, 400, values=values, errors={"form": "error.csrf"})
    body = {"title": values["topic"], "description": values["details"], "kind": values["kind"] or "topic"}
    try:
        await gateway(request).services.call(
            "meetings", "POST", f"/groups/{gid}/proposals", member=who.member_id, json=body
        )
    except Refused as exc:
        if exc.status != 422:
            raise
        renamed = {"title": "topic", "description": "details"}
        errors = {renamed.get(k, k): v for k, v in _errors(exc).items()}
        return await _group(request, who, gid, 422, values=values, errors=errors)
    return redirect(f"/groups/{gid}", "saved")


@router.post("/proposals/{proposal_id}/back")
async def back_proposal(request: Request, proposal_id: str) -> Response:
    who = await signed_in(request)
    pid = _uuid(proposal_id)
    form = await read_form(request)
    group = safe_next(form.get("next"))
    if csrf_ok(request, form, who):
        await gateway(request).services.call("meetings", "PUT", f"/proposals/{pid}/backing", member=who.member_id)
    return redirect(group, "saved")


def _errors(exc: Refused) -> dict[str, str]:
    """The service's field errors by the form's field names ("body.venue.name" -> "venue"); the rest on the form."""
    out: dict[str, str] = {}
    for field, message in exc.field_errors().items():
        parts = [p for p in field.split(".") if p not in ("body", "query", "path")]
        out.setdefault(parts[0] if parts else "form", message)
    if not out:
        out["form"] = exc.detail
    return out


def _local(date: str, clock: str) -> datetime | None:
    try:
        naive = datetime.strptime(f"{date.strip()} {clock.strip()}", "%Y-%m-%d %H:%M")
    except ValueError:
        return None
    return naive.replace(tzinfo=COPENHAGEN)


def meeting_times(form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """starts_at/ends_at (ISO with the Copenhagen offset of that day) from the form's date and clock times."""
    errors: dict[str, str] = {}
    start = _local(form.get("date", ""), form.get("start", ""))
    end = _local(form.get("date", ""), form.get("end", ""))
    if start is None:
        errors["date"] = "error.required"
    if end is None:
        errors["end"] = "error.required"
    if errors or start is None or end is None:
        return {}, errors
    return {"starts_at": start.isoformat(), "ends_at": end.isoformat()}, errors


@router.post("/groups/{group_id}/meetings")
async def schedule_meeting(request: Request, group_id: str) -> Response:
    who = await signed_in(request)
    gid = _uuid(group_id)
    form = await read_form(request)
    keys = ("title", "date", "start", "end", "venue", "address", "capacity")
    values = {k: form.get(k, "") for k in keys}
    if not csrf_ok(request, form, who):
        return await _group(request, who, gid, 400, values=values, errors={"form": "error.csrf"})
    times, errors = meeting_times(values)
    capacity = values["capacity"].strip()
    if capacity and not capacity.isdigit():
        errors["capacity"] = "error.required"
    if errors:
        return await _group(request, who, gid, 422, values=values, errors=errors)
    body: dict[str, Any] = {"group_id": str(gid), "title": values["title"], "timezone": "Europe/Copenhagen", **times}
    if values["venue"].strip():
        body["venue"] = {"name": values["venue"], "address": values["address"] or None}
    if capacity:
        body["capacity"] = int(capacity)
    try:
        meeting = await gateway(request).services.call("meetings", "POST", "/meetings", member=who.member_id, json=body)
    except Refused as exc:
        if exc.status not in (400, 409, 422):
            raise
        return await _group(request, who, gid, 422, values=values, errors=_errors(exc))
    return redirect(f"/meetings/{meeting['meeting_id']}", "meeting.scheduled")


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@router.post("/groups/{group_id}/series")
async def plan_series(request: Request, group_id: str) -> Response:
    """The year's plan in one step: e.g. the second Tuesday of March, June, September and December, 13:00-16:00."""
    who = await signed_in(request)
    gid = _uuid(group_id)
    form = await read_form(request)
    keys = ("series_title", "weekday", "week", "series_start", "series_end", "first_day", "count", "series_venue")
    values = {k: form.get(k, "") for k in keys}
    values["months"] = form.get("months", "")
    if not csrf_ok(request, form, who):
        return await _group(request, who, gid, 400, values=values, errors={"form": "error.csrf"})
    months = sorted({int(m) for m in values["months"].split("\n") if m.isdigit() and 1 <= int(m) <= 12})
    errors = {}
    if not months:
        errors["months"] = "error.required"
    if values["weekday"] not in WEEKDAYS:
        errors["weekday"] = "error.required"
    if values["week"] not in ("1", "2", "3", "4", "5", "-1"):
        errors["week"] = "error.required"
    if not values["count"].isdigit():
        errors["count"] = "error.required"
    if errors:
        return await _group(request, who, gid, 422, values=values, errors=errors)
    body: dict[str, Any] = {
        "group_id": str(gid),
        "title": values["series_title"],
        "months": months,
        "weekday": values["weekday"],
        "week": int(values["week"]),
        "starts": values["series_start"],
        "ends": values["series_end"],
        "first_day": values["first_day"],
        "count": int(values["count"]),
        "timezone": "Europe/Copenhagen",
    }
    if values["series_venue"].strip():
        body["venue"] = {"name": values["series_venue"], "address": None}
    try:
        await gateway(request).services.call("meetings", "POST", "/series", member=who.member_id, json=body)
    except Refused as exc:
        if exc.status not in (400, 409, 422):
            raise
        renamed = {"title": "series_title", "starts": "series_start", "ends": "series_end", "venue": "series_venue"}
        errors = {renamed.get(k, k): v for k, v in _errors(exc).items()}
        return await _group(request, who, gid, 422, values=values, errors=errors)
    return redirect(f"/groups/{gid}", "meeting.planned")


@router.post("/proposals/{proposal_id}/accept")
async def accept_proposal(request: Request, proposal_id: str) -> Response:
    who = await signed_in(request)
    pid = _uuid(proposal_id)
    form = await read_form(request)
    back = safe_next(form.get("next"))
    minutes = form.get("minutes", "")
    if not csrf_ok(request, form, who) or not minutes.isdigit():
        return redirect(back)
    body = {"meeting_id": str(_uuid(form.get("meeting_id", ""))), "minutes": int(minutes)}
    await gateway(request).services.call(
        "meetings", "POST", f"/proposals/{pid}/accept", member=who.member_id, json=body
    )
    return redirect(back, "meeting.taken_in")


# -- meetings ---------------------------------------------------------------------------------------------------------
@router.get("/meetings/{meeting_id}")
async def meeting_page(request: Request, meeting_id: str) -> Response:
    who = await signed_in(request)
    return await _meeting(request, who, _uuid(meeting_id))


async def _meeting(request: Request, who: Viewer, mid: UUID, status: int = 200, **extra: Any) -> Response:
    svc = gateway(request).services
    meeting = await svc.call("meetings", "GET", f"/meetings/{mid}", member=who.member_id)
    gid = meeting["group_id"]
    group = await svc.call("members", "GET", f"/groups/{gid}", member=who.member_id)
    role = role_in(group, who)
    if role is None and not who.is_admin:
        raise Forbidden
    seats, directory = await asyncio.gather(
        svc.call("meetings", "GET", f"/meetings/{mid}/rsvps", member=who.member_id),
        svc.call("members", "GET", f"/groups/{gid}/directory", member=who.member_id),
    )
    names = {d["member_id"]: d["name"] for d in directory}
    mine = next((a for a in seats["answers"] if a["member_id"] == str(who.member_id)), None)
    return await render(
        request,
        "meeting.html",
        status,
        meeting=meeting,
        group=group,
        role=role,
        seats=seats,
        names=names,
        mine=mine,
        **extra,
    )


@router.post("/meetings/{meeting_id}/rsvp")
async def answer(request: Request, meeting_id: str) -> Response:
    who = await signed_in(request)
    mid = _uuid(meeting_id)
    form = await read_form(request)
    response = form.get("response", "")
    if not csrf_ok(request, form, who):
        return await _meeting(request, who, mid, 400, errors={"form": "error.csrf"})
    if response not in ANSWERS:
        return await _meeting(request, who, mid, 422, errors={"response": "error.required"})
    try:
        await gateway(request).services.call(
            "meetings",
            "PUT",
            f"/meetings/{mid}/rsvps/{who.member_id}",
            member=who.member_id,
            json={"response": response},
        )
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return await _meeting(request, who, mid, exc.status, errors={"response": exc.detail})
    return redirect(f"/meetings/{mid}", "meeting.answered")


@router.post("/meetings/{meeting_id}/reschedule")
async def reschedule(request: Request, meeting_id: str) -> Response:
    who = await signed_in(request)
    mid = _uuid(meeting_id)
    form = await read_form(request)
    values = {k: form.get(k, "") for k in ("date", "start", "end")}
    if not csrf_ok(request, form, who):
        return await _meeting(request, who, mid, 400, values=values, errors={"form": "error.csrf"})
    times, errors = meeting_times(values)
    if errors:
        return await _meeting(request, who, mid, 422, values=values, errors=errors)
    try:
        await gateway(request).services.call("meetings", "PATCH", f"/meetings/{mid}", member=who.member_id, json=times)
    except Refused as exc:
        if exc.status not in (400, 409, 422):
            raise
        return await _meeting(request, who, mid, 422, values=values, errors=_errors(exc))
    return redirect(f"/meetings/{mid}", "meeting.moved")


@router.post("/meetings/{meeting_id}/cancel")
async def cancel(request: Request, meeting_id: str) -> Response:
    who = await signed_in(request)
    mid = _uuid(meeting_id)
    form = await read_form(request)
    values = {"reason": form.get("reason", "")}
    if not csrf_ok(request, form, who):
        return await _meeting(request, who, mid, 400, values=values, errors={"form": "error.csrf"})
    try:
        await gateway(request).services.call(
            "meetings", "POST", f"/meetings/{mid}/cancel", member=who.member_id, json={"reason": values["reason"]}
        )
    except Refused as exc:
        if exc.status not in (400, 409, 422):
            raise
        return await _meeting(request, who, mid, 422, values=values, errors=_errors(exc))
    return redirect(f"/meetings/{mid}", "saved")


AGENDA_KINDS = {
    "check_in": "check_in",
    "check-in": "check_in",
    "talk": "talk",
    "oplæg": "talk",
    "discussion": "discussion",
    "drøftelse": "discussion",
    "break": "break",
    "pause": "break",
    "other": "other",
    "andet": "other",
}


def parse_agenda(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """One item a line: `kind; title; minutes[; speaker[; speaker's organisation]]` (kind in Danish or English)."""
    items: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(";")]
        if len(parts) < 3 or parts[0].lower() not in AGENDA_KINDS or not parts[2].isdigit():
            return [], f"line {number}"
        item: dict[str, Any] = {"kind": AGENDA_KINDS[parts[0].lower()], "title": parts[1], "minutes": int(parts[2])}
        if len(parts) > 3 and parts[3]:
            item["speaker"] = parts[3]
        if len(parts) > 4 and parts[4]:
            item["speaker_organisation"] = parts[4]
        items.append(item)
    return items, None


@router.post("/meetings/{meeting_id}/agenda")
async def edit_agenda(request: Request, meeting_id: str) -> Response:
    who = await signed_in(request)
    mid = _uuid(meeting_id)
    form = await read_form(request)
    values = {"agenda": form.get("agenda", "")}
    if not csrf_ok(request, form, who):
        return await _meeting(request, who, mid, 400, values=values, errors={"form": "error.csrf"})
    items, bad = parse_agenda(values["agenda"])
    if bad is not None:
        return await _meeting(request, who, mid, 422, values=values, errors={"agenda": "meeting.agenda.format"})
    try:
        await gateway(request).services.call(
            "meetings", "PUT", f"/meetings/{mid}/agenda", member=who.member_id, json={"agenda": items}
        )
    except Refused as exc:
        if exc.status not in (400, 409, 422):
            raise
        return await _meeting(request, who, mid, 422, values=values, errors={"agenda": exc.detail})
    return redirect(f"/meetings/{mid}", "saved")


@router.post("/meetings/{meeting_id}/attendance/{member_id}")
async def attendance(request: Request, meeting_id: str, member_id: str) -> Response:
    who = await signed_in(request)
    mid, member = _uuid(meeting_id), _uuid(member_id)
    form = await read_form(request)
    if csrf_ok(request, form, who) and form.get("attended") in ("yes", "no"):
        try:
            await gateway(request).services.call(
                "meetings",
                "PUT",
                f"/meetings/{mid}/attendance/{member}",
                member=who.member_id,
                json={"attended": form["attended"] == "yes"},
            )
        except Refused as exc:
            if exc.status not in (409, 422):
                raise
            return await _meeting(request, who, mid, exc.status, errors={"attendance": exc.detail})
    return redirect(f"/meetings/{mid}", "saved")


@router.get("/meetings/{meeting_id}/calendar.ics")
async def meeting_ics(request: Request, meeting_id: str) -> Response:
    who = await signed_in(request)
    mid = _uuid(meeting_id)
    answer = await gateway(request).services.call(
        "meetings", "GET", f"/meetings/{mid}/calendar.ics", member=who.member_id, raw=True
    )
    return Response(
        answer.content,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="netvaerk-{mid}.ics"'},
    )


@router.post("/calendar-feed")
async def make_feed(request: Request) -> Response:
    who = await signed_in(request)
    form = await read_form(request)
    if not csrf_ok(request, form, who):
        return redirect("/profile")
    feed = await gateway(request).services.call(
        "meetings", "POST", f"/members/{who.member_id}/calendar-feeds", member=who.member_id
    )
    return await render(request, "feed.html", feed=feed, public_url=gateway(request).settings.public_url.rstrip("/"))


@router.get("/calendar/{token}.ics")
async def calendar_feed(request: Request, token: str) -> Response:
    """A member's calendar feed, for Outlook, Google and Apple Calendar, which sign in to nothing: the token in
    the URL is the credential (meetings checks it); the gateway passes it on, so the services stay unreachable."""
    if len(token) > 128 or not token.replace("-", "").replace("_", "").isalnum():
        raise LookupError
    headers = {k: v for k, v in request.headers.items() if k in ("if-none-match", "if-modified-since")}
    svc = gateway(request).services
    try:
        answer = await svc.clients["meetings"].get(f"{svc.urls['meetings']}/calendar/{token}.ics", headers=headers)
    except httpx.HTTPError as exc:
        raise Unavailable("meetings") from exc
    if answer.status_code >= 500:
        raise Unavailable("meetings")
    if answer.status_code not in (200, 304):
        raise LookupError
    passed = {k: v for k, v in answer.headers.items() if k.lower() in ("etag", "last-modified", "cache-control")}
    return Response(
        answer.content, status_code=answer.status_code, media_type="text/calendar; charset=utf-8", headers=passed
    )


# -- the profile ------------------------------------------------------------------------------------------------------
async def _profile(request: Request, who: Viewer, status: int = 200, **extra: Any) -> Response:
    svc = gateway(request).services
    results: tuple[Any, ...] = await asyncio.gather(
        svc.call("members", "GET", f"/members/{who.member_id}", member=who.member_id),
        svc.call("notifications", "GET", f"/members/{who.member_id}/preferences", member=who.member_id),
        svc.call(
            "notifications", "GET", f"/members/{who.member_id}/deliveries", member=who.member_id, params={"limit": 20}
        ),
        return_exceptions=True,
    )
    me, preferences, deliveries = results
    if isinstance(me, BaseException):
        raise me
    notifications_down = isinstance(preferences, Unavailable)
    return await render(
        request,
        "profile.html",
        status,
        me=me,
        consents={c["kind"] for c in me.get("consents", [])},
        preferences=None if isinstance(preferences, BaseException) else preferences,
        deliveries=[] if isinstance(deliveries, BaseException) else deliveries,
        notifications_down=notifications_down,
        **extra,
    )


@router.get("/profile")
async def profile(request: Request) -> Response:
    who = await signed_in(request)
    return await _profile(request, who)


@router.post("/profile")
async def save_profile(request: Request) -> Response:
    who = await signed_in(request)
    form = await read_form(request)
    values = {k: form.get(k, "") for k in ("name", "job_title", "phone", "locale")}
    consents = [c for c in form.get("consents", "").split("\n") if c in CONSENTS]
    if not csrf_ok(request, form, who):
        return await _profile(request, who, 400, values=values, errors={"form": "error.csrf"})
    body: dict[str, Any] = {
        "name": values["name"],
        "job_title": values["job_title"],
        "phone": values["phone"].strip() or None,
        "consents": consents,
    }
    if values["locale"] in LANGUAGES:
        body["locale"] = values["locale"]
    try:
        await gateway(request).services.call(
            "members", "PATCH", f"/members/{who.member_id}", member=who.member_id, json=body
        )
    except Refused as exc:
        if exc.status != 422:
            raise
        return await _profile(request, who, 422, values=values, errors=_errors(exc))
    return redirect("/profile", "saved")


@router.post("/profile/preferences")
async def save_preferences(request: Request) -> Response:
    who = await signed_in(request)
    form = await read_form(request)
    if not csrf_ok(request, form, who):
        return await _profile(request, who, 400, errors={"form": "error.csrf"})
    chosen = set(form.get("email", "").split("\n"))
    lang = form.get("language") if form.get("language") in LANGUAGES else None
    body = {c: {"email": c in chosen, "language": lang} for c in CATEGORIES}
    await gateway(request).services.call(
        "notifications", "PUT", f"/members/{who.member_id}/preferences", member=who.member_id, json=body
    )
    return redirect("/profile", "saved")


@router.get("/profile/export")
async def export(request: Request) -> Response:
    who = await signed_in(request)
    gw = gateway(request)
    document = await gw.services.call("members", "GET", f"/members/{who.member_id}/gdpr-export", member=who.member_id)
    if isinstance(document, dict):
        document["gateway"] = await gw.store.export(who.member_id)
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="netvaerk-mine-data.json"', "Cache-Control": "no-store"},
    )


@router.post("/profile/delete")
async def delete_account(request: Request) -> Response:
    who = await signed_in(request)
    gw = gateway(request)
    form = await read_form(request)
    word = form.get("confirm", "").strip().upper()
    if not csrf_ok(request, form, who) or word not in ("SLET", "DELETE"):
        return await _profile(request, who, 422, errors={"confirm": "error.required"})
    await gw.services.call("members", "POST", f"/members/{who.member_id}/erasure", member=who.member_id)
    await gw.store.forget(who.member_id)
    response = await render_signed_out(request, "profile.deleted")
    response.delete_cookie(SESSION_COOKIE)
    return response


async def render_signed_out(request: Request, message: str) -> Response:
    request.state.viewer = None
    return await render(request, "message.html", message=message)


# -- administration ---------------------------------------------------------------------------------------------------
@router.get("/admin")
async def admin_page(request: Request) -> Response:
    who = await admin(request)
    return await _admin(request, who)


async def _admin(request: Request, who: Viewer, status: int = 200, **extra: Any) -> Response:
    svc = gateway(request).services
    q = request.query_params.get("q", "")[:200]
    groups, organisations, found = await asyncio.gather(
        svc.call("members", "GET", "/groups", member=None),
        svc.call("members", "GET", "/organisations", member=None),
        svc.call("members", "GET", "/admin/members", member=None, params={"q": q, "limit": 50} if q else {"limit": 50}),
    )
    return await render(
        request, "admin.html", status, groups=groups, organisations=organisations, found=found, q=q, **extra
    )


@router.post("/admin/groups")
async def create_group(request: Request) -> Response:
    who = await admin(request)
    form = await read_form(request)
    keys = ("name", "region", "description", "topics", "capacity", "requires_approval")
    values = {k: form.get(k, "") for k in keys}
    if not csrf_ok(request, form, who):
        return await _admin(request, who, 400, values=values, errors={"form": "error.csrf"})
    capacity = values["capacity"].strip()
    if capacity and not capacity.isdigit():
        return await _admin(request, who, 422, values=values, errors={"capacity": "error.required"})
    body = {
        "name": values["name"],
        "region": values["region"],
        "description": values["description"],
        "topics": [t.strip() for t in values["topics"].split(",") if t.strip()],
        "capacity": int(capacity) if capacity else None,
        "requires_approval": bool(values["requires_approval"]),
    }
    try:
        await gateway(request).services.call("members", "POST", "/groups", member=None, json=body)
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return await _admin(request, who, 422, values=values, errors=_errors(exc))
    return redirect("/admin", "admin.created")


def error_page_status(exc: Exception) -> int:
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, Refused):
        return exc.status if exc.status in (400, 403, 404, 409, 410, 422, 429) else 400
    return 500


async def error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SignInRequired):
        return redirect("/login?next=" + request.url.path)
    if isinstance(exc, Unavailable):
        kept: dict[str, str] = {}
        if request.method == "POST":  # what the member typed comes back, with a button that sends it again
            try:
                kept = await read_form(request)
            except Exception:  # a body that was not a form: nothing to keep
                kept = {}
        return await render(
            request, "unavailable.html", 503, service=exc.service, kept=kept, retry_action=request.url.path
        )
    status = error_page_status(exc)
    key = {403: "error.forbidden", 404: "error.notfound", 429: "error.slow"}.get(status)
    detail = exc.detail if isinstance(exc, Refused) and key is None else None
    return await render(
        request, "error.html", status, message=key or "error.title", detail=detail, lang=language(request)
    )


# -- administration: the CSV import of members ------------------------------------------------------------------------
# The members service imports in the background (POST /admin/imports) and tells how it goes; these pages hand it the
# file and show its progress. The file comes pasted or uploaded within this edge's body limit (MAX_BODY_BYTES, 64 KiB
# by default): larger files go through the members service's CLI (python -m members.entrypoints.cli import FILE).
@router.get("/admin/import")
async def import_page(request: Request) -> Response:
    await admin(request)
    return await _import_form(request)


async def _import_form(request: Request, status: int = 200, **extra: Any) -> Response:
    limit = gateway(request).settings.max_body_bytes
    return await render(request, "admin_import.html", status, limit_kib=limit // 1024, **extra)


@router.post("/admin/import")
async def start_import(request: Request) -> Response:
    who = await admin(request)
    form = await request.form()
    pasted, csrf = form.get("csv"), form.get("csrf")
    values = {"csv": pasted if isinstance(pasted, str) else "", "dry_run": "1" if form.get("dry_run") else ""}
    if not csrf_ok(request, {"csrf": csrf if isinstance(csrf, str) else ""}, who):
        return await _import_form(request, 400, values=values, errors={"form": "error.csrf"})
    text, field = values["csv"], "csv"
    upload = form.get("file")
    if upload is not None and not isinstance(upload, str) and upload.filename:
        try:
            text, field = (await upload.read()).decode("utf-8-sig"), "file"
        except UnicodeDecodeError:
            return await _import_form(request, 422, values=values, errors={"file": "admin.import.utf8"})
    if not text.strip():
        return await _import_form(request, 422, values=values, errors={"csv": "admin.import.empty"})
    body = {"csv": text, "dry_run": bool(values["dry_run"])}
    try:
        started = await gateway(request).services.call("members", "POST", "/admin/imports", member=None, json=body)
    except Refused as exc:
        if not 400 <= exc.status < 500:
            raise
        errors = _errors(exc)
        if "csv" in errors:  # the service names its field; the person filled in the textarea or chose a file
            errors[field] = errors.pop("csv")
        return await _import_form(request, 409 if exc.status == 409 else 422, values=values, errors=errors)
    return redirect(f"/admin/import/{started['import_id']}")


@router.get("/admin/import/{import_id}")
async def import_progress_page(request: Request, import_id: str) -> Response:
    await admin(request)
    iid = _uuid(import_id)
    progress = await gateway(request).services.call("members", "GET", f"/admin/imports/{iid}", member=None)
    # auto-refresh only when asked for (axe-core and WCAG 2.2.1: a page that reloads itself must be chosen)
    follow = progress["status"] == "running" and request.query_params.get("follow") == "1"
    return await render(request, "admin_import.html", progress=progress, follow=follow)
