"""Events published by the members service on stream MEMBERS (subjects members.>)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from .base import EventData, register


class OrganisationKind(StrEnum):
    public_authority = "public_authority"
    supplier = "supplier"
    other = "other"


class Role(StrEnum):
    member = "member"
    coordinator = "coordinator"


class Locale(StrEnum):
    da = "da"
    en = "en"


class Organisation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: UUID
    name: str = Field(min_length=1, max_length=200)
    kind: OrganisationKind
    cvr: str | None = Field(default=None, pattern=r"^\d{8}$")


class _MembersEvent(EventData):
    service: ClassVar[str] = "members"


@register
class GroupCreated(_MembersEvent):
    """A network group (netværksgruppe) was created."""

    aggregate: ClassVar[str] = "group"
    event: ClassVar[str] = "created"
    subject_field: ClassVar[str] = "group_id"

    group_id: UUID
    name: str
    slug: str
    region: str
    description: str
    topics: tuple[str, ...] = ()
    capacity: int | None = None
    requires_approval: bool = False


@register
class MemberRegistered(_MembersEvent):
    """A person was registered. The only event (with member.updated, later) that carries contact data."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "registered"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    name: str
    email: EmailStr
    phone: str | None = None
    organisation: Organisation
    job_title: str
    locale: Locale
    registered_at: datetime


@register
class MemberJoined(_MembersEvent):
    """A member joined a network group. Ids only."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "joined"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    group_id: UUID
    role: Role
    joined_at: datetime
