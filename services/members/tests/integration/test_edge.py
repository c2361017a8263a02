"""The HTTP edge as a client meets it (members stands in for all three: the edge is shared): the document is complete
before anything starts, errors are RFC 9457 with the status phrase as title, 405 says what is allowed, a JSON
syntax error points at the body with its line and column, /docs works offline."""

from __future__ import annotations

import re

import pytest

from members.bootstrap import bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_testing.plugin import running_app, service_settings


def test_the_openapi_document_is_complete_without_starting_the_app():
    document = create_app().openapi()  # no lifespan, no runtime, no database
    assert {
        "/groups",
        "/members",
        "/groups/{group_id}/members",
        "/members/{member_id}/export",
        "/admin/outbox",
        "/readyz",
    } <= set(document["paths"])
    operation = document["paths"]["/members"]["post"]
    assert operation["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert set(operation["responses"]) >= {"201", "400", "401", "409", "413", "415", "422", "429", "503"}
    for status, response in operation["responses"].items():
        media = "application/json" if status.startswith("2") else "application/problem+json"
        assert list(response["content"]) == [media], (status, response)
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.fixture
async def client(clean_nats, make_database_url):
    runtime = bootstrap(service_settings(Settings, make_database_url("sqlite", "edge"), clean_nats))
    async with running_app(create_app(), runtime) as client:
        yield client


async def test_405_names_every_method_the_path_allows(client):
    response = await client.delete("/groups")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["title"] == "Method Not Allowed"


async def test_a_json_syntax_error_is_400_pointing_at_the_body_with_line_and_column(client):
    response = await client.post(
        "/groups", content=b'{"name": "Gruppe",\n  "region": }', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["title"] == "Bad Request" and body["errors"][0]["field"] == "body"
    assert "line 2, column 13" in body["detail"]


async def test_problem_titles_are_the_status_phrase_and_details_say_what_happened(client):
    missing = await client.get("/groups/00000000-0000-4000-8000-000000000000")
    assert missing.json()["title"] == "Not Found" and "No group" in missing.json()["detail"]
    invalid = await client.post("/groups", json={"name": "", "region": "Øst"})
    assert invalid.json()["title"] == "Unprocessable Entity"
    assert invalid.json()["errors"][0]["field"] == "name"
    for response in (missing, invalid):
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "about:blank"


async def test_docs_load_their_assets_from_the_service_itself_not_a_cdn(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs/static/") or a == "/openapi.json" for a in assets), assets
    for asset in assets:
        if asset.startswith("/docs/static/"):
            assert (await client.get(asset)).status_code == 200, asset
