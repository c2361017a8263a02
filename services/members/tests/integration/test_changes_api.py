"""Changes through HTTP on PostgreSQL and SQLite with real NATS: a PATCH that changes nothing writes no outbox row
(members, groups, organisations), and the administration's correction of an organisation goes out as one
member.updated per member of it, with the full profile, in the same transaction; its refusals write nothing."""

from __future__ import annotations

import asyncio
import uuid

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


def acting(member_id: str) -> dict[str, str]:
    return {"X-Netvaerk-Member": member_id}


async def register(client, email: str, organisation=KOMMUNE, **extra) -> dict:
    body = {
        "name": "Mette Eksempel",
        "email": email,
        "phone": "+45 12 34 56 78",
        "organisation": organisation,
        "job_title": "Kontorchef",
        "consents": ["news"],
        **extra,
    }
    r = await client.post("/members", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def outbox(runtime) -> list[tuple[str, object]]:
    """(type, data) of every outbox row, in order."""
    o = runtime.tables.outbox
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(o.c.body).order_by(o.c.position))).all()
    out = []
    for (body,) in rows:
        event, data = parse_event(body)
        out.append((event.type.removeprefix("dk.danskit.").removesuffix(".v1"), data))
    return out


async def counts(runtime) -> dict[str, int]:
    tables = (orm.members, orm.organisations, orm.groups, orm.consents, orm.memberships, runtime.tables.outbox)
    async with runtime.engine.connect() as conn:
        return {t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one() for t in tables}


async def organisation_rows(runtime) -> list[tuple]:
    o = orm.organisations
    async with runtime.engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(select(o.c.id, o.c.name, o.c.name_key, o.c.kind, o.c.cvr))]


