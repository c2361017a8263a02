#!/usr/bin/env python3
"""Benchmark of the event pipeline: outbox -> relay -> JetStream -> idempotent consumer, the members write API,
end-to-end latency, and the services' footprint. Each figure is printed beside a raw baseline measured in the same
run on the same machine, and the ratio. It is a benchmark, not a test: nothing here asserts a time.

    .venv/bin/python bench/pipeline.py [--backend postgresql|sqlite|both] [--events N] [--quick]

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import Column, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from netvaerk_shared import contracts, topology
from netvaerk_shared.consumer import EventConsumer, Subscription
from netvaerk_shared.db import UtcDateTime, asyncpg_dsn, create_engine, dialect_insert, is_sqlite
from netvaerk_shared.envelope import CONTENT_TYPE, make_event, to_bytes
from netvaerk_shared.logs import JsonFormatter
from netvaerk_shared.messaging import add_messaging_tables
from netvaerk_shared.outbox import Relay
from netvaerk_shared.settings import ServiceSettings
from netvaerk_shared.uow import UnitOfWork
from netvaerk_testing import infra

T = TypeVar("T")
Record = Callable[[Any, contracts.MemberJoined], None]  # told of (event, data) for every effect in a transaction
ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SERVICES = ("members", "meetings", "notifications")
# What a service runs with when nothing is configured (the field defaults, whatever this shell's env says).
DEFAULTS = argparse.Namespace(
    **{
        name: ServiceSettings.model_fields[name].default
        for name in ("relay_batch_size", "consumer_batch_size", "consumer_max_deliver")
    }
)
AIMS = {"drain": 0.50, "accept": 0.50, "p99_ms": 25.0, "rss_mb": 120.0, "ready_s": 5.0}
TOKEN = "bench-token-0123456789abcdef"

# The consuming side's own table (a roster copy, like meetings keeps), the producing side's domain row for the
# latency figure, and the messaging tables every service has (outbox, inbox, dead letters). See README for which
# figure puts them in one database and which in two.
metadata = MetaData()
tables = add_messaging_tables(metadata)
roster = Table(
    "roster",
    metadata,
    Column("group_id", String(36), primary_key=True),
    Column("member_id", String(36), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("joined_at", UtcDateTime(), nullable=False),
)
joins = Table(
    "joins",
    metadata,
    Column("member_id", String(36), primary_key=True),
    Column("group_id", String(36), nullable=False),
    Column("joined_at", UtcDateTime(), nullable=False),
)


def loop_name() -> str:
    """The running event loop's kind: uvloop or asyncio."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


