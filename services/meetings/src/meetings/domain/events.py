"""What happened inside the meetings domain (domain events; the public contracts are in netvaerk_shared.contracts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class MeetingScheduled:
    meeting_id: UUID


# -- the meeting's life and its agenda (issue 9: plan); what changed is on the aggregate -----------------------------
@dataclass(frozen=True)
class MeetingRescheduled:
    meeting_id: UUID
    previous_starts_at: datetime


@dataclass(frozen=True)
class MeetingCancelled:
    meeting_id: UUID


@dataclass(frozen=True)
class AgendaUpdated:
    meeting_id: UUID
