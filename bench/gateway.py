#!/usr/bin/env python3
"""Benchmark of the web gateway's dashboard for one member, beside a bare FastAPI endpoint measured in the same run
on the same machine. It is a benchmark, not a test: nothing here asserts a time.

    .venv/bin/python bench/gateway.py [--members 100000] [--groups 1000] [--meetings 10000] [--seconds 10]
        [--rounds 3] [--concurrency 20]

What runs, all of it the bench's own and stopped at the end: a nats-server (from the wheel), throwaway PostgreSQL
databases (BENCH_DATABASE_URL / DATABASE_URL; else a throwaway cluster), the three services and the gateway as real
uvicorn processes (netvaerk_testing.processes.ServiceProcess: --loop uvloop --http httptools --no-access-log, as in
tests/e2e/conftest.py's `web` fixture), and a bare FastAPI app on the same flags.

Data, loaded the way an operator and the administration would: `--groups` groups by POST /groups (members), then
`--members` members in a generated CSV through the members bulk-import CLI (each in one group, `--members/--groups`
to a group; the measured member in `--my-groups` groups), then, once the meetings service has learnt every group
and seat from the MEMBERS events (its own tables counted), `--meetings` meetings by POST /meetings (meetings) with
the API token, spread evenly over the groups, all in the coming weeks. The measured member answers some of their
groups' meetings, and `--others-answering` other members of each of those groups answer every meeting there (PUT
/meetings/{id}/rsvps/{member} with X-Netvaerk-Member). The member is signed in by a session row written straight
into the gateway's database with the gateway's own `Store.create_session` (the real way is POST /login and the
mailed link).

Timed, `--rounds` rounds of `--seconds` each, the three targets in turn in every round, `--concurrency` keep-alive
connections of a minimal HTTP/1.1 client (as pipeline.py's LeanHttp): GET /api/dashboard and GET / (the HTML page)
with the session cookie, and the baseline `GET /` of the bare app (a small JSON dict). Requests/s (median of the
rounds), p50/p95/p99 of every answer, the ratios to the baseline and the aims. Diagnostics: the service calls one
dashboard makes and the services' own p95 for them, from their access log lines written during the timed rounds,
and the CPU share of each process. Results also in var/bench/gateway-<timestamp>.json.

See bench/README.md ("bench/gateway.py") for what the figures mean and the last run's numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib.util
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# This file is bench/gateway.py: with bench/ on sys.path, `import gateway` would find it instead of the service.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
_spec = importlib.util.spec_from_file_location("pipeline", BENCH / "pipeline.py")
assert _spec is not None and _spec.loader is not None
pipeline = importlib.util.module_from_spec(_spec)
sys.modules["pipeline"] = pipeline
_spec.loader.exec_module(pipeline)

import asyncpg  # noqa: E402
import psutil  # noqa: E402

from gateway.adapters.store import Store  # noqa: E402
from netvaerk_shared import service_tokens  # noqa: E402
from netvaerk_shared.db import asyncpg_dsn, create_engine  # noqa: E402
from netvaerk_testing.processes import ServiceProcess  # noqa: E402

ROOT = BENCH.parent
PY = sys.executable
TOKEN = "bench-api-token-0123456789abcdef"
GATEWAY_KEY = "bench-gateway-key-0123456789abcdef0123456789"
AIMS = {"api": 0.50, "html": 1 / 3, "p95_ms": 50.0}
SESSION_COOKIE = "nv_session"
FIRST = ["Søren", "Mette", "Åse", "Jens", "Ærling", "Birgitte", "Øjvind", "Karen", "Lars", "Pia", "Anders", "Maja"]
LAST = ["Hansen", "Ærø", "Møller", "Åberg", "Jensen", "Nielsen", "Sørensen", "Kristensen", "Østergaard", "Lund"]
JOBS = ["Kontorchef", "IT-arkitekt", "Projektleder", "Udvikler", "Salgschef", "Konsulent", "Digitaliseringschef"]
KINDS = ["public_authority", "supplier", "other"]
HEADER = ["name", "email", "phone", "organisation", "organisation_kind", "cvr", "job_title", "locale", "groups"]
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

BARE_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root() -> dict:
    return {"status": "ok", "service": "bare", "version": 1}
"""


def out(line: str = "") -> None:
    pipeline.out(line)


def pct(values: list[float], q: float) -> float:
    return pipeline.pct(values, q)


