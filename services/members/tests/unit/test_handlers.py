"""Service layer with small fakes: what each command saves, what it publishes, and what it refuses."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from uuid import uuid4

import jsonschema
import pytest

from members.adapters.repository import Repository
from members.bootstrap import bootstrap
from members.config import Settings
from members.domain import commands
from members.domain.errors import Conflict, Invalid, NotFound
from members.domain.model import Group, Member, Organisation, Seat
from members.service_layer import handlers
from members.service_layer.translator import to_contract
from netvaerk_shared import contracts
from netvaerk_shared.contracts.__main__ import SCHEMA_DIR, schema_for
from netvaerk_shared.envelope import make_event, parse_event, to_bytes
from netvaerk_testing.fakes import FakeUnitOfWork

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class FakeStore:
    """What the database would hold."""

    def __init__(self):
        self.groups: dict = {}  # id -> Group (without roster and queue)
        self.organisations: dict = {}  # name key -> Organisation
        self.members: dict = {}  # id -> Member (without memberships)
        self.memberships: dict = {}  # (member id, group id) -> (role, joined_at)
        self.requests: dict = {}  # group id -> [JoinRequest] in order


class FakeRepository:
    """The repository's interface over FakeStore; one object per id and unit of work, as the real one."""

    def __init__(self, store: FakeStore):
        self.store = store
        self.seen = []
        self._groups, self._members = {}, {}

    async def add_group(self, group):
        self.store.groups[group.id] = replace(group, roster={}, queue=[], events=[])
        self._groups[group.id] = group
        self.seen.append(group)

    async def group_slug_taken(self, slug, other_than=None):
        return any(g.slug == slug and g.id != other_than for g in self.store.groups.values())

    async def get_group(self, group_id, lock=False):
        if group_id in self._groups:
            return self._groups[group_id]
        g = self.store.groups.get(group_id)
        if g is None:
            return None
        roster = {m: Seat(role, at) for (m, gid), (role, at) in self.store.memberships.items() if gid == group_id}
        group = replace(g, roster=roster, queue=list(self.store.requests.get(group_id, [])), events=[])
        self._groups[group_id] = group
        self.seen.append(group)
        return group

    async def save_group(self, group):
        self.store.groups[group.id] = replace(group, roster={}, queue=[], events=[])
        for key in [k for k in self.store.memberships if k[1] == group.id and k[0] not in group.roster]:
            del self.store.memberships[key]
        for member_id, seat in group.roster.items():
            self.store.memberships[(member_id, group.id)] = (seat.role, seat.joined_at)
        self.store.requests[group.id] = list(group.queue)

    async def groups_of(self, member_id):
        ids = {g for (m, g) in self.store.memberships if m == member_id}
        ids |= {g for g, queue in self.store.requests.items() if any(r.member_id == member_id for r in queue)}
        return sorted(ids, key=str)

    async def organisation(self, name, kind, cvr, new_id):
        key = " ".join(name.lower().split())
        if key not in self.store.organisations:
            self.store.organisations[key] = Organisation(id=new_id(), name=" ".join(name.split()), kind=kind, cvr=cvr)
        return self.store.organisations[key]

    async def get_organisation(self, organisation_id, lock=False):
        org = next((o for o in self.store.organisations.values() if o.id == organisation_id), None)
        if org is not None:
            self.seen.append(org)
        return org

    async def save_organisation(self, org):
        """The store holds the object itself; its name key moves with its name, unless another one holds that key."""
        old_key = next(k for k, o in self.store.organisations.items() if o.id == org.id)
        new_key = " ".join(org.name.lower().split())
        if new_key != old_key:
            if new_key in self.store.organisations:
                return False  # the unique constraint on organisations.name_key
            self.store.organisations[new_key] = self.store.organisations.pop(old_key)
        return True

    async def save_organisation_membership(self, org):
        pass  # the store holds the object itself

    async def members_of_organisation(self, organisation_id):
        return sorted((m.id for m in self.store.members.values() if m.organisation.id == organisation_id), key=str)

    async def add_member(self, member):
        if any(m.email == member.email for m in self.store.members.values()):
            return False  # the unique constraint on members.email
        self.store.members[member.id] = member
        self._members[member.id] = member
        self.seen.append(member)
        return True

    async def email_taken(self, email, other_than):
        return any(m.email == email and m.id != other_than for m in self.store.members.values())

    async def get_member(self, member_id, lock=False):
        if member_id in self._members:
            return self._members[member_id]
        m = self.store.members.get(member_id)
        if m is None:
            return None
        roles = {g: role for (mid, g), (role, _) in self.store.memberships.items() if mid == member_id}
        member = replace(m, memberships=roles, consents=dict(m.consents), events=[])  # a fresh load
        self._members[member_id] = member
        self.seen.append(member)
        return member

    async def save_member(self, member):
        self.store.members[member.id] = replace(member, memberships={}, events=[])


