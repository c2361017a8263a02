"""The rules of seats, requests, the waiting list, transfers, the right to join and consents: pure domain, clock
passed in; and the handlers' cascades through the fakes."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from members.domain import commands, events
from members.domain.errors import Conflict, Forbidden, Invalid, NotFound
from members.domain.model import Group, Member, Organisation, check_cvr, cvr_error
from netvaerk_shared import contracts

from .test_handlers import FakeStore, register_cmd, run, unit_of_work

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
KOMMUNE = Organisation(id=uuid4(), name="Eksempel Kommune", kind="public_authority")
LEVERANDOER = Organisation(id=uuid4(), name="Eksempel Leverandør A/S", kind="supplier")


def person(org=KOMMUNE, **overrides) -> Member:
    args = dict(name="Mette Eksempel", email=f"{uuid4().hex[:8]}@example.org", organisation=org, job_title="Chef")
    args.update(overrides)
    m = Member.register(locale="da", now=NOW, **args)
    m.events.clear()
    return m


def group(**overrides) -> Group:
    g = Group.create(name="Offentlig digitalisering øst", region="Øst", **overrides)
    g.events.clear()
    return g


# -- CVR ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cvr", ["12345674", "29341850", "10000009"])
def test_a_cvr_number_whose_modulus_11_check_holds_is_valid(cvr):
    assert cvr_error(cvr) is None and check_cvr(cvr) == cvr


@pytest.mark.parametrize("cvr", ["12345678", "1234567", "123456789", "1234567a", "١٢٣٤٥٦٧٤"])
def test_anything_else_is_not_a_cvr_number(cvr):
    with pytest.raises(Invalid, match="CVR"):
        check_cvr(cvr)


def test_no_cvr_is_fine():
    assert check_cvr(None) is None


# -- the right to join -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("own", "organisations", "may"),
    [
        ("active", None, True),
        ("lapsed", None, False),
        ("ended", "active", True),
        ("lapsed", "lapsed", False),
        ("active", "ended", True),
    ],
)
def test_the_right_to_join_comes_from_the_own_or_the_organisations_active_membership(own, organisations, may):
    org = Organisation(id=uuid4(), name="Eksempel A/S", kind="supplier", membership_status=organisations)
    m = person(org)
    m.status = own
    assert m.may_join_groups is may
    g = group()
    if may:
        assert g.request_join(m, "member", NOW, approved=True) == "joined"
    else:
        with pytest.raises(Conflict, match="no active association membership"):
            g.request_join(m, "member", NOW, approved=True)
        assert g.roster == {} and g.events == [] and m.events == []


def test_an_organisation_records_its_membership_change():
    org = Organisation(id=uuid4(), name="Eksempel A/S", kind="supplier")
    org.set_membership("active", date(2027, 12, 31))
    assert org.membership_active
    assert org.events == [events.OrganisationMembershipChanged(org.id, "active", date(2027, 12, 31))]
    with pytest.raises(Invalid):
        org.set_membership("paused", None)


# -- seats -------------------------------------------------------------------------------------------------------
def test_a_full_group_puts_joins_on_a_waiting_list_first_come_first_served():
    g = group(capacity=2)
    a, b, c, d = person(), person(), person(), person()
    outcomes = [
        g.request_join(m, "member", NOW + timedelta(minutes=i), approved=True) for i, m in enumerate((a, b, c, d))
    ]
    assert outcomes == ["joined", "joined", "waitlisted", "waitlisted"]
    assert list(g.roster) == [a.id, b.id] and [r.member_id for r in g.queue] == [c.id, d.id]
    assert g.next_in_line() is None  # no free seat
    g.leave(a.id, "left", NOW)
    assert g.next_in_line() == c.id
    g.promote(c, NOW)
    assert list(g.roster) == [b.id, c.id] and [r.member_id for r in g.queue] == [d.id]
    assert [type(e) for e in g.events] == [events.MemberJoinRequested, events.MemberJoinRequested, events.MemberLeft]
    assert c.events == [events.MemberJoined(c.id, g.id, "member", NOW)]


def test_a_full_group_is_a_conflict_for_a_caller_who_will_not_wait():
    g = group(capacity=1)
    g.request_join(person(), "member", NOW, approved=True)
    with pytest.raises(Conflict, match="full"):
        g.request_join(person(), "member", NOW, approved=True, waitlist=False)
    assert g.queue == []


def test_a_group_that_asks_for_approval_holds_a_request_until_approved_and_a_full_one_then_waitlists():
    g = group(requires_approval=True, capacity=1)
    a, b = person(), person()
    assert g.request_join(a, "member", NOW, approved=False) == "pending"
    assert g.request_join(b, "member", NOW, approved=False) == "pending"
    with pytest.raises(Conflict, match="awaits a coordinator"):
        g.request_join(a, "member", NOW, approved=False)
    assert g.approve(a, NOW) == "joined"
    assert g.approve(b, NOW) == "waitlisted"
    assert [(r.member_id, r.status) for r in g.queue] == [(b.id, "waitlisted")]
    with pytest.raises(NotFound):
        g.approve(b, NOW)  # no longer pending
    g.decline(b.id, "Kun for kommuner")
    assert g.queue == [] and g.events[-1] == events.MemberJoinDeclined(b.id, g.id, "Kun for kommuner")


def test_leaving_without_a_seat_withdraws_a_request_or_is_not_found():
    g = group(requires_approval=True)
    a = person()
    g.request_join(a, "member", NOW, approved=False)
    g.leave(a.id, "left", NOW)
    assert g.queue == [] and g.events[-1] == events.MemberJoinDeclined(a.id, g.id, "withdrawn")
    with pytest.raises(NotFound):
        g.leave(a.id, "left", NOW)


def test_closed_groups_take_no_one_and_archived_groups_change_no_more():
    g = group()
    m = person()
    g.request_join(m, "member", NOW, approved=True)
    g.update({"status": "closed"})
    with pytest.raises(Conflict, match="closed"):
        g.request_join(person(), "member", NOW, approved=True)
    g.leave(m.id, "left", NOW)  # leaving a closed group is fine
    g.update({"status": "archived"})
    for change in (
        lambda: g.update({"name": "Nyt"}),
        lambda: g.request_join(person(), "member", NOW, approved=True),
        lambda: g.change_role(m.id, "coordinator"),
    ):
        with pytest.raises(Conflict, match="archived"):
            change()


def test_roles_change_only_for_seat_holders_and_the_same_role_records_nothing():
    g, m = group(), person()
    g.request_join(m, "member", NOW, approved=True)
    assert g.change_role(m.id, "coordinator") is True
    assert g.change_role(m.id, "coordinator") is False
    assert g.events[-1] == events.MemberRoleChanged(m.id, g.id, "coordinator")
    with pytest.raises(Invalid):
        g.change_role(m.id, "owner")
    with pytest.raises(NotFound):
        g.change_role(uuid4(), "member")


def test_only_coordinators_and_the_administration_manage_a_group():
    g, boss, m = group(), person(), person()
    g.request_join(boss, "coordinator", NOW, approved=True)
    g.request_join(m, "member", NOW, approved=True)
    g.require_manager(None)
    g.require_manager(boss.id)
    for actor in (m.id, uuid4()):
        with pytest.raises(Forbidden):
            g.require_manager(actor)


# -- seat transfer -----------------------------------------------------------------------------------------------
def test_a_seat_goes_to_a_colleague_in_a_full_group_and_records_transfer_leave_join_in_that_order():
    g = group(capacity=1)
    holder, colleague = person(), person()
    g.request_join(holder, "coordinator", NOW, approved=True)
    g.events.clear()
    g.transfer_seat(holder, colleague, NOW)
    assert g.roster.keys() == {colleague.id} and g.roster[colleague.id].role == "member"
    assert g.events == [
        events.SeatTransferred(g.id, KOMMUNE.id, holder.id, colleague.id),
        events.MemberLeft(holder.id, g.id, NOW, "seat_transferred"),
    ]
    assert colleague.events == [events.MemberJoined(colleague.id, g.id, "member", NOW)]


@pytest.mark.parametrize("case", ["other organisation", "already a member", "no seat", "no right"])
def test_a_seat_transfer_is_refused_and_nothing_changes(case):
    g = group()
    holder, colleague = person(), person()
    g.request_join(holder, "member", NOW, approved=True)
    if case == "other organisation":
        colleague, error = person(LEVERANDOER), Conflict
    elif case == "already a member":
        g.request_join(colleague, "member", NOW, approved=True)
        error = Conflict
    elif case == "no seat":
        holder, error = person(), NotFound
    else:
        colleague.status, error = "lapsed", Conflict
    roster, recorded = dict(g.roster), list(g.events)
    with pytest.raises(error):
        g.transfer_seat(holder, colleague, NOW)
    assert g.roster == roster and g.events == recorded


# -- profile and consents ----------------------------------------------------------------------------------------
def test_consents_are_the_full_set_a_new_one_is_dated_now_a_kept_one_keeps_its_date():
    m = Member.register(
        name="Mette",
        email="m@example.org",
        organisation=KOMMUNE,
        job_title="x",
        locale="da",
        now=NOW,
        consents=["news"],
    )
    later = NOW + timedelta(days=3)
    m.update(later, consents=["news", "show_email"])
    assert m.consents == {"news": NOW, "show_email": later}
    m.update(later, consents=["show_email"])
    assert m.consents == {"show_email": later}
    with pytest.raises(Invalid, match="consent"):
        m.update(later, consents=["spam"])


def test_an_update_changes_only_what_is_given_and_records_member_updated():
    m = person(phone="+45 11 22 33 44")
    m.update(NOW, job_title=" Direktør ")
    assert m.job_title == "Direktør" and m.phone == "+45 11 22 33 44"
    m.update(NOW, phone=None, email=" Ny@Example.org ")
    assert m.phone is None and m.email == "ny@example.org"
    assert m.events == [events.MemberUpdated(m.id, NOW), events.MemberUpdated(m.id, NOW)]
    with pytest.raises(Invalid):
        m.update(NOW, status="paused")


# -- handlers: the cascades --------------------------------------------------------------------------------------
async def test_a_lapsed_member_leaves_every_group_and_the_first_waiting_takes_the_seat_in_one_unit_of_work():
    store = FakeStore()
    g1 = await run(commands.CreateGroup(name="Netværk øst", region="Øst", capacity=1), store)
    g2 = await run(commands.CreateGroup(name="Netværk vest", region="Vest"), store)
    m = await run(register_cmd(email="m@example.org"), store)
    w = await run(register_cmd(email="w@example.org"), store)
    for gid in (g1.id, g2.id):
        await run(commands.JoinGroup(member_id=m.id, group_id=gid), store)
    assert await run(commands.JoinGroup(member_id=w.id, group_id=g1.id, actor=w.id), store) == "waitlisted"
    uow = unit_of_work(store)
    await run(commands.UpdateMember(member_id=m.id, changes={"status": "lapsed"}), store, uow)
    assert set(store.memberships) == {(w.id, g1.id)}
    kinds = [(type(e).__name__, getattr(e, "reason", None)) for e in uow.published]
    assert kinds[0] == ("MemberUpdated", None)
    assert sorted(kinds[1:]) == [
        ("MemberJoined", None),
        ("MemberLeft", contracts.LeaveReason.membership_ended),
        ("MemberLeft", contracts.LeaveReason.membership_ended),
    ]


async def test_a_member_may_not_set_their_own_status():
    store = FakeStore()
    m = await run(register_cmd(), store)
    uow = unit_of_work(store)
    with pytest.raises(Forbidden):
        await run(commands.UpdateMember(member_id=m.id, changes={"status": "active"}, actor=m.id), store, uow)
    assert uow.published == []


async def test_an_ended_organisation_membership_takes_the_seats_of_staff_without_their_own():
    store = FakeStore()
    g = await run(commands.CreateGroup(name="Netværk", region="Øst"), store)
    covered = await run(register_cmd(email="c@example.org"), store)
    own = await run(register_cmd(email="o@example.org"), store)
    org = covered.organisation
    await run(commands.SetOrganisationMembership(organisation_id=org.id, status="active"), store)
    await run(commands.UpdateMember(member_id=covered.id, changes={"status": "ended"}), store)
    for m in (covered, own):
        await run(commands.JoinGroup(member_id=m.id, group_id=g.id), store)
    uow = unit_of_work(store)
    await run(commands.SetOrganisationMembership(organisation_id=org.id, status="ended"), store, uow)
    assert set(store.memberships) == {(own.id, g.id)}
    assert [type(e) for e in uow.published] == [contracts.OrganisationMembershipChanged, contracts.MemberLeft]
    assert uow.published[1].member_id == covered.id


async def test_an_invalid_cvr_is_refused_before_anything_is_stored():
    store = FakeStore()
    uow = unit_of_work(store)
    with pytest.raises(Invalid, match="CVR"):
        await run(register_cmd(organisation_cvr="12345678"), store, uow)
    assert store.organisations == {} and store.members == {} and uow.published == []


# -- the new contracts -------------------------------------------------------------------------------------------
def test_every_new_event_translates_to_a_contract_that_validates_against_its_checked_in_schema():
    import json

    import jsonschema

    from members.service_layer.translator import to_contract
    from netvaerk_shared.contracts.__main__ import SCHEMA_DIR

    g, holder, colleague = group(capacity=1), person(), person()
    org = Organisation(id=uuid4(), name="Eksempel A/S", kind="supplier", cvr="29341850")
    g.request_join(holder, "member", NOW, approved=True)
    g.request_join(person(), "member", NOW, approved=True)  # waitlisted
    g.change_role(holder.id, "coordinator")
    g.transfer_seat(holder, colleague, NOW)
    g.decline(g.queue[0].member_id, "Kun for kommuner")
    g.update({"status": "closed"})
    holder.update(NOW, consents=["show_email"])
    org.set_membership("lapsed", date(2027, 1, 31))
    recorded = [(e, g) for e in g.events] + [(e, holder) for e in holder.events] + [(e, org) for e in org.events]
    translated = [to_contract(e, aggregate) for e, aggregate in recorded]
    assert {type(c) for c in translated} == {
        contracts.MemberJoined,
        contracts.MemberJoinRequested,
        contracts.MemberRoleChanged,
        contracts.SeatTransferred,
        contracts.MemberLeft,
        contracts.MemberJoinDeclined,
        contracts.GroupUpdated,
        contracts.MemberUpdated,
        contracts.OrganisationMembershipChanged,
    }
    for data in translated:
        schema = json.loads((SCHEMA_DIR / f"{data.event_type()}.json").read_text(encoding="utf-8"))
        jsonschema.validate(data.model_dump(mode="json"), schema)
        if data.event_type() not in contracts.PERSONAL_DATA_EVENTS:
            assert "example.org" not in data.model_dump_json() and "Mette" not in data.model_dump_json()
    updated = next(c for c in translated if isinstance(c, contracts.MemberUpdated))
    assert updated.email == holder.email and [c.kind for c in updated.consents] == ["show_email"]
    assert (
        next(c for c in translated if isinstance(c, contracts.SeatTransferred))
        .nats_subject()
        .startswith(f"members.seat.transferred.v1.{g.id}")
    )
