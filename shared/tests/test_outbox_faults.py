"""The relay tells an outage from a poison pill, against real NATS servers (private ones: they are stopped, restarted
and reconfigured here) and a real database (PostgreSQL and SQLite).

Poison (a row that can never be published as it is) is parked with a true reason and the relay goes on with the rest
in order; an operator puts it back with POST /admin/outbox/{event_id}/retry. An outage (NATS or the database away)
holds the work, and the relay's backoff ends as soon as the cause is gone: NATS reconnected, the database answering,
a commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import nats
import nats.errors
import nats.js.errors
import pytest
from sqlalchemy import insert, select

from netvaerk_shared import topology
from netvaerk_shared.db import create_engine
from netvaerk_shared.envelope import make_event, to_bytes
from netvaerk_shared.http import service_app
from netvaerk_shared.outbox import OUTAGE, POISON, Relay, backlog, classify, describe, parked
from netvaerk_shared.runtime import ServiceRuntime
from netvaerk_shared.settings import ServiceSettings
from netvaerk_testing import infra
from netvaerk_testing.plugin import running_app, service_settings, wait_until

from .world import Repository, as_contract, joined, metadata, tables, unit_of_work

USER, PASSWORD = "members", "members-secret-0123"


async def produce(engine, n: int) -> list[str]:
    """n ordinary events in one change; returns the outbox's event ids in outbox order, old ones included."""
    uow = unit_of_work(engine)
    async with uow:
        uow.repo.record(*(joined() for _ in range(n)))
        await uow.commit()
    async with engine.connect() as conn:
        o = tables.outbox
        return list((await conn.execute(select(o.c.event_id).order_by(o.c.position))).scalars())


async def stream_messages(js) -> list:
    sub = await js.pull_subscribe("members.>", stream="MEMBERS")
    out = []
    while True:
        try:
            msgs = await sub.fetch(500, timeout=0.5)
        except TimeoutError:
            break
        out.extend(msgs)
        for m in msgs:
            await m.ack()  # an ephemeral consumer stops at 1,000 unacknowledged
    await sub.unsubscribe()
    return out


class Nats:
    """A private nats-server with a config file, restartable on the same port and store with another config."""

    def __init__(self, root: Path) -> None:
        self.root, self.server, self.port = root, None, 0

    def start(self, *, max_payload: int | None = None, deny: str | None = None) -> infra.NatsServer:
        lines = [f"max_payload: {max_payload}"] if max_payload else []
        if deny:  # one user that may publish its own subjects, the JetStream API and replies, except `deny`
            lines.append(
                f"authorization {{ users = [ {{ user: {USER}, password: {PASSWORD}, permissions: {{"
                f' publish: {{ allow: ["members.>", "$JS.API.>", "$JS.ACK.>", "_INBOX.>"], deny: ["{deny}"] }},'
                ' subscribe: { allow: ["_INBOX.>"] } } } ] }'
            )
        conf = self.root / f"nats-{time.monotonic_ns()}.conf"
        self.root.mkdir(parents=True, exist_ok=True)
        conf.write_text("\n".join(lines) + "\n")
        self.server = infra.start_nats(self.root / "store", port=self.port, extra_args=["-c", str(conf)])
        self.port = self.server.port
        return self.server

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def private_nats(tmp_path):
    server = Nats(tmp_path / "nats")
    yield server
    server.stop()


def runtime_for(engine, database_url: str, nats_url: str, **overrides) -> ServiceRuntime:
    settings = service_settings(
        ServiceSettings,
        database_url,
        nats_url,
        service_name="members",
        run_consumers=False,
        auto_migrate=False,
        **overrides,
    )
    return ServiceRuntime(
        service="members",
        settings=settings,
        engine=engine,
        tables=tables,
        repositories=Repository,
        translate=as_contract,
    )


class Unused(Exception):
    status, detail = 400, ""


def app_for(runtime: ServiceRuntime):
    return service_app(
        runtime_factory=lambda: runtime, title="outbox faults", description="test", routers=[], domain_error=Unused
    )


def long_backoff(relay: Relay, seconds: float = 30.0) -> list[tuple[str, float, float]]:
    """Every backoff lasts `seconds` (so only a signal can end it early); returns the pauses as they begin."""
    pauses: list[tuple[str, float, float]] = []
    original = relay._pause

    async def pause(stop, delay, system, generation):
        pauses.append((system, delay, asyncio.get_running_loop().time()))
        return await original(stop, delay, system, generation)

    relay._backoff = lambda failures: seconds
    relay._pause = pause
    return pauses


