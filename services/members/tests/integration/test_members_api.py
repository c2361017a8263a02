"""The members service in-process over HTTP, against real NATS JetStream and a real database: every accepted change
comes out as a CloudEvent on MEMBERS; bad input gets problem+json; nobody without the token gets in."""

from __future__ import annotations

import asyncio

import nats
import pytest

from members.bootstrap import bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_shared import tracing
from netvaerk_shared.envelope import parse_event
from netvaerk_testing.plugin import running_app, service_settings, wait_until

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def client(clean_nats, database_url):
    runtime = bootstrap(service_settings(Settings, database_url, clean_nats))
    async with running_app(create_app(), runtime) as client:
        await wait_until(lambda: runtime.relay is not None, message="relay started")
        yield client


async def collect(url: str, subject: str, n: int, timeout: float = 10.0) -> list:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await wait_until(lambda: _stream(js), message="MEMBERS stream")
    sub = await js.pull_subscribe(subject, stream="MEMBERS")
    out = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(out) < n and asyncio.get_running_loop().time() < deadline:
        try:
            out.extend(await sub.fetch(n - len(out), timeout=0.5))
        except TimeoutError:
            pass
    await nc.close()
    return out


async def _stream(js):
    try:
        await js.stream_info("MEMBERS")
        return True
    except Exception:
        return False


MEMBER = {
    "name": "Mette Eksempel",
    "email": "Mette@Example.org",
    "phone": "+45 12 34 56 78",
    "organisation": {"name": "Eksempel Kommune", "kind": "public_authority", "cvr": "12345674"},
    "job_title": "Kontorchef",
    "locale": "da",
}


async def test_flow_publishes_cloudevents_with_trace_context(client, clean_nats):
    r = await client.post(
        "/groups", json={"name": "Offentlig digitalisering øst", "region": "Øst", "topics": ["SKI", "agile kontrakter"]}
    )
    assert r.status_code == 201, r.text
    group = r.json()
    assert group["slug"] == "offentlig-digitalisering-oest"
    r = await client.post("/members", json=MEMBER, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 201, r.text
    member = r.json()
    assert member["email"] == "mette@example.org"
    r = await client.post(
        f"/groups/{group['group_id']}/members",
        json={"member_id": member["member_id"], "role": "coordinator"},
        headers={"traceparent": TRACEPARENT},
    )
    assert r.status_code == 201, r.text

    msgs = await collect(clean_nats, "members.>", 3)
    assert [m.subject.rsplit(".", 1)[0] for m in msgs] == [
        "members.group.created.v1",
        "members.member.registered.v1",
        "members.member.joined.v1",
    ]
    events = []
    for m in msgs:
        event, data = parse_event(m.data)
        assert m.headers["Nats-Msg-Id"] == event.id
        assert m.subject.endswith("." + event.subject)
        events.append((event, data))
    (_, g), (reg_event, reg), (join_event, joined) = events
    assert str(g.group_id) == group["group_id"] and g.name == "Offentlig digitalisering øst"
    assert reg.email == "mette@example.org" and reg.organisation.kind == "public_authority"
    assert str(joined.member_id) == member["member_id"] and joined.role == "coordinator"
    # the caller's trace continues in the events its requests caused
    assert tracing.trace_id_of(reg_event.traceparent) == "0af7651916cd43dd8448eb211c80319c"
    assert tracing.trace_id_of(join_event.traceparent) == "0af7651916cd43dd8448eb211c80319c"
    # only member.registered carries contact data
    assert "mette@example.org" not in msgs[2].data.decode() and "Mette" not in msgs[2].data.decode()


async def test_bad_input_is_problem_json_and_nothing_is_published(client, clean_nats):
    r = await client.post("/members", json={**MEMBER, "email": "not-an-email"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 422 and any(e["field"] == "email" for e in body["errors"])

    r = await client.post("/members", json=MEMBER)
    assert r.status_code == 201
    r = await client.post("/members", json={**MEMBER, "name": "En anden"})
    assert r.status_code == 409 and r.json()["title"] == "Conflict"

    r = await client.post(
        "/groups/5f0c4b1e-8a37-4a53-9a61-2f0d7f0b3c11/members",
        json={"member_id": "5f0c4b1e-8a37-4a53-9a61-2f0d7f0b3c12"},
    )
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await client.post("/groups", json={"name": "x", "region": "Øst", "slug": "Not A Slug"})
    assert r.status_code == 422

    msgs = await collect(clean_nats, "members.>", 5, timeout=2)
    assert [m.subject.rsplit(".", 1)[0] for m in msgs] == ["members.member.registered.v1"]


async def test_every_endpoint_but_health_needs_the_token(client):
    anonymous = {"Authorization": ""}
    for method, path in [
        ("GET", "/groups"),
        ("POST", "/groups"),
        ("GET", "/admin/dead-letters"),
        ("POST", "/members"),
        ("GET", "/admin/outbox"),
    ]:
        r = await client.request(method, path, headers=anonymous, json={})
        assert r.status_code == 401, path
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.get("/groups", headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 401
    for path in ("/healthz", "/readyz", "/metrics", "/asyncapi.json"):
        assert (await client.get(path, headers=anonymous)).status_code == 200, path


async def test_metrics_count_requests_and_published_events(client):
    await client.post("/groups", json={"name": "Offentlig digitalisering vest", "region": "Vest"})
    await wait_until(lambda: _outbox_empty(client), message="outbox drained")
    text = (await client.get("/metrics")).text
    assert 'events_published_total{type="dk.danskit.group.created.v1"}' in text
    assert 'http_requests_total{method="POST",route="/groups",status="201"}' in text
    assert "outbox_backlog 0.0" in text and "outbox_oldest_unpublished_age_seconds" in text


async def _outbox_empty(client):
    return (await client.get("/admin/outbox")).json()["unpublished"] == 0


async def test_rate_limit_answers_429_with_retry_after(clean_nats, database_url):
    settings = service_settings(Settings, database_url, clean_nats, rate_limit_per_minute=60)
    async with running_app(create_app(), bootstrap(settings)) as client:
        codes = [(await client.get("/groups")).status_code for _ in range(15)]
        assert codes[:10] == [200] * 10  # burst
        assert 429 in codes
        r = await client.get("/groups")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"] == "application/problem+json"
        assert (await client.get("/healthz")).status_code == 200  # health is never limited


async def test_gdpr_export_holds_what_the_service_stores(client):
    member = (await client.post("/members", json=MEMBER)).json()
    export = (await client.get(f"/members/{member['member_id']}/export")).json()
    assert export["member"]["email"] == "mette@example.org"
    assert export["member"]["phone"] == "+45 12 34 56 78"


async def test_racing_requests_for_the_same_email_get_409_not_500(client):
    results = await asyncio.gather(*(client.post("/members", json={**MEMBER, "name": f"Kopi {i}"}) for i in range(6)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 5, codes
    assert all(r.headers["content-type"] == "application/problem+json" for r in results if r.status_code == 409)


async def test_first_registrations_from_one_organisation_may_race(client):
    bodies = [
        {
            **MEMBER,
            "email": f"kollega{i}@example.org",
            "name": f"Kollega {i}",
            "organisation": {"name": "Ny Kommune", "kind": "public_authority"},
        }
        for i in range(8)
    ]
    results = await asyncio.gather(*(client.post("/members", json=b) for b in bodies))
    assert [r.status_code for r in results] == [201] * 8, [r.text for r in results if r.status_code != 201]
    assert len({r.json()["organisation"]["id"] for r in results}) == 1