def run_on(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the event loop a service runs on (uvicorn --loop uvloop), or on asyncio's own."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def out(line: str = "") -> None:
    print(line, flush=True)


# ----------------------------------------------------------------------------------------------------------- helpers


def joined_event() -> contracts.MemberJoined:
    return contracts.MemberJoined(
        member_id=uuid.uuid4(), group_id=uuid.uuid4(), role="member", joined_at=datetime.now(UTC)
    )


_UPSERTS: dict[str, Any] = {}
USE_BATCH_HANDLER = True  # --per-event-handler leaves the effect to the per-event handler


def _upsert(conn: AsyncConnection) -> Any:
    """The roster upsert, built once per dialect and executed with parameters, as a lean handler would."""
    stmt = _UPSERTS.get(conn.dialect.name)
    if stmt is None:
        ins = dialect_insert(conn, roster)
        stmt = _UPSERTS[conn.dialect.name] = ins.on_conflict_do_update(
            index_elements=[roster.c.group_id, roster.c.member_id],
            set_={"role": ins.excluded.role, "joined_at": ins.excluded.joined_at},
        )
    return stmt


def _roster_row(data: contracts.MemberJoined) -> dict[str, Any]:
    return {
        "group_id": str(data.group_id),
        "member_id": str(data.member_id),
        "role": data.role.value,
        "joined_at": data.joined_at,
    }


class RosterRepository:
    """The consuming service's repository (what meetings keeps of MemberJoined): it records no events of its own."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: list[Any] = []

    async def upsert(self, rows: list[dict[str, Any]]) -> None:
        await self.conn.execute(_upsert(self.conn), rows if len(rows) > 1 else rows[0])


def _no_contract(event: object, aggregate: object) -> contracts.EventData:
    raise TypeError("the roster records no events")


def consumer_uow(engine: AsyncEngine) -> Callable[[AsyncConnection], UnitOfWork[RosterRepository]]:
    """What `ServiceRuntime.uow_on(conn)` gives a consumer's handlers: a unit of work joined to its transaction."""

    def on(conn: AsyncConnection) -> UnitOfWork[RosterRepository]:
        return UnitOfWork(engine, tables, "meetings", repositories=RosterRepository, translate=_no_contract, conn=conn)

    return on


def roster_subscription(record: Record) -> Subscription:
    """The consumer's effect: an upsert into the roster copy (what meetings does with MemberJoined), through the unit
    of work the consumer joins to its batch transaction, as a service's subscriber does. `record(event, data)` is told
    of every event whose effect went into the current transaction."""

    async def handler(uow: Any, event: Any, data: Any) -> None:
        async with uow:
            await uow.repo.upsert([_roster_row(data)])
            await uow.commit()
        record(event, data)

    async def batch_handler(uow: Any, pairs: list[tuple[Any, Any]]) -> None:  # one executemany, like meetings
        async with uow:
            await uow.repo.upsert([_roster_row(data) for _, data in pairs])
            await uow.commit()
        for event, data in pairs:
            record(event, data)

    if USE_BATCH_HANDLER:
        return Subscription(contracts.MemberJoined, handler, batch_handler=batch_handler)
    return Subscription(contracts.MemberJoined, handler)


@dataclasses.dataclass
class Join:
    """The producing service's aggregate for the latency figure: a member joined a group (it records that)."""

    member_id: uuid.UUID
    group_id: uuid.UUID
    joined_at: datetime
    events: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def new(cls) -> Join:
        join = cls(uuid.uuid4(), uuid.uuid4(), datetime.now(UTC))
        join.events.append("joined")
        return join


_INSERT_JOIN = insert(joins)  # built once, executed with parameters, as the services' repositories do


class JoinsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: list[Join] = []

    async def add(self, join: Join) -> None:
        await self.conn.execute(
            _INSERT_JOIN,
            {"member_id": str(join.member_id), "group_id": str(join.group_id), "joined_at": join.joined_at},
        )
        self.seen.append(join)


def join_contract(event: object, join: Join) -> contracts.MemberJoined:
    """The producing service's translator: domain event -> v1 contract."""
    return contracts.MemberJoined(
        member_id=join.member_id, group_id=join.group_id, role="member", joined_at=join.joined_at
    )


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


class LeanHttp:
    """A minimal HTTP/1.1 keep-alive client (one connection per worker) so the load generator costs little CPU:
    httpx tops out near 1,000 requests/s on one core here, which would measure the client, not the server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token

    async def __aenter__(self) -> LeanHttp:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
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


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


class Infra:
    """NATS (always ours, from the wheel) and the databases: throwaway PostgreSQL databases or SQLite files."""

    def __init__(self, workdir: Path, backends: list[str]) -> None:
        self.workdir = workdir
        self.nats = infra.start_nats(workdir / "nats")
        self.pg_admin: str | None = None
        self.pg_note = ""
        self.cluster = None
        self._dbs: list[str] = []
        if "postgresql" in backends:
            given = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
            if given.startswith(("postgresql", "postgres:")):
                self.pg_admin = infra.admin_postgres_url(given)
                self.pg_note = "from env " + (
                    "BENCH_DATABASE_URL" if os.environ.get("BENCH_DATABASE_URL") else "DATABASE_URL"
                )
            else:
                self.cluster = infra.start_pg_cluster(workdir / "pg")
                self.pg_admin = self.cluster.admin_url
                self.pg_note = "throwaway cluster (infra.start_pg_cluster: fsync=off, synchronous_commit=off)"

    async def database(self, backend: str, tag: str) -> str:
        if backend == "sqlite":
            path = self.workdir / "sqlite" / f"{tag}-{uuid.uuid4().hex[:6]}.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            return infra.sqlite_url(path)
        name = f"bench_{os.getpid()}_{tag}_{uuid.uuid4().hex[:6]}"
        self._dbs.append(name)
        return await infra.create_database(self.pg_admin, name)

    async def drop(self, url: str) -> None:
        if is_sqlite(url):
            return
        name = url.rsplit("/", 1)[-1]
        with contextlib.suppress(Exception):
            await infra.drop_database(self.pg_admin, name)
        with contextlib.suppress(ValueError):
            self._dbs.remove(name)

    async def pg_settings(self) -> dict:
        import asyncpg

        conn = await asyncpg.connect(self.pg_admin)
        try:
            rows = await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name = ANY($1)",
                ["fsync", "synchronous_commit", "server_version"],
            )
            return {r["name"]: r["setting"] for r in rows}
        finally:
            await conn.close()

    async def close(self) -> None:
        for name in list(self._dbs):
            with contextlib.suppress(Exception):
                await infra.drop_database(self.pg_admin, name)
        if self.cluster is not None:
            self.cluster.stop()
        self.nats.stop()


async def connect_js(url: str) -> tuple[Nats, JetStreamContext]:
    nc = await topology.connect(url, name="bench")
    return nc, nc.jetstream()


async def reset_stream(js: JetStreamContext, service: str = "members") -> None:
    with contextlib.suppress(Exception):
        await js.delete_stream(topology.stream_for(service))
    await topology.ensure_stream(js, service)


async def wait_consumer(js: JetStreamContext, stream: str, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await js.consumer_info(stream, name)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def stop_tasks(stop: asyncio.Event, tasks: list[asyncio.Task], relay: Relay | None = None) -> None:
    stop.set()
    if relay is not None:
        relay.wake()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def fresh_schema(infra_: Infra, backend: str, tag: str) -> tuple[str, AsyncEngine]:
    url = await infra_.database(backend, tag)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return url, engine


# ------------------------------------------------------------------------------------------------------ 1. drain


async def drain_pipeline(infra_: Infra, backend: str, n: int) -> dict:
    """n events pre-filled in the outbox -> the real Relay -> JetStream -> the real EventConsumer, one process."""
    url, engine = await fresh_schema(infra_, backend, "drain")
    events = [make_event(joined_event()) for _ in range(n)]
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "event_id": e.id,
            "subject": f"{contracts.MemberJoined.subject_prefix()}.{e.subject}",
            "type": e.type,
            "body": to_bytes(e),
            "created_at": now,
            "attempts": 0,
        }
        for e in events
    ]
    body_size = statistics.mean(len(r["body"]) for r in rows)
    async with engine.begin() as conn:
        for i in range(0, n, 5000):
            await conn.execute(insert(tables.outbox), rows[i : i + 5000])
    del rows, events
    nc, js = await connect_js(infra_.nats.url)
    await reset_stream(js)

    pending: set[str] = set()
    committed: set[str] = set()
    done = asyncio.Event()
    t_done = 0.0
    batches = 0

    def on_commit() -> None:
        nonlocal t_done, batches
        batches += 1
        committed.update(pending)
        pending.clear()
        if len(committed) >= n and not done.is_set():
            t_done = time.perf_counter()
            done.set()

    consumer = EventConsumer(
        service="meetings",
        subscription=roster_subscription(lambda e, d: pending.add(e.id)),
        engine=engine,
        tables=tables,
        max_deliver=DEFAULTS.consumer_max_deliver,
        batch_size=DEFAULTS.consumer_batch_size,
        on_commit=on_commit,
        unit_of_work=consumer_uow(engine),
    )
    relay = Relay(engine=engine, tables=tables, js=js, service="members", batch_size=DEFAULTS.relay_batch_size)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(consumer.run(js, stop))]
    await wait_consumer(js, consumer.stream, consumer.name)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    tasks.append(asyncio.create_task(relay.run(stop)))
    try:
        await asyncio.wait_for(done.wait(), timeout=max(120.0, n / 100))
    finally:
        cpu = time.process_time() - cpu0
        await stop_tasks(stop, tasks, relay)
    elapsed = t_done - t0
    async with engine.connect() as conn:
        effects = (await conn.execute(select(func.count()).select_from(roster))).scalar_one()
        unpublished = (
            await conn.execute(select(func.count()).where(tables.outbox.c.published_at.is_(None)))
        ).scalar_one()
    await nc.close()
    await engine.dispose()
    await infra_.drop(url)
    return {
        "events": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "effects": effects,
        "unpublished": unpublished,
        "consumer_batches": batches,
        "body_bytes": round(body_size),
        "process_cpu_share": cpu / elapsed,
    }


async def drain_raw(nats_url: str, n: int, size: int) -> dict:
    """Raw nats-py: publish_async n messages while a durable pull consumer fetches 500 and acks, concurrently."""
    nc, js = await connect_js(nats_url)
    cfg = topology.stream_config("members")
    cfg.name, cfg.subjects, cfg.description = "BENCHRAW", ["benchraw.>"], "raw baseline"
    with contextlib.suppress(Exception):
        await js.delete_stream("BENCHRAW")
    await js.add_stream(cfg)
    sub = await js.pull_subscribe(
        "benchraw.>", durable="raw", stream="BENCHRAW", config=topology.consumer_config("raw", contracts.MemberJoined)
    )
    payload = b"x" * size
    received = 0
    done = asyncio.Event()
    t_done = 0.0

    async def consume() -> None:
        nonlocal received, t_done
        while received < n:
            try:
                msgs = await sub.fetch(500, timeout=1.0)
            except TimeoutError:
                continue
            for m in msgs:
                await m.ack()
            received += len(msgs)
        t_done = time.perf_counter()
        done.set()

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    futures = []
    for _ in range(n):
        ident = str(uuid.uuid4())
        futures.append(
            await js.publish_async(
                f"benchraw.member.joined.v1.{ident}",
                payload,
                headers={"Nats-Msg-Id": ident, "Content-Type": CONTENT_TYPE},
            )
        )
    await asyncio.gather(*futures)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = t_done - t0
    await task
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
    with contextlib.suppress(Exception):
        await js.delete_stream("BENCHRAW")
    await nc.close()
    return {"events": n, "seconds": elapsed, "rate": n / elapsed}


async def figure_drain(infra_: Infra, backend: str, n: int, runs: int) -> dict:
    pipe, raw = [], []
    for i in range(runs):
        p = await drain_pipeline(infra_, backend, n)
        r = await drain_raw(infra_.nats.url, n, p["body_bytes"])
        pipe.append(p)
        raw.append(r)
        out(
            f"  drain run {i + 1}/{runs}: pipeline {fmt_rate(p['rate'])} ev/s ({p['seconds']:.2f} s, "
            f"{p['consumer_batches']} consumer commits, effects {p['effects']}, unpublished {p['unpublished']}); "
            f"raw nats-py {fmt_rate(r['rate'])} ev/s"
        )
    rate = statistics.median(p["rate"] for p in pipe)
    raw_rate = statistics.median(r["rate"] for r in raw)
    return {
        "rate": rate,
        "raw_rate": raw_rate,
        "ratio": rate / raw_rate,
        "aim": AIMS["drain"],
        "ok": rate / raw_rate >= AIMS["drain"],
        "runs": pipe,
        "raw_runs": raw,
        "complete": all(p["effects"] == n and p["unpublished"] == 0 for p in pipe),
    }


# ----------------------------------------------------------------------------------------------------- 2. accept


def service_env(svc: str, db_url: str, nats_url: str, **extra: object) -> dict[str, str]:
    env = dict(os.environ)
    for key in [k for k in env if k.endswith("DATABASE_URL")]:
        env.pop(key)
    env.update(
        DATABASE_URL=db_url,
        NATS_URL=nats_url,
        API_TOKEN=TOKEN,
        ENVIRONMENT="development",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        RATE_LIMIT_PER_MINUTE="0",
    )
    if svc == "notifications":
        env.setdefault("SMTP_HOST", "127.0.0.1")
        env.setdefault("SMTP_PORT", "1025")
    env.update({k: str(v) for k, v in extra.items()})
    return env


# How the services' uvicorn runs (deploy/Dockerfile, dev.py): --no-access-log (the edge writes the access line), and
# the event loop and HTTP parser the bench was told (--loop, --http; by default uvloop and httptools).
UVICORN = {"loop": "uvloop", "http": "httptools"}


def uvicorn_flags() -> list[str]:
    return ["--no-access-log", "--loop", UVICORN["loop"], "--http", UVICORN["http"]]


def spawn_service(svc: str, port: int, env: dict, log_file: Path) -> subprocess.Popen:
    """The service as its Dockerfile starts it: `uvicorn <svc>.entrypoints.http:app --host --port` + uvicorn_flags()."""
    with open(log_file, "ab") as logf:
        return subprocess.Popen(
            [PY, "-m", "uvicorn", f"{svc}.entrypoints.http:app", "--host", "127.0.0.1", "--port", str(port)]
            + uvicorn_flags(),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=infra.child_preexec(),
        )


async def wait_ready(proc: subprocess.Popen, port: int, log_file: Path, timeout: float = 60.0) -> float:
    t0 = time.perf_counter()
    while http_status(f"http://127.0.0.1:{port}/readyz", timeout=0.5) != 200:
        if proc.poll() is not None:
            raise RuntimeError(f"service on port {port} exited ({proc.returncode}):\n{infra.log_tail(log_file)}")
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"service on port {port} not ready in {timeout:.0f} s:\n{infra.log_tail(log_file)}")
        await asyncio.sleep(0.02)
    return time.perf_counter() - t0


def member_body(tag: str, i: int) -> dict:
    return {
        "name": f"Mette Eksempel {i}",
        "email": f"bench-{tag}-{i}@example.org",
        "phone": "+45 12 34 56 78",
        "organisation": {"name": "Eksempel Kommune", "kind": "public_authority", "cvr": "12345674"},
        "job_title": "Kontorchef",
        "locale": "da",
    }


async def accept_http(
    infra_: Infra, backend: str, requests: int, concurrency: int, run_relay: bool, measure_floor: bool = False
) -> dict:
    url = await infra_.database(backend, "accept")
    port = infra.free_port()
    log_file = infra_.workdir / f"members-accept-{backend}-{'relay' if run_relay else 'norelay'}.log"
    proc = spawn_service(
        "members", port, service_env("members", url, infra_.nats.url, RUN_RELAY=str(run_relay).lower()), log_file
    )
    floor = None
    try:
        await wait_ready(proc, port, log_file)
        server = psutil.Process(proc.pid)
        tag = uuid.uuid4().hex[:8]
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(LeanHttp(port, TOKEN)) for _ in range(concurrency)]
            status, text = await clients[0].request("POST", "/members", member_body(tag, -1))  # creates the org
            if status != 201:
                raise RuntimeError(f"POST /members -> {status}: {text[:300]!r}")

            async def run(n: int, make: Callable[[LeanHttp, int], Awaitable[object]]) -> float:
                counter = iter(range(n))

                async def worker(client: LeanHttp) -> None:
                    for i in counter:
                        await make(client, i)

                t0 = time.perf_counter()
                await asyncio.gather(*(worker(c) for c in clients))
                return time.perf_counter() - t0

            await run(100, lambda c, i: c.request("POST", "/members", member_body(tag + "w", i)))  # warm-up
            statuses: dict[int, int] = {}
            lat: list[float] = []

            async def post(client: LeanHttp, i: int) -> None:
                t = time.perf_counter()
                st, _ = await client.request("POST", "/members", member_body(tag, i))
                lat.append(time.perf_counter() - t)
                statuses[st] = statuses.get(st, 0) + 1

            srv_cpu0 = sum(server.cpu_times()[:2])
            cli_cpu0 = time.process_time()
            elapsed = await run(requests, post)
            srv_cpu = sum(server.cpu_times()[:2]) - srv_cpu0
            cli_cpu = time.process_time() - cli_cpu0
            if measure_floor:  # the HTTP stack alone: GET /healthz, same server, same client, same concurrency
                floor = requests / await run(requests, lambda c, i: c.request("GET", "/healthz"))
        backlog = None
        if run_relay:  # how far behind the relay was when the load stopped
            engine = create_engine(url)
            async with engine.connect() as conn:
                backlog = (
                    await conn.execute(select(func.count()).where(tables.outbox.c.published_at.is_(None)))
                ).scalar_one()
            await engine.dispose()
    finally:
        infra.stop_process(proc)
        await infra_.drop(url)
    ok = statuses.get(201, 0)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "seconds": elapsed,
        "rate": ok / elapsed,
        "statuses": statuses,
        "p50_ms": pct(lat, 50) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "server_cpu_share": srv_cpu / elapsed,
        "client_cpu_share": cli_cpu / elapsed,
        "relay": run_relay,
        "outbox_backlog_at_end": backlog,
        "server": "uvicorn subprocess",
        "healthz_floor_rate": floor,
    }


async def accept_service_layer(infra_: Infra, backend: str, requests: int, concurrency: int) -> dict:
    """What the POST /members route does, minus HTTP: the command handler in runtime.uow(), then the response view."""
    from members import views
    from members.bootstrap import bootstrap
    from members.config import Settings
    from members.domain import commands
    from members.service_layer.handlers import handle
    from netvaerk_shared.migrate import upgrade

    url = await infra_.database(backend, "acceptsvc")
    runtime = bootstrap(Settings(database_url=url, api_token=TOKEN))
    await upgrade(runtime.engine, runtime.migrations_dir)
    # a relay object that is never run: runtime.uow() then behaves as in an instance with RUN_RELAY=true
    runtime.relay = Relay(engine=runtime.engine, tables=runtime.tables, js=None, service="members")
    tag = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        b = member_body(tag, i)
        member = await handle(
            commands.RegisterMember(
                name=b["name"],
                email=b["email"],
                phone=b["phone"],
                organisation_name=b["organisation"]["name"],
                organisation_kind=b["organisation"]["kind"],
                organisation_cvr=b["organisation"]["cvr"],
                job_title=b["job_title"],
                locale=b["locale"],
            ),
            runtime.uow(),
        )
        if hasattr(views, "member_out"):  # the route answers from the aggregate it just saved
            views.member_out(member)
        else:  # older route: re-reads the member after the commit
            await views.get_member(runtime.engine, member.id)

    await one(-1)
    for i in range(-101, -1):
        await one(i)
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            await one(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await runtime.engine.dispose()
    await infra_.drop(url)
    return {"requests": requests, "seconds": elapsed, "rate": requests / elapsed}


async def accept_raw(infra_: Infra, backend: str, requests: int, concurrency: int) -> dict:
    """One transaction per row (a members row + an outbox row), `concurrency` at a time, on the members schema."""
    from members.bootstrap import MIGRATIONS
    from netvaerk_shared.migrate import upgrade

    url = await infra_.database(backend, "acceptraw")
    engine = create_engine(url)
    await upgrade(engine, MIGRATIONS)
    await engine.dispose()
    org_id = uuid.uuid4()
    tag = uuid.uuid4().hex[:8]

    def row(i: int) -> tuple[uuid.UUID, datetime, bytes]:
        member_id = uuid.uuid4()
        now = datetime.now(UTC)
        body = json.dumps(
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "/members",
                "type": "dk.danskit.member.registered.v1",
                "subject": str(member_id),
                "time": now.isoformat().replace("+00:00", "Z"),
                "datacontenttype": "application/json",
                "data": {
                    "member_id": str(member_id),
                    "name": f"Mette Eksempel {i}",
                    "email": f"raw-{tag}-{i}@example.org",
                    "phone": "+45 12 34 56 78",
                    "organisation": {
                        "id": str(org_id),
                        "name": "Eksempel Kommune",
                        "kind": "public_authority",
                        "cvr": "12345674",
                    },
                    "job_title": "Kontorchef",
                    "locale": "da",
                    "registered_at": now.isoformat(),
                },
            },
            separators=(",", ":"),
        ).encode()
        return member_id, now, body

    counter = iter(range(requests))
    if backend == "postgresql":
        import asyncpg

        pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=concurrency, max_size=concurrency)
        await pool.execute(
            "INSERT INTO organisations (id, name, name_key, kind, cvr) VALUES ($1, $2, $3, $4, $5)",
            org_id,
            "Eksempel Kommune",
            "eksempel kommune",
            "public_authority",
            "12345678",
        )

        async def one(i: int) -> None:
            member_id, now, body = row(i)
            async with pool.acquire() as c, c.transaction():
                await c.execute(
                    "INSERT INTO members (id, name, email, phone, organisation_id, job_title, locale, registered_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    member_id,
                    f"Mette Eksempel {i}",
                    f"raw-{tag}-{i}@example.org",
                    "+45 12 34 56 78",
                    org_id,
                    "Kontorchef",
                    "da",
                    now,
                )
                await c.execute(
                    "INSERT INTO outbox (event_id, subject, type, body, created_at, attempts)"
                    " VALUES ($1, $2, $3, $4, $5, 0)",
                    str(uuid.uuid4()),
                    f"members.member.registered.v1.{member_id}",
                    "dk.danskit.member.registered.v1",
                    body,
                    now,
                )

        async def worker() -> None:
            for i in counter:
                await one(i)

        for i in range(-100, 0):
            await one(i)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        await pool.close()
        driver = "raw asyncpg"
    else:
        import aiosqlite

        path = url.split(":///", 1)[1]
        db = await aiosqlite.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000", "foreign_keys=ON"):
            await db.execute(f"PRAGMA {pragma}")
        await db.execute(
            "INSERT INTO organisations (id, name, name_key, kind, cvr) VALUES (?, ?, ?, ?, ?)",
            (org_id.hex, "Eksempel Kommune", "eksempel kommune", "public_authority", "12345678"),
        )
        lock = asyncio.Lock()  # one connection, like the services' SQLite engine: writers queue here

        async def one(i: int) -> None:
            member_id, now, body = row(i)
            async with lock:
                await db.execute("BEGIN IMMEDIATE")
                await db.execute(
                    "INSERT INTO members (id, name, email, phone, organisation_id, job_title, locale, registered_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        member_id.hex,
                        f"Mette Eksempel {i}",
                        f"raw-{tag}-{i}@example.org",
                        "+45 12 34 56 78",
                        org_id.hex,
                        "Kontorchef",
                        "da",
                        now.replace(tzinfo=None).isoformat(sep=" "),
                    ),
                )
                await db.execute(
                    "INSERT INTO outbox (event_id, subject, type, body, created_at, attempts)"
                    " VALUES (?, ?, ?, ?, ?, 0)",
                    (
                        str(uuid.uuid4()),
                        f"members.member.registered.v1.{member_id}",
                        "dk.danskit.member.registered.v1",
                        body,
                        now.replace(tzinfo=None).isoformat(sep=" "),
                    ),
                )
                await db.execute("COMMIT")

        async def worker() -> None:
            for i in counter:
                await one(i)

        for i in range(-100, 0):
            await one(i)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        await db.close()
        driver = "raw aiosqlite"
    await infra_.drop(url)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "seconds": elapsed,
        "rate": requests / elapsed,
        "driver": driver,
    }


async def figure_accept(infra_: Infra, backend: str, requests: int, concurrency: int) -> dict:
    http = await accept_http(infra_, backend, requests, concurrency, run_relay=True, measure_floor=True)
    out(
        f"  accept (relay on):  {fmt_rate(http['rate'])} req/s, statuses {http['statuses']}, "
        f"p50 {http['p50_ms']:.1f} ms p99 {http['p99_ms']:.1f} ms, server CPU {http['server_cpu_share']:.0%}, "
        f"client CPU {http['client_cpu_share']:.0%}, outbox backlog at end {http['outbox_backlog_at_end']}"
    )
    norelay = await accept_http(infra_, backend, requests, concurrency, run_relay=False)
    out(
        f"  accept (relay off): {fmt_rate(norelay['rate'])} req/s, p50 {norelay['p50_ms']:.1f} ms "
        f"p99 {norelay['p99_ms']:.1f} ms, server CPU {norelay['server_cpu_share']:.0%}"
    )
    out(
        "  diagnostic: HTTP stack alone (GET /healthz on the same server): "
        f"{fmt_rate(http['healthz_floor_rate'])} req/s"
    )
    svc = await accept_service_layer(infra_, backend, requests, concurrency)
    out(
        f"  diagnostic: service layer without HTTP (what the route calls, in the bench process): "
        f"{fmt_rate(svc['rate'])} /s"
    )
    raw = await accept_raw(infra_, backend, requests, concurrency)
    out(f"  baseline {raw['driver']}: {fmt_rate(raw['rate'])} tx/s (members row + outbox row, one transaction each)")
    ratio = http["rate"] / raw["rate"]
    return {
        "rate": http["rate"],
        "raw_rate": raw["rate"],
        "ratio": ratio,
        "aim": AIMS["accept"],
        "ok": ratio >= AIMS["accept"],
        "http": http,
        "http_relay_off": norelay,
        "service_layer": svc,
        "raw": raw,
        "complete": http["statuses"].get(201, 0) == requests,
    }


# ---------------------------------------------------------------------------------------------------- 3. latency


async def paced(
    rate: float, total: int, start_one: Callable[[int], Coroutine[Any, Any, None]]
) -> tuple[float, float, int]:
    """Start `start_one(i)` tasks on a fixed schedule; returns (seconds to start them all, seconds until all had
    finished, most tasks in flight at once)."""
    tasks: set[asyncio.Task] = set()
    peak = 0
    t0 = time.perf_counter()
    i = 0
    while i < total:
        now = time.perf_counter()
        due = min(total, int((now - t0) * rate) + 1)
        while i < due:
            t = asyncio.create_task(start_one(i))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
        peak = max(peak, len(tasks))
        next_at = t0 + i / rate
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    if tasks:
        await asyncio.gather(*tasks)
    return elapsed, time.perf_counter() - t0, peak


def _stamping_consumer(engine: AsyncEngine, got: dict[str, float]) -> EventConsumer:
    """The real EventConsumer; its on_commit hook stamps every event of the batch it just committed."""
    pending: list[str] = []

    def on_commit() -> None:
        now = time.perf_counter()  # CLOCK_MONOTONIC: comparable between processes on one Linux machine
        for m in pending:
            got.setdefault(m, now)
        pending.clear()

    return EventConsumer(
        service="meetings",
        subscription=roster_subscription(lambda e, d: pending.append(str(d.member_id))),
        engine=engine,
        tables=tables,
        max_deliver=DEFAULTS.consumer_max_deliver,
        batch_size=DEFAULTS.consumer_batch_size,
        on_commit=on_commit,
        unit_of_work=consumer_uow(engine),
    )


async def _consumer_process_main(
    db_url: str,
    nats_url: str,
    result_path: str,
    ready: Any,  # multiprocessing Events (of the spawn context)
    stop: Any,
    log_level: str,
    log_path: str,
    use_batch_handler: bool,
) -> None:
    global USE_BATCH_HANDLER
    USE_BATCH_HANDLER = use_batch_handler
    configure_logging(log_level, Path(log_path))
    engine = create_engine(db_url)
    nc, js = await connect_js(nats_url)
    got: dict[str, float] = {}
    consumer = _stamping_consumer(engine, got)
    stop_ = asyncio.Event()
    task = asyncio.create_task(consumer.run(js, stop_))
    await wait_consumer(js, consumer.stream, consumer.name, timeout=30)
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.05)
    await stop_tasks(stop_, [task])
    await nc.close()
    await engine.dispose()
    Path(result_path).write_text(json.dumps(got))


def consumer_process(loop: str, *args: Any) -> None:
    """Entry point of the child process that plays the consuming service (meetings), on the bench's event loop."""
    run_on(loop, _consumer_process_main(*args))


async def latency_pipeline(
    infra_: Infra,
    backend: str,
    rate: float,
    seconds: float,
    warmup: float,
    split: bool,
    log_level: str,
    legs: bool = False,
) -> dict:
    """Producer transactions (domain row + outbox row, UnitOfWork) at a fixed pace, the relay woken on commit,
    the consumer's commit stamped. split=True: the consumer runs in its own process with its own database, like
    the meetings service; split=False: producer, relay and consumer share one process and one database.
    legs=True also stamps each event's arrival on NATS (a plain subscription on members.> in this process), to split
    the latency into relay (commit -> on NATS) and consumer (on NATS -> its commit)."""
    import multiprocessing

    url, engine = await fresh_schema(infra_, backend, "latency")
    nc, js = await connect_js(infra_.nats.url)
    await reset_stream(js)
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    took: list[float] = []  # each transaction, from its start (on schedule) to commit() returning: pool wait included
    on_nats: dict[str, float] = {}
    if legs:

        async def arrived(msg: Msg) -> None:
            on_nats.setdefault(msg.subject.rsplit(".", 1)[-1], time.perf_counter())

        await nc.subscribe("members.>", cb=arrived)
    relay = Relay(engine=engine, tables=tables, js=js, service="members", batch_size=DEFAULTS.relay_batch_size)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop))]
    child: Any = None
    if split:
        c_url, c_engine = await fresh_schema(infra_, backend, "latencyconsumer")
        await c_engine.dispose()
        ctx = multiprocessing.get_context("spawn")
        ready, child_stop = ctx.Event(), ctx.Event()
        result_path = infra_.workdir / f"latency-consumer-{uuid.uuid4().hex[:6]}.json"
        child = ctx.Process(
            target=consumer_process,
            daemon=True,
            args=(
                loop_name(),
                c_url,
                infra_.nats.url,
                str(result_path),
                ready,
                child_stop,
                log_level,
                str(infra_.workdir / "consumer-process.log"),
                USE_BATCH_HANDLER,
            ),
        )
        child.start()
        deadline = time.perf_counter() + 60
        while not await asyncio.to_thread(ready.wait, 0.2):
            if child.exitcode is not None or time.perf_counter() > deadline:
                await stop_tasks(stop, tasks, relay)
                raise RuntimeError(
                    f"consumer process did not start (exit code {child.exitcode}); "
                    f"see {infra_.workdir / 'consumer-process.log'} and the output above"
                )
    else:
        consumer = _stamping_consumer(engine, got)
        tasks.append(asyncio.create_task(consumer.run(js, stop)))
        await wait_consumer(js, consumer.stream, consumer.name)
    n_warm, n = int(rate * warmup), int(rate * seconds)

    async def produce(i: int) -> None:
        # as ServiceRuntime.uow() builds it with a relay in this process (woken in-process, no NOTIFY), and as a
        # command handler uses it: the repository saves the aggregate, commit() writes its event to the outbox
        uow = UnitOfWork(
            engine,
            tables,
            "members",
            repositories=JoinsRepository,
            translate=join_contract,
            on_commit=relay.wake,
            notify=False,
        )
        join = Join.new()
        began = time.perf_counter()
        async with uow:
            await uow.repo.add(join)
            await uow.commit()
        if i >= n_warm:
            sent[str(join.member_id)] = now = time.perf_counter()
            took.append((now - began) * 1e3)

    cpu0 = time.process_time()
    elapsed, until_done, peak = await paced(rate, n_warm + n, produce)
    cpu = time.process_time() - cpu0
    if split:  # wait until the consumer's database holds every effect, then collect the stamps
        c_engine = create_engine(c_url)
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            async with c_engine.connect() as conn:
                if (await conn.execute(select(func.count()).select_from(roster))).scalar_one() >= n_warm + n:
                    break
            await asyncio.sleep(0.1)
        await c_engine.dispose()
        child_stop.set()
        await asyncio.to_thread(child.join, 30)
        if result_path.exists():
            got = json.loads(result_path.read_text())
        await infra_.drop(c_url)
    else:
        deadline = time.perf_counter() + 120
        while any(k not in got for k in sent) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    await stop_tasks(stop, tasks, relay)
    await nc.close()
    await engine.dispose()
    await infra_.drop(url)
    lat = [(got[k] - t) * 1e3 for k, t in sent.items() if k in got]
    split_legs = None
    if legs:
        relay_leg = [(on_nats[k] - t) * 1e3 for k, t in sent.items() if k in on_nats]
        consumer_leg = [(got[k] - on_nats[k]) * 1e3 for k in sent if k in on_nats and k in got]
        split_legs = {
            "relay_p50_ms": pct(relay_leg, 50),
            "relay_p99_ms": pct(relay_leg, 99),
            "consumer_p50_ms": pct(consumer_leg, 50),
            "consumer_p99_ms": pct(consumer_leg, 99),
        }
    return {
        "rate": rate,
        "events": len(sent),
        "achieved_rate": (n_warm + n) / elapsed,
        "received": len(lat),
        "p50_ms": pct(lat, 50),
        "p90_ms": pct(lat, 90),
        "p99_ms": pct(lat, 99),
        "max_ms": max(lat or [0]),
        "transaction_p50_ms": pct(took, 50),
        "transaction_p99_ms": pct(took, 99),
        "legs": split_legs,
        "producer_peak_in_flight": peak,
        "producer_seconds_until_all_committed": until_done,
        "producer_process_cpu_share": cpu / until_done,
        "consumer": "own process, own database" if split else "same process and database as the producer",
    }


