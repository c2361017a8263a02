"""HTTP API of the members service: network groups and their seats, members, organisations. Routes only check who
asks (where that needs no data) and translate to commands; rules that need the data (a group's coordinators) are
the handlers'."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field
from pydantic_core import PydanticCustomError

from netvaerk_shared.contracts import ConsentKind, GroupStatus, Locale, MembershipStatus, OrganisationKind, Role
from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router, service_app
from netvaerk_shared.inputs import Email, Flag, Integer, Line, Multiline, OptionalLine

from .. import views
from ..bootstrap import bootstrap
from ..domain import commands
from ..domain.errors import DomainError
from ..domain.model import CONSENTS, MAX_SLUG, cvr_error
from ..service_layer.handlers import handle
from . import admin_http, gdpr_http, imports_http

# Limits chosen so the largest valid group makes an event of about 50 kB, far below NATS's 1 MiB.
MAX_TOPICS = 50
Slug = Annotated[
    str, Field(max_length=MAX_SLUG, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", examples=["offentlig-digitalisering-oest"])
]


Topic = Annotated[str, Line(100, examples=["SKI-aftaler"])]
# The default of a PATCH field the client left out: never validated and never null in the schema, so a client
# may not send null where the field cannot be empty (exclude_unset tells the left-out fields from the given ones).
LEFT_OUT: Any = None


def _valid_cvr(cvr: str | None) -> str | None:
    if cvr is not None and (problem := cvr_error(cvr)):
        raise PydanticCustomError("cvr", problem)
    return cvr


Cvr = Annotated[
    str,
    Field(
        min_length=8,
        max_length=8,
        pattern=r"^[0-9]{8}$",
        description="Danish CVR number: 8 digits whose modulus-11 check (weights 2,7,6,5,4,3,2,1) holds",
        examples=["12345674"],
    ),
    AfterValidator(_valid_cvr),
]
Consents = Annotated[
    list[ConsentKind],
    Field(
        max_length=len(CONSENTS),
        description="Everything the member agrees to now (what they receive; show_email / show_phone: what the "
        "other members of their groups see). Left out of the list: withdrawn.",
    ),
]


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Offentlig digitalisering øst"])]
    slug: Slug | None = Field(default=None, description="Derived from the name when left out")
    region: Annotated[str, Line(100, examples=["Øst"])]
    description: Annotated[str, Multiline(5000)] = ""
    topics: list[Annotated[str, Line(100, examples=["SKI-aftaler"])]] = Field(
        default_factory=list, max_length=MAX_TOPICS
    )
    capacity: Annotated[int, Integer(ge=1, le=10_000)] | None = None
    requires_approval: Flag = False


class GroupPatch(BaseModel):
    """Only the fields given change; `capacity: null` removes the limit."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Offentlig digitalisering øst"])] = LEFT_OUT
    slug: Slug = LEFT_OUT
    region: Annotated[str, Line(100, examples=["Øst"])] = LEFT_OUT
    description: Annotated[str, Multiline(5000)] = LEFT_OUT
    topics: list[Topic] = Field(default=LEFT_OUT, max_length=MAX_TOPICS)
    capacity: Annotated[int, Integer(ge=1, le=10_000)] | None = None
    requires_approval: Flag = LEFT_OUT
    status: GroupStatus = Field(default=LEFT_OUT, description="open; closed: no new members; archived: no more changes")


class OrganisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Eksempel Kommune"])]
    kind: OrganisationKind
    cvr: Cvr | None = None


class OrganisationPatch(BaseModel):
    """Only the fields given change; `cvr: null` removes the number."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Eksempel Kommune"])] = LEFT_OUT
    kind: OrganisationKind = LEFT_OUT
    cvr: Cvr | None = None


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Mette Eksempel"])]
    email: Annotated[EmailStr, Email(examples=["mette@example.org"])]
    phone: Annotated[str, OptionalLine(40, examples=["+45 12 34 56 78"])] | None = None
    organisation: OrganisationIn
    job_title: Annotated[str, Line(200, examples=["Kontorchef"])]
    locale: Locale = Locale.da
    consents: Consents = Field(default_factory=list)


class MemberPatch(BaseModel):
    """Only the fields given change; `phone: null` removes the number. `status` is the administration's."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Mette Eksempel"])] = LEFT_OUT
    email: Annotated[EmailStr, Email(examples=["mette@example.org"])] = LEFT_OUT
    phone: Annotated[str, OptionalLine(40, examples=["+45 12 34 56 78"])] | None = None
    organisation: OrganisationIn = LEFT_OUT
    job_title: Annotated[str, Line(200, examples=["Kontorchef"])] = LEFT_OUT
    locale: Locale = LEFT_OUT
    consents: Consents = LEFT_OUT
    status: MembershipStatus = Field(default=LEFT_OUT, description="The member's own association membership")


class MembershipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: MembershipStatus
    valid_until: date | None = None


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    member_id: UUID
    role: Role = Role.member
    waitlist: Flag = Field(default=True, description="When the group is full: wait for a seat (true) or 409 (false)")


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Line(500, examples=["Gruppen er for kommunale it-chefer"])]


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_member_id: UUID


class RosterEntry(BaseModel):
    member_id: UUID
    role: Role
    joined_at: datetime


class GroupSummary(BaseModel):
    group_id: UUID
    name: str
    slug: str
    region: str
    description: str
    topics: list[str]
    capacity: int | None
    requires_approval: bool
    status: GroupStatus
    member_count: int


class GroupOut(BaseModel):
    group_id: UUID
    name: str
    slug: str
    region: str
    description: str
    topics: list[str]
    capacity: int | None
    requires_approval: bool
    status: GroupStatus
    members: list[RosterEntry]


class MembershipOut(BaseModel):
    status: MembershipStatus
    valid_until: date | None


class OrganisationOut(BaseModel):
    id: UUID
    name: str
    kind: OrganisationKind
    cvr: str | None


class OrganisationSummary(OrganisationOut):
    membership: MembershipOut | None = Field(description="The association membership it holds for its staff")
    member_count: int


class StaffEntry(BaseModel):
    member_id: UUID
    name: str
    job_title: str
    status: MembershipStatus


class OrganisationDetail(OrganisationOut):
    membership: MembershipOut | None
    members: list[StaffEntry]


class MembershipOfOrganisation(OrganisationOut):
    membership: MembershipOut | None


class GroupMembershipOut(BaseModel):
    group_id: UUID
    name: str
    role: Role
    joined_at: datetime


class ConsentOut(BaseModel):
    kind: ConsentKind
    given_at: datetime


class MemberOut(BaseModel):
    member_id: UUID
    name: str
    email: str
    phone: str | None
    organisation: OrganisationOut
    job_title: str
    locale: Locale
    registered_at: datetime
    status: MembershipStatus
    consents: list[ConsentOut]
    groups: list[GroupMembershipOut]


class JoinOut(BaseModel):
    member_id: UUID
    group_id: UUID
    role: Role
    status: str = Field(
        description="joined (201); pending: awaits a coordinator's approval, waitlisted: awaits a seat (202)",
        examples=["joined"],
    )


class RequestOut(BaseModel):
    member_id: UUID
    status: str = Field(description="pending (awaits approval) or waitlisted (awaits a seat), in their order")
    requested_at: datetime


class RoleOut(BaseModel):
    member_id: UUID
    group_id: UUID
    role: Role


class TransferOut(BaseModel):
    group_id: UUID
    from_member_id: UUID
    to_member_id: UUID


class DirectoryOrganisation(BaseModel):
    id: UUID
    name: str
    kind: OrganisationKind


class DirectoryEntry(BaseModel):
    member_id: UUID
    name: str
    organisation: DirectoryOrganisation
    job_title: str
    role: Role
    joined_at: datetime
    email: str | None = Field(description="Only when the member consented to show it (show_email)")
    phone: str | None = Field(description="Only when the member consented to show it and has one (show_phone)")


class MemberExport(BaseModel):
    service: str
    member: MemberOut


router = protected_router()


