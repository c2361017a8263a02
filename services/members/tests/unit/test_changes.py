"""Changes that change nothing record nothing (members, groups, organisations), and an organisation's correction
reaches other services as one member.updated per member of it: pure domain, and the handlers through the fakes."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from members.domain import commands, events
from members.domain.errors import Conflict, Invalid, NotFound
from members.domain.model import UNSET, Group, Member, Organisation
from netvaerk_shared import contracts

from .test_handlers import NOW as REGISTERED
from .test_handlers import FakeStore, register_cmd, run, unit_of_work

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=2)


def member() -> Member:
    org = Organisation(id=uuid4(), name="Eksempel Kommune", kind="public_authority", cvr="12345674")
    m = Member.register(
        name="Mette Eksempel",
        email="mette@example.org",
        organisation=org,
        job_title="Kontorchef",
        locale="da",
        now=NOW,
        phone="+45 12 34 56 78",
        consents=["news", "show_email"],
    )
    m.events.clear()
    return m


# -- the domain --------------------------------------------------------------------------------------------------
def test_a_member_update_to_what_is_stored_records_nothing_and_says_so():
    m = member()
    before = (m.name, m.email, m.phone, m.job_title, m.locale, dict(m.consents), m.status)
    assert m.update(LATER) is False  # nothing given
    assert (
        m.update(
            LATER,
            name=" Mette Eksempel ",
            email=" METTE@example.org",
            phone="+45 12 34 56 78",
            organisation=m.organisation,
            job_title="Kontorchef ",
            locale="da",
            consents=["show_email", "news"],
            status="active",
        )
        is False
    )
    assert m.events == []
    assert (m.name, m.email, m.phone, m.job_title, m.locale, dict(m.consents), m.status) == before  # dates kept


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Mette Anden"},
        {"email": "mette.anden@example.org"},
        {"phone": None},
        {"job_title": "Direktør"},
        {"locale": "en"},
        {"consents": ["news"]},
        {"status": "lapsed"},
    ],
)
def test_a_member_update_that_changes_one_field_records_member_updated_once(change):
    m = member()
    assert m.update(LATER, **change) is True
    assert m.events == [events.MemberUpdated(m.id, LATER)]


def test_the_same_phone_left_out_or_given_is_no_change_but_removing_it_is():
    m = member()
    assert m.update(LATER, phone=UNSET) is False
    assert m.update(LATER, phone=None) is True and m.phone is None
    assert m.update(LATER, phone=None) is False
    assert m.events == [events.MemberUpdated(m.id, LATER)]


def test_a_group_update_to_what_is_stored_records_nothing_even_when_archived():
    g = Group.create(name="Netværk øst", region="Øst", topics=("SKI",), capacity=10)
    g.events.clear()
    same = {
        "name": " Netværk øst",
        "slug": g.slug,
        "region": "Øst ",
        "description": "",
        "topics": ["SKI", " "],
        "capacity": 10,
        "requires_approval": False,
        "status": "open",
    }
    assert g.update({}) is False and g.update(same) is False and g.events == []
    assert g.update({"status": "archived"}) is True
    assert g.update({"status": "archived", "name": "Netværk øst"}) is False  # no change is no change to refuse
    with pytest.raises(Conflict, match="archived"):
        g.update({"name": "Netværk vest"})
    assert g.events == [events.GroupUpdated(g.id)] and g.name == "Netværk øst"


def test_a_group_update_that_changes_a_field_records_group_updated_and_bad_values_are_still_refused():
    g = Group.create(name="Netværk øst", region="Øst")
    g.events.clear()
    assert g.update({"capacity": 5}) is True and g.capacity == 5
    assert g.events == [events.GroupUpdated(g.id)]
    for bad in ({"capacity": 0}, {"slug": "Ikke En Slug"}, {"name": " "}, {"status": "paused"}):
        with pytest.raises(Invalid):
            g.update(bad)
    assert len(g.events) == 1


def test_an_organisation_update_changes_what_is_given_and_says_whether_anything_changed():
    org = Organisation(id=uuid4(), name="Eksempel Kommune", kind="public_authority", cvr="12345674")
    assert org.update() is False
    assert org.update(name=" Eksempel  Kommune ", kind="public_authority", cvr="12345674") is False
    assert org.update(name="Eksempel  Region") is True and org.name == "Eksempel Region"
    assert org.update(kind="other", cvr=None) is True and (org.kind, org.cvr) == ("other", None)
    assert org.update(cvr=UNSET) is False and org.cvr is None
    assert org.events == []  # no contract of its own: its members' profiles carry it


@pytest.mark.parametrize(
    "change,words",
    [({"name": "  "}, "name"), ({"kind": "ngo"}, "kind"), ({"cvr": "12345678"}, "CVR"), ({"cvr": "1234"}, "CVR")],
)
def test_an_organisation_update_refuses_what_registration_refuses(change, words):
    org = Organisation(id=uuid4(), name="Eksempel Kommune", kind="public_authority", cvr="12345674")
    with pytest.raises(Invalid, match=words):
        org.update(**change)


def test_a_member_whose_organisation_changed_records_member_updated():
    m = member()
    renamed = Organisation(id=m.organisation.id, name="Eksempel Region", kind="public_authority")
    m.organisation_changed(renamed, LATER)
    assert m.organisation is renamed and m.events == [events.MemberUpdated(m.id, LATER)]


# -- the handlers ------------------------------------------------------------------------------------------------
async def test_an_empty_or_no_op_member_patch_commits_nothing_and_publishes_nothing():
    store = FakeStore()
    m = await run(register_cmd(consents=("news",)), store)
    stored = store.members[m.id]
    same = {
        "name": "Mette Eksempel",
        "email": "mette@EXAMPLE.org",
        "phone": "+45 12 34 56 78",
        "organisation": {"name": "eksempel  kommune", "kind": "public_authority", "cvr": "12345674"},
        "job_title": "Kontorchef",
        "locale": "da",
        "consents": ["news"],
        "status": "active",
    }
    for changes in ({}, same):
        uow = unit_of_work(store, clock=lambda: LATER)
        await run(commands.UpdateMember(member_id=m.id, changes=changes), store, uow)
        assert uow.committed and uow.published == []
        assert store.members[m.id] is stored  # not even saved again
    assert stored.consents == {"news": REGISTERED}  # the consent keeps the date it was given
    assert len(store.organisations) == 1


async def test_a_real_member_patch_still_publishes_member_updated():
    store = FakeStore()
    m = await run(register_cmd(), store)
    uow = unit_of_work(store)
    await run(commands.UpdateMember(member_id=m.id, changes={"name": "Mette Eksempel", "locale": "en"}), store, uow)
    assert [type(e) for e in uow.published] == [contracts.MemberUpdated]
    assert store.members[m.id].locale == "en"


async def test_an_empty_or_no_op_group_patch_commits_nothing_and_publishes_nothing():
    store = FakeStore()
    g = await run(commands.CreateGroup(name="Netværk øst", region="Øst", capacity=3), store)
    for changes in ({}, {"name": "Netværk øst", "capacity": 3, "status": "open", "slug": g.slug}):
        uow = unit_of_work(store)
        await run(commands.UpdateGroup(group_id=g.id, changes=changes), store, uow)
        assert uow.committed and uow.published == []
    uow = unit_of_work(store)
    await run(commands.UpdateGroup(group_id=g.id, changes={"capacity": 4}), store, uow)
    assert [type(e) for e in uow.published] == [contracts.GroupUpdated]


async def staff() -> tuple[FakeStore, Member, Member, Member]:
    """Two members of Eksempel Kommune, one of Eksempel Leverandør A/S."""
    store = FakeStore()
    a = await run(register_cmd(email="a@example.org"), store)
    b = await run(register_cmd(name="Bent Eksempel", email="b@example.org", consents=("news",)), store)
    c = await run(
        register_cmd(
            email="c@example.org",
            organisation_name="Eksempel Leverandør A/S",
            organisation_kind="supplier",
            organisation_cvr="29341850",
        ),
        store,
    )
    return store, a, b, c


async def test_an_organisation_change_publishes_one_full_member_updated_per_member_of_it_and_no_other():
    store, a, b, c = await staff()
    org = a.organisation.id
    uow = unit_of_work(store, clock=lambda: LATER)
    changes = {"name": "Eksempel Region", "kind": "other", "cvr": None}
    result = await run(commands.UpdateOrganisation(organisation_id=org, changes=changes), store, uow)
    assert (result.id, result.name, result.kind, result.cvr) == (org, "Eksempel Region", "other", None)
    assert uow.committed
    assert [type(e) for e in uow.published] == [contracts.MemberUpdated, contracts.MemberUpdated]
    by_id = {e.member_id: e for e in uow.published}
    assert set(by_id) == {a.id, b.id}  # not c, of another organisation
    for e in by_id.values():
        assert e.organisation == contracts.Organisation(
            id=org, name="Eksempel Region", kind=contracts.OrganisationKind.other, cvr=None
        )
        assert e.updated_at == LATER and e.email.endswith("@example.org") and e.job_title == "Kontorchef"
    assert [c.kind for c in by_id[b.id].consents] == [contracts.ConsentKind.news]  # the full profile
    assert "eksempel region" in store.organisations and "eksempel kommune" not in store.organisations


async def test_a_no_op_organisation_change_publishes_nothing():
    store, a, _, _ = await staff()
    org = a.organisation.id
    for changes in ({}, {"name": "Eksempel  Kommune", "kind": "public_authority", "cvr": "12345674"}):
        uow = unit_of_work(store)
        await run(commands.UpdateOrganisation(organisation_id=org, changes=changes), store, uow)
        assert uow.committed and uow.published == []


async def test_renaming_an_organisation_to_another_ones_name_is_a_conflict_and_publishes_nothing():
    store, a, _, c = await staff()
    uow = unit_of_work(store)
    with pytest.raises(Conflict, match="already registered"):
        await run(
            commands.UpdateOrganisation(organisation_id=c.organisation.id, changes={"name": "EKSEMPEL kommune"}),
            store,
            uow,
        )
    assert uow.rolled_back and not uow.committed and uow.published == []


async def test_a_case_only_rename_of_an_organisation_is_its_own_name_not_a_conflict():
    store, a, _, _ = await staff()
    uow = unit_of_work(store)
    changes = {"name": "EKSEMPEL Kommune"}
    await run(commands.UpdateOrganisation(organisation_id=a.organisation.id, changes=changes), store, uow)
    assert len(uow.published) == 2 and uow.published[0].organisation.name == "EKSEMPEL Kommune"


@pytest.mark.parametrize("changes,error", [({"cvr": "12345678"}, Invalid), ({"kind": "ngo"}, Invalid)])
async def test_an_invalid_organisation_change_is_refused_and_publishes_nothing(changes, error):
    store, a, _, _ = await staff()
    uow = unit_of_work(store)
    with pytest.raises(error):
        await run(commands.UpdateOrganisation(organisation_id=a.organisation.id, changes=changes), store, uow)
    assert uow.rolled_back and uow.published == []


async def test_changing_an_unknown_organisation_is_not_found():
    store, _, _, _ = await staff()
    uow, missing = unit_of_work(store), uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        await run(commands.UpdateOrganisation(organisation_id=missing, changes={"name": "Ny"}), store, uow)
    assert uow.published == [] and not uow.committed
