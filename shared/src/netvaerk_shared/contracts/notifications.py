"""Events published by the notifications service on stream NOTIFICATIONS (subjects notifications.>)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from .base import EventData, register


class NotificationKind(StrEnum):
    welcome = "welcome"
    invitation = "invitation"
    meeting_update = "meeting_update"  # a meeting moved or changed (with the calendar entry that replaces it)
    cancellation = "cancellation"
    agenda_update = "agenda_update"
    rsvp_confirmation = "rsvp_confirmation"
    waitlist_promotion = "waitlist_promotion"  # a seat came free and is now the member's
    proposal_accepted = "proposal_accepted"
    reminder = "reminder"  # days before a meeting, to those attending or tentative (with a waiting list place)
    nudge = "nudge"  # days before a meeting, to members of the group who have not answered


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


@register
class NotificationFailed(EventData):
    """A notification owed to a member will not be sent: it could not be built, or the mail server refused it.

    `permanent` is true when retrying cannot help (the message cannot be built, a 5xx reply, an invalid address) and
    false when we gave up after retrying a temporary cause. `reason` is short and free of personal data (e.g.
    "smtp 550 5.1.1", "invalid address", "build: ZoneInfoNotFoundError"); the full error stays in the notifications
    database. Ids only, as for NotificationSent.
    """

    service: ClassVar[str] = "notifications"
    aggregate: ClassVar[str] = "notification"
    event: ClassVar[str] = "failed"
    subject_field: ClassVar[str] = "notification_id"

    notification_id: UUID
    member_id: UUID
    kind: NotificationKind
    channel: Channel
    cause_event_id: UUID
    reason: str = Field(min_length=1, max_length=200)
    permanent: bool