async def latency_raw(nats_url: str, rate: float, seconds: float, warmup: float, size: int) -> dict:
    """Raw nats-py publish_async at the same pace -> durable pull consumer (fetch 200, 1 s), time to receipt."""
    nc, js = await connect_js(nats_url)
    cfg = topology.stream_config("members")
    cfg.name, cfg.subjects, cfg.description = "BENCHRAW", ["benchraw.>"], "raw baseline"
    with contextlib.suppress(Exception):
        await js.delete_stream("BENCHRAW")
    await js.add_stream(cfg)
    sub = await js.pull_subscribe(
        "benchraw.>",
        durable="rawlat",
        stream="BENCHRAW",
        config=topology.consumer_config("rawlat", contracts.MemberJoined),
    )
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    stop = asyncio.Event()
    n_warm, n = int(rate * warmup), int(rate * seconds)
    payload = b"x" * size

    async def consume() -> None:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(DEFAULTS.consumer_batch_size, timeout=1.0)
            except TimeoutError:
                continue
            now = time.perf_counter()
            for m in msgs:
                got.setdefault((m.headers or {})["Nats-Msg-Id"], now)
                await m.ack()

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    futures = []

    async def produce(i: int) -> None:
        ident = str(uuid.uuid4())
        if i >= n_warm:
            sent[ident] = time.perf_counter()
        futures.append(
            await js.publish_async(
                f"benchraw.member.joined.v1.{ident}",
                payload,
                headers={"Nats-Msg-Id": ident, "Content-Type": CONTENT_TYPE},
            )
        )

    elapsed, _, _ = await paced(rate, n_warm + n, produce)
    await asyncio.gather(*futures)
    deadline = time.perf_counter() + 30
    while any(k not in got for k in sent) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    with contextlib.suppress(Exception):
        await js.delete_stream("BENCHRAW")
    await nc.close()
    lat = [(got[k] - t) * 1e3 for k, t in sent.items() if k in got]
    return {
        "rate": rate,
        "events": len(sent),
        "achieved_rate": (n_warm + n) / elapsed,
        "received": len(lat),
        "p50_ms": pct(lat, 50),
        "p90_ms": pct(lat, 90),
        "p99_ms": pct(lat, 99),
        "max_ms": max(lat or [0]),
    }


