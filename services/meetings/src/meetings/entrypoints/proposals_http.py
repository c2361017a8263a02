"""HTTP API of topic proposals and calendar feeds. Routes only translate to commands and queries.

Who is asking comes from `Caller`: a member (`X-Netvaerk-Member`, set by the web gateway) or, without it, the
administration. A calendar feed's URL carries a secret token: whoever has the URL reads the feed, until it is
revoked. The bearer token is still required (the web gateway, which holds it, serves the public URL)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router
from netvaerk_shared.inputs import Integer, Line, Multiline, OptionalLine

from .. import proposal_views
from ..domain import commands
from ..domain.model import MAX_ITEM_MINUTES
from ..domain.proposal import MAX_PROPOSAL_TEXT, MAX_REASON
from ..service_layer.handlers import handle
from ..service_layer.proposals import NewFeed

ProposalKind = Literal["topic", "talk"]
ProposalStatus = Literal["open", "accepted", "declined"]
ICS = "text/calendar; charset=utf-8"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # secrets.token_urlsafe(32)


class ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ProposalKind = Field(description="topic: something to talk about; talk: a talk (oplæg) offered")
    title: Annotated[str, Line(200, examples=["Erfaringer med AI i sagsbehandlingen"])]
    description: Annotated[str, Multiline(MAX_PROPOSAL_TEXT)] = ""
    for_meeting_id: UUID | None = Field(default=None, description="A coming meeting of the group, if any")
    speaker: Annotated[str, OptionalLine(200, examples=["Mette Eksempel"])] | None = Field(
        default=None, description="For an offered talk: who gives it (the proposer or a colleague)"
    )
    speaker_organisation: Annotated[str, OptionalLine(200, examples=["Eksempel Kommune"])] | None = None


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    meeting_id: UUID = Field(description="A coming meeting of the proposal's group")
    minutes: Annotated[int, Integer(ge=1, le=MAX_ITEM_MINUTES)] = Field(
        description="How long the agenda item takes; it must fit in what the agenda leaves of the meeting"
    )


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Line(MAX_REASON, examples=["Emnet blev drøftet på sidste møde"])]


class ProposalOut(BaseModel):
    proposal_id: UUID
    group_id: UUID
    member_id: UUID
    kind: ProposalKind
    title: str
    description: str
    for_meeting_id: UUID | None
    speaker: str | None
    speaker_organisation: str | None
    status: ProposalStatus
    submitted_at: datetime
    decided_at: datetime | None
    meeting_id: UUID | None
    agenda_position: int | None
    reason: str | None
    backers: int
    backed_by_you: bool


class FeedCreated(BaseModel):
    feed_id: UUID
    group_id: UUID | None
    member_id: UUID | None
    token: str = Field(description="Secret; shown only now. The feed is at `path`.")
    path: str = Field(description="The feed, relative to the service: /calendar/{token}.ics")


class FeedOut(BaseModel):
    feed_id: UUID
    group_id: UUID | None
    member_id: UUID | None
    created_at: datetime
    revoked_at: datetime | None


# -- GDPR export parts (used by the export's response model in http.py) ---------------------------------------------
class ProposalExport(BaseModel):
    proposal_id: UUID
    group_id: UUID
    kind: str
    title: str
    description: str
    status: str
    submitted_at: datetime


class BackingExport(BaseModel):
    proposal_id: UUID
    backed_at: datetime


router = protected_router()
# The feed URL is what Outlook, Google and Apple Calendar subscribe to: they send no Authorization header, so the
# token in the URL is the credential (256 random bits, stored as its SHA-256 only, revocable). The edge rate-limits
# it and keeps the token out of the access log (EdgePolicy.capability_paths).
capability_router = APIRouter()
_CALENDAR_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An iCalendar (RFC 5545) document",
        "content": {"text/calendar": {"schema": {"type": "string"}}},
    }
}


# -- proposals ---------------------------------------------------------------------------------------------------
@router.post(
    "/groups/{group_id}/proposals",
    status_code=201,
    tags=["proposals"],
    summary="Propose a topic or offer a talk for the group's meetings (a member of the group)",
    response_model=ProposalOut,
    responses={
        **problems(403, 404),
        422: {"description": "A field is invalid, or the meeting named is not a coming meeting of the group"},
    },
)
async def submit(group_id: UUID, body: ProposalIn, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    proposal = await handle(
        commands.SubmitProposal(
            group_id=group_id,
            by=caller.member_id,
            kind=body.kind,
            title=body.title,
            description=body.description,
            for_meeting_id=body.for_meeting_id,
            speaker=body.speaker,
            speaker_organisation=body.speaker_organisation,
        ),
        uow,
    )
    return await _proposal(runtime, proposal.id, caller.member_id)


@router.get(
    "/groups/{group_id}/proposals",
    tags=["proposals"],
    summary="The group's proposals, most backed first (members of the group and the administration)",
    response_model=list[ProposalOut],
    responses=problems(403, 404),
)
async def group_proposals(
    group_id: UUID, runtime: Runtime, caller: Caller, status: ProposalStatus | None = None
) -> list[dict[str, Any]]:
    await _may_see(runtime, group_id, caller.member_id)
    return await proposal_views.group_proposals(runtime.engine, group_id, viewer=caller.member_id, status=status)


@router.get(
    "/proposals/{proposal_id}",
    tags=["proposals"],
    summary="One proposal (members of its group and the administration)",
    response_model=ProposalOut,
    responses=problems(403, 404),
)
async def get_proposal(proposal_id: UUID, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    return await _proposal(runtime, proposal_id, caller.member_id, check=True)


@router.put(
    "/proposals/{proposal_id}/backing",
    tags=["proposals"],
    summary="Back a proposal (a member of its group; backing twice counts once)",
    response_model=ProposalOut,
    responses={**problems(403, 404, 409), 422: {"description": "The proposer cannot back their own proposal"}},
)
async def back(proposal_id: UUID, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    await handle(commands.BackProposal(proposal_id=proposal_id, by=caller.member_id), uow)
    return await _proposal(runtime, proposal_id, caller.member_id)


@router.delete(
    "/proposals/{proposal_id}/backing",
    tags=["proposals"],
    summary="Withdraw one's backing of an open proposal",
    response_model=ProposalOut,
    responses=problems(403, 404, 409),
)
async def withdraw(proposal_id: UUID, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    await handle(commands.WithdrawBacking(proposal_id=proposal_id, by=caller.member_id), uow)
    return await _proposal(runtime, proposal_id, caller.member_id)


@router.post(
    "/proposals/{proposal_id}/accept",
    tags=["proposals"],
    summary="Take a proposal into a meeting's agenda, as its last item (a coordinator of the group)",
    response_model=ProposalOut,
    responses={
        **problems(403, 404, 409),
        422: {
            "description": "A field is invalid, or the meeting is another group's, not to come, or has not the "
            "minutes left"
        },
    },
)
async def accept(proposal_id: UUID, body: AcceptIn, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    cmd = commands.AcceptProposal(
        proposal_id=proposal_id, meeting_id=body.meeting_id, minutes=body.minutes, by=caller.member_id
    )
    await handle(cmd, uow)
    return await _proposal(runtime, proposal_id, caller.member_id)


@router.post(
    "/proposals/{proposal_id}/decline",
    tags=["proposals"],
    summary="Decline a proposal, saying why (a coordinator of the group); the proposer is told",
    response_model=ProposalOut,
    responses={**problems(403, 404, 409), 422: {"description": "A field is invalid"}},
)
async def decline(proposal_id: UUID, body: DeclineIn, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    await handle(commands.DeclineProposal(proposal_id=proposal_id, reason=body.reason, by=caller.member_id), uow)
    return await _proposal(runtime, proposal_id, caller.member_id)


# -- calendar feeds ------------------------------------------------------------------------------------------------
@router.post(
    "/groups/{group_id}/calendar-feeds",
    status_code=201,
    tags=["calendar"],
    summary="A secret calendar feed URL of the group's meetings (a member of the group, or the administration)",
    response_model=FeedCreated,
    responses=problems(403, 404),
)
async def group_feed(group_id: UUID, uow: UoW, caller: Caller) -> dict[str, Any]:
    feed = await handle(commands.CreateCalendarFeed(by=caller.member_id, group_id=group_id), uow)
    return _created(feed, group_id=group_id, member_id=None)


@router.post(
    "/members/{member_id}/calendar-feeds",
    status_code=201,
    tags=["calendar"],
    summary="A secret calendar feed URL of the meetings of every group the member is in (the member, or the "
    "administration)",
    response_model=FeedCreated,
    responses=problems(403),
)
async def member_feed(member_id: UUID, uow: UoW, caller: Caller) -> dict[str, Any]:
    feed = await handle(commands.CreateCalendarFeed(by=caller.member_id, member_id=member_id), uow)
    return _created(feed, group_id=None, member_id=member_id)


@router.get(
    "/members/{member_id}/calendar-feeds",
    tags=["calendar"],
    summary="The calendar feeds a member made (without their secret tokens)",
    response_model=list[FeedOut],
    responses=problems(403),
)
async def list_member_feeds(member_id: UUID, runtime: Runtime, caller: Caller) -> list[dict[str, Any]]:
    caller.require_self_or_admin(member_id)
    return await proposal_views.member_feeds(runtime.engine, member_id)


@router.delete(
    "/calendar-feeds/{feed_id}",
    status_code=204,
    tags=["calendar"],
    summary="Revoke a calendar feed: its URL opens nothing from now on",
    responses=problems(403, 404),
)
async def revoke_feed(feed_id: UUID, uow: UoW, caller: Caller) -> Response:
    await handle(commands.RevokeCalendarFeed(feed_id=feed_id, by=caller.member_id), uow)
    return Response(status_code=204)


@capability_router.get(
    "/calendar/{token}.ics",
    tags=["calendar"],
    summary="A calendar feed (iCalendar) for Outlook, Google and Apple Calendar to subscribe to",
    response_class=Response,
    responses={
        **_CALENDAR_RESPONSE,
        304: {"description": "Not modified: the feed is still the one whose ETag was given in If-None-Match"},
        **problems(404),
    },
)
async def feed(
    token: Annotated[str, Path(pattern=TOKEN_PATTERN, description="The feed's secret token")],
    runtime: Runtime,
    if_none_match: Annotated[str | None, Header(max_length=2000)] = None,
) -> Response:
    found = await proposal_views.feed_by_token(runtime.engine, token)
    if found is None:
        raise Problem(404, "No such calendar feed, or it was revoked.")
    return _calendar(await proposal_views.feed_document(runtime.engine, found), if_none_match)


@router.get(
    "/meetings/{meeting_id}/calendar.ics",
    tags=["calendar"],
    summary="One meeting as an iCalendar file, to add to a calendar",
    response_class=Response,
    responses={
        **_CALENDAR_RESPONSE,
        304: {"description": "Not modified: the meeting is still the one whose ETag was given in If-None-Match"},
        **problems(404),
    },
)
async def meeting_ics(
    meeting_id: UUID, runtime: Runtime, if_none_match: Annotated[str | None, Header(max_length=2000)] = None
) -> Response:
    document = await proposal_views.meeting_document(runtime.engine, meeting_id)
    if document is None:
        raise Problem(404, f"No meeting {meeting_id}.")
    response = _calendar(document, if_none_match)
    response.headers["Content-Disposition"] = f'attachment; filename="netvaerk-{meeting_id}.ics"'
    return response


# -- helpers -------------------------------------------------------------------------------------------------------
def _calendar(document: str, if_none_match: str | None) -> Response:
    body = document.encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type=ICS, headers=headers)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison; '*' matches any current representation."""
    tags = [t.strip() for t in if_none_match.split(",")]
    return any(t == "*" or t.removeprefix("W/") == etag for t in tags)


def _created(feed: NewFeed, *, group_id: UUID | None, member_id: UUID | None) -> dict[str, Any]:
    return {
        "feed_id": feed.feed_id,
        "group_id": group_id,
        "member_id": member_id,
        "token": feed.token,
        "path": f"/calendar/{feed.token}.ics",
    }


async def _may_see(runtime: Runtime, group_id: UUID, member_id: UUID | None) -> None:
    if not await proposal_views.group_known(runtime.engine, group_id):
        raise Problem(404, f"The group {group_id} is unknown to the meetings service.")
    if member_id is not None and await proposal_views.role_in(runtime.engine, group_id, member_id) is None:
        raise Problem(403, "Only members of the group (and the administration) see its proposals.")


async def _proposal(runtime: Runtime, proposal_id: UUID, viewer: UUID | None, *, check: bool = False) -> dict[str, Any]:
    found = await proposal_views.get_proposal(runtime.engine, proposal_id, viewer=viewer)
    if found is None:
        raise Problem(404, f"No proposal {proposal_id}.")
    if check and viewer is not None and await proposal_views.role_in(runtime.engine, found["group_id"], viewer) is None:
        raise Problem(403, "Only members of the group (and the administration) see its proposals.")
    return found
