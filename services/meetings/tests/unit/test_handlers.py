"""Service layer with small fakes: what scheduling commits and publishes, and how MEMBERS events become roster rows."""

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import jsonschema
import pytest

from meetings.domain import commands
from meetings.domain.errors import Conflict, Invalid, NotFound
from meetings.domain.model import AgendaItem, Meeting, Venue
from meetings.entrypoints import subscribers
from meetings.service_layer import handlers
from meetings.service_layer.translator import to_contract
from netvaerk_shared import contracts
from netvaerk_shared.consumer import Unprocessable
from netvaerk_shared.contracts.__main__ import schema_for
from netvaerk_shared.envelope import make_event, parse_event, to_bytes
from netvaerk_testing.fakes import FakeUnitOfWork

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CPH = timezone(timedelta(hours=1))


class FakeStore:
    def __init__(self, groups=()):
        self.groups: dict = {
            g: ("Offentlig digitalisering øst", "offentlig-digitalisering-oest", "Øst") for g in groups
        }
        self.members: dict = {}
        self.meetings: dict = {}
        self.status: dict = {}  # group id -> open / closed / archived (group.updated)


class FakeMeetings:
    def __init__(self, store: FakeStore):
        self.store = store
        self.seen = []

    async def add(self, meeting):
        self.store.meetings[meeting.id] = meeting
        self.seen.append(meeting)


class FakeRosters:
    def __init__(self, store: FakeStore):
        self.store = store

    async def group_known(self, group_id):
        return group_id in self.store.groups

    async def record_group(self, group_id, name, slug, region):
        self.store.groups.setdefault(group_id, (name, slug, region))

    async def record_group_change(self, group_id, name, slug, region, status):
        if self.store.status.get(group_id) != "archived":
            self.store.groups[group_id] = (name, slug, region)
            self.store.status[group_id] = status

    async def group_archived(self, group_id):
        return self.store.status.get(group_id) == "archived"

    async def record_membership(self, group_id, member_id, role, joined_at):
        self.store.members[(group_id, member_id)] = (role, joined_at)

    async def record_memberships(self, rows):
        for group_id, member_id, role, joined_at in rows:
            self.store.members[(group_id, member_id)] = (role, joined_at)


class FakeRepositories:
    def __init__(self, store: FakeStore):
        self.meetings = FakeMeetings(store)
        self.rosters = FakeRosters(store)

    @property
    def seen(self):
        return self.meetings.seen


def command(group_id, **overrides):
    args = dict(
        group_id=group_id,
        title="Forårsmøde: data, AI og ansvar",
        starts_at=datetime(2027, 3, 11, 16, 0, tzinfo=CPH),
        ends_at=datetime(2027, 3, 11, 18, 0, tzinfo=CPH),
        venue=Venue(name="Rådhuset", address="Rådhuspladsen 1, 1550 København V", host_organisation="Eksempel Kommune"),
        capacity=40,
        agenda=(
            AgendaItem(kind="check_in", title="Runde", minutes=20),
            AgendaItem(
                kind="talk",
                title="AI i sagsbehandlingen",
                minutes=40,
                speaker="Mette Eksempel",
                speaker_organisation="Eksempel Kommune",
                tags=("ai",),
            ),
        ),
    )
    args.update(overrides)
    return commands.ScheduleMeeting(**args)


def unit_of_work(store, clock=lambda: NOW) -> FakeUnitOfWork:
    return FakeUnitOfWork(repositories=lambda conn: FakeRepositories(store), translate=to_contract, clock=clock)


async def test_scheduling_saves_the_meeting_and_publishes_meeting_scheduled_in_the_same_unit_of_work():
    group = uuid4()
    store = FakeStore([group])
    uow = unit_of_work(store)
    meeting = await handlers.handle(command(group), uow)
    assert store.meetings == {meeting.id: meeting}
    assert uow.committed
    assert meeting.events == []  # handed over to the outbox
    [event] = uow.published
    assert isinstance(event, contracts.MeetingScheduled)
    assert event.meeting_id == meeting.id and event.group_id == group
    assert event.sequence == 0
    assert event.starts_at == datetime(2027, 3, 11, 15, 0, tzinfo=UTC)
    assert event.starts_at.utcoffset() == timedelta(0)
    assert event.ends_at == datetime(2027, 3, 11, 17, 0, tzinfo=UTC)
    assert [(a.position, a.kind, a.title) for a in event.agenda] == [
        (1, contracts.AgendaKind.check_in, "Runde"),
        (2, contracts.AgendaKind.talk, "AI i sagsbehandlingen"),
    ]
    assert event.nats_subject() == f"meetings.meeting.scheduled.v1.{meeting.id}"


async def test_an_unknown_group_is_not_found_and_nothing_is_committed_or_published():
    store = FakeStore()
    uow = unit_of_work(store)
    group = uuid4()
    with pytest.raises(NotFound, match="unknown to the meetings service"):
        await handlers.handle(command(group), uow)
    assert uow.rolled_back and not uow.committed
    assert uow.published == [] and store.meetings == {}


async def test_an_archived_group_takes_no_new_meeting_and_nothing_is_committed_or_published():
    group = uuid4()
    store = FakeStore([group])
    updated = contracts.GroupUpdated(
        group_id=group,
        name="Offentlig digitalisering øst (arkiv)",
        slug="offentlig-digitalisering-oest",
        region="Øst",
        description="",
        status="archived",
    )
    await subscribers.on_group_updated(unit_of_work(store), make_event(updated), updated)
    assert store.groups[group][0] == "Offentlig digitalisering øst (arkiv)"
    uow = unit_of_work(store)
    with pytest.raises(Conflict, match="archived"):
        await handlers.handle(command(group), uow)
    assert uow.rolled_back and not uow.committed
    assert uow.published == [] and store.meetings == {}