def _legs(p: dict) -> str:
    legs = p.get("legs")
    if not legs:
        return ""
    return (
        f"; legs: commit -> on NATS p50 {legs['relay_p50_ms']:.1f} p99 {legs['relay_p99_ms']:.1f} ms, "
        f"on NATS -> consumer commit p50 {legs['consumer_p50_ms']:.1f} p99 {legs['consumer_p99_ms']:.1f} ms"
    )


async def figure_latency(
    infra_: Infra, backend: str, rate: float, seconds: float, log_level: str, legs: bool = False
) -> dict:
    runs = {}
    for split in (True, False):
        p = await latency_pipeline(infra_, backend, rate, seconds, 0.5, split, log_level, legs=legs)
        runs["split" if split else "one_process"] = p
        out(
            f"  pipeline, consumer {p['consumer']}: {p['received']}/{p['events']} events, producer pace "
            f"{fmt_rate(p['achieved_rate'])}/s (≤ {p['producer_peak_in_flight']} transactions in flight, all "
            f"committed after {p['producer_seconds_until_all_committed']:.1f} s; a transaction p50 "
            f"{p['transaction_p50_ms']:.1f} p99 {p['transaction_p99_ms']:.1f} ms; producer process CPU "
            f"{p['producer_process_cpu_share']:.0%}), "
            f"p50 {p['p50_ms']:.1f} p90 {p['p90_ms']:.1f} p99 {p['p99_ms']:.1f} max {p['max_ms']:.1f} ms" + _legs(p)
        )
    low = await latency_pipeline(infra_, backend, rate / 5, min(seconds, 3.0), 0.5, True, log_level, legs=True)
    out(
        f"  diagnostic at a fifth of the pace ({low['rate']:,.0f}/s), consumer in its own process: "
        f"p50 {low['p50_ms']:.1f} p90 {low['p90_ms']:.1f} p99 {low['p99_ms']:.1f} max {low['max_ms']:.1f} ms"
        + _legs(low)
    )
    r = await latency_raw(infra_.nats.url, rate, seconds, 0.5, 506)
    out(
        f"  baseline raw nats-py publish_async -> pull consumer (fetch {DEFAULTS.consumer_batch_size}): "
        f"{r['received']}/{r['events']} at {fmt_rate(r['achieved_rate'])}/s, "
        f"p50 {r['p50_ms']:.2f} p90 {r['p90_ms']:.2f} p99 {r['p99_ms']:.2f} max {r['max_ms']:.1f} ms"
    )
    p = runs["split"]
    return {
        "pipeline": p,
        "pipeline_one_process": runs["one_process"],
        "pipeline_fifth_pace": low,
        "raw": r,
        "aim_p99_ms": AIMS["p99_ms"] if backend == "postgresql" else None,
        "ok": (p["p99_ms"] < AIMS["p99_ms"] and p["received"] == p["events"]) if backend == "postgresql" else None,
    }


