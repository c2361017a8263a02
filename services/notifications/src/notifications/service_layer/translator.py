"""Domain events -> public integration events (the v1 contracts). Ids only: the address and the text stay here."""

from __future__ import annotations

from netvaerk_shared import contracts

from ..adapters.safe_text import one_line
from ..domain import events
from ..domain.model import Delivery


def to_contract(event: object, delivery: Delivery) -> contracts.EventData:
    if isinstance(event, events.NotificationSent):
        return contracts.NotificationSent(
            notification_id=event.notification_id,
            member_id=delivery.member_id,
            kind=contracts.NotificationKind(delivery.kind),
            channel=contracts.Channel(delivery.channel),
            cause_event_id=delivery.cause_event_id,
            sent_at=event.sent_at,
        )
    if isinstance(event, events.NotificationFailed):
        return contracts.NotificationFailed(
            notification_id=event.notification_id,
            member_id=delivery.member_id,
            kind=contracts.NotificationKind(delivery.kind),
            channel=contracts.Channel(delivery.channel),
            cause_event_id=delivery.cause_event_id,
            reason=one_line(event.reason)[:200] or "unknown",
            permanent=event.permanent,
        )
    raise TypeError(f"no contract for {type(event).__name__}")
