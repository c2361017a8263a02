"""The members service's own schema and app around parked outbox rows: migration 0002 (up, down, up again) on
PostgreSQL and SQLite, and an event the server cannot take parked, shown by GET /admin/outbox and retried."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, inspect, update

from members.bootstrap import MIGRATIONS, bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_shared.db import create_engine
from netvaerk_shared.migrate import upgrade
from netvaerk_testing.plugin import running_app, service_settings, wait_until


async def _outbox_schema(engine) -> tuple[set[str], set[str]]:
    def read(sync_conn):
        inspector = inspect(sync_conn)
        columns = {c["name"] for c in inspector.get_columns("outbox")}
        return columns, {i["name"] for i in inspector.get_indexes("outbox")}

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def test_migration_0002_adds_parking_and_comes_off_again(database_url):
    engine = create_engine(database_url)
    try:
        await upgrade(engine, MIGRATIONS, "0001")
        columns, indexes = await _outbox_schema(engine)
        assert "parked_at" not in columns and "ix_outbox_unpublished" in indexes
        await upgrade(engine, MIGRATIONS)
        columns, indexes = await _outbox_schema(engine)
        assert "parked_at" in columns
        assert {"ix_outbox_pending", "ix_outbox_parked"} <= indexes and "ix_outbox_unpublished" not in indexes

        from alembic import command

        from netvaerk_shared.migrate import alembic_config

        cfg = alembic_config(MIGRATIONS)

        def _down(sync_conn):
            cfg.attributes["connection"] = sync_conn
            command.downgrade(cfg, "0001")

        async with engine.begin() as conn:
            await conn.run_sync(_down)
        columns, indexes = await _outbox_schema(engine)
        assert "parked_at" not in columns and "ix_outbox_unpublished" in indexes and "ix_outbox_pending" not in indexes
        await upgrade(engine, MIGRATIONS)
        columns, _ = await _outbox_schema(engine)
        assert "parked_at" in columns
    finally:
        await engine.dispose()


@pytest.fixture
async def service(clean_nats, database_url):
    runtime = bootstrap(service_settings(Settings, database_url, clean_nats))
    async with running_app(create_app(), runtime) as client:
        await wait_until(lambda: runtime.relay is not None, message="relay started")
        yield client, runtime


async def test_parked_event_is_listed_without_its_body_and_retried(service):
    client, runtime = service
    o = runtime.tables.outbox
    event_id = str(uuid.uuid4())
    secret = "mette@example.org"
    body = json.dumps({"data": {"email": secret, "pad": "x" * (runtime.nc.max_payload + 1)}}).encode()
    async with runtime.engine.begin() as conn:
        await conn.execute(
            insert(o).values(
                event_id=event_id,
                subject=f"members.member.registered.v1.{event_id}",
                type="dk.danskit.member.registered.v1",
                body=body,
                created_at=datetime.now(UTC),
                attempts=0,
            )
        )
    runtime.wake_relay()
    r = await client.post("/groups", json={"name": "Efter den parkerede", "region": "Øst"})
    assert r.status_code == 201, r.text  # a later change still goes out

    async def _parked():
        state = (await client.get("/admin/outbox")).json()
        return state if state["parked"] == 1 and state["unpublished"] == 0 else None

    state = await wait_until(_parked, timeout=15, message="the oversized event parked, the group published")
    [row] = state["parked_events"]
    assert row["event_id"] == event_id and row["type"] == "dk.danskit.member.registered.v1"
    assert "MaxPayloadError" in row["last_error"] and row["attempts"] == 1
    assert secret not in str(state)  # GET /admin/outbox never shows a body
    assert set(row) == {"position", "event_id", "type", "subject", "attempts", "last_error", "created_at", "parked_at"}

    # the operator "fixes" it (here: a body that fits) and retries
    async with runtime.engine.begin() as conn:
        await conn.execute(update(o).where(o.c.event_id == event_id).values(body=b'{"data": {}}'))
    r = await client.post(f"/admin/outbox/{event_id}/retry")
    assert r.status_code == 200 and r.json()["outcome"] == "retried"

    async def _published():
        state = (await client.get("/admin/outbox")).json()
        return state["parked"] == 0 and state["unpublished"] == 0

    await wait_until(_published, timeout=10, message="the retried event published")
    assert (await client.post(f"/admin/outbox/{event_id}/retry")).status_code == 409
    assert (await client.post(f"/admin/outbox/{uuid.uuid4()}/retry")).status_code == 404
    assert (await client.post("/admin/outbox/not%20an%20id/retry")).status_code == 422
