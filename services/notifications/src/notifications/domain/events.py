"""What happened to a delivery (domain events; the public contracts are in netvaerk_shared.contracts and the
translator turns one into the other)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class NotificationSent:
    notification_id: UUID
    sent_at: datetime


@dataclass(frozen=True)
class NotificationFailed:
    notification_id: UUID
    reason: str  # short, free of personal data: "smtp 550 5.1.1", "invalid recipient address", ...
    permanent: bool
