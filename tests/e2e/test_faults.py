"""The fault suite: the platform as real processes on its own PostgreSQL cluster and its own nats-server, under a steady
load of registrations and joins (about five a second), while its parts are taken away. After each fault, every join
that was accepted got exactly one welcome mail at the SMTP sink, no service holds a dead letter, and the backlog is
gone within seconds of the recovery. Each test prints its figures (accepted joins, welcomes, dead letters, drain)."""

from __future__ import annotations

import asyncio
import collections
import email
import email.policy
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from netvaerk_testing import infra
from netvaerk_testing.processes import ServiceProcess, free_port
from netvaerk_testing.smtp_sink import open_maildir, start_sink

from .conftest import request_json

pytestmark = pytest.mark.e2e
TOKEN = "faults-token-0123456789abcdef"
SERVICES = ("members", "meetings", "notifications")
RATE = 5.0  # joins a second


def call(service: ServiceProcess, method: str, path: str, body=None, timeout: float = 5.0):
    return request_json(service.url + path, method, TOKEN, body, timeout)


@dataclass
class Load:
    """A thread that registers a member and joins them to the group, RATE times a second."""

    members: ServiceProcess
    group_id: str
    accepted: dict[str, str] = field(default_factory=dict)  # email -> member id, for every 201 on the join
    statuses: collections.Counter = field(default_factory=collections.Counter)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            i += 1
            address = f"last-{i}-{uuid.uuid4().hex[:8]}@example.org"
            status, _, body = call(
                self.members,
                "POST",
                "/members",
                {
                    "name": f"Belastning {i}",
                    "email": address,
                    "job_title": "Tester",
                    "organisation": {"name": "Eksempel Kommune", "kind": "public_authority"},
                },
            )
            self.statuses[f"register {status}"] += 1
            if status == 201:
                status, _, _ = call(
                    self.members, "POST", f"/groups/{self.group_id}/members", {"member_id": body["member_id"]}
                )
                self.statuses[f"join {status}"] += 1
                if status == 201:
                    self.accepted[address] = body["member_id"]
            next_at += 1.0 / RATE
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Platform:
    cluster: infra.PgCluster
    nats: infra.NatsServer
    services: dict[str, ServiceProcess]
    database_urls: dict[str, str]
    maildir: Path
    group_id: str = ""

    def welcomes(self) -> collections.Counter:
        box = open_maildir(self.maildir)
        counts: collections.Counter = collections.Counter()
        for key in box.keys():
            message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            if str(message["Subject"]).startswith("Velkommen"):
                counts[message["To"].addresses[0].addr_spec] += 1
        return counts

    def dead_letters(self) -> int:
        total = 0
        for service in self.services.values():
            status, _, body = call(service, "GET", "/admin/dead-letters")
            assert status == 200, (service.name, status, body)
            total += len(body)
        return total

    def backlog(self) -> int:
        total = 0
        for service in self.services.values():
            status, _, body = call(service, "GET", "/admin/outbox")
            if status != 200:
                return -1
            total += body["unpublished"]
        return total


@pytest.fixture
def platform(tmp_path):
    cluster = infra.start_pg_cluster(tmp_path / "pg")
    nats_server = infra.start_nats(tmp_path / "nats")
    smtp_port = free_port()
    maildir = tmp_path / "mail"
    sink = start_sink("127.0.0.1", smtp_port, maildir)
    urls = {name: asyncio.run(infra.create_database(cluster.admin_url, f"faults_{name}")) for name in SERVICES}
    common = {
        "NATS_URL": nats_server.url,
        "API_TOKEN": TOKEN,
        "ENVIRONMENT": "test",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "INFO",
        "CONSUMER_MAX_DELIVER": "3",
    }
    services = {}
    for name in SERVICES:
        env = {**common, "DATABASE_URL": urls[name]}
        if name == "notifications":
            env.update(
                {
                    "SMTP_HOST": "127.0.0.1",
                    "SMTP_PORT": str(smtp_port),
                    "DELIVERY_LEASE_SECONDS": "3",
                    "MAIL_FROM": "netvaerk@example.org",
                }
            )
        services[name] = ServiceProcess(name, env, tmp_path)
    try:
        for service in services.values():
            service.start(wait=False)
        for service in services.values():
            service.wait_ready()
        p = Platform(cluster, nats_server, services, urls, maildir)
        status, _, group = call(
            services["members"], "POST", "/groups", {"name": "Offentlig digitalisering øst", "region": "Øst"}
        )
        assert status == 201, group
        p.group_id = group["group_id"]
        yield p
    finally:
        for service in services.values():
            service.stop()
        sink.stop()
        nats_server.stop()
        cluster.stop()


