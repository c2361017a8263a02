"""The bulk import (python -m members.entrypoints.cli import FILE) on PostgreSQL and SQLite, with the service running
beside it: members and seats from a spreadsheet's CSV (BOM or none, `;` or `,`, Danish letters and headers), their
MemberRegistered/MemberJoined events on MEMBERS, a per-line report where the good lines still go in, the same file
twice changing nothing, a dry run writing nothing, and memory that does not grow with the file."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tracemalloc
import uuid
from pathlib import Path

import nats
import pytest
from sqlalchemy import func, select

from members.adapters import orm
from members.bootstrap import bootstrap
from members.config import Settings
from members.entrypoints.cli import run_import
from members.entrypoints.http import create_app
from netvaerk_shared.envelope import parse_event
from netvaerk_testing.plugin import running_app, service_settings, wait_until

HEADER = "name;email;phone;organisation;organisation_kind;cvr;job_title;locale;consents;groups"
GROUP = {"name": "Offentlig digitalisering øst", "slug": "offentlig-digitalisering-oest", "region": "Øst"}


@pytest.fixture
async def service(clean_nats, database_url):
    settings = service_settings(Settings, database_url, clean_nats)
    runtime = bootstrap(settings)
    async with running_app(create_app(), runtime) as c:
        await wait_until(lambda: runtime.relay is not None, message="relay started")
        for group in (
            GROUP,
            {"name": "IT-sikkerhed vest", "slug": "it-sikkerhed-vest", "region": "Vest", "requires_approval": True},
            {"name": "Lille gruppe", "slug": "lille-gruppe", "region": "Nord", "capacity": 1},
        ):
            response = await c.post("/groups", json=group)
            assert response.status_code == 201, response.text
        yield c, runtime, settings


def write(path: Path, lines: list[str], *, bom: bool = True, delimiter: str = ";", newline: str = "\r\n") -> Path:
    text = newline.join(line.replace(";", delimiter) for line in lines) + newline
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


async def run(path: Path, settings: Settings, **kwargs) -> tuple[object, list[str]]:
    out = io.StringIO()
    report = await run_import(path, settings=settings, out=out, progress=io.StringIO(), **kwargs)
    return report, out.getvalue().splitlines()


async def counts(runtime) -> dict[str, int]:
    async with runtime.engine.connect() as conn:
        return {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in (orm.members, orm.organisations, orm.memberships, orm.consents, runtime.tables.outbox)
        }


async def events_on_members(url: str, n: int, timeout: float = 15.0) -> list:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("members.member.>", stream="MEMBERS")
        out: list = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < n and asyncio.get_running_loop().time() < deadline:
            try:
                out.extend(await sub.fetch(n - len(out), timeout=0.5))
            except TimeoutError:
                pass
        try:  # and nothing more than expected
            out.extend(await sub.fetch(10, timeout=0.5))
        except TimeoutError:
            pass
        return [parse_event(m.data) for m in out]
    finally:
        await nc.close()


GOOD = [
    HEADER,
    "Søren Ærø;Soeren@Example.org;+45 11 22 33 44;Århus Kommune;public_authority;;Kontorchef;da;"
    "meeting_invitations|show_email;offentlig-digitalisering-oest|it-sikkerhed-vest:coordinator",
    "Åse Østergaard;aase@example.org;;Århus  kommune;offentlig;;IT-arkitekt;en;;offentlig-digitalisering-oest",
    '"Mette ""Mej"" Eksempel";mette@example.org;;"Bølge Data; A/S";leverandør;12345674;Salgschef;;;',
    "",
]


async def test_import_registers_seats_and_tells_the_other_services(service, tmp_path, clean_nats):
    client, runtime, settings = service
    before = await counts(runtime)
    report, lines = await run(write(tmp_path / "members.csv", GOOD), settings)
    assert lines == [
        "3 lines: 3 members registered, 0 already registered (left as they are), 3 seats taken, 0 lines refused"
    ]
    after = await counts(runtime)
    assert after["members"] - before["members"] == 3
    assert after["organisations"] - before["organisations"] == 2  # "Århus Kommune" and "Århus  kommune" are one
    assert after["memberships"] - before["memberships"] == 3 and after["consents"] - before["consents"] == 2

    found = (await client.get("/admin/members", params={"q": "søren"})).json()["items"]
    assert [(m["name"], m["email"]) for m in found] == [("Søren Ærø", "soeren@example.org")]
    mette = (await client.get("/admin/members", params={"q": "mette"})).json()["items"][0]
    assert mette["name"] == 'Mette "Mej" Eksempel' and mette["organisation"]["name"] == "Bølge Data; A/S"
    assert mette["organisation"]["kind"] == "supplier" and mette["organisation"]["cvr"] == "12345674"
    assert mette["locale"] == "da"
    soeren = (await client.get(f"/members/{found[0]['member_id']}")).json()
    roles = {g["name"]: g["role"] for g in soeren["groups"]}
    assert roles == {"Offentlig digitalisering øst": "member", "IT-sikkerhed vest": "coordinator"}  # no approval wait

    events = await events_on_members(clean_nats, 6)
    types = sorted(e.type for e, _ in events)
    assert types == ["dk.danskit.member.joined.v1"] * 3 + ["dk.danskit.member.registered.v1"] * 3
    registered = {d.email: d for e, d in events if e.type == "dk.danskit.member.registered.v1"}
    assert set(registered) == {"soeren@example.org", "aase@example.org", "mette@example.org"}
    assert registered["aase@example.org"].name == "Åse Østergaard"


async def test_the_same_file_twice_changes_nothing_and_says_nothing(service, tmp_path, clean_nats):
    _, runtime, settings = service
    path = write(tmp_path / "members.csv", GOOD)
    await run(path, settings)
    await wait_until(lambda: _published_all(runtime), message="the relay published the first import")
    first = await counts(runtime)
    report, lines = await run(path, settings)
    assert lines[-1] == (
        "3 lines: 0 members registered, 3 already registered (left as they are), 0 seats taken, 0 lines refused"
    )
    assert await counts(runtime) == first  # outbox included: no event the second time
    assert len(await events_on_members(clean_nats, 6)) == 6
    # a line that adds a group to a registered member takes only that seat; the stored profile stays
    more = [HEADER, "Søren Ærø Anden;soeren@example.org;;Andet Navn;supplier;;Chef;en;;lille-gruppe"]
    report, lines = await run(write(tmp_path / "more.csv", more, bom=False), settings)
    assert lines[-1].startswith("1 lines: 0 members registered, 1 already registered (left as they are), 1 seats")
    async with runtime.engine.connect() as conn:
        name = (await conn.execute(select(orm.members.c.name).where(orm.members.c.email == "soeren@example.org"))).one()
    assert name == ("Søren Ærø",)


async def _published_all(runtime) -> bool:
    o = runtime.tables.outbox
    async with runtime.engine.connect() as conn:
        return (await conn.execute(select(func.count()).where(o.c.published_at.is_(None)))).scalar_one() == 0


async def test_bad_lines_are_reported_and_the_good_ones_go_in(service, tmp_path):
    _, runtime, settings = service
    lines = [
        "navn,e-mail,organisation,organisationstype,cvr,stilling,grupper",  # Danish names, commas, no BOM
        "Mette Eksempel,mette@example.org,Eksempel Kommune,offentlig,,Kontorchef,offentlig-digitalisering-oest",  # 2
        "Ingen Adresse,ikke-en-adresse,Eksempel Kommune,offentlig,,Kontorchef,",  # 3: email
        "Forkert Cvr,cvr@example.org,Eksempel A/S,supplier,12345678,Chef,",  # 4: modulus 11
        "Ukendt Gruppe,ukendt@example.org,Eksempel Kommune,offentlig,,Chef,findes-ikke",  # 5: no such group
        "For Mange,felter@example.org,Eksempel Kommune,offentlig,,Chef,,ekstra",  # 6: fields
        "Kontrol\x1btegn,kontrol@example.org,Eksempel Kommune,offentlig,,Chef,",  # 7: control character
        "Første Plads,foerste@example.org,Eksempel Kommune,offentlig,,Chef,lille-gruppe",  # 8: takes the one seat
        "Anden Plads,anden@example.org,Eksempel Kommune,offentlig,,Chef,offentlig-digitalisering-oest|lille-gruppe",
        "Forkert Rolle,rolle@example.org,Eksempel Kommune,offentlig,,Chef,lille-gruppe:boss",  # 10: role
        "Ukendt Type,type@example.org,Eksempel Kommune,myndighed,,Chef,",  # 11: kind
        '"To\nLinjer",linjer@example.org,Eksempel Kommune,offentlig,,Chef,',  # 12-13: a line break in a name
        "Sidste God,sidste@example.org,Eksempel Kommune,offentlig,,Chef,",  # 14
    ]
    path = write(tmp_path / "members.csv", lines, bom=False, delimiter=",", newline="\n")
    path.write_bytes(
        path.read_bytes() + "Latin1 Navn,latin1@example.org,S\xf8ren A/S,supplier,,Chef,\n".encode("latin-1")
    )
    before = await counts(runtime)
    report, out = await run(path, settings, batch_size=4)
    errors = [line.split(": ", 2)[:2] for line in out[:-1]]
    assert errors == [
        ["line 3", "email"],
        ["line 4", "cvr"],
        ["line 6", "-"],
        ["line 7", "name"],
        ["line 5", "groups"],
        ["line 9", "groups"],  # lille-gruppe is full: line 8 took its one seat; its other seat is not taken either
        ["line 10", "groups"],
        ["line 11", "organisation_kind"],
        ["line 12", "name"],
        ["line 15", "organisation"],
    ], out
    assert "full" in out[5] and "findes-ikke" in out[4] and "Not UTF-8" in out[9]
    assert "ikke-en-adresse" not in "\n".join(out)  # the values are personal data: not repeated
    assert out[-1] == (
        "13 lines: 3 members registered, 0 already registered (left as they are), 2 seats taken, 10 lines refused"
    )
    after = await counts(runtime)
    assert after["members"] - before["members"] == 3 and after["memberships"] - before["memberships"] == 2
    async with runtime.engine.connect() as conn:
        emails = set((await conn.execute(select(orm.members.c.email))).scalars())
    assert {"mette@example.org", "foerste@example.org", "sidste@example.org"} <= emails
    assert "anden@example.org" not in emails  # its line was refused whole


async def test_a_dry_run_reports_the_same_and_writes_nothing(service, tmp_path):
    _, runtime, settings = service
    before = await counts(runtime)
    path = write(tmp_path / "members.csv", [*GOOD, "Forkert;x@example.org;;X;supplier;12345678;Y;da;;"])
    report, out = await run(path, settings, dry_run=True)
    assert out[0].startswith("line 6: cvr: ")
    assert out[-1] == (
        "4 lines: 3 members would be registered, 0 already registered (left as they are), 3 seats would be taken, "
        "1 lines refused (dry run: nothing was written)"
    )
    assert await counts(runtime) == before


async def test_the_command_line(service, tmp_path):
    """The entry point as an operator runs it: exit status, report on stdout, progress on stderr."""
    _, runtime, settings = service
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    command = [sys.executable, "-m", "members.entrypoints.cli", "import"]
    url = ["--database-url", settings.database_url]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120)

    done = await asyncio.to_thread(cli, str(write(tmp_path / "ok.csv", GOOD)), *url, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would be registered" in done.stdout and "import: 100%" in done.stderr
    bad = await asyncio.to_thread(cli, str(write(tmp_path / "bad.csv", [*GOOD, "X;y;;Z;other;;W;da;;"])), *url)
    assert bad.returncode == 1 and "line 6: email:" in bad.stdout
    unknown = await asyncio.to_thread(cli, str(write(tmp_path / "u.csv", ["name;email;shoe_size", "a;b;c"])), *url)
    assert unknown.returncode == 2 and "Unknown column(s) 'shoe_size'" in unknown.stderr
    missing = await asyncio.to_thread(cli, str(tmp_path / "nowhere.csv"), *url)
    assert missing.returncode == 2 and "No such file" in missing.stderr


def generate(path: Path, n: int, tag: str) -> Path:
    """n members in 200 organisations, each in up to two of the fixture's groups."""
    groups = (
        "",
        "offentlig-digitalisering-oest",
        "it-sikkerhed-vest",
        "offentlig-digitalisering-oest|it-sikkerhed-vest",
    )
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        f.write(HEADER + "\r\n")
        for i in range(n):
            f.write(
                f"Søren Ærø Åberg {tag} {i};{tag}-{i}@example.org;+45 12 34 56 78;Organisation {i % 200} ApS;"
                f"supplier;;Seniorkonsulent i digital forvaltning;da;meeting_invitations;{groups[i % 4]}\r\n"
            )
    return path


