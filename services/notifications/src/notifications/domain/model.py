"""What a notification is and when it is owed. Pure Python: no database, no clock, no framework."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

WELCOME = "welcome"
INVITATION = "invitation"


@dataclass(frozen=True)
class Delivery:
    """One message owed to one member, for one cause. `dedupe_key` makes it owed once, however often the cause
    is seen."""

    id: UUID
    dedupe_key: str
    member_id: UUID
    kind: str
    cause_event_id: UUID
    payload: dict = field(default_factory=dict)


def welcome(member_id: UUID, group_id: UUID, cause_event_id: UUID) -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        dedupe_key=f"welcome:{group_id}:{member_id}",
        member_id=member_id,
        kind=WELCOME,
        cause_event_id=cause_event_id,
        payload={"group_id": str(group_id)},
    )


def invitations(meeting_id: UUID, sequence: int, member_ids, cause_event_id: UUID) -> list[Delivery]:
    return [
        Delivery(
            id=uuid.uuid4(),
            dedupe_key=f"invitation:{meeting_id}:{sequence}:{member_id}",
            member_id=member_id,
            kind=INVITATION,
            cause_event_id=cause_event_id,
            payload={"meeting_id": str(meeting_id)},
        )
        for member_id in sorted(set(member_ids))
    ]


def retry_delay(attempts: int) -> timedelta:
    """Backoff for a delivery that could not go yet: 2 s, 4 s, ... capped at 10 minutes."""
    return timedelta(seconds=min(600, 2 ** max(1, attempts)))


def wait_delay(waited_seconds: float) -> timedelta:
    """How soon a delivery waiting for its data looks again: soon at first, every 10 s at most after a while."""
    return timedelta(seconds=min(10.0, max(0.5, waited_seconds / 10)))


def gives_up(attempts: int, max_attempts: int, permanent: bool) -> bool:
    return permanent or attempts >= max_attempts