async def test_a_broken_rule_is_refused_before_the_database_is_touched():
    uow = unit_of_work(FakeStore())
    with pytest.raises(Invalid):
        await handlers.handle(command(uuid4(), ends_at=datetime(2027, 3, 11, 15, 0, tzinfo=CPH)), uow)
    assert not uow.entered


async def test_the_clock_decides_what_is_past():
    group = uuid4()
    later = datetime(2027, 6, 1, tzinfo=UTC)
    with pytest.raises(Invalid, match="past"):
        await handlers.handle(command(group), unit_of_work(FakeStore([group]), clock=lambda: later))


def test_the_contract_matches_the_published_json_schema_and_survives_the_envelope():
    meeting = Meeting.schedule(
        group_id=uuid4(),
        title="Møde",
        now=NOW,
        starts_at=datetime(2027, 3, 11, 16, 0, tzinfo=CPH),
        ends_at=datetime(2027, 3, 11, 18, 0, tzinfo=CPH),
        online_url="https://meet.example.org/x",
        agenda=[AgendaItem(kind="break", title="Kaffe", minutes=15)],
    )
    data = to_contract(meeting.events[0], meeting)
    jsonschema.validate(data.model_dump(mode="json"), schema_for(contracts.MeetingScheduled))
    assert data.venue is None
    assert data.agenda[0].kind is contracts.AgendaKind.break_
    event, parsed = parse_event(to_bytes(make_event(data)))
    assert event.type == "dk.danskit.meeting.scheduled.v1" and event.source == "/meetings"
    assert event.subject == str(meeting.id)
    assert parsed == data


def test_the_translator_refuses_what_it_does_not_know():
    with pytest.raises(TypeError):
        to_contract(object(), None)


# -- the roster copy -------------------------------------------------------------------------------------------
async def test_roster_commands_reach_the_repository():
    store = FakeStore()
    group, member = uuid4(), uuid4()
    joined = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    await handlers.handle(
        commands.RecordGroup(group_id=group, name="Netværk Vest", slug="netvaerk-vest", region="Vest"),
        unit_of_work(store),
    )
    await handlers.handle(
        commands.RecordMembership(group_id=group, member_id=member, role="coordinator", joined_at=joined),
        unit_of_work(store),
    )
    assert store.groups == {group: ("Netværk Vest", "netvaerk-vest", "Vest")}
    assert store.members == {(group, member): ("coordinator", joined)}


async def test_member_joined_becomes_a_record_membership_command(monkeypatch):
    seen = []

    async def record_membership(cmd, uow):
        seen.append((cmd, uow))

    monkeypatch.setitem(handlers.HANDLERS, commands.RecordMembership, record_membership)
    data = contracts.MemberJoined(
        member_id=uuid4(), group_id=uuid4(), role="coordinator", joined_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    )
    uow = object()
    await subscribers.on_member_joined(uow, make_event(data), data)
    assert seen == [
        (
            commands.RecordMembership(
                group_id=data.group_id, member_id=data.member_id, role="coordinator", joined_at=data.joined_at
            ),
            uow,
        )
    ]


async def test_group_created_becomes_a_record_group_command(monkeypatch):
    seen = []

    async def record_group(cmd, uow):
        seen.append(cmd)

    monkeypatch.setitem(handlers.HANDLERS, commands.RecordGroup, record_group)
    data = contracts.GroupCreated(
        group_id=uuid4(), name="Netværk Øst", slug="netvaerk-oest", region="Øst", description="", topics=("SKI",)
    )
    await subscribers.on_group_created(object(), make_event(data), data)
    assert seen == [
        commands.RecordGroup(group_id=data.group_id, name="Netværk Øst", slug="netvaerk-oest", region="Øst")
    ]


async def test_group_updated_becomes_a_record_group_change_command(monkeypatch):
    seen = []

    async def record_group_change(cmd, uow):
        seen.append(cmd)

    monkeypatch.setitem(handlers.HANDLERS, commands.RecordGroupChange, record_group_change)
    data = contracts.GroupUpdated(
        group_id=uuid4(), name="Netværk Øst", slug="netvaerk-oest", region="Øst", description="", status="closed"
    )
    await subscribers.on_group_updated(object(), make_event(data), data)
    assert seen == [
        commands.RecordGroupChange(
            group_id=data.group_id, name="Netværk Øst", slug="netvaerk-oest", region="Øst", status="closed"
        )
    ]


async def test_a_batch_of_member_joined_is_recorded_in_one_unit_of_work():
    store, group, first, second = FakeStore(), uuid4(), uuid4(), uuid4()
    joined = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    batch = [
        contracts.MemberJoined(member_id=member, group_id=group, role="member", joined_at=joined)
        for member in (first, second)
    ]
    uow = unit_of_work(store)
    await subscribers.on_members_joined(uow, [(make_event(data), data) for data in batch])
    assert uow.committed and uow.published == []
    assert store.members == {(group, first): ("member", joined), (group, second): ("member", joined)}


async def test_a_member_joined_without_a_utc_offset_is_unprocessable_not_retried():
    data = contracts.MemberJoined(
        member_id=uuid4(), group_id=uuid4(), role="member", joined_at=datetime(2026, 11, 1, 12, 0)
    )
    with pytest.raises(Unprocessable):
        await subscribers.on_member_joined(object(), make_event(data), data)
