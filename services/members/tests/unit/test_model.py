"""The rules of groups and members, with no database and the clock passed in."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from members.domain import events
from members.domain.errors import Conflict, Invalid
from members.domain.model import Group, Member, Organisation, slugify

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
KOMMUNE = Organisation(id=uuid4(), name="Eksempel Kommune", kind="public_authority")


def group(**overrides) -> Group:
    args = dict(name="Offentlig digitalisering øst", region="Øst")
    args.update(overrides)
    return Group.create(**args)


def register(**overrides) -> Member:
    args = dict(
        name="Mette Eksempel",
        email="mette@example.org",
        organisation=KOMMUNE,
        job_title="Kontorchef",
        locale="da",
        now=NOW,
    )
    args.update(overrides)
    return Member.register(**args)


# -- slugs -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Offentlig digitalisering øst", "offentlig-digitalisering-oest"),
        ("Ærø og Åbenrå", "aeroe-og-aabenraa"),
        ("ØSTJYLLAND", "oestjylland"),
        ("  IT-sikkerhed & GDPR!  ", "it-sikkerhed-gdpr"),
        ("Café Réseau", "cafe-reseau"),
        ("Netværk 2027", "netvaerk-2027"),
    ],
)
def test_slugify_spells_danish_letters_out_and_keeps_single_hyphens(name, slug):
    assert slugify(name) == slug


# -- groups ------------------------------------------------------------------------------------------------------
def test_a_new_group_gets_a_slug_from_its_name_tidy_fields_and_records_group_created():
    g = group(
        name="  Offentlig digitalisering øst ",
        region=" Øst ",
        description=" Om SKI-aftaler ",
        topics=(" SKI ", " ", "AI"),
        capacity=30,
    )
    assert (g.name, g.slug, g.region, g.description) == (
        "Offentlig digitalisering øst",
        "offentlig-digitalisering-oest",
        "Øst",
        "Om SKI-aftaler",
    )
    assert g.topics == ("SKI", "AI")
    assert g.capacity == 30
    assert g.events == [events.GroupCreated(g.id)]


def test_an_explicit_slug_wins_over_the_name():
    assert group(slug="oest").slug == "oest"


@pytest.mark.parametrize("name", ["", "   "])
def test_a_group_needs_a_name(name):
    with pytest.raises(Invalid, match="name"):
        group(name=name)


@pytest.mark.parametrize("slug", ["Store Bogstaver", "to--bindestreger", "-foran", "bagved-", "øst", "a_b", "   "])
def test_a_bad_slug_is_refused(slug):
    with pytest.raises(Invalid, match="slug"):
        group(slug=slug)


@pytest.mark.parametrize("name", ["!!!", "🙂🙂", "日本語"])
def test_a_name_with_nothing_to_slug_gets_a_generated_slug_never_an_empty_one(name):
    created = group(name=name)
    assert created.slug == f"gruppe-{created.id.hex[:8]}"


def test_a_long_name_gets_a_slug_within_the_limit_that_does_not_end_in_a_hyphen():
    created = group(name="Offentlig digitalisering " * 10)
    assert len(created.slug) <= 100 and not created.slug.endswith("-")
    assert created.slug.startswith("offentlig-digitalisering-")


@pytest.mark.parametrize("capacity", [0, -5])
def test_capacity_must_be_at_least_one(capacity):
    with pytest.raises(Invalid, match="Capacity"):
        group(capacity=capacity)


def test_a_capacity_of_one_and_no_capacity_are_both_fine():
    assert group(capacity=1).capacity == 1
    assert group().capacity is None


# -- members -----------------------------------------------------------------------------------------------------
def test_registering_lower_cases_the_email_keeps_the_clock_time_and_records_member_registered():
    m = register(name=" Mette Eksempel ", email="  Mette.Eksempel@Example.ORG ", phone="+45 12 34 56 78")
    assert m.email == "mette.eksempel@example.org"
    assert m.name == "Mette Eksempel"
    assert m.registered_at == NOW
    assert m.phone == "+45 12 34 56 78"
    assert m.memberships == {}
    assert m.events == [events.MemberRegistered(m.id)]


def test_each_member_gets_its_own_id():
    assert register().id != register().id


@pytest.mark.parametrize("locale", ["de", "DA", "", "dk"])
def test_a_bad_locale_is_refused(locale):
    with pytest.raises(Invalid, match="Locale"):
        register(locale=locale)


@pytest.mark.parametrize("kind", ["ngo", "Supplier", ""])
def test_a_bad_organisation_kind_is_refused(kind):
    with pytest.raises(Invalid, match="Organisation kind"):
        register(organisation=Organisation(id=uuid4(), name="Eksempel Forening", kind=kind))


@pytest.mark.parametrize("name", ["", "  "])
def test_a_member_needs_a_name(name):
    with pytest.raises(Invalid, match="name"):
        register(name=name)


# -- joining -----------------------------------------------------------------------------------------------------
def test_joining_records_the_role_and_member_joined_at_the_given_time():
    m, g = register(), group()
    m.events.clear()
    m.join(g, "coordinator", NOW)
    assert m.memberships == {g.id: "coordinator"}
    assert m.events == [events.MemberJoined(m.id, g.id, "coordinator", NOW)]


def test_joining_the_same_group_twice_is_a_conflict_whatever_the_role_and_changes_nothing():
    m, g = register(), group()
    m.join(g, "member", NOW)
    before = list(m.events)
    with pytest.raises(Conflict, match="already a member"):
        m.join(g, "coordinator", NOW)
    assert m.memberships == {g.id: "member"}
    assert m.events == before


def test_one_member_may_join_several_groups():
    m, east, west = register(), group(), group(name="Netværk Vest")
    m.join(east, "member", NOW)
    m.join(west, "coordinator", NOW)
    assert m.memberships == {east.id: "member", west.id: "coordinator"}


@pytest.mark.parametrize("role", ["admin", "Member", ""])
def test_a_bad_role_is_refused_and_nothing_is_joined(role):
    m, g = register(), group()
    m.events.clear()
    with pytest.raises(Invalid, match="Role"):
        m.join(g, role, NOW)
    assert m.memberships == {}
    assert m.events == []
