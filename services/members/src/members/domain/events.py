"""What happened inside the members domain (domain events; the public contracts are in netvaerk_shared.contracts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID


@dataclass(frozen=True)
class GroupCreated:
    group_id: UUID


@dataclass(frozen=True)
class GroupUpdated:
    group_id: UUID


@dataclass(frozen=True)
class MemberRegistered:
    member_id: UUID


@dataclass(frozen=True)
class MemberUpdated:
    member_id: UUID
    updated_at: datetime


@dataclass(frozen=True)
class MemberJoined:
    member_id: UUID
    group_id: UUID
    role: str
    joined_at: datetime


@dataclass(frozen=True)
class MemberLeft:
    member_id: UUID
    group_id: UUID
    left_at: datetime
    reason: str  # left / removed / membership_ended / seat_transferred


@dataclass(frozen=True)
class MemberRoleChanged:
    member_id: UUID
    group_id: UUID
    role: str


@dataclass(frozen=True)
class MemberJoinRequested:
    member_id: UUID
    group_id: UUID
    requested_at: datetime
    status: str  # pending (awaits a coordinator) / waitlisted (awaits a seat)


@dataclass(frozen=True)
class MemberJoinDeclined:
    member_id: UUID
    group_id: UUID
    reason: str


@dataclass(frozen=True)
class SeatTransferred:
    group_id: UUID
    organisation_id: UUID
    from_member_id: UUID
    to_member_id: UUID


@dataclass(frozen=True)
class OrganisationMembershipChanged:
    organisation_id: UUID
    status: str
    valid_until: date | None