def settle(p: Platform, load: Load, recovered_at: float, label: str, timeout: float = 60.0) -> float:
    """Stop the load, wait until every accepted join has its welcome; assert exactly one each and no dead letter."""
    load.stop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        welcomes = p.welcomes()
        if all(welcomes[address] >= 1 for address in load.accepted) and p.backlog() == 0:
            break
        time.sleep(0.2)
    drained = time.monotonic() - recovered_at
    welcomes = p.welcomes()
    dead = p.dead_letters()
    missing = [a for a in load.accepted if welcomes[a] == 0]
    doubled = {a: n for a, n in welcomes.items() if n > 1}
    print(
        f"\n{label}: accepted joins {len(load.accepted)}, welcomes {sum(welcomes.values())}, "
        f"dead letters {dead}, drained {drained:.1f} s after recovery; requests {dict(load.statuses)}"
    )
    assert len(load.accepted) >= 10, load.statuses
    assert not missing, f"{len(missing)} accepted joins never got a welcome"
    assert not doubled, f"welcomes sent twice: {doubled}"
    assert dead == 0
    return drained


async def _allow(cluster: infra.PgCluster, database: str, allow: bool) -> None:
    conn = await asyncpg.connect(cluster.admin_url)
    try:
        await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allow else "false"}')
        if not allow:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()


def test_the_consumers_database_away_for_20_s(platform):
    p = platform
    load = Load(p.services["members"], p.group_id).start()
    time.sleep(3)
    database = make_url(p.database_urls["notifications"]).database
    asyncio.run(_allow(p.cluster, database, False))
    time.sleep(20)
    asyncio.run(_allow(p.cluster, database, True))
    recovered = time.monotonic()
    time.sleep(3)
    assert settle(p, load, recovered, "notifications database away 20 s") < 15


def test_the_whole_database_server_away_for_10_s(platform):
    p = platform
    load = Load(p.services["members"], p.group_id).start()
    time.sleep(3)
    stopped = p.cluster._pg_ctl("stop", "-m", "fast", "-w")
    assert stopped.returncode == 0, stopped.stderr
    answers = collections.Counter()
    for _ in range(10):
        status, headers, problem = call(
            p.services["members"],
            "POST",
            "/members",
            {
                "name": "Under udfald",
                "email": f"udfald-{uuid.uuid4().hex[:8]}@example.org",
                "job_title": "Tester",
                "organisation": {"name": "Eksempel Kommune", "kind": "public_authority"},
            },
        )
        answers[status] += 1
        if status == 503:
            assert int(headers["retry-after"]) > 0 and headers["content-type"] == "application/problem+json"
        time.sleep(1)
    started = p.cluster._pg_ctl("start", "-w", "-t", "30", "-l", str(p.cluster.log_file))
    assert started.returncode == 0, started.stderr
    recovered = time.monotonic()
    assert answers[503] >= 8, answers  # honest answers meanwhile, not 500s
    assert not answers[500], answers
    time.sleep(3)
    assert settle(p, load, recovered, "database server away 10 s") < 15


def test_nats_away_for_20_s_writes_are_accepted_meanwhile(platform):
    p = platform
    load = Load(p.services["members"], p.group_id).start()
    time.sleep(3)
    port, store = p.nats.port, p.nats.store_dir
    p.nats.stop()
    during_start = len(load.accepted)
    time.sleep(20)
    accepted_while_away = len(load.accepted) - during_start
    p.nats = infra.start_nats(store, port=port)
    recovered = time.monotonic()
    assert accepted_while_away >= 50, load.statuses  # the outbox held every change
    time.sleep(3)
    assert settle(p, load, recovered, "NATS away 20 s") < 15


def test_kill_9_of_each_service_in_turn_the_others_keep_serving(platform):
    p = platform
    load = Load(p.services["members"], p.group_id).start()
    time.sleep(2)
    for name in ("notifications", "meetings", "members"):
        p.services[name].kill9()
        others = [s for s in p.services.values() if s.name != name]
        for other in others:
            status, _, _ = call(other, "GET", "/readyz")
            assert status == 200, (other.name, "while", name, "was down")
        time.sleep(2)
        p.services[name].start()  # a supervisor (dev.py, compose's restart policy) brings it back
        time.sleep(2)
    recovered = time.monotonic()
    assert settle(p, load, recovered, "kill -9 of each service in turn") < 15
