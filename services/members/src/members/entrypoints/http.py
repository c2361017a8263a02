"""HTTP API of the members service: network groups, members, joining. Routes only translate to commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from netvaerk_shared.contracts import Locale, OrganisationKind, Role
from netvaerk_shared.http import Problem, Runtime, UoW, problems, protected_router, service_app
from netvaerk_shared.inputs import Email, Flag, Integer, Line, Multiline, OptionalLine

from .. import views
from ..bootstrap import bootstrap
from ..domain import commands
from ..domain.errors import DomainError
from ..domain.model import MAX_SLUG
from ..service_layer.handlers import handle

# Limits chosen so the largest valid group makes an event of about 50 kB, far below NATS's 1 MiB.
MAX_TOPICS = 50
Slug = Annotated[
    str, Field(max_length=MAX_SLUG, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", examples=["offentlig-digitalisering-oest"])
]


Topic = Annotated[str, Line(100, examples=["SKI-aftaler"])]


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


class OrganisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Eksempel Kommune"])]
    kind: OrganisationKind
    cvr: str | None = Field(
        default=None, min_length=8, max_length=8, pattern=r"^[0-9]{8}$", description="Danish CVR number, 8 digits"
    )


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Mette Eksempel"])]
    email: Annotated[EmailStr, Email(examples=["mette@example.org"])]
    phone: Annotated[str, OptionalLine(40, examples=["+45 12 34 56 78"])] | None = None
    organisation: OrganisationIn
    job_title: Annotated[str, Line(200, examples=["Kontorchef"])]
    locale: Locale = Locale.da


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    member_id: UUID
    role: Role = Role.member


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
    members: list[RosterEntry]


class OrganisationOut(BaseModel):
    id: UUID
    name: str
    kind: OrganisationKind
    cvr: str | None


class MembershipOut(BaseModel):
    group_id: UUID
    name: str
    role: Role
    joined_at: datetime


class MemberOut(BaseModel):
    member_id: UUID
    name: str
    email: str
    phone: str | None
    organisation: OrganisationOut
    job_title: str
    locale: Locale
    registered_at: datetime
    groups: list[MembershipOut]


class JoinOut(BaseModel):
    member_id: UUID
    group_id: UUID
    role: Role


class MemberExport(BaseModel):
    service: str
    member: MemberOut


router = protected_router()


@router.post(
    "/groups",
    status_code=201,
    tags=["groups"],
    summary="Create a network group",
    response_model=GroupOut,
    responses=problems(409),
)
async def create_group(body: GroupIn, uow: UoW) -> dict[str, Any]:
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
    summary="One group with its members",
    response_model=GroupOut,
    responses=problems(404),
)
async def get_group(group_id: UUID, runtime: Runtime) -> dict[str, Any]:
    group = await views.get_group(runtime.engine, group_id)
    if group is None:
        raise Problem(404, f"No group {group_id}.")
    return group


@router.post(
    "/members",
    status_code=201,
    tags=["members"],
    summary="Register a member",
    response_model=MemberOut,
    responses=problems(409),
)
async def register(body: MemberIn, uow: UoW) -> dict[str, Any]:
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
        ),
        uow,
    )
    return views.member_out(member)


@router.get(
    "/members/{member_id}",
    tags=["members"],
    summary="One member's profile and groups",
    response_model=MemberOut,
    responses=problems(404),
)
async def get_member(member_id: UUID, runtime: Runtime) -> dict[str, Any]:
    member = await views.get_member(runtime.engine, member_id)
    if member is None:
        raise Problem(404, f"No member {member_id}.")
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


@router.post(
    "/groups/{group_id}/members",
    status_code=201,
    tags=["groups"],
    summary="A member joins a group",
    response_model=JoinOut,
    responses=problems(404, 409),
)
async def join(group_id: UUID, body: JoinIn, uow: UoW) -> dict[str, Any]:
    await handle(commands.JoinGroup(member_id=body.member_id, group_id=group_id, role=body.role.value), uow)
    return {"member_id": body.member_id, "group_id": group_id, "role": body.role}


def create_app() -> FastAPI:
    return service_app(
        runtime_factory=bootstrap,
        title="Netværk members",
        description="Network groups and their members. Publishes MEMBERS events (members.>) through an outbox.",
        routers=[router],
        domain_error=DomainError,
    )


app = create_app()