# -- groups ------------------------------------------------------------------------------------------------------
@router.post(
    "/groups",
    status_code=201,
    tags=["groups"],
    summary="Create a network group (the administration)",
    response_model=GroupOut,
    responses=problems(403, 409),
)
async def create_group(body: GroupIn, uow: UoW, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    group = await handle(
        commands.CreateGroup(
            name=body.name,
            region=body.region,
            description=body.description,
            slug=body.slug,
            topics=tuple(body.topics),
            capacity=body.capacity,
            requires_approval=body.requires_approval,
        ),
        uow,
    )
    return views.group_out(group)


@router.get("/groups", tags=["groups"], summary="All network groups", response_model=list[GroupSummary])
async def list_groups(runtime: Runtime) -> list[dict[str, Any]]:
    return await views.list_groups(runtime.engine)


@router.get(
    "/groups/{group_id}",
    tags=["groups"],
    summary="One group with its members (ids and roles)",
    response_model=GroupOut,
    responses=problems(404),
)
async def get_group(group_id: UUID, runtime: Runtime) -> dict[str, Any]:
    group = await views.get_group(runtime.engine, group_id)
    if group is None:
        raise Problem(404, f"No group {group_id}.")
    return group


@router.patch(
    "/groups/{group_id}",
    tags=["groups"],
    summary="Change a group (a coordinator of it, or the administration); archived groups change no more",
    description="Fields that hold their value already (or an empty body) change nothing and emit no `group.updated`.",
    response_model=GroupOut,
    responses=problems(403, 404, 409),
)
async def update_group(group_id: UUID, body: GroupPatch, uow: UoW, caller: Caller) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, mode="json")
    if any(v is None for k, v in changes.items() if k != "capacity"):
        raise Problem(422, "Only capacity may be null: leave a field out to keep it.")
    group = await handle(commands.UpdateGroup(group_id=group_id, changes=changes, actor=caller.member_id), uow)
    return views.group_out(group)


async def _require_group_member_or_admin(runtime: Runtime, caller: Caller, group_id: UUID, *, manager: bool) -> None:
    roster = await views.roster_of(runtime.engine, group_id)
    if roster is None:
        raise Problem(404, f"No group {group_id}.")
    if caller.is_admin:
        return
    role = roster.get(caller.member_id)  # type: ignore[arg-type]
    if role is None or (manager and role != "coordinator"):
        who = "a coordinator of the group" if manager else "the group's members"
        raise Problem(403, f"Only {who} and the administration may see this.")


@router.get(
    "/groups/{group_id}/directory",
    tags=["groups"],
    summary="Who is in the group, as its members see it (its members, or the administration)",
    description="Name, organisation and kind, job title and role of everyone in the group; email and phone only of "
    "members who consented to show them. Anyone outside the group gets 403.",
    response_model=list[DirectoryEntry],
    responses=problems(403, 404),
)
async def directory(group_id: UUID, runtime: Runtime, caller: Caller) -> list[dict[str, Any]]:
    await _require_group_member_or_admin(runtime, caller, group_id, manager=False)
    return await views.directory(runtime.engine, group_id)


@router.get(
    "/groups/{group_id}/requests",
    tags=["groups"],
    summary="Requests to join that wait: pending approval, then the waiting list (a coordinator, the administration)",
    response_model=list[RequestOut],
    responses=problems(403, 404),
)
async def join_requests(group_id: UUID, runtime: Runtime, caller: Caller) -> list[dict[str, Any]]:
    await _require_group_member_or_admin(runtime, caller, group_id, manager=True)
    return await views.join_requests(runtime.engine, group_id)


@router.post(
    "/groups/{group_id}/members",
    status_code=201,
    tags=["groups"],
    summary="A member joins a group (the member themself, or the administration)",
    description="201: joined. 202: waits — for a coordinator's approval where the group asks for it (a member "
    "joining themself; the administration places members directly), or for a seat when the group is full "
    "(first come, first served; `waitlist: false` makes that a 409 instead).",
    response_model=JoinOut,
    responses={202: {"description": "Accepted: the request waits", "model": JoinOut}, **problems(403, 404, 409)},
)
async def join(group_id: UUID, body: JoinIn, uow: UoW, caller: Caller, response: Response) -> dict[str, Any]:
    outcome = await handle(
        commands.JoinGroup(
            member_id=body.member_id,
            group_id=group_id,
            role=body.role.value,
            actor=caller.member_id,
            waitlist=body.waitlist,
        ),
        uow,
    )
    if outcome != "joined":
        response.status_code = 202
    return {"member_id": body.member_id, "group_id": group_id, "role": body.role, "status": outcome}


