"""What happened inside the meetings domain (domain events; the public contracts are in netvaerk_shared.contracts)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class MeetingScheduled:
    meeting_id: UUID