# -------------------------------------------------------------------------------------------------- 4. footprint


def _load_dev() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("netvaerk_dev_for_bench", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def figure_footprint(infra_: Infra) -> dict:
    """Three real uvicorn processes on SQLite + the bench's NATS: RSS after 2 s idle; then `dev.py run` to ready."""
    work = infra_.workdir / "footprint"
    work.mkdir(parents=True, exist_ok=True)
    smtp_port = infra.free_port()  # nothing listens there; /readyz does not ask the SMTP server
    procs, ports, logs = {}, {}, {}
    t0 = time.perf_counter()
    for svc in SERVICES:
        ports[svc] = infra.free_port()
        logs[svc] = work / f"{svc}.log"
        env = service_env(
            svc, infra.sqlite_url(work / f"{svc}.db"), infra_.nats.url, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_port
        )
        procs[svc] = spawn_service(svc, ports[svc], env, logs[svc])
    result: dict = {"services": {}}
    try:
        ready_each = {}
        for svc in SERVICES:
            await wait_ready(procs[svc], ports[svc], logs[svc])
            ready_each[svc] = time.perf_counter() - t0
        parallel_ready = max(ready_each.values())
        await asyncio.sleep(2.0)
        for svc in SERVICES:
            p = psutil.Process(procs[svc].pid)
            mem = p.memory_full_info()
            kids = p.children(recursive=True)
            result["services"][svc] = {
                "rss_mb": mem.rss / 2**20,
                "uss_mb": mem.uss / 2**20,
                "children": len(kids),
                "ready_s": ready_each[svc],
            }
    finally:
        for proc in procs.values():
            infra.stop_process(proc)
    result["uvicorn_parallel_ready_s"] = parallel_ready
    result["rss_ok"] = all(s["rss_mb"] < AIMS["rss_mb"] for s in result["services"].values())
    result["dev"] = await dev_run_ready(infra_, work)
    ready = result["dev"]["ready_s"] if result["dev"]["ok"] else parallel_ready
    result["ready_s"] = ready
    result["ready_how"] = result["dev"]["how"] if result["dev"]["ok"] else "three uvicorn processes in parallel"
    result["ready_ok"] = ready < AIMS["ready_s"]
    return result


async def dev_run_ready(infra_: Infra, work: Path) -> dict:
    ports = {"members": 8001, "meetings": 8002, "notifications": 8003}
    taken = [p for p in (*ports.values(), 1025) if port_taken(p)]
    if any(p != 1025 for p in taken):
        return {"ok": False, "how": None, "why": f"ports {taken} already in use (another dev.py run?)"}
    try:
        dev = _load_dev()
        stamp_current = dev.STAMP.exists() and dev.STAMP.read_text().strip() == dev.install_hash()
    except Exception as exc:
        return {"ok": False, "how": None, "why": f"could not load dev.py: {exc}"}
    if stamp_current:
        cmd, how = ["python3", "dev.py", "run"], "python3 dev.py run"
    else:  # `run` would pip-install into the shared .venv first; time the step it execs into instead
        cmd, how = [PY, "dev.py", "_run"], ".venv/bin/python dev.py _run (install stamp stale: skipped pip)"
    env = dict(os.environ)
    for key in [k for k in env if k.endswith("DATABASE_URL")]:
        env.pop(key)
    env.pop("NETVAERK_DEV_T0", None)
    env.update(
        NATS_URL=infra_.nats.url,
        API_TOKEN=TOKEN,
        PYTHONUNBUFFERED="1",
        **{f"{svc.upper()}_DATABASE_URL": infra.sqlite_url(work / f"dev-{svc}.db") for svc in SERVICES},
    )
    if 1025 in taken:  # something serves SMTP there already: let dev.py use it instead of starting its sink
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT="1025")
    log_file = work / "dev-run.log"
    t0 = time.perf_counter()
    with open(log_file, "wb") as logf:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=infra.child_preexec(),
        )
    ready = None
    try:
        pending = dict(ports)
        each = {}
        while pending and time.perf_counter() - t0 < 60:
            if proc.poll() is not None:
                break
            for svc, port in list(pending.items()):
                if http_status(f"http://127.0.0.1:{port}/readyz", timeout=0.3) == 200:
                    each[svc] = time.perf_counter() - t0
                    pending.pop(svc)
            await asyncio.sleep(0.02)
        if not pending:
            ready = time.perf_counter() - t0
            said_by = time.perf_counter() + 5  # let dev.py notice too and print its own "ready" line
            while time.perf_counter() < said_by and proc.poll() is None:
                if "all services ready" in log_file.read_text(errors="replace"):
                    break
                await asyncio.sleep(0.05)
            rss = {}
            with contextlib.suppress(Exception):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    cmdline = " ".join(child.cmdline())
                    for svc in SERVICES:
                        if f"{svc}.entrypoints.http:app" in cmdline:
                            rss[svc] = child.memory_info().rss / 2**20
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # dev.py stops its children in order on Ctrl-C
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                infra.stop_process(proc, timeout=5)
    if ready is None:
        return {
            "ok": False,
            "how": how,
            "why": f"not all /readyz answered 200 (exit code {proc.returncode}):\n{infra.log_tail(log_file, 15)}",
        }
    said = next((ln for ln in log_file.read_text(errors="replace").splitlines() if "all services ready" in ln), "")
    return {"ok": True, "how": how, "ready_s": ready, "each_s": each, "rss_mb_at_ready": rss, "dev_says": said}