@router.delete(
    "/groups/{group_id}/members/{member_id}",
    status_code=204,
    tags=["groups"],
    summary="Leave a group (the member themself, a coordinator of the group, the administration)",
    description="A seat that frees goes to the first on the waiting list. On a member who only asked to join, "
    "this withdraws the request.",
    responses=problems(403, 404, 409),
)
async def leave(group_id: UUID, member_id: UUID, uow: UoW, caller: Caller) -> Response:
    await handle(commands.LeaveGroup(member_id=member_id, group_id=group_id, actor=caller.member_id), uow)
    return Response(status_code=204)


@router.put(
    "/groups/{group_id}/members/{member_id}/role",
    tags=["groups"],
    summary="Set a member's role in the group (a coordinator of it, or the administration)",
    response_model=RoleOut,
    responses=problems(403, 404, 409),
)
async def set_role(group_id: UUID, member_id: UUID, body: RoleIn, uow: UoW, caller: Caller) -> dict[str, Any]:
    await handle(
        commands.ChangeRole(member_id=member_id, group_id=group_id, role=body.role.value, actor=caller.member_id),
        uow,
    )
    return {"member_id": member_id, "group_id": group_id, "role": body.role}


@router.post(
    "/groups/{group_id}/members/{member_id}/transfer",
    tags=["groups"],
    summary="Hand a seat to a colleague of the same organisation (the holder, a coordinator, the administration)",
    response_model=TransferOut,
    responses=problems(403, 404, 409),
)
async def transfer(group_id: UUID, member_id: UUID, body: TransferIn, uow: UoW, caller: Caller) -> dict[str, Any]:
    await handle(
        commands.TransferSeat(
            group_id=group_id, from_member_id=member_id, to_member_id=body.to_member_id, actor=caller.member_id
        ),
        uow,
    )
    return {"group_id": group_id, "from_member_id": member_id, "to_member_id": body.to_member_id}


@router.post(
    "/groups/{group_id}/requests/{member_id}/approve",
    tags=["groups"],
    summary="Approve a pending request (a coordinator, the administration): joined, or waitlisted when full",
    response_model=JoinOut,
    responses=problems(403, 404, 409),
)
async def approve(group_id: UUID, member_id: UUID, uow: UoW, caller: Caller) -> dict[str, Any]:
    outcome = await handle(commands.ApproveJoin(member_id=member_id, group_id=group_id, actor=caller.member_id), uow)
    return {"member_id": member_id, "group_id": group_id, "role": Role.member, "status": outcome}


@router.post(
    "/groups/{group_id}/requests/{member_id}/decline",
    status_code=204,
    tags=["groups"],
    summary="Decline a request to join, pending or waitlisted (a coordinator, the administration)",
    responses=problems(403, 404, 409),
)
async def decline(group_id: UUID, member_id: UUID, body: DeclineIn, uow: UoW, caller: Caller) -> Response:
    await handle(
        commands.DeclineJoin(member_id=member_id, group_id=group_id, reason=body.reason, actor=caller.member_id), uow
    )
    return Response(status_code=204)


