"""The JSON API under /api/, for clients other than the pages (an app, a script of the member's own): the same
session as the pages (the `nv_session` cookie the sign-in link sets), and for every change the session's CSRF token
in the `X-CSRF-Token` header (`GET /api/session` tells it). Errors are RFC 9457 problem+json."""

from __future__ import annotations

import hmac
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request
from fastapi.security import APIKeyCookie
from pydantic import BaseModel, ConfigDict, Field

from netvaerk_shared.problems import Problem, problems

from .pages import upcoming
from .session import SESSION_COOKIE, Viewer, gateway, viewer

_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, scheme_name="session", description="The session cookie of a sign-in link"
)


async def api_viewer(request: Request, _: Annotated[str | None, Depends(_cookie)]) -> Viewer:
    found = await viewer(request)
    if found is None:
        raise Problem(401, "Sign in first: open the link from your sign-in email.")
    return found


Me = Annotated[Viewer, Depends(api_viewer)]


async def csrf_header(
    me: Me,
    token: Annotated[str, Header(alias="X-CSRF-Token", max_length=64, description="`csrf` of GET /api/session")] = "",
) -> Viewer:
    if not token or not hmac.compare_digest(token.encode(), me.csrf.encode()):
        raise Problem(403, "The X-CSRF-Token header must carry this session's token (GET /api/session).")
    return me


Changer = Annotated[Viewer, Depends(csrf_header)]

router = APIRouter(prefix="/api", tags=["api"], responses=problems(401, 429, 503))


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class SessionOut(Frozen):
    member_id: UUID
    csrf: str = Field(description="Send it as X-CSRF-Token with every change")
    administrator: bool


class MyGroup(Frozen):
    group_id: UUID
    name: str
    role: Literal["member", "coordinator"]


class MyAnswer(Frozen):
    response: Literal["attending", "tentative", "declined"]
    status: Literal["confirmed", "waitlisted", "noted", "withdrawn"]
    waitlist_position: int | None = None


class MyMeeting(Frozen):
    meeting_id: UUID
    group_id: UUID
    group_name: str
    title: str
    starts_at: str
    ends_at: str
    status: Literal["scheduled", "cancelled", "held"]
    answer: MyAnswer | None


class Dashboard(Frozen):
    name: str
    groups: list[MyGroup]
    meetings: list[MyMeeting]


class RsvpIn(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid")
    response: Literal["attending", "tentative", "declined"]


@router.get("/session", summary="Who is signed in, and the CSRF token for changes")
async def session(me: Me) -> SessionOut:
    return SessionOut(member_id=me.member_id, csrf=me.csrf, administrator=me.is_admin)


@router.get("/dashboard", summary="My groups and my next meetings with my answer", responses=problems(404))
async def dashboard(request: Request, me: Me) -> Dashboard:
    svc = gateway(request).services
    profile = await svc.call("members", "GET", f"/members/{me.member_id}", member=me.member_id)
    meetings = await upcoming(request, me, profile)
    return Dashboard(
        name=profile["name"],
        groups=[MyGroup(group_id=g["group_id"], name=g["name"], role=g["role"]) for g in profile.get("groups", [])],
        meetings=[
            MyMeeting(
                meeting_id=m["meeting_id"],
                group_id=m["group_id"],
                group_name=m["group_name"],
                title=m["title"],
                starts_at=m["starts_at"],
                ends_at=m["ends_at"],
                status=m["status"],
                answer=MyAnswer(**{k: m["rsvp"][k] for k in ("response", "status", "waitlist_position")})
                if m.get("rsvp")
                else None,
            )
            for m in meetings
        ],
    )


@router.put(
    "/meetings/{meeting_id}/rsvp",
    summary="Answer a meeting of one of my groups",
    responses=problems(403, 404, 409, 422),
)
async def rsvp(request: Request, meeting_id: UUID, body: RsvpIn, me: Changer) -> MyAnswer:
    answer = await gateway(request).services.call(
        "meetings",
        "PUT",
        f"/meetings/{meeting_id}/rsvps/{me.member_id}",
        member=me.member_id,
        json={"response": body.response},
    )
    return MyAnswer(response=answer["response"], status=answer["status"], waitlist_position=answer["waitlist_position"])
