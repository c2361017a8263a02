"""GDPR erasure in the members domain (Art. 17): what is asked, and the notice it records. The erasure itself removes
rows (adapters/gdpr.py); the aggregate here only records that it happened, so the notice leaves through the outbox
with the deletion, as every other event does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class EraseMember:
    """Erase a member's personal data here, and tell every other service (MemberErased)."""

    member_id: UUID


@dataclass(frozen=True)
class MemberErased:
    member_id: UUID
    erased_at: datetime


@dataclass
class Erasure:
    """The erasure of one member: ids and the time only, never what was erased."""

    member_id: UUID
    erased_at: datetime
    repeated: bool = False  # the member was erased before: nothing more was done or told
    events: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, member_id: UUID, now: datetime) -> Erasure:
        erasure = cls(member_id=member_id, erased_at=now)
        erasure.events.append(MemberErased(member_id=member_id, erased_at=now))
        return erasure

    @classmethod
    def done_before(cls, member_id: UUID, erased_at: datetime) -> Erasure:
        """A request to erase a member erased already: the original time, and no second notice (the first one
        told every service; erasing is idempotent)."""
        return cls(member_id=member_id, erased_at=erased_at, repeated=True)
