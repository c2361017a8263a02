"""POST /admin/imports and GET /admin/imports/{id} on PostgreSQL and SQLite, with the real app, database and NATS: the
CLI's import run in the background of the service, its progress asked for until done, the per-line report without
the values, the same file twice changing nothing, a dry run writing nothing, and who may ask."""

from __future__ import annotations

import uuid

import pytest

from members.bootstrap import bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_testing import hostile
from netvaerk_testing.plugin import running_app, service_settings, wait_until

HEADER = "name;email;phone;organisation;organisation_kind;cvr;job_title;locale;consents;groups"
GROUP = {"name": "Offentlig digitalisering øst", "slug": "offentlig-digitalisering-oest", "region": "Øst"}
FILE = "\r\n".join(
    [
        HEADER,
        "Søren Ærø;soeren@example.org;;Århus Kommune;offentlig;;Kontorchef;da;;offentlig-digitalisering-oest",
        "Åse Østergaard;aase@example.org;;Århus Kommune;public_authority;;IT-arkitekt;en;;",
        "Ingen Adresse;ikke-en-adresse;;Eksempel Kommune;offentlig;;Kontorchef;da;;",  # line 4: the address
        "Mette Eksempel;mette@example.org;;Bølge Data A/S;leverandør;12345674;Salgschef;;;"
        "offentlig-digitalisering-oest",
        "",
    ]
)


@pytest.fixture
async def service(clean_nats, database_url):
    settings = service_settings(Settings, database_url, clean_nats)
    runtime = bootstrap(settings)
    async with running_app(create_app(), runtime) as c:
        response = await c.post("/groups", json=GROUP)
        assert response.status_code == 201, response.text
        yield c


async def finished(client, started) -> dict:
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "running"
    url = f"/admin/imports/{started.json()['import_id']}"
    progress: dict = {}

    async def done() -> bool:
        nonlocal progress
        response = await client.get(url)
        assert response.status_code == 200, response.text
        progress = response.json()
        return progress["status"] != "running"

    await wait_until(done, timeout=30, message="the import finished")
    return progress


async def emails(client) -> set[str]:
    items = (await client.get("/admin/members", params={"limit": 200})).json()["items"]
    return {m["email"] for m in items}


async def test_import_reports_bad_lines_without_their_values_and_runs_again_safely(service):
    client = service
    progress = await finished(client, await client.post("/admin/imports", json={"csv": FILE, "dry_run": False}))
    assert progress["status"] == "done" and progress["dry_run"] is False
    assert (progress["lines_read"], progress["imported"], progress["refused"], progress["joined"]) == (4, 3, 1, 2)
    assert [(e["line"], e["column"]) for e in progress["errors"]] == [(4, "email")]
    assert "ikke-en-adresse" not in str(progress["errors"]) and "Ingen Adresse" not in str(progress["errors"])
    assert progress["finished_at"] >= progress["started_at"]
    assert {"soeren@example.org", "aase@example.org", "mette@example.org"} <= await emails(client)

    again = await finished(client, await client.post("/admin/imports", json={"csv": FILE}))
    # as the CLI says it: 0 members registered, 3 already registered (left as they are), 0 seats taken, 1 refused
    assert (again["imported"], again["existing"], again["joined"], again["refused"]) == (0, 3, 0, 1)


async def test_a_dry_run_writes_nothing(service):
    client = service
    before = await emails(client)
    progress = await finished(client, await client.post("/admin/imports", json={"csv": FILE, "dry_run": True}))
    assert progress["status"] == "done" and progress["dry_run"] is True
    assert (progress["imported"], progress["refused"]) == (3, 1)  # would be
    assert await emails(client) == before


async def test_a_file_that_cannot_be_read_fails_with_the_reason(service):
    client = service
    progress = await finished(client, await client.post("/admin/imports", json={"csv": "navn;hvad\nMette;x\n"}))
    assert progress["status"] == "failed" and progress["lines_read"] == 0
    assert progress["errors"][0]["line"] == 0 and "hvad" in progress["errors"][0]["reason"]


async def test_control_characters_are_refused_at_the_edge(service):
    client = service
    for text in (FILE.replace("Kontorchef", "Kontor\x00chef"), FILE + "\x1b"):
        response = await client.post("/admin/imports", json={"csv": text})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "csv"
    # every hostile variant the document's limits must refuse (test_hostile_input.py counts this operation covered)
    cases = hostile.variants(create_app().openapi(), "POST", "/admin/imports", {"csv": FILE, "dry_run": False})
    assert {v.label for v in cases} >= {"NUL"}
    for variant in cases:
        response = await client.post("/admin/imports", json=variant.body)
        assert 400 <= response.status_code < 500, (variant.label, response.status_code)
        assert response.headers["content-type"] == "application/problem+json"
        if response.status_code != 413:  # one character too many is more than the edge's 1 MiB: refused unread
            assert any(e["field"] == variant.field for e in response.json().get("errors", [])), variant.label
    assert (await client.post("/admin/imports", json={"csv": "x"})).status_code == 202  # and nothing runs yet


async def test_only_the_administration_imports_and_unknown_ids_are_404(service):
    client = service
    member = {"X-Netvaerk-Member": str(uuid.uuid4())}
    response = await client.post("/admin/imports", json={"csv": FILE}, headers=member)
    assert response.status_code == 403, response.text
    response = await client.get(f"/admin/imports/{uuid.uuid4()}", headers=member)
    assert response.status_code == 403, response.text
    assert (await client.get(f"/admin/imports/{uuid.uuid4()}")).status_code == 404


async def test_a_second_import_while_one_runs_is_409(service):
    client = service
    rows = [f"Person {i};person{i}@example.org;;Eksempel Kommune;offentlig;;Chef;da;;" for i in range(3000)]
    first = await client.post("/admin/imports", json={"csv": "\n".join([HEADER, *rows])})
    assert first.status_code == 202, first.text
    second = await client.post("/admin/imports", json={"csv": FILE})
    assert second.status_code == 409, second.text
    progress = await finished(client, first)
    assert (progress["status"], progress["imported"]) == ("done", 3000)
    assert (await client.post("/admin/imports", json={"csv": FILE})).status_code == 202  # and then one may start