# --------------------------------------------------------------------------------------------------------- output


def table(results: dict) -> list[str]:
    lines = []
    row = "{:<10} {:<11} {:<34} {:<34} {:<7} {}"
    lines.append(row.format("figure", "backend", "result", "baseline (same run)", "ratio", "aim"))
    lines.append("-" * 120)
    for backend, figs in results["backends"].items():
        if "drain" in figs:
            d = figs["drain"]
            lines.append(
                row.format(
                    "drain",
                    backend,
                    f"{fmt_rate(d['rate'])} ev/s",
                    f"raw nats-py {fmt_rate(d['raw_rate'])} ev/s",
                    f"{d['ratio']:.2f}",
                    f"≥ {d['aim']:.2f}  {'ok' if d['ok'] else 'MISSED'}" + ("" if d["complete"] else "  INCOMPLETE"),
                )
            )
        if "accept" in figs:
            a = figs["accept"]
            lines.append(
                row.format(
                    "accept",
                    backend,
                    f"{fmt_rate(a['rate'])} req/s (relay on)",
                    f"{a['raw']['driver']} {fmt_rate(a['raw_rate'])} tx/s",
                    f"{a['ratio']:.2f}",
                    f"≥ {a['aim']:.2f}  {'ok' if a['ok'] else 'MISSED'}" + ("" if a["complete"] else "  ERRORS"),
                )
            )
        if "latency" in figs:
            p, r = figs["latency"]["pipeline"], figs["latency"]["raw"]
            aim = (
                f"p99 < {AIMS['p99_ms']:.0f} ms  {'ok' if figs['latency']['ok'] else 'MISSED'}"
                if backend == "postgresql"
                else "(aim is for PostgreSQL)"
            )
            lines.append(
                row.format(
                    "latency",
                    backend,
                    f"p50 {p['p50_ms']:,.1f} / p99 {p['p99_ms']:,.1f} ms",
                    f"raw p50 {r['p50_ms']:.1f} / p99 {r['p99_ms']:.1f} ms",
                    f"{p['p99_ms'] / r['p99_ms']:,.0f}x",
                    aim,
                )
            )
            q = figs["latency"]["pipeline_one_process"]
            lines.append(
                row.format("", "", f"(one process: p50 {q['p50_ms']:,.1f} / p99 {q['p99_ms']:,.1f})", "", "", "")
            )
    if "footprint" in results:
        f = results["footprint"]
        for svc, s in f["services"].items():
            verdict = "ok" if s["rss_mb"] < AIMS["rss_mb"] else "MISSED"
            lines.append(
                row.format(
                    "rss",
                    "sqlite",
                    f"{svc} {s['rss_mb']:.0f} MB",
                    f"(uss {s['uss_mb']:.0f} MB)",
                    "",
                    f"< {AIMS['rss_mb']:.0f} MB  {verdict}",
                )
            )
        lines.append(
            row.format(
                "ready",
                "sqlite",
                f"{f['ready_s']:.1f} s",
                f"via {f['ready_how']}"[:34],
                "",
                f"< {AIMS['ready_s']:.0f} s  {'ok' if f['ready_ok'] else 'MISSED'}",
            )
        )
        if f["dev"]["ok"]:
            lines.append(
                row.format("", "", "", f"3 uvicorn in parallel: {f['uvicorn_parallel_ready_s']:.1f} s", "", "")
            )
        else:
            lines.append(f"           dev.py run not measured: {f['dev']['why']}")
    return lines