# ------------------------------------------------------------------------------------------------------- the client
class Http:
    """A minimal HTTP/1.1 keep-alive client, one connection (pipeline.LeanHttp with headers of one's choosing):
    httpx tops out near 1,000 requests/s on one core here and would measure itself."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())

    async def __aenter__(self) -> Http:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{self.fixed}{extra}{kind}"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        self.writer.write(head + data)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in fields:
            return status, await self.reader.readexactly(int(fields["content-length"]))
        chunks: list[bytes] = []  # Transfer-Encoding: chunked
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(chunks)
            chunks.append(chunk[:-2])


async def fan_out(port: int, headers: dict[str, str], jobs: list[Any], concurrency: int, do: Callable) -> list[Any]:
    """Run `do(client, job)` for every job over `concurrency` keep-alive connections; the results in job order."""
    results: list[Any] = [None] * len(jobs)
    queue = iter(enumerate(jobs))

    async def worker() -> None:
        async with Http(port, headers) as client:
            for i, job in queue:
                results[i] = await do(client, job)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(jobs))))))
    return results


# --------------------------------------------------------------------------------------------------------- the data
def slug(g: int) -> str:
    return f"bench-gruppe-{g:05d}"


def member_groups(i: int, per_group: int, groups: int, my_groups: int) -> list[int]:
    """Member i is in group i // per_group; member 0 (the measured one) in the first `my_groups` groups."""
    if i == 0:
        return list(range(min(my_groups, groups)))
    return [min(i // per_group, groups - 1)]


def generate_csv(path: Path, members: int, groups: int, my_groups: int, seed: int = 11) -> int:
    """The members, fictional (example.org), æøå throughout, in 500 organisations; returns the seats written."""
    rnd = random.Random(seed)
    per_group = max(1, members // groups)
    seats = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(HEADER)
        for i in range(members):
            org = i % 500
            gs = member_groups(i, per_group, groups, my_groups)
            seats += len(gs)
            w.writerow(
                [
                    f"{rnd.choice(FIRST)} {rnd.choice(LAST)} {i}",
                    f"medlem-{i}@example.org",
                    f"+45 {rnd.randrange(10**8):08d}",
                    f"{'Kommune' if org % 3 == 0 else 'Data ApS'} nr. {org}",
                    KINDS[org % 3],
                    "",
                    rnd.choice(JOBS),
                    "da" if i % 5 else "en",
                    "|".join(slug(g) for g in gs),
                ]
            )
    return seats


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


async def scalar(url: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], timeout: float, every: float = 1.0) -> float:
    t0 = time.perf_counter()
    while not await check():
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(every)
    return time.perf_counter() - t0


def meeting_body(group_id: str, g: int, k: int, base: datetime) -> dict:
    starts = base + timedelta(days=7 * (k + 1) + g % 5, hours=g % 7)
    return {
        "group_id": group_id,
        "title": f"Netværksmøde {k + 1}: data, AI og ansvar (gruppe {g})",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "timezone": "Europe/Copenhagen",
        "venue": {"name": "Rådhuset, mødesal 2", "address": "Rådhuspladsen 1, 1550 København V"},
        "capacity": 60,
        "agenda": [
            {"kind": "check_in", "title": "Runde: hvad optager jer?", "minutes": 20},
            {"kind": "talk", "title": "AI i sagsbehandlingen", "minutes": 45, "speaker": "Mette Eksempel"},
        ],
    }


async def load(
    services: dict[str, ServiceProcess], dbs: dict[str, str], nats_url: str, args: argparse.Namespace, work: Path
) -> dict:
    """Groups, members, meetings and answers, as described in the module's docstring; the phases' times."""
    phases: dict[str, float] = {}
    admin = {"Authorization": f"Bearer {TOKEN}"}
    members_port = services["members"].port
    meetings_port = services["meetings"].port

    t0 = time.perf_counter()

    async def create_group(client: Http, g: int) -> str:
        body = {"name": f"Bench-gruppe {g} øst", "slug": slug(g), "region": ("Øst", "Vest", "Nord", "Syd")[g % 4]}
        status, text = await client.request("POST", "/groups", body)
        if status != 201:
            raise RuntimeError(f"POST /groups -> {status}: {text[:300]!r}")
        return str(json.loads(text)["group_id"])

    group_ids: list[str] = await fan_out(members_port, admin, list(range(args.groups)), 20, create_group)
    phases["groups_s"] = time.perf_counter() - t0
    out(f"  {args.groups:,} groups by POST /groups: {phases['groups_s']:.1f} s")

    t0 = time.perf_counter()
    path = work / "members.csv"
    seats = generate_csv(path, args.members, args.groups, args.my_groups)
    phases["csv_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    log = work / "import.log"
    with open(log, "wb") as logf:
        rc = subprocess.run(
            [PY, "-m", "members.entrypoints.cli", "import", str(path), "--database-url", dbs["members"]],
            cwd=ROOT,
            env=child_env(),
            stdout=logf,
            stderr=subprocess.STDOUT,
        ).returncode
    if rc != 0:
        raise RuntimeError(f"the import failed ({rc}):\n{log.read_text()[-2000:]}")
    phases["import_s"] = time.perf_counter() - t0
    out(
        f"  {args.members:,} members ({seats:,} seats, {path.stat().st_size / 2**20:.1f} MiB CSV, made in "
        f"{phases['csv_s']:.1f} s) by the members CLI import: {phases['import_s']:.1f} s"
    )

    t0 = time.perf_counter()

    async def meetings_caught_up() -> bool:
        groups = await scalar(dbs["meetings"], "SELECT count(*) FROM groups")
        roster = await scalar(dbs["meetings"], "SELECT count(*) FROM group_members")
        return bool(groups == args.groups and roster == seats)

    await wait_for("the meetings service learning every group and seat", meetings_caught_up, 1800, 2.0)
    phases["events_s"] = time.perf_counter() - t0
    out(f"  meetings knows every group and seat (MEMBERS events): {phases['events_s']:.1f} s after the import")

    # every group's GET /groups/{id} answers 200 by now (its row is there); check the measured member's own
    for gid in group_ids[: args.my_groups]:
        async with Http(meetings_port, admin) as client:
            status, _ = await client.request("GET", f"/groups/{gid}")
        if status != 200:
            raise RuntimeError(f"meetings GET /groups/{gid} -> {status}")

    t0 = time.perf_counter()
    base = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    per_group = max(1, args.meetings // args.groups)
    jobs = [(g, k) for g in range(args.groups) for k in range(per_group)][: args.meetings]

    async def schedule(client: Http, job: tuple[int, int]) -> str:
        g, k = job
        status, text = await client.request("POST", "/meetings", meeting_body(group_ids[g], g, k, base))
        if status != 201:
            raise RuntimeError(f"POST /meetings -> {status}: {text[:300]!r}")
        return str(json.loads(text)["meeting_id"])

    meeting_ids: list[str] = await fan_out(meetings_port, admin, jobs, 20, schedule)
    phases["meetings_s"] = time.perf_counter() - t0
    out(f"  {len(meeting_ids):,} meetings by POST /meetings: {phases['meetings_s']:.1f} s")

    # the measured member and some others of their groups
    per_member_group = max(1, args.members // args.groups)
    others_by_group = {
        g: [f"medlem-{i}@example.org" for i in range(g * per_member_group, (g + 1) * per_member_group) if i != 0][
            : args.others_answering
        ]
        for g in range(min(args.my_groups, args.groups))
    }
    conn = await asyncpg.connect(asyncpg_dsn(dbs["members"]))
    try:
        wanted = ["medlem-0@example.org", *(e for es in others_by_group.values() for e in es)]
        ids = {
            r["email"]: str(r["id"])
            for r in await conn.fetch("SELECT id, email FROM members WHERE email = any($1)", wanted)
        }
    finally:
        await conn.close()
    me = ids["medlem-0@example.org"]
    mine = [(g, meeting_ids[i]) for i, (g, _) in enumerate(jobs) if g < args.my_groups]
    answers = [
        (me, mid, ("attending", "tentative", "declined", "attending")[n % 4])
        for n, (_, mid) in enumerate(mine[:: max(1, len(mine) // args.my_answers)][: args.my_answers])
    ]
    answers += [(ids[e], mid, "attending") for g, mid in mine for e in others_by_group[g]]

    t0 = time.perf_counter()

    async def answer(client: Http, job: tuple[str, str, str]) -> int:
        member, mid, response = job
        status, text = await client.request(
            "PUT", f"/meetings/{mid}/rsvps/{member}", {"response": response}, {"X-Netvaerk-Member": member}
        )
        if status != 200:
            raise RuntimeError(f"PUT /meetings/{mid}/rsvps/{member} -> {status}: {text[:300]!r}")
        return status

    await fan_out(meetings_port, admin, answers, 10, answer)
    phases["answers_s"] = time.perf_counter() - t0
    out(
        f"  {len(answers):,} answers by PUT /meetings/{{id}}/rsvps/{{member}} ({args.my_answers} of the measured "
        f"member's, {args.others_answering} others in each of their {len(mine)} meetings): {phases['answers_s']:.1f} s"
    )

    async def quiet() -> bool:  # nothing left for the relays: no CPU spent publishing while timed
        left = 0
        for svc in ("members", "meetings"):
            left += await scalar(dbs[svc], "SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return left == 0

    phases["relays_quiet_s"] = await wait_for("the relays publishing every event", quiet, 900, 1.0)

    # and nothing left for meetings' consumers either (it also takes member.registered, 100,000 of them, which the
    # seat count above does not wait for): every durable of the meetings service on every stream has caught up
    import nats

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()

        async def consumed() -> bool:
            behind = 0
            for stream in await js.streams_info():
                for c in await js.consumers_info(stream.config.name):
                    if (c.name or "").startswith("meetings"):
                        behind += (c.num_pending or 0) + (c.num_ack_pending or 0)
            return behind == 0

        phases["consumers_idle_s"] = await wait_for("meetings' consumers catching up", consumed, 1800, 2.0)
    finally:
        await nc.close()
    return {
        "phases": phases,
        "seats": seats,
        "member_id": me,
        "group_ids": group_ids[: args.my_groups],
        "meetings": len(meeting_ids),
        "their_meetings": len(mine),
        "answers": len(answers),
    }


# ------------------------------------------------------------------------------------------------------- the timing
def cpu(pids: dict[str, int]) -> dict[str, float]:
    times = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times[name] = sum(psutil.Process(pid).cpu_times()[:2])
    return times


async def timed(
    port: int, path: str, headers: dict[str, str], seconds: float, concurrency: int, pids: dict[str, int]
) -> dict:
    """`concurrency` connections, each sending the next request when the last answered, for `seconds`."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sizes: list[int] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Http(port, headers)) for _ in range(concurrency)]
        deadline = 0.0

        async def worker(client: Http) -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                status, body = await client.request("GET", path)
                latencies.append(time.perf_counter() - t)
                statuses[status] = statuses.get(status, 0) + 1
                if len(sizes) < 10:
                    sizes.append(len(body))

        cpu0, client0 = cpu(pids), time.process_time()
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(worker(c) for c in clients))
        elapsed = time.perf_counter() - t0
        cpu1, client1 = cpu(pids), time.process_time()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "latencies": latencies,
        "statuses": statuses,
        "bytes": statistics.median(sizes) if sizes else 0,
        "cpu_share": {k: (cpu1[k] - cpu0[k]) / elapsed for k in cpu1 if k in cpu0},
        "client_cpu_share": (client1 - client0) / elapsed,
    }


def log_offsets(services: dict[str, ServiceProcess]) -> dict[str, int]:
    return {name: s.log_path.stat().st_size if s.log_path.exists() else 0 for name, s in services.items()}


def access_lines(services: dict[str, ServiceProcess], start: dict[str, int], end: dict[str, int]) -> list[dict]:
    """The services' access log lines written between two offsets: (service, route, duration)."""
    rows = []
    for name, s in services.items():
        with open(s.log_path, "rb") as f:
            f.seek(start[name])
            chunk = f.read(end[name] - start[name])
        for line in chunk.splitlines():
            if b"netvaerk.access" not in line:
                continue
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("logger") != "netvaerk.access":
                    continue
                method, target, _status = rec["message"].split(" ", 2)
                route = UUID_RE.sub("{id}", target.split("?", 1)[0])
                rows.append({"service": name, "route": f"{method} {route}", "ms": float(rec["duration_ms"])})
    return rows


def summarise(runs: list[dict]) -> dict:
    lat = [x for r in runs for x in r["latencies"]]
    statuses: dict[int, int] = {}
    for r in runs:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    shares: dict[str, list[float]] = {}
    for r in runs:
        for k, v in r["cpu_share"].items():
            shares.setdefault(k, []).append(v)
    return {
        "rate": statistics.median(r["rate"] for r in runs),
        "rates": [r["rate"] for r in runs],
        "requests": sum(r["requests"] for r in runs),
        "p50_ms": pct(lat, 50) * 1e3,
        "p95_ms": pct(lat, 95) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "max_ms": max(lat) * 1e3,
        "statuses": statuses,
        "bytes": runs[0]["bytes"],
        "cpu_share": {k: statistics.median(v) for k, v in shares.items()},
        "client_cpu_share": statistics.median(r["client_cpu_share"] for r in runs),
    }


def calls_summary(rows: list[dict], dashboards: int) -> dict:
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        by.setdefault((r["service"], r["route"]), []).append(r["ms"])
    return {
        "per_dashboard": len(rows) / dashboards if dashboards else float("nan"),
        "routes": [
            {
                "service": s,
                "route": route,
                "per_dashboard": len(ms) / dashboards,
                "p50_ms": pct(ms, 50),
                "p95_ms": pct(ms, 95),
            }
            for (s, route), ms in sorted(by.items(), key=lambda kv: -len(kv[1]))
        ],
    }


def start_bare(work: Path) -> tuple[subprocess.Popen, int, Path]:
    (work / "bare_gateway_app.py").write_text(BARE_APP, encoding="utf-8")
    port = pipeline.infra.free_port()
    log = work / "bare.log"
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            [PY, "-m", "uvicorn", "bare_gateway_app:app", "--app-dir", str(work), "--host", "127.0.0.1"]
            + ["--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"],
            cwd=work,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pipeline.infra.child_preexec(),
        )
    deadline = time.monotonic() + 30
    while pipeline.http_status(f"http://127.0.0.1:{port}/") != 200:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the bare app did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, port, log


# ------------------------------------------------------------------------------------------------------------- main
async def run(args: argparse.Namespace, work: Path) -> dict:
    results: dict[str, Any] = {"machine": pipeline.machine(), "args": vars(args)}
    infra_ = pipeline.Infra(work, ["postgresql"])
    services: dict[str, ServiceProcess] = {}
    bare: subprocess.Popen | None = None
    try:
        out(f"machine: {json.dumps(results['machine'], ensure_ascii=False)}")
        settings = await infra_.pg_settings()
        out(f"postgresql: {infra_.pg_note} {infra_.pg_admin.rsplit('@', 1)[-1]} {settings}")
        results["postgresql"] = {"source": infra_.pg_note, "settings": settings}
        dbs = {
            name: await infra_.database("postgresql", f"gw_{name}")
            for name in ("members", "meetings", "notifications", "gateway")
        }
        common = {
            "NATS_URL": infra_.nats.url,
            "API_TOKEN": TOKEN,
            "GATEWAY_TOKEN_KEY": GATEWAY_KEY,
            "ENVIRONMENT": "test",
            "RATE_LIMIT_PER_MINUTE": "0",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("members", "meetings", "notifications"):
            env = {**common, "DATABASE_URL": dbs[name]}
            if name == "notifications":
                # it takes no part in a dashboard; consuming, it would fan out a welcome mail per member and an
                # invitation per seat of every meeting (~1.1 million at the numbers) during the timing
                env.update(
                    SMTP_HOST="127.0.0.1",
                    SMTP_PORT=str(pipeline.infra.free_port()),
                    RUN_CONSUMERS="false",
                    RUN_DELIVERIES="false",
                    RUN_REMINDERS="false",
                    RUN_WEBHOOKS="false",
                )
            services[name] = ServiceProcess(name, env, work)
        gw_port = pipeline.infra.free_port()
        services["gateway"] = ServiceProcess(
            "gateway",
            {
                **common,
                "DATABASE_URL": dbs["gateway"],
                "PUBLIC_URL": f"http://127.0.0.1:{gw_port}",
                **{f"{n.upper()}_URL": services[n].url for n in ("members", "meetings", "notifications")},
            },
            work,
            port=gw_port,
        )
        for s in services.values():
            s.start(wait=False)
        for s in services.values():
            s.wait_ready(timeout=60)
        out(f"services ready: {', '.join(f'{n} :{s.port}' for n, s in services.items())}; NATS {infra_.nats.url}")

        out(f"loading: {args.members:,} members, {args.groups:,} groups, {args.meetings:,} meetings")
        t0 = time.perf_counter()
        data = await load(services, dbs, infra_.nats.url, args, work)
        data["load_s"] = time.perf_counter() - t0
        results["data"] = data
        out(
            f"  loaded in {data['load_s']:.1f} s (relays idle after {data['phases']['relays_quiet_s']:.1f} s more, "
            f"meetings' consumers caught up {data['phases']['consumers_idle_s']:.1f} s after that)"
        )
        for db in ("members", "meetings", "gateway"):  # fresh statistics for the planner, as autovacuum would
            conn = await asyncpg.connect(asyncpg_dsn(dbs[db]))
            try:
                await conn.execute("ANALYZE")
            finally:
                await conn.close()

        engine = create_engine(dbs["gateway"])
        try:
            token, _ = await Store(engine).create_session(
                uuid.UUID(data["member_id"]), datetime.now(UTC), timedelta(days=1)
            )
        finally:
            await engine.dispose()
        cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
        async with Http(gw_port, cookie) as client:
            status, body = await client.request("GET", "/api/dashboard")
            if status != 200:
                raise RuntimeError(f"GET /api/dashboard -> {status}: {body[:500]!r}")
            dash = json.loads(body)
            status, page = await client.request("GET", "/")
            if status != 200 or dash["meetings"][0]["title"].encode() not in page:
                raise RuntimeError(f"GET / -> {status}: {page[:500]!r}")
        shown = {
            "groups": len(dash["groups"]),
            "meetings": len(dash["meetings"]),
            "answered": sum(1 for m in dash["meetings"] if m["answer"]),
            "api_bytes": len(body),
            "html_bytes": len(page),
        }
        results["dashboard"] = shown
        out(
            f"the member's dashboard: {shown['groups']} groups, {shown['meetings']} meetings shown "
            f"({shown['answered']} with their answer); JSON {shown['api_bytes']:,} bytes, HTML {shown['html_bytes']:,}"
        )

        bare, bare_port, _ = start_bare(work)
        pids = {n: s.proc.pid for n, s in services.items() if s.proc is not None}
        pids["bare"] = bare.pid
        targets = {
            "bare": (bare_port, "/", {}),
            "api": (gw_port, "/api/dashboard", cookie),
            "html": (gw_port, "/", cookie),
        }
        for port, path, headers in targets.values():  # warm-up: connections, pools, caches, templates
            await timed(port, path, headers, args.warmup, args.concurrency, pids)
        load_before = os.getloadavg()
        runs: dict[str, list[dict]] = {k: [] for k in targets}
        calls: dict[str, list[dict]] = {"api": [], "html": []}
        for r in range(args.rounds):
            for name, (port, path, headers) in targets.items():
                start = log_offsets(services)
                result = await timed(port, path, headers, args.seconds, args.concurrency, pids)
                if name in calls:
                    await asyncio.sleep(0.3)  # the last access lines flushed
                    calls[name].extend(access_lines(services, start, log_offsets(services)))
                runs[name].append(result)
                p95 = pct(result["latencies"], 95) * 1e3
                out(
                    f"  round {r + 1} {name:<5} {result['rate']:8,.0f} req/s  p95 {p95:7.1f} ms"
                    f"  statuses {result['statuses']}"
                )
        load_after = os.getloadavg()
        # diagnostics, once each: the gateway without service calls (its session lookup), and each service call of a
        # dashboard made straight to the service with a token as the gateway mints it, same client and connections
        me = uuid.UUID(data["member_id"])

        def signed(service: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {service_tokens.mint(GATEWAY_KEY, audience=service, member_id=me)}"}

        direct = {
            "gateway GET /api/session": (gw_port, "/api/session", cookie),
            "members GET /members/{id}": (services["members"].port, f"/members/{me}", signed("members")),
            "meetings GET /groups/{id}/meetings": (
                services["meetings"].port,
                f"/groups/{data['group_ids'][0]}/meetings",
                signed("meetings"),
            ),
            "meetings GET /members/{id}/meetings": (
                services["meetings"].port,
                f"/members/{me}/meetings",
                signed("meetings"),
            ),
        }
        alone = {}
        for name, (port, path, headers) in direct.items():
            alone[name] = summarise([await timed(port, path, headers, args.seconds / 2, args.concurrency, pids)])
        results["direct"] = alone
        figures = {k: summarise(v) for k, v in runs.items()}
        diag = {k: calls_summary(v, figures[k]["requests"]) for k, v in calls.items()}
        results["figures"] = figures
        results["calls"] = diag
        results["load_average"] = {"before": load_before, "after": load_after}
        for line in report_lines(results, args):
            out(line)
        return results
    finally:
        if bare is not None:
            pipeline.infra.stop_process(bare)
        for name in ("gateway", "notifications", "meetings", "members"):
            if name in services:
                services[name].stop()
        await infra_.close()


def report_lines(results: dict, args: argparse.Namespace) -> list[str]:
    f = results["figures"]
    bare = f["bare"]

    def row(label: str, x: dict) -> str:
        return (
            f"{label:<34} {x['rate']:8,.0f} req/s  p50 {x['p50_ms']:7.1f}  p95 {x['p95_ms']:7.1f}  "
            f"p99 {x['p99_ms']:7.1f} ms  (rounds {', '.join(f'{v:,.0f}' for v in x['rates'])})"
        )

    def verdict(key: str) -> str:
        x = f[key]
        ratio = x["rate"] / bare["rate"]
        ok_rate = ratio >= AIMS[key]
        ok_p95 = x["p95_ms"] < AIMS["p95_ms"]
        return (
            f"  {key:<4} ratio {ratio:.2f} (aim ≥ {AIMS[key]:.2f}: {'ok' if ok_rate else 'MISSED'}); "
            f"p95 {x['p95_ms']:.1f} ms (aim < {AIMS['p95_ms']:.0f} ms: {'ok' if ok_p95 else 'MISSED'})"
        )

    lines = [
        "",
        f"dashboard of one member at {args.members:,} members / {results['data']['meetings']:,} meetings, "
        f"{args.concurrency} connections, {args.rounds} x {args.seconds:g} s each",
        row("GET /api/dashboard (gateway)", f["api"]),
        row("GET / HTML dashboard (gateway)", f["html"]),
        row("baseline: bare FastAPI GET /", bare),
        verdict("api"),
        verdict("html"),
        f"  statuses: api {f['api']['statuses']}, html {f['html']['statuses']}, bare {bare['statuses']}",
        "  CPU share while timed (1.0 = one core): "
        + "; ".join(
            f"{k}: "
            + ", ".join(f"{n} {v:.2f}" for n, v in f[k]["cpu_share"].items() if v >= 0.01)
            + f", client {f[k]['client_cpu_share']:.2f}"
            for k in ("api", "html", "bare")
        ),
        f"  load average before {results['load_average']['before'][0]:.2f}, "
        f"after {results['load_average']['after'][0]:.2f}",
    ]
    lines.append(f"  alone, {args.concurrency} connections, {args.seconds / 2:g} s each (diagnostic):")
    for name, x in results["direct"].items():
        busy = ", ".join(f"{n} {v:.2f}" for n, v in x["cpu_share"].items() if v >= 0.05)
        lines.append(
            f"      {name:<38} {x['rate']:7,.0f} req/s  p50 {x['p50_ms']:6.1f}  p95 {x['p95_ms']:6.1f} ms  "
            f"statuses {x['statuses']}  CPU {busy}"
        )
    for key in ("api", "html"):
        d = results["calls"][key]
        lines.append(f"  {key}: {d['per_dashboard']:.1f} service calls per dashboard (services' own times):")
        for r in d["routes"]:
            lines.append(
                f"      {r['per_dashboard']:4.1f} x {r['service']:<9} {r['route']:<40} p50 {r['p50_ms']:6.1f}  "
                f"p95 {r['p95_ms']:6.1f} ms"
            )
    return lines


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        results = await run(args, Path(tmp))

    target = ROOT / "var" / "bench" / f"gateway-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    out(f"results: {target.relative_to(ROOT)}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--members", type=int, default=100_000, help="members imported (default 100,000)")
    p.add_argument("--groups", type=int, default=1_000, help="groups; members/groups members each (default 1,000)")
    p.add_argument("--meetings", type=int, default=10_000, help="meetings, spread over the groups (default 10,000)")
    p.add_argument("--my-groups", type=int, default=3, help="the measured member's groups (default 3)")
    p.add_argument("--my-answers", type=int, default=6, help="meetings the measured member answered (default 6)")
    p.add_argument(
        "--others-answering", type=int, default=20, help="other members answering each of those groups' meetings"
    )
    p.add_argument("--concurrency", type=int, default=20, help="keep-alive connections while timed (default 20)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per target per round (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the three targets in turn (default 3)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target (default 2)")
    return p.parse_args(argv)


if __name__ == "__main__":
    import uvloop

    raise SystemExit(uvloop.run(main(parse_args())))