async def insert_raw(engine, body: bytes, subject: str | None = None) -> str:
    """An outbox row written directly, as no UnitOfWork would: the poison pill."""
    event_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            insert(tables.outbox).values(
                event_id=event_id,
                subject=subject or f"members.member.joined.v1.{uuid.uuid4()}",
                type="dk.danskit.member.joined.v1",
                body=body,
                created_at=datetime.now(UTC),
                attempts=0,
            )
        )
    return event_id


async def outbox_row(engine, event_id: str):
    async with engine.connect() as conn:
        return (await conn.execute(select(tables.outbox).where(tables.outbox.c.event_id == event_id))).one()


async def stream_ids(url: str, **connect) -> list[str]:
    nc = await nats.connect(url, **connect)
    try:
        return [m.headers["Nats-Msg-Id"] for m in await stream_messages(nc.jetstream())]
    finally:
        await nc.close()


async def _pending_is(engine, n: int) -> bool:
    return (await backlog(engine, tables))[0] == n


# ------------------------------------------------------------------------------------------------------------ poison


async def test_oversized_row_is_parked_the_rest_go_out_in_order_and_retry_publishes_it(
    engine, database_url, private_nats
):
    private_nats.start(max_payload=16 * 1024)
    poison = await insert_raw(engine, b'{"data": "' + b"x" * 20_000 + b'"}')  # in front of everything else
    ordinary = (await produce(engine, 1000))[1:]
    assert len(ordinary) == 1000
    runtime = runtime_for(engine, database_url, private_nats.url)
    async with running_app(app_for(runtime), runtime) as client:
        await wait_until(lambda: _pending_is(engine, 0), timeout=30, message="the 1,000 published")
        state = (await client.get("/admin/outbox")).json()
        assert state["unpublished"] == 0 and state["oldest_age_seconds"] == 0.0  # parked rows are not stuck work
        assert state["parked"] == 1
        [row] = state["parked_events"]
        assert row["event_id"] == poison and row["attempts"] >= 1 and row["parked_at"]
        assert "MaxPayloadError" in row["last_error"] and "max_payload" in row["last_error"]
        assert "at most 16384 bytes" in row["last_error"] and "the event is 20" in row["last_error"]  # true sizes
        assert "body" not in row
        ids = await stream_ids(private_nats.url)
        assert ids == ordinary  # all 1,000, in order, without the poison
        text = (await client.get("/metrics")).text
        assert "outbox_parked 1.0" in text and 'outbox_publish_failures_total{cause="poison"}' in text
        assert "outbox_oldest_unpublished_age_seconds 0.0" in text

        # retried before the cause is fixed: parked again, one attempt more
        r = await client.post(f"/admin/outbox/{poison}/retry")
        assert r.status_code == 200 and r.json() == {"event_id": poison, "outcome": "retried"}
        await wait_until(lambda: _attempts_are(engine, poison, 2), timeout=10, message="parked again")

        # the operator raises max_payload (a restart of NATS on the same store), then retries: it goes out
        private_nats.stop()
        private_nats.start(max_payload=64 * 1024)
        await wait_until(
            lambda: runtime.nc.is_connected and runtime.nc.max_payload == 64 * 1024,
            timeout=15,
            message="reconnected to the reconfigured server",
        )
        r = await client.post(f"/admin/outbox/{poison}/retry")
        assert r.status_code == 200, r.text
        await wait_until(lambda: _published(engine, poison), timeout=10, message="the parked event published")
        assert (await client.get("/admin/outbox")).json()["parked"] == 0
        ids = await stream_ids(private_nats.url)
        assert len(ids) == 1001 and ids[-1] == poison  # late, after the others: README says so

        r = await client.post(f"/admin/outbox/{poison}/retry")
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
        r = await client.post(f"/admin/outbox/{uuid.uuid4()}/retry")
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        r = await client.post(f"/admin/outbox/{poison}/retry", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await client.get("/admin/outbox", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        spec = (await client.get("/openapi.json")).json()
        retry = spec["paths"]["/admin/outbox/{event_id}/retry"]["post"]
        assert {"200", "401", "404", "409"} <= set(retry["responses"]) and retry["security"]


async def _attempts_are(engine, event_id: str, n: int) -> bool:
    row = await outbox_row(engine, event_id)
    return row.attempts == n and row.parked_at is not None


async def _published(engine, event_id: str) -> bool:
    return (await outbox_row(engine, event_id)).published_at is not None


async def test_subject_the_server_refuses_is_parked_at_once(engine, database_url, private_nats):
    """A permissions violation never comes back as a PubAck; the relay learns it from nats-py's error callback."""
    private_nats.start(deny="members.secret.>")
    denied = await insert_raw(engine, b'{"data": {}}', subject="members.secret.thing.v1.x")
    ordinary = (await produce(engine, 50))[1:]
    runtime = runtime_for(engine, database_url, private_nats.url, nats_user=USER, nats_password=PASSWORD)
    await runtime.start()
    try:
        started = time.monotonic()
        await wait_until(lambda: _pending_is(engine, 0), timeout=15, message="the 50 published")
        elapsed = time.monotonic() - started
        row = await outbox_row(engine, denied)
        assert row.parked_at is not None and row.attempts == 1
        assert "permissions violation for publish to" in row.last_error.lower()
        assert "members.secret.thing.v1.x" in row.last_error
        print(f"\nrefused subject parked and the rest published in {elapsed:.2f}s")
        assert elapsed < runtime.relay.publish_timeout  # it did not wait for a PubAck that never comes
        count, rows = await parked(engine, tables)
        assert count == 1 and rows[0]["event_id"] == denied
    finally:
        await runtime.stop()
    assert await stream_ids(private_nats.url, user=USER, password=PASSWORD) == ordinary


# ------------------------------------------------------------------------------------------------------------ outage


async def test_relay_in_backoff_publishes_within_a_second_of_nats_coming_back(engine, database_url, private_nats):
    private_nats.start()
    runtime = runtime_for(engine, database_url, private_nats.url)
    await runtime.start()
    try:
        await wait_until(lambda: runtime.relay is not None, message="relay started")
        pauses = long_backoff(runtime.relay)
        private_nats.stop()
        await wait_until(lambda: not runtime.nc.is_connected, message="client saw NATS go")
        await produce(engine, 1200)  # more than two batches: after the outage they go at full speed
        runtime.wake_relay()
        await wait_until(lambda: pauses, message="relay in backoff")
        system, delay, began = pauses[-1]
        assert (system, delay) == ("nats", 30.0)
        await asyncio.sleep(0.5)
        ids = await produce(engine, 1)  # a commit while NATS is away does not end the backoff (nor make it spin)
        runtime.wake_relay()
        await asyncio.sleep(0.5)
        head = await outbox_row(engine, ids[0])
        assert head.published_at is None and head.attempts >= 1
        assert "NATS is unavailable: NATS connection" in head.last_error  # the outbox records what is going on
        assert len(pauses) == 1

        private_nats.start()
        back = asyncio.get_running_loop().time()
        await wait_until(lambda: _pending_is(engine, 0), timeout=10, interval=0.02, message="drained after NATS")
        elapsed = asyncio.get_running_loop().time() - back
        print(f"\n1,201 events published {elapsed:.2f}s after NATS came back (backoff was {delay:.0f}s)")
        assert elapsed < 3.0 and len(pauses) == 1
    finally:
        await runtime.stop()
    assert await stream_ids(private_nats.url) == ids


async def test_commit_ends_a_backoff_once_nats_is_connected(engine, private_nats):
    """A relay nobody told of the reconnect (no callback wired): the next commit's wake() ends its backoff."""
    private_nats.start()
    nc = await nats.connect(private_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    await topology.ensure_stream(js, "members")
    relay = Relay(engine=engine, tables=tables, js=js, service="members", poll_interval=0.2, publish_timeout=1.0)
    pauses = long_backoff(relay)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        private_nats.stop()
        await wait_until(lambda: not nc.is_connected, message="client saw NATS go")
        await produce(engine, 10)
        relay.wake()
        await wait_until(lambda: pauses, message="relay in backoff")
        private_nats.start()
        await wait_until(lambda: nc.is_connected, timeout=10, message="client reconnected")
        await asyncio.sleep(0.5)
        assert (await backlog(engine, tables))[0] == 10  # still in its 30 s backoff
        committed = asyncio.get_running_loop().time()
        await produce(engine, 1)
        relay.wake()
        await wait_until(lambda: _pending_is(engine, 0), timeout=10, interval=0.02, message="drained after commit")
        elapsed = asyncio.get_running_loop().time() - committed
        print(f"\npublished {elapsed:.2f}s after the commit that woke the relay (backoff was 30s)")
        assert elapsed < 3.0 and len(pauses) == 1
    finally:
        stop.set()
        await task
        await nc.close()


async def test_relay_in_backoff_for_the_database_resumes_when_it_answers(
    postgres_database_url, pg_admin_url, clean_nats, caplog
):
    engine = create_engine(postgres_database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    ids = await produce(engine, 20)
    name = engine.url.database
    admin = await asyncpg.connect(infra.admin_postgres_url(pg_admin_url))
    nc = await nats.connect(clean_nats)
    js = nc.jetstream()
    await topology.ensure_stream(js, "members")
    relay = Relay(engine=engine, tables=tables, js=js, service="members")
    pauses = long_backoff(relay)
    stop = asyncio.Event()
    task = None
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        with caplog.at_level(logging.WARNING, logger="netvaerk_shared.outbox"):
            task = asyncio.create_task(relay.run(stop))
            await wait_until(lambda: pauses, message="relay in backoff")
            await asyncio.sleep(1.0)
            assert pauses[-1][:2] == ("database", 30.0)
            back = asyncio.get_running_loop().time()
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await wait_until(lambda: relay_published(js, 20), timeout=10, interval=0.02, message="published")
            elapsed = asyncio.get_running_loop().time() - back
        print(f"\npublished {elapsed:.2f}s after the database came back (backoff was 30s)")
        assert elapsed < 3.0 and len(pauses) == 1
        lines = [r.getMessage() for r in caplog.records if "outbox relay" in r.getMessage()]
        assert any(
            "the database is unavailable: taking rows from the outbox:" in line and "Error" in line for line in lines
        ), lines
        await wait_until(lambda: _pending_is(engine, 0), message="marked")
        assert await stream_ids(clean_nats) == ids
    finally:
        stop.set()
        if task is not None:
            await task
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await nc.close()
        await engine.dispose()


async def relay_published(js, n: int) -> bool:
    return (await js.stream_info("MEMBERS")).state.messages >= n


# ------------------------------------------------------------------------------------------------ the classification


def test_failures_are_classified_and_described():
    assert classify(nats.errors.MaxPayloadError()) == POISON
    assert (
        classify(
            nats.js.errors.BadRequestError(code=400, err_code=10054, description="message size exceeds maximum allowed")
        )
        == POISON
    )
    assert classify(nats.js.errors.APIError(code=503, err_code=10077, description="message too large")) == POISON
    for outage in (
        nats.errors.ConnectionClosedError(),
        nats.errors.NoServersError(),
        nats.errors.TimeoutError(),
        TimeoutError(),
        nats.js.errors.NoStreamResponseError(),
        nats.errors.OutboundBufferLimitError(),
        nats.js.errors.ServiceUnavailableError(code=503, err_code=10008, description="unavailable"),
        nats.js.errors.APIError(code=503, err_code=10077, description="maximum bytes exceeded"),
        nats.js.errors.BadRequestError(code=400, err_code=10002, description="resource limits"),
    ):
        assert classify(outage) == OUTAGE, outage
    assert describe(nats.errors.TimeoutError()) == "TimeoutError: nats: timeout"
    assert describe(TimeoutError()) == "TimeoutError: (no message)"
    assert describe(ConnectionRefusedError(111, "Connect call failed")).startswith("ConnectionRefusedError: ")
    try:
        try:
            raise OSError("disk gone")
        except OSError as inner:
            raise RuntimeError() from inner
    except RuntimeError as exc:
        assert describe(exc) == "RuntimeError: (no message; caused by OSError: disk gone)"


def test_payload_limit_counts_the_headers_as_the_server_does():
    """The relay counts the header block too: nats-py checks the payload alone, and a message over the limit that
    reaches the server costs the connection (the server answers -ERR and nats-py closes for good)."""
    from netvaerk_shared.outbox import _wire_size

    headers = {"Nats-Msg-Id": "0" * 36, "Content-Type": "application/cloudevents+json"}
    block = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
    assert _wire_size(b"abc", headers) == len(block) + 3
    assert json.loads(to_bytes(make_event(joined())))["id"]  # the bodies the relay sends are CloudEvents
