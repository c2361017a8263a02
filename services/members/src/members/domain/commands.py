"""What callers ask the members service to do."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class CreateGroup:
    name: str
    region: str
    description: str = ""
    slug: str | None = None
    topics: tuple[str, ...] = ()
    capacity: int | None = None
    requires_approval: bool = False


@dataclass(frozen=True)
class RegisterMember:
    name: str
    email: str
    organisation_name: str
    organisation_kind: str
    job_title: str
    locale: str = "da"
    phone: str | None = None
    organisation_cvr: str | None = None


@dataclass(frozen=True)
class JoinGroup:
    member_id: UUID
    group_id: UUID
    role: str = "member"