async def test_memory_does_not_grow_with_the_file(make_database_url, tmp_path):
    """A file four times larger (8,000 lines) takes no more memory: lines are read, checked and written a batch at
    a time. Reading the larger file whole would take more than the bound for its text alone (and a list of its rows
    ten times that). No service runs in this process (its relay would allocate as it publishes), and SQLite only:
    what is measured is this process's reading and batching, the same on both backends."""
    settings = Settings(database_url=make_database_url("sqlite", "memory"), api_token="test-token-0123456789")
    await run(generate(tmp_path / "warm.csv", 600, "warm"), settings)  # migrations, imports, statement caches
    engine = bootstrap(settings).engine
    async with engine.begin() as conn:
        for slug in ("offentlig-digitalisering-oest", "it-sikkerhed-vest"):
            await conn.execute(
                orm.groups.insert().values(
                    id=uuid.uuid4(),
                    name=slug,
                    slug=slug,
                    region="Øst",
                    description="",
                    topics=[],
                    requires_approval=False,
                )
            )
    await engine.dispose()
    small = generate(tmp_path / "small.csv", 2_000, "small")
    large = generate(tmp_path / "large.csv", 8_000, "large")
    extra_text = (large.stat().st_size - small.stat().st_size) * 2  # as Python text: æøå make it 2 bytes a char
    assert extra_text > 2_000_000
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await run(small, settings)
        _, peak_small = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        report, out = await run(large, settings)
        _, peak_large = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out[-1].startswith(
        "8,000 lines: 8,000 members registered, 0 already registered (left as they are), 8,000 seats taken"
    ), out[-5:]
    bound = 1_000_000
    assert peak_large - peak_small < bound < extra_text, (peak_small, peak_large)
