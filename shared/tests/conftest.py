from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest

from netvaerk_shared import contracts, topology
from netvaerk_shared.contracts.meetings import (
    AgendaUpdated,
    AttendanceRecorded,
    MeetingCancelled,
    MeetingRescheduled,
    ProposalAccepted,
    ProposalDeclined,
    ProposalSubmitted,
    RsvpRecorded,
    WaitlistPromoted,
)
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.contracts.notifications import NotificationFailed
from netvaerk_shared.db import create_engine

from . import world


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
        contracts.MemberUpdated(
            member_id=member,
            name="Mette Eksempel",
            email="mette@example.org",
            organisation=contracts.Organisation(id=uuid.uuid4(), name="Eksempel Kommune", kind="public_authority"),
            job_title="Kontorchef",
            locale="da",
            registered_at=now,
            updated_at=now,
            consents=(contracts.Consent(kind="show_email", given_at=now),),
        ),
        contracts.MemberLeft(member_id=member, group_id=group, left_at=now, reason="left"),
        contracts.MemberRoleChanged(member_id=member, group_id=group, role="coordinator"),
        contracts.MemberJoinRequested(member_id=member, group_id=group, requested_at=now, status="waitlisted"),
        contracts.MemberJoinDeclined(member_id=member, group_id=group, reason="Gruppen er for kommuner"),
        contracts.SeatTransferred(
            group_id=group, organisation_id=uuid.uuid4(), from_member_id=member, to_member_id=uuid.uuid4()
        ),
        contracts.GroupUpdated(
            group_id=group, name="Netværk øst", slug="netvaerk-oest", region="Øst", description="", status="closed"
        ),
        contracts.OrganisationMembershipChanged(organisation_id=uuid.uuid4(), status="active"),
        MemberErased(member_id=member, erased_at=now),
        contracts.MeetingScheduled(
            meeting_id=uuid.uuid4(),
            group_id=group,
            title="Forårsmøde",
            starts_at=now + timedelta(days=30),
            ends_at=now + timedelta(days=30, hours=3),
            venue=contracts.Venue(name="Eksempelhuset"),
            agenda=(contracts.AgendaItem(position=1, kind="check_in", title="Runden", minutes=30),),
        ),
        MeetingRescheduled(
            meeting_id=uuid.uuid4(),
            group_id=group,
            title="Forårsmøde",
            starts_at=now + timedelta(days=31),
            ends_at=now + timedelta(days=31, hours=3),
            venue=contracts.Venue(name="Eksempelhuset"),
            previous_starts_at=now + timedelta(days=30),
            sequence=1,
        ),
        MeetingCancelled(
            meeting_id=uuid.uuid4(), group_id=group, starts_at=now, reason="Oplægsholderen er syg", sequence=2
        ),
        AgendaUpdated(
            meeting_id=uuid.uuid4(),
            group_id=group,
            agenda=(
                contracts.AgendaItem(
                    position=1,
                    kind="talk",
                    title="Agile kontrakter",
                    minutes=45,
                    materials=("https://example.org/slides.pdf",),
                ),
            ),
            sequence=1,
        ),
        RsvpRecorded(
            meeting_id=uuid.uuid4(),
            group_id=group,
            member_id=member,
            response="attending",
            status="waitlisted",
            waitlist_position=3,
            on_behalf_of=uuid.uuid4(),
            answered_at=now,
        ),
        WaitlistPromoted(meeting_id=uuid.uuid4(), group_id=group, member_id=member, promoted_at=now),
        AttendanceRecorded(meeting_id=uuid.uuid4(), group_id=group, member_id=member, attended=True, recorded_at=now),
        ProposalSubmitted(
            proposal_id=uuid.uuid4(), group_id=group, member_id=member, kind="talk", title="AI i sagsbehandlingen"
        ),
        ProposalAccepted(
            proposal_id=uuid.uuid4(), group_id=group, member_id=member, meeting_id=uuid.uuid4(), agenda_position=3
        ),
        ProposalDeclined(proposal_id=uuid.uuid4(), group_id=group, member_id=member, reason="Emnet var på sidste møde"),
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


# -- the messaging tests' world (see world.py) ---------------------------------------------------------------------
@pytest.fixture
async def engine(database_url):
    """An engine on a fresh database (PostgreSQL and SQLite) with the world's tables."""
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(world.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def js(clean_nats):
    """JetStream on a clean server, with the members' stream."""
    nc = await nats.connect(clean_nats)
    js = nc.jetstream()
    await topology.ensure_stream(js, "members")
    yield js
    await nc.close()
