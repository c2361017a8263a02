"""The members service's edge against hostile input, on PostgreSQL and SQLite alike: every string field of every
operation with control characters, blanks and one character too many, every list over its maximum → 4xx
problem+json naming the field, never a 5xx, and nothing half-written (no row, no event)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from members.adapters import orm
from members.bootstrap import bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_testing import hostile
from netvaerk_testing.plugin import running_app, service_settings, wait_until

GROUP = {
    "name": "Offentlig digitalisering øst",
    "slug": "offentlig-digitalisering-oest",
    "region": "Øst",
    "description": "Kommuner og leverandører.\nFire møder om året.",
    "topics": ["SKI", "databeskyttelse"],
    "capacity": 40,
    "requires_approval": False,
}
MEMBER = {
    "name": "Mette Eksempel",
    "email": "mette@example.org",
    "phone": "+45 12 34 56 78",
    "organisation": {"name": "Eksempel Kommune", "kind": "public_authority", "cvr": "12345674"},
    "job_title": "Kontorchef",
    "locale": "da",
    "consents": ["news", "show_email"],
}
GROUP_PATCH = {
    "name": "Offentlig digitalisering vest",
    "slug": "offentlig-digitalisering-vest",
    "region": "Vest",
    "description": "Kommuner og leverandører.\nTo møder om året.",
    "topics": ["SKI", "databeskyttelse"],
    "capacity": 30,
    "requires_approval": True,
    "status": "open",
}
MEMBER_PATCH = {
    "name": "Mette Anden",
    "email": "mette.anden@example.org",
    "phone": "+45 87 65 43 21",
    "organisation": {"name": "Eksempel Region", "kind": "public_authority", "cvr": "29341850"},
    "job_title": "Digitaliseringschef",
    "locale": "en",
    "consents": ["show_phone"],
    "status": "active",
}
ORGANISATION_PATCH = {"name": "Eksempel Kommune Nord", "kind": "other", "cvr": "29341850"}


@pytest.fixture
async def service(clean_nats, database_url):
    runtime = bootstrap(service_settings(Settings, database_url, clean_nats))
    app = create_app()
    async with running_app(app, runtime) as client:
        await wait_until(lambda: runtime.relay is not None, message="relay started")
        yield client, runtime, app.openapi()


async def _counts(runtime) -> dict[str, int]:
    async with runtime.engine.connect() as conn:
        return {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in (
                orm.groups,
                orm.members,
                orm.organisations,
                orm.memberships,
                orm.consents,
                orm.join_requests,
                runtime.tables.outbox,
            )
        }


def _assert_refused(response, variant) -> None:
    assert 400 <= response.status_code < 500, (variant, response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", (variant, response.text)
    body = response.json()
    assert body["status"] == response.status_code and body["title"]
    assert any(e["field"] == variant.field for e in body.get("errors", [])), (variant, body)


@pytest.mark.parametrize("path,valid", [("/groups", GROUP), ("/members", MEMBER)])
async def test_every_field_refuses_hostile_text_and_nothing_is_written(service, path, valid):
    client, runtime, document = service
    before = await _counts(runtime)
    cases = hostile.variants(document, "POST", path, valid)
    assert len(cases) > 40  # the walk reached the nested fields and lists
    for variant in cases:
        _assert_refused(await client.post(path, json=variant.body), variant)
    assert await _counts(runtime) == before
    response = await client.post(path, json=valid)  # and the ordinary request still goes through
    assert response.status_code == 201, response.text


async def test_blank_and_spaced_input_is_trimmed_normalised_and_stored_the_same_on_both_backends(service):
    client, runtime, _ = service
    decomposed = "Rene\u0301 Eksempel"  # e + combining acute: NFC makes it one character
    response = await client.post(
        "/members",
        json={
            **MEMBER,
            "name": f"  {decomposed}\u00a0",
            "phone": "   ",
            "job_title": " Kontorchef ",
            "organisation": {"name": "\u3000Eksempel Kommune ", "kind": "public_authority"},
        },
    )
    assert response.status_code == 201, response.text
    member = response.json()
    assert member["name"] == "René Eksempel" and len(member["name"]) == 13
    assert member["phone"] is None and member["job_title"] == "Kontorchef"
    assert member["organisation"]["name"] == "Eksempel Kommune"
    stored = (await client.get(f"/members/{member['member_id']}")).json()
    assert stored["name"] == member["name"] and stored["phone"] is None


@pytest.mark.parametrize("name", ["   ", "\u001d", "\x00", "\t"])
async def test_an_organisation_name_of_spaces_or_controls_is_422_not_500(service, name):
    client, runtime, _ = service
    response = await client.post("/members", json={**MEMBER, "organisation": {"name": name, "kind": "supplier"}})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "organisation.name"


async def test_a_description_keeps_its_line_breaks_as_lf(service):
    client, _, _ = service
    response = await client.post(
        "/groups",
        json={
            **GROUP,
            "slug": None,
            "name": "Offentlig digitalisering vest",
            "description": "Første linje\r\nAnden linje\rTredje\n",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "Første linje\nAnden linje\nTredje"


async def test_join_refuses_hostile_ids_and_roles(service):
    client, _, _ = service
    group = (await client.post("/groups", json=GROUP)).json()["group_id"]
    for body in (
        {"member_id": "\x00"},
        {"member_id": str(uuid.uuid4()), "role": "admin\r\n"},
        {"member_id": "x" * 10_000},
        {"member_id": str(uuid.uuid4()), "extra": "x"},
    ):
        response = await client.post(f"/groups/{group}/members", json=body)
        assert response.status_code == 422, (body, response.text)
    response = await client.post(f"/groups/{group}/members", json={"member_id": str(uuid.uuid4())})
    assert response.status_code == 404  # a well-formed id of nobody
    for path in ("/groups/%00", "/members/not-a-uuid/export", "/members/" + "9" * 5000):
        response = await client.get(path)
        assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"


async def test_the_largest_valid_group_makes_an_event_that_fits_and_a_smaller_server_limit_refuses_it(service):
    client, runtime, _ = service
    largest = {
        **GROUP,
        "slug": None,
        "name": "æ" * 200,
        "region": "ø" * 100,
        "description": "å" * 5000,
        "topics": [f"{i:02d}" + "🙂" * 98 for i in range(50)],
    }
    response = await client.post("/groups", json=largest)
    assert response.status_code == 201, response.text
    async with runtime.engine.connect() as conn:
        size = (await conn.execute(select(func.max(func.length(runtime.tables.outbox.c.body))))).scalar_one()
    assert size < 100_000  # about a tenth of NATS's default max_payload, whatever the characters
    before = await _counts(runtime)
    runtime.settings.max_event_bytes = 20_000  # as if the server took less
    try:
        response = await client.post("/groups", json={**largest, "name": "ø" * 200})
    finally:
        runtime.settings.max_event_bytes = 0
    assert response.status_code == 413, response.text
    assert response.json()["errors"][0]["field"] == "topics"
    assert await _counts(runtime) == before  # refused before anything committed


async def _group_with_a_request(client) -> tuple[str, str]:
    """A group that asks for approval, and a member whose request to join it waits."""
    group = (await client.post("/groups", json={**GROUP, "requires_approval": True})).json()["group_id"]
    member = (await client.post("/members", json=MEMBER)).json()["member_id"]
    r = await client.post(f"/groups/{group}/members", json={"member_id": member}, headers={"X-Netvaerk-Member": member})
    assert r.status_code == 202, r.text
    return group, member


# every operation with a JSON body whose strings or lists could carry hostile text: (method, path, valid body)
CHANGES = [
    ("PATCH", "/groups/{group_id}", GROUP_PATCH),
    ("PATCH", "/members/{member_id}", MEMBER_PATCH),
    ("POST", "/groups/{group_id}/requests/{member_id}/decline", {"reason": "Gruppen er for kommuner"}),
    ("PATCH", "/organisations/{organisation_id}", ORGANISATION_PATCH),
]


@pytest.mark.parametrize("method,path,valid", CHANGES, ids=[f"{m} {p}" for m, p, _ in CHANGES])
async def test_every_field_of_every_change_refuses_hostile_text_and_nothing_is_written(service, method, path, valid):
    client, runtime, document = service
    group, member = await _group_with_a_request(client)
    organisation = (await client.get(f"/members/{member}")).json()["organisation"]["id"]
    url = path.format(group_id=group, member_id=member, organisation_id=organisation)
    before = await _counts(runtime)
    cases = hostile.variants(document, method, path, valid)
    assert len(cases) >= 9  # at least one string field reached, with every kind of hostile text
    for variant in cases:
        _assert_refused(await client.request(method, url, json=variant.body), variant)
    assert await _counts(runtime) == before
    response = await client.request(method, url, json=valid)  # and the ordinary request still goes through
    assert response.status_code < 300, response.text


def _body_schema(document, operation) -> dict | None:
    content = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
    return None if content is None else content["schema"]


def _has_text(schema, document, seen=()) -> bool:
    """Does the body hold a free string or a list somewhere (what hostile.variants walks)?"""
    while "$ref" in schema:
        node = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    if schema.get("type") == "array":
        return True
    if schema.get("type") == "string":
        return "enum" not in schema and schema.get("format") in (None, "email")
    subs = [*schema.get("anyOf", []), *schema.get("oneOf", []), *(schema.get("properties") or {}).values()]
    return any(_has_text(sub, document) for sub in subs)


def test_the_hostile_suites_cover_every_operation_that_takes_text(service):
    """A new operation with a text field fails this until it is added to CHANGES (or the POST suite above)."""
    _, _, document = service
    covered = {("POST", "/groups"), ("POST", "/members")} | {(m, p) for m, p, _ in CHANGES}
    covered |= {
        ("POST", "/groups/{group_id}/members")
    }  # ids, a role and a flag: test_join_refuses_hostile_ids_and_roles
    covered |= {("POST", "/admin/imports")}  # one text field: test_imports_api.py's hostile-text test
    takes_text = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
        and (schema := _body_schema(document, operation)) is not None
        and _has_text(schema, document)
    }
    assert takes_text, "the walk found no operation at all"
    assert takes_text <= covered, f"not covered by a hostile-input suite: {sorted(takes_text - covered)}"
