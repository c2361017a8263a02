"""What callers ask the members service to do. `actor` is the member the caller acts for (None: the association's
administration); the handler checks what that actor may do where the rule needs the data (a group's coordinators)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
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
class UpdateGroup:
    group_id: UUID
    changes: dict[str, Any]  # only the fields given: name, slug, region, description, topics, capacity, ...
    actor: UUID | None = None


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
    consents: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateMember:
    member_id: UUID
    changes: dict[str, Any]  # only the fields given; organisation as {name, kind, cvr}; phone None removes it
    actor: UUID | None = None


@dataclass(frozen=True)
class UpdateOrganisation:
    organisation_id: UUID
    changes: dict[str, Any]  # only the fields given: name, kind, cvr (None removes it)


@dataclass(frozen=True)
class SetOrganisationMembership:
    organisation_id: UUID
    status: str
    valid_until: date | None = None


@dataclass(frozen=True)
class JoinGroup:
    member_id: UUID
    group_id: UUID
    role: str = "member"
    actor: UUID | None = None
    waitlist: bool = True  # when full: wait for a seat (True) or refuse (False)


@dataclass(frozen=True)
class LeaveGroup:
    member_id: UUID
    group_id: UUID
    actor: UUID | None = None


@dataclass(frozen=True)
class ChangeRole:
    member_id: UUID
    group_id: UUID
    role: str
    actor: UUID | None = None


@dataclass(frozen=True)
class ApproveJoin:
    member_id: UUID
    group_id: UUID
    actor: UUID | None = None


@dataclass(frozen=True)
class DeclineJoin:
    member_id: UUID
    group_id: UUID
    reason: str
    actor: UUID | None = None


@dataclass(frozen=True)
class TransferSeat:
    group_id: UUID
    from_member_id: UUID
    to_member_id: UUID
    actor: UUID | None = None