def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    nats_version = subprocess.run([infra.nats_server_binary(), "--version"], capture_output=True, text=True).stdout
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    commit = commit.strip() + (" + uncommitted changes" if dirty.strip() else "")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "nats_server": nats_version.strip(),
        "sqlite": sqlite3.sqlite_version,
        "git_head": commit,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


def configure_logging(level: str, path: Path) -> None:
    """Like a service (JSON lines at LOG_LEVEL), but to a file, so per-event INFO logs cost what they cost there."""
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter("bench"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel("WARNING")


async def main(args: argparse.Namespace) -> int:
    global USE_BATCH_HANDLER
    USE_BATCH_HANDLER = not args.per_event_handler
    UVICORN.update(loop=args.loop, http=args.http)
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    figures = [f.strip() for f in args.figures.split(",")]
    runs = 1 if args.quick else args.runs
    latency_s = 3.0 if args.quick else args.latency_seconds
    requests = min(args.requests, 1000) if args.quick else args.requests
    workdir = Path(tempfile.mkdtemp(prefix="netvaerk-bench-"))
    configure_logging(args.log_level, workdir / "bench.log")
    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "args": vars(args),
        "backends": {},
    }
    out(
        f"netvaerk pipeline benchmark — {results['machine']['cpus']} CPUs ({results['machine']['cpu_model']}), "
        f"Python {results['machine']['python']}, {results['machine']['nats_server']}, "
        f"git {results['machine']['git_head']}"
    )
    out(
        f"work dir {workdir}; consumer/relay settings as a service defaults: relay batch {DEFAULTS.relay_batch_size}, "
        f"consumer batch {DEFAULTS.consumer_batch_size}; bench log level {args.log_level}"
    )
    out(
        f"event loop {loop_name()} (bench process: relay, consumers, raw baselines); services: uvicorn "
        + " ".join(uvicorn_flags())
    )
    results["event_loop"] = loop_name()
    results["uvicorn_flags"] = uvicorn_flags()
    out(
        "consumer effect (roster upsert): "
        + (
            "batch handler, one executemany per fetched batch (as meetings)"
            if USE_BATCH_HANDLER
            else "per-event handler, one statement per event"
        )
    )
    results["consumer_effect"] = "batch_handler" if USE_BATCH_HANDLER else "per_event_handler"
    infra_ = Infra(workdir, backends)
    try:
        out(f"NATS {infra_.nats.url} (nats-server from the wheel, store {infra_.nats.store_dir})")
        if infra_.pg_admin:
            s = await infra_.pg_settings()
            results["postgresql"] = {"source": infra_.pg_note, **s}
            out(
                f"PostgreSQL {s.get('server_version')} {infra_.pg_note}; fsync={s.get('fsync')} "
                f"synchronous_commit={s.get('synchronous_commit')}"
            )
        for backend in backends:
            figs: dict = {}
            results["backends"][backend] = figs
            out(f"\n== {backend} ==")
            if "drain" in figures:
                out(f"drain: {args.events:,} events pre-filled in the outbox, median of {runs}")
                figs["drain"] = await figure_drain(infra_, backend, args.events, runs)
            if "accept" in figures:
                out(
                    f"accept: POST /members x {requests:,}, concurrency {args.concurrency}, members app under uvicorn "
                    f"(subprocess), RATE_LIMIT_PER_MINUTE=0"
                )
                figs["accept"] = await figure_accept(infra_, backend, requests, args.concurrency)
            if "latency" in figures:
                out(
                    f"latency: paced {args.rate:,.0f} events/s for {latency_s:.0f} s (+0.5 s warm-up), "
                    f"producer commit -> consumer commit"
                )
                figs["latency"] = await figure_latency(
                    infra_, backend, args.rate, latency_s, args.log_level, legs=args.legs
                )
        if "footprint" in figures:
            out("\n== footprint (SQLite, real uvicorn processes, the bench's NATS) ==")
            results["footprint"] = await figure_footprint(infra_)
            for svc, s in results["footprint"]["services"].items():
                out(
                    f"  {svc}: RSS {s['rss_mb']:.0f} MB (USS {s['uss_mb']:.0f} MB), "
                    f"ready {s['ready_s']:.2f} s after spawn"
                )
            out(
                "  three uvicorn processes spawned together: all ready in "
                f"{results['footprint']['uvicorn_parallel_ready_s']:.2f} s"
            )
            d = results["footprint"]["dev"]
            if d["ok"]:
                out(
                    f"  {d['how']}: all three /readyz 200 after {d['ready_s']:.2f} s; dev.py says: "
                    f"{d['dev_says'].strip()}"
                )
            else:
                out(f"  dev.py run NOT measured ({d['why']}); the ready figure is the parallel uvicorn start")
    finally:
        await infra_.close()
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    lines = table(results)
    out("\n" + "\n".join(lines))
    results["table"] = lines
    dest = ROOT / "var" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"pipeline-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    out(f"\nJSON: {path.relative_to(ROOT)}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    p.add_argument("--events", type=int, default=20_000, help="events in the drain figure (default 20,000)")
    p.add_argument(
        "--quick", action="store_true", help="1 drain run instead of 3, latency 3 s, at most 1,000 accept requests"
    )
    p.add_argument("--runs", type=int, default=3, help="drain runs (median is reported)")
    p.add_argument("--requests", type=int, default=2_000, help="POST /members requests in the accept figure")
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--rate", type=float, default=1_000.0, help="events/s in the latency figure")
    p.add_argument("--latency-seconds", type=float, default=5.0)
    p.add_argument(
        "--figures",
        default="drain,accept,latency,footprint",
        help="comma-separated subset of drain,accept,latency,footprint",
    )
    p.add_argument(
        "--legs",
        action="store_true",
        help="latency: also split the headline runs into relay and consumer legs (a NATS subscription in the "
        "producer process stamps each event; the diagnostic at a fifth of the pace always does)",
    )
    p.add_argument(
        "--per-event-handler",
        action="store_true",
        help="give the consumer only the per-event handler (no batch_handler)",
    )
    p.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop" if _installed("uvloop") else "asyncio",
        help="event loop of the bench process (relay, consumers, raw baselines) and of the services' uvicorn "
        "(default uvloop, as the services run)",
    )
    p.add_argument(
        "--http",
        choices=["httptools", "h11"],
        default="httptools" if _installed("httptools") else "h11",
        help="uvicorn's HTTP parser for the services (default httptools, as the services run)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        help="log level of the bench process (relay, consumer), JSON lines to a file like a service",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(run_on(arguments.loop, main(arguments)))
