from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from netvaerk_shared import contracts
from netvaerk_shared.contracts.notifications import NotificationFailed


@pytest.fixture
def sample_events() -> dict[str, contracts.EventData]:
    now = datetime(2027, 3, 4, 13, 0, tzinfo=UTC)
    member, group = uuid.uuid4(), uuid.uuid4()
    events = [
        contracts.GroupCreated(
            group_id=group,
            name="Offentlig digitalisering øst",
            slug="offentlig-digitalisering-oest",
            region="Øst",
            description="Netværk for offentlig digitalisering",
            topics=("SKI",),
        ),
        contracts.MemberRegistered(
            member_id=member,
            name="Mette Eksempel",
            email="mette@example.org",
            organisation=contracts.Organisation(id=uuid.uuid4(), name="Eksempel Kommune", kind="public_authority"),
            job_title="Kontorchef",
            locale="da",
            registered_at=now,
        ),
        contracts.MemberJoined(member_id=member, group_id=group, role="member", joined_at=now),
        contracts.MeetingScheduled(
            meeting_id=uuid.uuid4(),
            group_id=group,
            title="Forårsmøde",
            starts_at=now + timedelta(days=30),
            ends_at=now + timedelta(days=30, hours=3),
            venue=contracts.Venue(name="Eksempelhuset"),
            agenda=(contracts.AgendaItem(position=1, kind="check_in", title="Runden", minutes=30),),
        ),
        contracts.NotificationSent(
            notification_id=uuid.uuid4(),
            member_id=member,
            kind="welcome",
            channel="email",
            cause_event_id=uuid.uuid4(),
            sent_at=now,
        ),
        NotificationFailed(
            notification_id=uuid.uuid4(),
            member_id=member,
            kind="welcome",
            channel="email",
            cause_event_id=uuid.uuid4(),
            reason="smtp 550 5.1.1",
            permanent=True,
        ),
    ]
    return {e.event_type(): e for e in events}
