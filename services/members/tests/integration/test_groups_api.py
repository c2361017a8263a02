"""Seats, roles, join requests, the waiting list, seat transfers, the directory, organisations and the right to join,
through HTTP on PostgreSQL and SQLite with real NATS: what each change answers, what it stores, what it publishes,
who may do it, and that a refused change writes nothing."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from sqlalchemy import func, select

from members.adapters import orm
from members.bootstrap import bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_shared.envelope import parse_event
from netvaerk_testing.plugin import running_app, service_settings, wait_until

KOMMUNE = {"name": "Eksempel Kommune", "kind": "public_authority", "cvr": "12345674"}
LEVERANDOER = {"name": "Eksempel Leverandør A/S", "kind": "supplier", "cvr": "29341850"}


@pytest.fixture
async def service(clean_nats, database_url):
    runtime = bootstrap(service_settings(Settings, database_url, clean_nats))
    async with running_app(create_app(), runtime) as client:
        await wait_until(lambda: runtime.relay is not None, message="relay started")
        yield client, runtime


@pytest.fixture
def client(service):
    return service[0]


def acting(member_id: str) -> dict[str, str]:
    return {"X-Netvaerk-Member": member_id}


_serial = iter(range(1_000_000))


async def member(client, organisation=KOMMUNE, **extra) -> str:
    n = next(_serial)
    body = {
        "name": f"Kollega {n}",
        "email": f"kollega.{n}.{uuid.uuid4().hex[:6]}@example.org",
        "phone": f"+45 12 34 {n:05d}",
        "organisation": organisation,
        "job_title": "Konsulent",
        **extra,
    }
    r = await client.post("/members", json=body)
    assert r.status_code == 201, r.text
    return r.json()["member_id"]


async def group(client, **extra) -> str:
    n = next(_serial)
    r = await client.post("/groups", json={"name": f"Netværk {n}", "region": "Øst", **extra})
    assert r.status_code == 201, r.text
    return r.json()["group_id"]


async def join(client, group_id, member_id, *, as_self=True, **extra):
    headers = acting(member_id) if as_self else {}
    return await client.post(f"/groups/{group_id}/members", json={"member_id": member_id, **extra}, headers=headers)


async def roster(client, group_id) -> dict[str, str]:
    r = await client.get(f"/groups/{group_id}")
    assert r.status_code == 200, r.text
    return {m["member_id"]: m["role"] for m in r.json()["members"]}


async def queue(client, group_id) -> list[tuple[str, str]]:
    r = await client.get(f"/groups/{group_id}/requests")
    assert r.status_code == 200, r.text
    return [(q["member_id"], q["status"]) for q in r.json()]


async def counts(runtime) -> dict[str, int]:
    tables = (
        orm.groups,
        orm.members,
        orm.organisations,
        orm.memberships,
        orm.join_requests,
        orm.consents,
        runtime.tables.outbox,
    )
    async with runtime.engine.connect() as conn:
        return {t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one() for t in tables}


async def events(runtime) -> list[tuple[str, object]]:
    """(type, data) of every event in the outbox, in order."""
    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(select(runtime.tables.outbox.c.body).order_by(runtime.tables.outbox.c.position))
        ).all()
    out = []
    for (body,) in rows:
        event, data = parse_event(body)
        out.append((event.type.removeprefix("dk.danskit.").removesuffix(".v1"), data))
    return out


async def events_after(runtime, before: int) -> list[tuple[str, object]]:
    return (await events(runtime))[before:]


# -- joining, leaving, roles -------------------------------------------------------------------------------------
async def test_a_member_joins_and_leaves_and_the_events_say_so(service):
    client, runtime = service
    g, m = await group(client), await member(client)
    before = len(await events(runtime))
    r = await join(client, g, m)
    assert r.status_code == 201 and r.json()["status"] == "joined", r.text
    r = await client.delete(f"/groups/{g}/members/{m}", headers=acting(m))
    assert r.status_code == 204, r.text
    assert await roster(client, g) == {}
    (t1, joined), (t2, left) = await events_after(runtime, before)
    assert (t1, t2) == ("member.joined", "member.left")
    assert str(left.member_id) == m and str(left.group_id) == g and left.reason == "left"
    r = await client.delete(f"/groups/{g}/members/{m}", headers=acting(m))
    assert r.status_code == 404  # no seat to give up


async def test_a_coordinator_removes_a_member_and_changes_roles_but_a_member_may_not(service):
    client, runtime = service
    g, boss, m, other = await group(client), await member(client), await member(client), await member(client)
    assert (await join(client, g, boss, as_self=False, role="coordinator")).status_code == 201
    assert (await join(client, g, m)).status_code == 201
    assert (await join(client, g, other)).status_code == 201
    g2 = await group(client)
    before = await counts(runtime)
    # a plain member may neither change a role nor remove someone else
    r = await client.put(f"/groups/{g}/members/{other}/role", json={"role": "coordinator"}, headers=acting(m))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    r = await client.delete(f"/groups/{g}/members/{other}", headers=acting(m))
    assert r.status_code == 403
    # a member may not make themself coordinator by joining as one
    r = await join(client, g2, m, role="coordinator")
    assert r.status_code == 403
    assert await counts(runtime) == before
    n = len(await events(runtime))
    r = await client.put(f"/groups/{g}/members/{m}/role", json={"role": "coordinator"}, headers=acting(boss))
    assert r.status_code == 200 and r.json()["role"] == "coordinator", r.text
    r = await client.delete(f"/groups/{g}/members/{other}", headers=acting(boss))
    assert r.status_code == 204
    assert await roster(client, g) == {boss: "coordinator", m: "coordinator"}
    (t1, changed), (t2, left) = await events_after(runtime, n)
    assert t1 == "member.role_changed" and changed.role == "coordinator" and str(changed.member_id) == m
    assert t2 == "member.left" and left.reason == "removed"


async def test_a_member_cannot_join_for_someone_else(service):
    client, runtime = service
    g, m, other = await group(client), await member(client), await member(client)
    before = await counts(runtime)
    r = await client.post(f"/groups/{g}/members", json={"member_id": other}, headers=acting(m))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert await counts(runtime) == before


# -- approval ----------------------------------------------------------------------------------------------------
async def test_a_group_that_asks_for_approval_holds_a_join_until_a_coordinator_approves_or_declines(service):
    client, runtime = service
    g = await group(client, requires_approval=True)
    boss, m, m2 = await member(client), await member(client), await member(client)
    assert (await join(client, g, boss, as_self=False, role="coordinator")).status_code == 201  # placed directly
    n = len(await events(runtime))
    r = await join(client, g, m)
    assert r.status_code == 202 and r.json()["status"] == "pending", r.text
    assert (await join(client, g, m)).status_code == 409  # asked already
    r = await join(client, g, m2)
    assert r.status_code == 202
    assert await queue(client, g) == [(m, "pending"), (m2, "pending")]
    # only coordinators (and the administration) see and answer the requests
    assert (await client.get(f"/groups/{g}/requests", headers=acting(m))).status_code == 403
    assert (await client.post(f"/groups/{g}/requests/{m}/approve", headers=acting(m2))).status_code == 403
    r = await client.post(f"/groups/{g}/requests/{m}/approve", headers=acting(boss))
    assert r.status_code == 200 and r.json()["status"] == "joined", r.text
    r = await client.post(
        f"/groups/{g}/requests/{m2}/decline", json={"reason": "Kun for kommuner"}, headers=acting(boss)
    )
    assert r.status_code == 204, r.text
    assert await roster(client, g) == {boss: "coordinator", m: "member"}
    assert await queue(client, g) == []
    kinds = [(t, getattr(d, "status", getattr(d, "reason", None))) for t, d in await events_after(runtime, n)]
    assert kinds == [
        ("member.join_requested", "pending"),
        ("member.join_requested", "pending"),
        ("member.joined", None),
        ("member.join_declined", "Kun for kommuner"),
    ]
    assert (await client.post(f"/groups/{g}/requests/{m2}/approve", headers=acting(boss))).status_code == 404


# -- capacity and the waiting list -------------------------------------------------------------------------------
async def test_thirty_concurrent_joins_to_ten_seats_seat_exactly_ten_and_waitlist_the_rest_in_order(service):
    client, runtime = service
    g = await group(client, capacity=10)
    people = [await member(client) for _ in range(30)]
    results = await asyncio.gather(*(join(client, g, m) for m in people))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 10 + [202] * 20, [r.text for r in results if r.status_code not in (201, 202)]
    async with runtime.engine.connect() as conn:
        seated = (
            await conn.execute(
                select(func.count()).select_from(orm.memberships).where(orm.memberships.c.group_id == uuid.UUID(g))
            )
        ).scalar_one()
    assert seated == 10
    waiting = await queue(client, g)
    assert len(waiting) == 20 and {s for _, s in waiting} == {"waitlisted"}
    # a freed seat goes to the first on the list, in the same change
    first_waiting = waiting[0][0]
    someone = next(iter(await roster(client, g)))
    n = len(await events(runtime))
    assert (await client.delete(f"/groups/{g}/members/{someone}", headers=acting(someone))).status_code == 204
    seats = await roster(client, g)
    assert len(seats) == 10 and first_waiting in seats and someone not in seats
    assert [m for m, _ in await queue(client, g)] == [m for m, _ in waiting[1:]]
    assert [t for t, _ in await events_after(runtime, n)] == ["member.left", "member.joined"]


async def test_the_waiting_list_is_first_come_first_served_and_more_capacity_seats_the_next(service):
    client, runtime = service
    g = await group(client, capacity=1)
    a, b, c = await member(client), await member(client), await member(client)
    assert (await join(client, g, a)).status_code == 201
    for m in (b, c):
        r = await join(client, g, m)
        assert r.status_code == 202 and r.json()["status"] == "waitlisted"
    r = await client.patch(f"/groups/{g}", json={"capacity": 2})
    assert r.status_code == 200, r.text
    assert set(await roster(client, g)) == {a, b}
    assert await queue(client, g) == [(c, "waitlisted")]
    r = await client.patch(f"/groups/{g}", json={"capacity": None})  # no limit: everyone waiting gets in
    assert r.status_code == 200 and r.json()["capacity"] is None
    assert set(await roster(client, g)) == {a, b, c}


async def test_a_full_group_can_be_a_conflict_when_the_caller_will_not_wait(service):
    client, runtime = service
    g = await group(client, capacity=1)
    a, b = await member(client), await member(client)
    assert (await join(client, g, a)).status_code == 201
    before = await counts(runtime)
    r = await join(client, g, b, waitlist=False)
    assert r.status_code == 409 and "full" in r.json()["detail"], r.text
    assert await counts(runtime) == before


# -- group status ------------------------------------------------------------------------------------------------
async def test_closed_groups_take_no_new_members_and_archived_ones_change_no_more(service):
    client, runtime = service
    g = await group(client)
    boss, m, late = await member(client), await member(client), await member(client)
    assert (await join(client, g, boss, as_self=False, role="coordinator")).status_code == 201
    assert (await join(client, g, m)).status_code == 201
    # a member may not change the group; its coordinator may
    assert (await client.patch(f"/groups/{g}", json={"status": "closed"}, headers=acting(m))).status_code == 403
    n = len(await events(runtime))
    r = await client.patch(f"/groups/{g}", json={"status": "closed", "description": "Lukket"}, headers=acting(boss))
    assert r.status_code == 200 and r.json()["status"] == "closed", r.text
    [(t, updated)] = await events_after(runtime, n)
    assert t == "group.updated" and updated.status == "closed" and updated.description == "Lukket"
    before = await counts(runtime)
    r = await join(client, g, late)
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    assert await counts(runtime) == before
    assert (await client.patch(f"/groups/{g}", json={"status": "archived"})).status_code == 200
    before = await counts(runtime)
    for r in (
        await client.patch(f"/groups/{g}", json={"name": "Nyt navn"}),
        await client.delete(f"/groups/{g}/members/{m}", headers=acting(m)),
        await client.put(f"/groups/{g}/members/{m}/role", json={"role": "coordinator"}),
        await join(client, g, late),
    ):
        assert r.status_code == 409 and "archived" in r.json()["detail"], r.text
    assert await counts(runtime) == before


# -- seat transfer -----------------------------------------------------------------------------------------------
async def test_a_seat_goes_to_a_colleague_of_the_same_organisation_in_one_change(service):
    client, runtime = service
    g = await group(client, capacity=1)
    holder, colleague = await member(client), await member(client)
    stranger = await member(client, organisation=LEVERANDOER)
    assert (await join(client, g, holder)).status_code == 201
    before, n = await counts(runtime), len(await events(runtime))
    r = await client.post(
        f"/groups/{g}/members/{holder}/transfer", json={"to_member_id": stranger}, headers=acting(holder)
    )
    assert r.status_code == 409 and "organisation" in r.json()["detail"], r.text
    assert await counts(runtime) == before
    r = await client.post(
        f"/groups/{g}/members/{holder}/transfer", json={"to_member_id": colleague}, headers=acting(colleague)
    )
    assert r.status_code == 403  # only the holder, a coordinator or the administration hands a seat on
    r = await client.post(
        f"/groups/{g}/members/{holder}/transfer", json={"to_member_id": colleague}, headers=acting(holder)
    )
    assert r.status_code == 200, r.text
    assert await roster(client, g) == {colleague: "member"}
    (t1, moved), (t2, left), (t3, joined) = await events_after(runtime, n)
    assert (t1, t2, t3) == ("seat.transferred", "member.left", "member.joined")
    assert (str(moved.from_member_id), str(moved.to_member_id)) == (holder, colleague)
    assert left.reason == "seat_transferred" and str(joined.member_id) == colleague


# -- the right to join -------------------------------------------------------------------------------------------
async def test_a_member_whose_own_membership_lapses_leaves_every_group_and_the_seat_goes_on(service):
    client, runtime = service
    g1, g2 = await group(client, capacity=1), await group(client)
    m, waiting = await member(client), await member(client)
    assert (await join(client, g1, m)).status_code == 201
    assert (await join(client, g2, m)).status_code == 201
    assert (await join(client, g1, waiting)).status_code == 202
    # status is the administration's
    r = await client.patch(f"/members/{m}", json={"status": "lapsed"}, headers=acting(m))
    assert r.status_code == 403
    n = len(await events(runtime))
    r = await client.patch(f"/members/{m}", json={"status": "lapsed"})
    assert r.status_code == 200 and r.json()["status"] == "lapsed", r.text
    assert await roster(client, g1) == {waiting: "member"} and await roster(client, g2) == {}
    got = await events_after(runtime, n)
    assert [t for t, _ in got].count("member.left") == 2
    assert all(d.reason == "membership_ended" for t, d in got if t == "member.left")
    assert got[0][0] == "member.updated" and got[0][1].status == "lapsed"
    r = await join(client, await group(client), m)
    assert r.status_code == 409 and "membership" in r.json()["detail"]


async def test_staff_covered_by_their_organisation_keep_the_right_until_the_organisation_membership_ends(service):
    client, runtime = service
    g = await group(client)
    m = await member(client, organisation=LEVERANDOER)
    own = await member(client, organisation=LEVERANDOER)  # keeps an active membership of their own
    org = (await client.get(f"/members/{m}")).json()["organisation"]["id"]
    r = await client.put(f"/organisations/{org}/membership", json={"status": "active", "valid_until": "2027-12-31"})
    assert r.status_code == 200 and r.json()["membership"] == {"status": "active", "valid_until": "2027-12-31"}
    assert (await client.patch(f"/members/{m}", json={"status": "ended"})).status_code == 200
    assert (await join(client, g, m)).status_code == 201  # the organisation's membership covers them
    assert (await join(client, g, own)).status_code == 201
    n = len(await events(runtime))
    r = await client.put(f"/organisations/{org}/membership", json={"status": "lapsed"})
    assert r.status_code == 200, r.text
    assert await roster(client, g) == {own: "member"}
    got = await events_after(runtime, n)
    assert [t for t, _ in got] == ["organisation.membership_changed", "member.left"]
    assert got[1][1].reason == "membership_ended" and str(got[1][1].member_id) == m
    listed = {o["id"]: o for o in (await client.get("/organisations")).json()}
    assert listed[org]["membership"]["status"] == "lapsed" and listed[org]["member_count"] == 2
    detail = (await client.get(f"/organisations/{org}")).json()
    assert {x["member_id"] for x in detail["members"]} == {m, own}
    assert (await client.get("/organisations", headers=acting(m))).status_code == 403
    assert (
        await client.put(f"/organisations/{org}/membership", json={"status": "active"}, headers=acting(m))
    ).status_code == 403


# -- profile and consents ----------------------------------------------------------------------------------------
async def test_a_member_updates_their_profile_and_consents_and_member_updated_carries_it_all(service):
    client, runtime = service
    m = await member(client, consents=["news"])
    other = await member(client)
    n = len(await events(runtime))
    r = await client.patch(
        f"/members/{m}",
        json={"job_title": "Digitaliseringschef", "phone": None, "locale": "en", "consents": ["news", "show_email"]},
        headers=acting(m),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["job_title"] == "Digitaliseringschef" and body["phone"] is None and body["locale"] == "en"
    assert {c["kind"] for c in body["consents"]} == {"news", "show_email"}
    [(t, updated)] = await events_after(runtime, n)
    assert t == "member.updated" and updated.job_title == "Digitaliseringschef" and updated.phone is None
    assert {c.kind for c in updated.consents} == {"news", "show_email"}
    news_given = next(c["given_at"] for c in body["consents"] if c["kind"] == "news")
    r = await client.patch(f"/members/{m}", json={"consents": ["news"]}, headers=acting(m))
    assert [c["kind"] for c in r.json()["consents"]] == ["news"]  # withdrawn: gone
    assert r.json()["consents"][0]["given_at"] == news_given  # kept: keeps its date
    # someone else's profile is not theirs to see or change
    assert (await client.patch(f"/members/{other}", json={"job_title": "x"}, headers=acting(m))).status_code == 403
    assert (await client.get(f"/members/{other}", headers=acting(m))).status_code == 403


# -- the directory -----------------------------------------------------------------------------------------------
async def test_the_directory_shows_the_group_to_its_members_and_contact_details_only_with_consent(service):
    client, runtime = service
    g, elsewhere = await group(client), await group(client)
    shows = await member(client, consents=["show_email"])
    hides = await member(client, consents=["news"])
    outsider, neighbour = await member(client), await member(client)
    for m in (shows, hides):
        assert (await join(client, g, m)).status_code == 201
    assert (await join(client, elsewhere, neighbour)).status_code == 201
    r = await client.get(f"/groups/{g}/directory", headers=acting(hides))
    assert r.status_code == 200, r.text
    entries = {e["member_id"]: e for e in r.json()}
    assert set(entries) == {shows, hides}
    assert entries[shows]["email"].endswith("@example.org") and entries[shows]["phone"] is None
    assert entries[hides]["email"] is None and entries[hides]["phone"] is None
    assert entries[hides]["organisation"]["kind"] == "public_authority" and entries[hides]["job_title"] == "Konsulent"
    for who in (outsider, neighbour):  # not in the group, or in another one: nothing
        r = await client.get(f"/groups/{g}/directory", headers=acting(who))
        assert r.status_code == 403 and "email" not in r.text and "Kollega" not in r.text
    assert (await client.get(f"/groups/{g}/directory")).status_code == 200  # the administration


# -- bad input writes nothing ------------------------------------------------------------------------------------
async def test_each_refusal_is_problem_json_a_person_understands_and_writes_nothing(service):
    client, runtime = service
    g = await group(client)
    m = await member(client)
    assert (await join(client, g, m)).status_code == 201
    taken = (await client.get(f"/members/{m}")).json()["email"]
    other = await member(client)
    cases = [
        (
            "duplicate email",
            client.post(
                "/members", json={"name": "Anden", "email": taken.upper(), "organisation": KOMMUNE, "job_title": "x"}
            ),
            409,
            "email",
        ),
        ("duplicate email on update", client.patch(f"/members/{other}", json={"email": taken}), 409, "email"),
        (
            "invalid CVR",
            client.post(
                "/members",
                json={
                    "name": "Ny",
                    "email": "ny@example.org",
                    "organisation": {**KOMMUNE, "name": "Ny Kommune", "cvr": "12345678"},
                    "job_title": "x",
                },
            ),
            422,
            "CVR",
        ),
        ("unknown group", join(client, str(uuid.uuid4()), m), 404, "group"),
        ("joining twice", join(client, g, m), 409, "already"),
        ("unknown member", client.get(f"/members/{uuid.uuid4()}"), 404, "member"),
    ]
    before = await counts(runtime)
    for label, request, status, words in cases:
        r = await request
        assert r.status_code == status, (label, r.text)
        assert r.headers["content-type"] == "application/problem+json", label
        assert words.lower() in r.text.lower(), (label, r.text)
    assert await counts(runtime) == before
    r = await client.post(
        "/members",
        json={
            "name": "Ny",
            "email": "ny@example.org",
            "organisation": {**KOMMUNE, "cvr": "12345678"},
            "job_title": "x",
        },
    )
    assert any(e["field"] == "organisation.cvr" for e in r.json()["errors"])  # the field is named


async def test_the_flow_reaches_the_members_stream(service, clean_nats):
    client, runtime = service
    g, m = await group(client), await member(client)
    await join(client, g, m)
    await client.delete(f"/groups/{g}/members/{m}", headers=acting(m))
    nc = await nats.connect(clean_nats)
    js = nc.jetstream()
    sub = await js.pull_subscribe("members.member.left.v1.>", stream="MEMBERS")
    msgs = await sub.fetch(1, timeout=10)
    await nc.close()
    assert msgs[0].subject == f"members.member.left.v1.{m}"
    event, data = parse_event(msgs[0].data)
    assert data.reason == "left" and "kollega" not in msgs[0].data.decode().lower()  # ids only