# -- a change that changes nothing -------------------------------------------------------------------------------
async def test_an_empty_or_no_op_member_patch_answers_the_profile_and_writes_no_outbox_row(service):
    client, runtime = service
    m = await register(client, "mette.noop@example.org")
    mid = m["member_id"]
    stored = (await client.get(f"/members/{mid}")).json()
    before = await counts(runtime)
    same = {
        "name": " Mette Eksempel",
        "email": "METTE.noop@example.org",
        "phone": "+45 12 34 56 78",
        "organisation": {"name": "eksempel  kommune", "kind": "public_authority", "cvr": "12345674"},
        "job_title": "Kontorchef",
        "locale": "da",
        "consents": ["news"],
    }
    for body, headers in (({}, {}), ({}, acting(mid)), (same, acting(mid)), ({**same, "status": "active"}, {})):
        r = await client.patch(f"/members/{mid}", json=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == stored  # the current profile, consent dates and all
    assert await counts(runtime) == before  # no outbox row, no new organisation, no consent row
    r = await client.patch(f"/members/{mid}", json={"job_title": "Direktør"}, headers=acting(mid))
    assert r.status_code == 200 and r.json()["job_title"] == "Direktør"
    got = (await outbox(runtime))[before["outbox"] :]
    assert [t for t, _ in got] == ["member.updated"]  # a real change still tells


async def test_an_empty_or_no_op_group_patch_answers_the_group_and_writes_no_outbox_row(service):
    client, runtime = service
    r = await client.post("/groups", json={"name": "Netværk øst", "region": "Øst", "topics": ["SKI"], "capacity": 5})
    assert r.status_code == 201, r.text
    group = r.json()
    before = await counts(runtime)
    same = {"name": "Netværk øst", "slug": group["slug"], "region": "Øst", "topics": ["SKI"], "capacity": 5}
    for body in ({}, same, {"status": "open", "requires_approval": False, "description": ""}):
        r = await client.patch(f"/groups/{group['group_id']}", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == group
    assert await counts(runtime) == before
    assert (await client.patch(f"/groups/{group['group_id']}", json={"status": "archived"})).status_code == 200
    n = len(await outbox(runtime))
    r = await client.patch(f"/groups/{group['group_id']}", json={"status": "archived"})  # the same: no change
    assert r.status_code == 200, r.text
    r = await client.patch(f"/groups/{group['group_id']}", json={"name": "Netværk vest"})
    assert r.status_code == 409 and "archived" in r.text
    assert len(await outbox(runtime)) == n


# -- the organisation --------------------------------------------------------------------------------------------
async def test_correcting_an_organisation_emits_one_full_member_updated_per_member_in_one_transaction(service):
    client, runtime = service
    a = await register(client, "a.org@example.org")
    b = await register(client, "b.org@example.org", name="Bent Eksempel", consents=["show_email", "reminders"])
    c = await register(client, "c.org@example.org", organisation=LEVERANDOER)
    org = a["organisation"]["id"]
    before = await counts(runtime)
    r = await client.patch(f"/organisations/{org}", json={"name": " Eksempel  Region ", "kind": "other", "cvr": None})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": org, "name": "Eksempel Region", "kind": "other", "cvr": None, "membership": None}
    got = (await outbox(runtime))[before["outbox"] :]
    assert [t for t, _ in got] == ["member.updated", "member.updated"]
    by_id = {str(d.member_id): d for _, d in got}
    assert set(by_id) == {a["member_id"], b["member_id"]}  # c is of another organisation
    for d in by_id.values():
        assert (str(d.organisation.id), d.organisation.name, d.organisation.kind.value, d.organisation.cvr) == (
            org,
            "Eksempel Region",
            "other",
            None,
        )
    full = by_id[b["member_id"]]
    assert (full.name, full.email, full.phone, full.job_title) == (
        "Bent Eksempel",
        "b.org@example.org",
        "+45 12 34 56 78",
        "Kontorchef",
    )
    assert {x.kind.value for x in full.consents} == {"show_email", "reminders"}
    shown = (await client.get(f"/members/{a['member_id']}")).json()["organisation"]
    assert shown == {"id": org, "name": "Eksempel Region", "kind": "other", "cvr": None}
    assert (await client.get(f"/members/{c['member_id']}")).json()["organisation"]["name"] == LEVERANDOER["name"]
    listed = {o["id"]: o for o in (await client.get("/organisations")).json()}
    assert listed[org]["name"] == "Eksempel Region" and listed[org]["member_count"] == 2
    # the new name is the organisation's now: a registration under it joins it, the old name is free
    d = await register(client, "d.org@example.org", organisation={"name": "EKSEMPEL region", "kind": "other"})
    assert d["organisation"]["id"] == org

    async def published() -> bool:
        o = runtime.tables.outbox
        async with runtime.engine.connect() as conn:
            return all(p is not None for p in (await conn.execute(select(o.c.published_at))).scalars())

    await wait_until(published, message="the member.updated events published")


async def test_a_no_op_organisation_patch_answers_it_and_writes_nothing(service):
    client, runtime = service
    a = await register(client, "a.same@example.org")
    org = a["organisation"]["id"]
    await client.put(f"/organisations/{org}/membership", json={"status": "active"})
    before, rows = await counts(runtime), await organisation_rows(runtime)
    for body in (
        {},
        {"name": "Eksempel Kommune"},
        KOMMUNE,
        {"name": " Eksempel   Kommune", "kind": "public_authority"},
    ):
        r = await client.patch(f"/organisations/{org}", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Eksempel Kommune" and r.json()["membership"]["status"] == "active"
    assert await counts(runtime) == before and await organisation_rows(runtime) == rows
    # changing only the case of the name is a change of its own name, not a clash with itself
    r = await client.patch(f"/organisations/{org}", json={"name": "EKSEMPEL Kommune"})
    assert r.status_code == 200, r.text
    assert [t for t, _ in (await outbox(runtime))[before["outbox"] :]] == ["member.updated"]


async def test_every_refused_organisation_patch_is_problem_json_and_writes_nothing(service):
    client, runtime = service
    a = await register(client, "a.refused@example.org")
    c = await register(client, "c.refused@example.org", organisation=LEVERANDOER)
    org = a["organisation"]["id"]
    before, rows = await counts(runtime), await organisation_rows(runtime)
    cases = [
        ("a member", {"name": "Eksempel Region"}, acting(a["member_id"]), 403, None),
        ("another's name", {"name": " eksempel LEVERANDØR a/s"}, {}, 409, None),
        ("too long", {"name": "Æ" * 201}, {}, 422, "name"),
        ("blank", {"name": " \u00a0 "}, {}, 422, "name"),
        ("control characters", {"name": "Eksempel\x00Kommune"}, {}, 422, "name"),
        ("line break", {"name": "Eksempel\r\nKommune"}, {}, 422, "name"),
        ("escape", {"name": "\x1b[31mKommune"}, {}, 422, "name"),
        ("modulus 11", {"cvr": "12345678"}, {}, 422, "cvr"),
        ("not 8 digits", {"cvr": "1234567"}, {}, 422, "cvr"),
        ("letters", {"cvr": "1234567a"}, {}, 422, "cvr"),
        ("unknown kind", {"kind": "ngo"}, {}, 422, "kind"),
        ("null name", {"name": None}, {}, 422, None),
        ("unknown field", {"membership_status": "active"}, {}, 422, None),
    ]
    for label, body, headers, status, field in cases:
        r = await client.patch(f"/organisations/{org}", json=body, headers=headers)
        assert r.status_code == status, (label, r.text)
        assert r.headers["content-type"] == "application/problem+json", label
        if field is not None:
            assert any(e["field"] == field for e in r.json()["errors"]), (label, r.text)
    r = await client.patch(f"/organisations/{org}", json={"name": LEVERANDOER["name"]})
    assert "already registered" in r.json()["detail"]
    missing = uuid.uuid4()
    r = await client.patch(f"/organisations/{missing}", json={"name": "Eksempel Region"})
    assert r.status_code == 404 and str(missing) in r.json()["detail"]
    r = await client.patch("/organisations/not-an-id", json={"name": "Eksempel Region"})
    assert r.status_code == 422
    assert await counts(runtime) == before and await organisation_rows(runtime) == rows
    assert (await client.get(f"/members/{c['member_id']}")).json()["organisation"]["name"] == LEVERANDOER["name"]


async def test_two_organisations_renamed_to_one_name_at_once_one_wins_and_the_other_is_a_409(service):
    client, runtime = service
    a = await register(client, "a.race@example.org")
    c = await register(client, "c.race@example.org", organisation=LEVERANDOER)
    before = await counts(runtime)
    answers = await asyncio.gather(
        *(
            client.patch(f"/organisations/{m['organisation']['id']}", json={"name": "Eksempel Fællesskab"})
            for m in (a, c)
        )
    )
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    [won] = [r.json() for r in answers if r.status_code == 200]
    got = (await outbox(runtime))[before["outbox"] :]
    assert [t for t, _ in got] == ["member.updated"]  # only the winner's member; the loser wrote nothing
    assert str(got[0][1].organisation.id) == won["id"]
    names = sorted(name for _, name, _, _, _ in await organisation_rows(runtime))
    assert names == sorted(
        ["Eksempel Fællesskab", LEVERANDOER["name"] if won["id"] == a["organisation"]["id"] else KOMMUNE["name"]]
    )
