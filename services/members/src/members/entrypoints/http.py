"""HTTP API of the members service: network groups, members, joining. Routes only translate to commands."""
from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from netvaerk_shared.contracts import Locale, OrganisationKind, Role
from netvaerk_shared.http import Problem, bearer_auth, service_app

from .. import views
from ..bootstrap import bootstrap
from ..domain import commands
from ..domain.errors import DomainError
from ..service_layer.handlers import handle


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Offentlig digitalisering øst"])
    slug: str | None = Field(default=None, max_length=100, examples=["offentlig-digitalisering-oest"])
    region: str = Field(min_length=1, max_length=100, examples=["Øst"])
    description: str = Field(default="", max_length=5000)
    topics: list[str] = Field(default_factory=list, max_length=50)
    capacity: int | None = Field(default=None, ge=1, le=10_000)
    requires_approval: bool = False


class OrganisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Eksempel Kommune"])
    kind: OrganisationKind
    cvr: str | None = Field(default=None, pattern=r"^\d{8}$")


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Mette Eksempel"])
    email: EmailStr = Field(examples=["mette@example.org"])
    phone: str | None = Field(default=None, max_length=40)
    organisation: OrganisationIn
    job_title: str = Field(min_length=1, max_length=200, examples=["Kontorchef"])
    locale: Locale = Locale.da


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    member_id: UUID
    role: Role = Role.member


def api(runtime) -> APIRouter:
    router = APIRouter(dependencies=[bearer_auth(runtime.settings.api_token)])

    @router.post("/groups", status_code=201, tags=["groups"], summary="Create a network group")
    async def create_group(body: GroupIn):
        group = await handle(commands.CreateGroup(
            name=body.name, region=body.region, description=body.description, slug=body.slug,
            topics=tuple(body.topics), capacity=body.capacity, requires_approval=body.requires_approval),
            runtime.uow())
        return views.group_out(group)

    @router.get("/groups", tags=["groups"], summary="All network groups")
    async def list_groups():
        return await views.list_groups(runtime.engine)

    @router.get("/groups/{group_id}", tags=["groups"], summary="One group with its members")
    async def get_group(group_id: UUID):
        group = await views.get_group(runtime.engine, group_id)
        if group is None:
            raise Problem(404, "Not found", f"No group {group_id}.")
        return group

    @router.post("/members", status_code=201, tags=["members"], summary="Register a member")
    async def register(body: MemberIn):
        member = await handle(commands.RegisterMember(
            name=body.name, email=str(body.email), phone=body.phone, organisation_name=body.organisation.name,
            organisation_kind=body.organisation.kind.value, organisation_cvr=body.organisation.cvr,
            job_title=body.job_title, locale=body.locale.value), runtime.uow())
        return views.member_out(member)

    @router.get("/members/{member_id}", tags=["members"], summary="One member's profile and groups")
    async def get_member(member_id: UUID):
        member = await views.get_member(runtime.engine, member_id)
        if member is None:
            raise Problem(404, "Not found", f"No member {member_id}.")
        return member

    @router.get("/members/{member_id}/export", tags=["members"],
                summary="GDPR: everything this service stores about a member")
    async def export(member_id: UUID):
        member = await views.get_member(runtime.engine, member_id)
        if member is None:
            raise Problem(404, "Not found", f"No member {member_id}.")
        return {"service": "members", "member": member}

    @router.post("/groups/{group_id}/members", status_code=201, tags=["groups"], summary="A member joins a group")
    async def join(group_id: UUID, body: JoinIn):
        await handle(commands.JoinGroup(member_id=body.member_id, group_id=group_id, role=body.role.value),
                     runtime.uow())
        return {"member_id": body.member_id, "group_id": group_id, "role": body.role}

    return router


def create_app():
    return service_app(
        runtime_factory=bootstrap, title="Netværk members",
        description="Network groups and their members. Publishes MEMBERS events (members.>) through an outbox.",
        routers=[api], domain_error=DomainError)


app = create_app()
