"""Honest answers while degraded, with a real members process: NATS away → still ready ("degraded: nats") and every
write accepted into the outbox, published once NATS is back; its database away → 503 problem+json with Retry-After
on the API, /admin/outbox and /readyz, and back to normal when it returns. The log stays JSON lines throughout, with
one line per NATS state change rather than a traceback per retry."""

from __future__ import annotations

import json
import time
import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from netvaerk_testing import infra
from netvaerk_testing.processes import ServiceProcess

from .conftest import request_json

pytestmark = pytest.mark.e2e
TOKEN = "degraded-token-0123456789"


def call(service: ServiceProcess, method: str, path: str, body=None, timeout: float = 5.0):
    return request_json(service.url + path, method, TOKEN, body, timeout)


def member(i: int) -> dict:
    return {
        "name": f"Deltager {i}",
        "email": f"deltager-{i}-{uuid.uuid4().hex[:6]}@example.org",
        "organisation": {"name": "Eksempel Kommune", "kind": "public_authority"},
        "job_title": "Arkitekt",
    }


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def json_lines(service: ServiceProcess) -> list[dict]:
    lines = [line for line in service.log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a log line of {service.name} is not JSON: {line[:300]}") from None
    return parsed


@pytest.fixture
def members_alone(postgres_database_url, tmp_path):
    nats_server = infra.start_nats(tmp_path / "nats")
    database_url = postgres_database_url
    service = ServiceProcess(
        "members",
        {
            "NATS_URL": nats_server.url,
            "DATABASE_URL": database_url,
            "API_TOKEN": TOKEN,
            "ENVIRONMENT": "test",
            "RATE_LIMIT_PER_MINUTE": "0",
            "LOG_LEVEL": "INFO",
        },
        tmp_path,
    )
    service.start()
    try:
        yield service, nats_server, database_url
    finally:
        service.stop()
        nats_server.stop()


def test_nats_away_the_service_stays_ready_accepts_writes_and_publishes_them_when_it_returns(members_alone, tmp_path):
    service, nats_server, _ = members_alone
    port = nats_server.port
    nats_server.stop()
    wait_for(lambda: call(service, "GET", "/readyz")[2].get("checks", {}).get("nats") is False, 10, "nats check")
    status, _, body = call(service, "GET", "/readyz")
    assert status == 200 and body["status"] == "degraded: nats", body
    accepted = []
    for i in range(20):
        status, _, created = call(service, "POST", "/members", member(i))
        assert status == 201, created
        accepted.append(created["member_id"])
        time.sleep(0.25)  # five seconds away: ten reconnect attempts
    status, _, outbox = call(service, "GET", "/admin/outbox")
    assert status == 200 and outbox["unpublished"] >= 20, outbox

    restarted = infra.start_nats(nats_server.store_dir, port=port)
    try:
        started = time.monotonic()
        wait_for(lambda: call(service, "GET", "/admin/outbox")[2]["unpublished"] == 0, 15, "the outbox to drain")
        print(f"outbox drained {time.monotonic() - started:.2f} s after NATS came back")
        assert call(service, "GET", "/readyz")[2]["status"] == "ready"
    finally:
        restarted.stop()
    lines = json_lines(service)
    nats_lines = [line for line in lines if "NATS" in line.get("message", "")]
    assert any("disconnected" in line["message"] for line in nats_lines)
    assert any("reconnected" in line["message"] for line in nats_lines)
    assert len(nats_lines) < 10, [line["message"] for line in nats_lines]  # not one per reconnect attempt
    assert not any(line.get("level") == "error" for line in lines), [e for e in lines if e.get("level") == "error"]


async def _allow_connections(admin_url: str, database: str, allow: bool) -> None:
    conn = await asyncpg.connect(infra.admin_postgres_url(admin_url))
    try:
        await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allow else "false"}')
        if not allow:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()


async def test_database_away_is_503_with_retry_after_everywhere_and_then_normal_again(members_alone, pg_admin_url):
    service, _, database_url = members_alone
    database = make_url(database_url).database
    status, _, _ = call(service, "POST", "/members", member(0))
    assert status == 201
    await _allow_connections(pg_admin_url, database, False)
    try:
        for method, path, body in (
            ("POST", "/members", member(1)),
            ("GET", "/groups", None),
            ("GET", "/admin/outbox", None),
            ("GET", "/readyz", None),
        ):
            status, headers, problem = call(service, method, path, body)
            assert status == 503, (path, status, problem)
            assert headers["content-type"] == "application/problem+json" and int(headers["retry-after"]) > 0
            assert problem["status"] == 503, problem
    finally:
        await _allow_connections(pg_admin_url, database, True)
    wait_for(lambda: call(service, "GET", "/readyz")[0] == 200, 10, "ready again")
    status, _, created = call(service, "POST", "/members", member(2))
    assert status == 201, created
    lines = json_lines(service)
    assert not any("Traceback" in line.get("message", "") for line in lines)
