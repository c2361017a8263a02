"""Events published by the notifications service on stream NOTIFICATIONS (subjects notifications.>)."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from .base import EventData, register


class NotificationKind(StrEnum):
    welcome = "welcome"
    invitation = "invitation"


class Channel(StrEnum):
    email = "email"


@register
class NotificationSent(EventData):
    """A notification left for a member. Ids only: the address and the text stay in the notifications database."""

    service: ClassVar[str] = "notifications"
    aggregate: ClassVar[str] = "notification"
    event: ClassVar[str] = "sent"
    subject_field: ClassVar[str] = "notification_id"

    notification_id: UUID
    member_id: UUID
    kind: NotificationKind
    channel: Channel
    cause_event_id: UUID
    sent_at: datetime
