"""What happened inside the members domain (domain events; the public contracts are in netvaerk_shared.contracts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class GroupCreated:
    group_id: UUID


@dataclass(frozen=True)
class MemberRegistered:
    member_id: UUID


@dataclass(frozen=True)
class MemberJoined:
    member_id: UUID
    group_id: UUID
    role: str
    joined_at: datetime