# -- members -----------------------------------------------------------------------------------------------------
@router.post(
    "/members",
    status_code=201,
    tags=["members"],
    summary="Register a member (the administration)",
    description="422 also for a CVR number whose modulus-11 check fails (naming organisation.cvr).",
    response_model=MemberOut,
    responses=problems(403, 409, 422),
)
async def register(body: MemberIn, uow: UoW, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    member = await handle(
        commands.RegisterMember(
            name=body.name,
            email=str(body.email),
            phone=body.phone,
            organisation_name=body.organisation.name,
            organisation_kind=body.organisation.kind.value,
            organisation_cvr=body.organisation.cvr,
            job_title=body.job_title,
            locale=body.locale.value,
            consents=tuple(c.value for c in body.consents),
        ),
        uow,
    )
    return views.member_out(member)


@router.get(
    "/members/{member_id}",
    tags=["members"],
    summary="One member's profile and groups (the member themself, or the administration)",
    response_model=MemberOut,
    responses=problems(403, 404),
)
async def get_member(member_id: UUID, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_self_or_admin(member_id)
    member = await views.get_member(runtime.engine, member_id)
    if member is None:
        raise Problem(404, f"No member {member_id}.")
    return member


@router.patch(
    "/members/{member_id}",
    tags=["members"],
    summary="Change a member's profile or consents (the member themself, or the administration; status: the "
    "administration only)",
    description="A member who loses the right to join groups (neither their own nor their organisation's "
    "association membership is active) leaves every group in the same change. Fields that hold their value already "
    "(or an empty body) change nothing and emit no `member.updated`. 422 also for a CVR number whose modulus-11 "
    "check fails.",
    response_model=MemberOut,
    responses=problems(403, 404, 409, 422),
)
async def update_member(
    member_id: UUID, body: MemberPatch, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any]:
    caller.require_self_or_admin(member_id)
    changes = body.model_dump(exclude_unset=True, mode="json")
    if any(v is None for k, v in changes.items() if k != "phone"):
        raise Problem(422, "Only phone may be null: leave a field out to keep it.")
    if "email" in changes:
        changes["email"] = str(body.email)
    await handle(commands.UpdateMember(member_id=member_id, changes=changes, actor=caller.member_id), uow)
    member = await views.get_member(runtime.engine, member_id)
    assert member is not None
    return member


@router.get(
    "/members/{member_id}/export",
    tags=["members"],
    response_model=MemberExport,
    responses=problems(404),
    summary="GDPR: everything this service stores about a member (404 when it stores nothing)",
)
async def export(member_id: UUID, runtime: Runtime) -> dict[str, Any]:
    member = await views.get_member(runtime.engine, member_id)
    if member is None:
        raise Problem(404, f"This service holds nothing about member {member_id}.")
    return {"service": "members", "member": member}


# -- organisations -----------------------------------------------------------------------------------------------
@router.get(
    "/organisations",
    tags=["organisations"],
    summary="All organisations with their association membership and number of members (the administration)",
    response_model=list[OrganisationSummary],
    responses=problems(403),
)
async def list_organisations(runtime: Runtime, caller: Caller) -> list[dict[str, Any]]:
    caller.require_admin()
    return await views.list_organisations(runtime.engine)


@router.get(
    "/organisations/{organisation_id}",
    tags=["organisations"],
    summary="One organisation with its members (the administration)",
    response_model=OrganisationDetail,
    responses=problems(403, 404),
)
async def get_organisation(organisation_id: UUID, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    org = await views.get_organisation(runtime.engine, organisation_id)
    if org is None:
        raise Problem(404, f"No organisation {organisation_id}.")
    return org


@router.patch(
    "/organisations/{organisation_id}",
    tags=["organisations"],
    summary="Correct an organisation's name, kind or CVR number (the administration)",
    description="Every member's profile carries their organisation, so a change emits one `member.updated` (the "
    "full profile) per member of it, in the same change; fields that hold their value already change nothing and "
    "emit nothing. Names are unique, case and spacing aside: another organisation's is a 409. 422 also for a CVR "
    "number whose modulus-11 check fails (naming cvr).",
    response_model=MembershipOfOrganisation,
    responses=problems(403, 404, 409, 422),
)
async def update_organisation(
    organisation_id: UUID, body: OrganisationPatch, uow: UoW, caller: Caller
) -> dict[str, Any]:
    caller.require_admin()
    changes = body.model_dump(exclude_unset=True, mode="json")
    if any(v is None for k, v in changes.items() if k != "cvr"):
        raise Problem(422, "Only cvr may be null: leave a field out to keep it.")
    org = await handle(commands.UpdateOrganisation(organisation_id=organisation_id, changes=changes), uow)
    return views.organisation_out(org)


@router.put(
    "/organisations/{organisation_id}/membership",
    tags=["organisations"],
    summary="Set the association membership an organisation holds for its staff (the administration)",
    description="When it stops being active, its staff without an active membership of their own leave every "
    "group, in the same change.",
    response_model=MembershipOfOrganisation,
    responses=problems(403, 404),
)
async def set_membership(organisation_id: UUID, body: MembershipIn, uow: UoW, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    org = await handle(
        commands.SetOrganisationMembership(
            organisation_id=organisation_id, status=body.status.value, valid_until=body.valid_until
        ),
        uow,
    )
    return views.organisation_out(org)


def create_app() -> FastAPI:
    app = service_app(
        runtime_factory=bootstrap,
        title="Netværk members",
        description="Network groups, their seats and members, organisations. Publishes MEMBERS events (members.>) "
        "through an outbox.",
        routers=[router, admin_http.router, gdpr_http.router, imports_http.router],
        domain_error=DomainError,
    )
    imports_http.install(app)
    return app


app = create_app()
