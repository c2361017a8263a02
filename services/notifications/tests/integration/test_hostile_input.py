"""The notifications service's edge against hostile input (its API only reads): every query parameter with control
characters or absurd lengths, and hostile ids in paths → 4xx problem+json, never a 5xx, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest

from netvaerk_testing import hostile
from netvaerk_testing.plugin import running_app, service_settings
from notifications.bootstrap import bootstrap
from notifications.config import Settings
from notifications.entrypoints.http import create_app


@pytest.fixture
async def service(clean_nats, database_url):
    runtime = bootstrap(service_settings(Settings, database_url, clean_nats))
    app = create_app()
    async with running_app(app, runtime) as client:
        yield client, app.openapi()


async def test_hostile_query_parameters_and_paths_are_problems_not_500s(service):
    client, document = service
    cases = hostile.query_variants(document, "/deliveries")
    assert {name for _, name, _ in cases} >= {"member_id", "status", "kind", "limit", "offset"}
    for label, name, query in cases:
        response = await client.get("/deliveries", params=query)
        assert response.status_code == 422, (label, name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == name
    for query in ({"offset": str(2**63)}, {"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}):
        assert (await client.get("/deliveries", params=query)).status_code == 422, query
    for path in ("/members/%00/export", "/members/" + "f" * 5000 + "/export"):
        response = await client.get(path)
        assert response.status_code == 422, path
    assert (await client.get("/members/0b0b0b0b-0000-4000-8000-000000000000/export")).status_code == 404


async def test_hostile_input_to_a_members_own_routes_is_a_problem_not_a_500(service):
    client, document = service
    mine = "/members/0b0b0b0b-0000-4000-8000-000000000000"
    cases = hostile.query_variants(document, "/members/{member_id}/deliveries")
    assert {name for _, name, _ in cases} >= {"status", "kind", "limit", "offset"}
    for label, name, query in cases:
        response = await client.get(f"{mine}/deliveries", params=query)
        assert response.status_code == 422, (label, name, response.text)
        assert response.json()["errors"][0]["field"] == name
    valid = {c: {"email": True, "language": "da"} for c in ("announcements", "reminders", "agenda_updates")}
    assert (await client.put(f"{mine}/preferences", json=valid)).status_code == 404  # nobody this service knows
    for body in (
        {**valid, "announcements": {"email": "yes"}},  # a flag is true or false, nothing else
        {**valid, "reminders": {"email": True, "language": "de"}},
        {**valid, "agenda_updates": {"email": True, "extra": 1}},
        {"announcements": valid["announcements"]},  # every category
        {**valid, "news": {"email": False}},
    ):
        response = await client.put(f"{mine}/preferences", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    for token in ("%00", "\u00e6" * 30, "a.b", "x" * 3000, "..", "%0d%0aBcc:%20x"):
        response = await client.post(f"/unsubscribe/{token}")
        assert response.status_code == 404, (token, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"{mine}/deliveries", headers={"X-Netvaerk-Member": "%00"})).status_code == 422


async def test_hostile_input_to_the_webhook_routes_is_a_problem_not_a_500(service):
    client, document = service
    valid = {
        "name": "Eksempel Kommunes intranet",
        "url": "https://hooks.example.org/netvaerk",
        "kinds": ["invitation"],
        "organisation_id": "0b0b0b0b-0000-4000-8000-000000000001",
    }
    cases = hostile.variants(document, "POST", "/webhooks", valid)
    assert {v.field for v in cases} >= {"name", "url", "kinds"}
    for variant in cases:
        response = await client.post("/webhooks", json=variant.body)
        assert response.status_code == 422, (variant.label, variant.field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == variant.field, (variant.label, response.text)
    for body in (
        {**valid, "kinds": ["newsletter"]},
        {**valid, "extra": 1},
        {**valid, "organisation_id": "not-a-uuid"},
        {**valid, "url": "https://user:pw@hooks.example.org/x"},
        {**valid, "url": "http://hooks.example.org/x"},  # plain http only to loopback, and only in development/test
        {**valid, "url": "javascript:alert(1)"},
        {"name": "x"},
    ):
        response = await client.post("/webhooks", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/webhooks")).json() == []  # nothing half-written
    hook = "/webhooks/0b0b0b0b-0000-4000-8000-000000000000"
    cases = hostile.query_variants(document, "/webhooks/{webhook_id}/deliveries")
    assert {name for _, name, _ in cases} >= {"status", "limit", "offset"}
    for label, name, query in cases:
        response = await client.get(f"{hook}/deliveries", params=query)
        assert response.status_code == 422, (label, name, response.text)
        assert response.json()["errors"][0]["field"] == name
    for method, path in (
        ("GET", "/webhooks/%00"),
        ("GET", "/webhooks/" + "f" * 5000),
        ("DELETE", "/webhooks/%0d%0a"),
        ("POST", "/webhooks/%00/rotate-secret"),
        ("POST", f"{hook}/deliveries/%00/retry"),
        ("GET", "/members/%00/deliverability"),
    ):
        assert (await client.request(method, path)).status_code == 422, (method, path)
    for method, path in (
        ("GET", hook),
        ("DELETE", hook),
        ("POST", f"{hook}/rotate-secret"),
        ("GET", f"{hook}/deliveries"),
        ("POST", f"{hook}/deliveries/0b0b0b0b-0000-4000-8000-000000000002/retry"),
        ("GET", "/members/0b0b0b0b-0000-4000-8000-000000000000/deliverability"),
        ("DELETE", "/members/0b0b0b0b-0000-4000-8000-000000000000/deliverability"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
