"""HTTP API for the association's administration: the member list with filters, free text and cursor pages.
A read: the route only checks who asks and turns the query into filters for the search (adapters/search.py)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, Field

from netvaerk_shared.contracts import Locale, OrganisationKind
from netvaerk_shared.http import Caller, Problem, Runtime, problems, protected_router
from netvaerk_shared.inputs import OptionalLine

from ..adapters.search import BadCursor, Cursor, Filters, search_members

MAX_LIMIT = 200
Q_HELP = "Free text: each word must occur in the name, email, job title or organisation"
MAX_CURSOR = 1200  # a folded name of 200 characters is at most 400, as JSON with the id and in base64url < 1,200


class MemberStatus(StrEnum):
    active = "active"
    lapsed = "lapsed"
    ended = "ended"


class SearchOrganisation(BaseModel):
    id: UUID
    name: str
    kind: OrganisationKind
    cvr: str | None


class MemberSearchHit(BaseModel):
    member_id: UUID
    name: str
    email: str
    phone: str | None
    organisation: SearchOrganisation
    job_title: str
    locale: Locale
    status: MemberStatus
    registered_at: datetime


class MemberSearchPage(BaseModel):
    items: list[MemberSearchHit]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page. Opaque: do not build one."
    )


router = protected_router()


@router.get(
    "/admin/members",
    tags=["administration"],
    summary="Find members (the administration only): filters, free text, cursor pages",
    description=(
        "Members ordered by name (then id). Every word of `q` must occur, case-insensitively, in the member's name, "
        "email, job title or organisation; the Danish letters also match their spellings (ø = oe, æ = ae, "
        "å = aa). Pages continue from `next_cursor` (keyset): a member added or removed meanwhile does not make "
        "another repeat or go missing."
    ),
    response_model=MemberSearchPage,
    responses=problems(403),
)
async def search(
    runtime: Runtime,
    caller: Caller,
    q: Annotated[str, OptionalLine(200, examples=["søren kommune"], description=Q_HELP)] | None = None,
    group_id: Annotated[UUID | None, Query(description="Members of this network group")] = None,
    organisation_id: Annotated[UUID | None, Query(description="Staff of this organisation")] = None,
    kind: Annotated[OrganisationKind | None, Query(description="Kind of the member's organisation")] = None,
    status: Annotated[MemberStatus | None, Query(description="The member's status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Members per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR, pattern=r"^[A-Za-z0-9_-]+$", description="`next_cursor` of a page")
    ] = None,
) -> dict[str, Any]:
    caller.require_admin()
    try:
        after = Cursor.decode(cursor) if cursor else None
    except BadCursor as exc:
        raise Problem(422, str(exc), errors=[{"field": "cursor", "message": str(exc)}]) from exc
    filters = Filters(
        q=q,
        group_id=group_id,
        organisation_id=organisation_id,
        kind=kind.value if kind else None,
        status=status.value if status else None,
    )
    async with runtime.engine.connect() as conn:
        items, following = await search_members(conn, filters, limit=limit, after=after)
    return {"items": items, "next_cursor": following}