def repository_on(store, conns=None):
    def factory(conn):
        if conns is not None:
            conns.append(conn)
        return FakeRepository(store)

    return factory


def register_cmd(**overrides) -> commands.RegisterMember:
    args = dict(
        name="Mette Eksempel",
        email="Mette@Example.org",
        organisation_name="Eksempel Kommune",
        organisation_kind="public_authority",
        organisation_cvr="12345674",
        job_title="Kontorchef",
        locale="da",
        phone="+45 12 34 56 78",
    )
    args.update(overrides)
    return commands.RegisterMember(**args)


def unit_of_work(store, clock=lambda: NOW, conns=None) -> FakeUnitOfWork:
    return FakeUnitOfWork(repositories=repository_on(store, conns), translate=to_contract, clock=clock)


async def run(cmd, store, uow=None):
    return await handlers.handle(cmd, uow or unit_of_work(store))


def test_the_bootstrap_gives_the_units_of_work_the_real_repository_and_translator(tmp_path):
    runtime = bootstrap(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/members.db"))
    assert runtime.repositories is Repository and runtime.translate is to_contract


# -- groups ------------------------------------------------------------------------------------------------------
async def test_creating_a_group_saves_it_and_publishes_group_created_on_the_unit_of_works_connection():
    store, conns = FakeStore(), []
    uow = unit_of_work(store, conns=conns)
    g = await handlers.handle(
        commands.CreateGroup(name="Offentlig digitalisering øst", region="Øst", topics=("SKI", "AI"), capacity=40),
        uow,
    )
    assert conns == [uow.conn]
    assert store.groups == {g.id: g}
    assert uow.committed and g.events == []
    [event] = uow.published
    assert event == contracts.GroupCreated(
        group_id=g.id,
        name="Offentlig digitalisering øst",
        slug="offentlig-digitalisering-oest",
        region="Øst",
        description="",
        topics=("SKI", "AI"),
        capacity=40,
        requires_approval=False,
    )


@pytest.mark.parametrize("slug", [None, "offentlig-digitalisering-oest"])
async def test_a_taken_slug_is_a_conflict_and_nothing_is_saved_or_published(slug):
    store = FakeStore()
    first = await run(commands.CreateGroup(name="Offentlig digitalisering øst", region="Øst"), store)
    uow = unit_of_work(store)
    with pytest.raises(Conflict, match="offentlig-digitalisering-oest"):
        await run(commands.CreateGroup(name="Offentlig Digitalisering ØST", region="Øst", slug=slug), store, uow)
    assert uow.rolled_back and not uow.committed
    assert uow.published == []
    assert list(store.groups) == [first.id]


async def test_an_invalid_group_is_refused_and_nothing_is_published():
    store = FakeStore()
    uow = unit_of_work(store)
    with pytest.raises(Invalid):
        await run(commands.CreateGroup(name="Netværk", region="Øst", capacity=0), store, uow)
    assert not uow.committed and uow.published == [] and store.groups == {}


# -- members -----------------------------------------------------------------------------------------------------
async def test_registering_publishes_member_registered_with_the_contact_data():
    store = FakeStore()
    uow = unit_of_work(store)
    m = await run(register_cmd(), store, uow)
    assert store.members == {m.id: m}
    assert uow.committed
    [event] = uow.published
    assert isinstance(event, contracts.MemberRegistered)
    assert event.member_id == m.id
    assert (event.name, event.email, event.phone, event.job_title) == (
        "Mette Eksempel",
        "mette@example.org",
        "+45 12 34 56 78",
        "Kontorchef",
    )
    assert event.locale is contracts.Locale.da
    assert event.registered_at == NOW
    assert event.organisation == contracts.Organisation(
        id=m.organisation.id, name="Eksempel Kommune", kind=contracts.OrganisationKind.public_authority, cvr="12345674"
    )
    assert event.nats_subject() == f"members.member.registered.v1.{m.id}"


async def test_a_taken_email_is_a_conflict_whatever_its_case_and_nothing_is_published():
    store = FakeStore()
    first = await run(register_cmd(email="mette@example.org"), store)
    uow = unit_of_work(store)
    with pytest.raises(Conflict, match="already registered"):
        await run(register_cmd(name="Mette Anden", email="  METTE@example.org "), store, uow)
    assert uow.rolled_back and not uow.committed and uow.published == []
    assert list(store.members) == [first.id]


@pytest.mark.parametrize("overrides", [{"locale": "de"}, {"organisation_kind": "ngo"}, {"name": " "}])
async def test_an_invalid_registration_is_refused_and_nothing_is_published(overrides):
    store = FakeStore()
    uow = unit_of_work(store)
    with pytest.raises(Invalid):
        await run(register_cmd(**overrides), store, uow)
    assert uow.rolled_back and uow.published == [] and store.members == {}


# -- joining -----------------------------------------------------------------------------------------------------
async def seeded() -> tuple[FakeStore, Group, Member]:
    store = FakeStore()
    g = await run(commands.CreateGroup(name="Offentlig digitalisering øst", region="Øst"), store)
    m = await run(register_cmd(), store)
    return store, g, m


async def test_a_successful_join_publishes_exactly_one_member_joined_with_the_ids_role_and_clock_time():
    store, g, m = await seeded()
    joined_at = datetime(2026, 12, 1, 13, 30, tzinfo=UTC)
    uow = unit_of_work(store, clock=lambda: joined_at)
    await run(commands.JoinGroup(member_id=m.id, group_id=g.id, role="coordinator"), store, uow)
    assert uow.committed
    assert uow.published == [
        contracts.MemberJoined(member_id=m.id, group_id=g.id, role=contracts.Role.coordinator, joined_at=joined_at)
    ]
    assert store.memberships == {(m.id, g.id): ("coordinator", joined_at)}
    assert uow.published[0].nats_subject() == f"members.member.joined.v1.{m.id}"


async def test_joining_twice_is_a_conflict_and_the_second_time_publishes_nothing():
    store, g, m = await seeded()
    await run(commands.JoinGroup(member_id=m.id, group_id=g.id), store)
    uow = unit_of_work(store)
    with pytest.raises(Conflict, match="already a member"):
        await run(commands.JoinGroup(member_id=m.id, group_id=g.id, role="coordinator"), store, uow)
    assert uow.rolled_back and not uow.committed and uow.published == []
    assert store.memberships == {(m.id, g.id): ("member", NOW)}


async def test_joining_an_unknown_group_is_not_found():
    store, _, m = await seeded()
    uow, missing = unit_of_work(store), uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        await run(commands.JoinGroup(member_id=m.id, group_id=missing), store, uow)
    assert uow.published == [] and not uow.committed and store.memberships == {}


async def test_an_unknown_member_cannot_join():
    store, g, _ = await seeded()
    uow, missing = unit_of_work(store), uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        await run(commands.JoinGroup(member_id=missing, group_id=g.id), store, uow)
    assert uow.published == [] and not uow.committed and store.memberships == {}


async def test_a_bad_role_is_refused_and_nothing_is_recorded():
    store, g, m = await seeded()
    uow = unit_of_work(store)
    with pytest.raises(Invalid, match="Role"):
        await run(commands.JoinGroup(member_id=m.id, group_id=g.id, role="admin"), store, uow)
    assert uow.published == [] and store.memberships == {}


# -- the public contract -----------------------------------------------------------------------------------------
def checked_in_schema(cls) -> dict:
    return json.loads((SCHEMA_DIR / f"{cls.event_type()}.json").read_text(encoding="utf-8"))


def translated_events():
    g = Group.create(name="Offentlig digitalisering øst", region="Øst", topics=("SKI",), capacity=25)
    m = Member.register(
        name="Mette Eksempel",
        email="mette@example.org",
        job_title="Kontorchef",
        locale="en",
        organisation=Organisation(id=uuid4(), name="Eksempel Leverandør A/S", kind="supplier", cvr="87654321"),
        now=NOW,
    )
    m.join(g, "member", NOW)
    return [
        (to_contract(g.events[0], g), contracts.GroupCreated),
        (to_contract(m.events[0], m), contracts.MemberRegistered),
        (to_contract(m.events[1], m), contracts.MemberJoined),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["group-created", "member-registered", "member-joined"])
def test_the_translator_output_validates_against_the_checked_in_json_schema_and_survives_the_envelope(index):
    data, cls = translated_events()[index]
    assert type(data) is cls
    schema = checked_in_schema(cls)
    assert schema == schema_for(cls)  # the file in the repository is the contract the code speaks
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(data.model_dump(mode="json"))
    event, parsed = parse_event(to_bytes(make_event(data)))
    assert event.type == cls.event_type() and event.source == "/members"
    assert parsed == data


def test_the_checked_in_schema_would_catch_a_broken_event():
    data, cls = translated_events()[2]
    body = data.model_dump(mode="json") | {"role": "admin"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, checked_in_schema(cls))


def test_the_translator_refuses_what_it_does_not_know():
    with pytest.raises(TypeError):
        to_contract(object(), None)
