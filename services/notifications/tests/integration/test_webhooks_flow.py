"""Signed webhooks and bouncing addresses end to end, in-process against real NATS JetStream, a real database
(PostgreSQL and SQLite), a real SMTP server (aiosmtpd) and a real HTTP receiver (a small Starlette app on uvicorn, on
a free port): what reaches the receiver, how often, signed how; retries, parking, a rotation, a subscriber that hangs;
and a 550 that marks an address so the next mail to it is not attempted."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from netvaerk_shared import contracts, topology
from netvaerk_shared.envelope import make_event, parse_event, to_bytes
from netvaerk_testing.infra import free_port
from netvaerk_testing.plugin import running_app, service_settings, wait_until
from notifications.bootstrap import bootstrap
from notifications.config import Settings
from notifications.domain.webhooks import verify
from notifications.entrypoints.http import create_app

BOUNCING = "ukendt@example.org"


# -- a real HTTP receiver ---------------------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    base: str
    got: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer in turn, then 200
    hang: set[str] = field(default_factory=set)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.got if r.path == path]


@pytest.fixture
async def receiver():
    port = free_port()
    state = Receiver(base=f"http://127.0.0.1:{port}")

    async def hook(request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        state.got.append(Received(path, dict(request.headers), body, asyncio.get_running_loop().time()))
        if path in state.hang:
            await asyncio.sleep(30)
        queue = state.answers.get(path) or []
        return Response(status_code=queue.pop(0) if queue else 200)

    app = Starlette(routes=[Route("/{name}", hook, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, message="the receiver listening")
    yield state
    server.should_exit = True
    await asyncio.wait_for(task, 10)


# -- a real SMTP server that refuses one address for good -------------------------------------------------------
class Refusing:
    def __init__(self) -> None:
        self.rcpt: list[str] = []
        self.taken: list[tuple[str, bytes]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self.rcpt.append(address)
        if address == BOUNCING:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for to in envelope.rcpt_tos:
            self.taken.append((to, envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    handler = Refusing()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
async def js(clean_nats):
    nc = await nats.connect(clean_nats)
    js = nc.jetstream()
    for service in ("members", "meetings"):
        await topology.ensure_stream(js, service)
    yield js
    await nc.close()


@pytest.fixture
async def app(clean_nats, database_url, smtp, js):
    settings = service_settings(
        Settings,
        database_url,
        clean_nats,
        smtp_port=smtp[1],
        delivery_lease_seconds=2,
        webhook_timeout_seconds=2,
        webhook_backoff_base_seconds=0.2,
        webhook_backoff_max_seconds=0.5,
        webhook_max_attempts=4,
    )
    async with running_app(create_app(), bootstrap(settings)) as client:
        yield client


async def publish(js, data: contracts.EventData) -> str:
    event = make_event(data)
    await js.publish(data.nats_subject(), to_bytes(event), headers={"Nats-Msg-Id": event.id})
    return event.id


ORG = uuid.uuid4()


def member(email: str, organisation_id: uuid.UUID | None = None) -> contracts.MemberRegistered:
    return contracts.MemberRegistered(
        member_id=uuid.uuid4(),
        name="Mette Eksempel",
        email=email,
        job_title="Arkitekt",
        locale="da",
        registered_at=datetime.now(UTC),
        organisation=contracts.Organisation(id=organisation_id or uuid.uuid4(), name="Eksempel Kommune", kind="other"),
    )


async def members_in_a_group(js, *people: contracts.MemberRegistered) -> contracts.GroupCreated:
    group = contracts.GroupCreated(
        group_id=uuid.uuid4(), name="Offentlig digitalisering øst", slug="od-oest", region="Øst", description=""
    )
    await publish(js, group)
    for p in people:
        await publish(js, p)
        await publish(
            js,
            contracts.MemberJoined(
                member_id=p.member_id, group_id=group.group_id, role="member", joined_at=datetime.now(UTC)
            ),
        )
    return group


def meeting(group: contracts.GroupCreated) -> contracts.MeetingScheduled:
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    return contracts.MeetingScheduled(
        meeting_id=uuid.uuid4(),
        group_id=group.group_id,
        title="Vintermøde om SKI-aftaler",
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        venue=contracts.Venue(name="Eksempelhuset", address="Eksempelvej 1"),
        agenda=(),
    )


async def register(app, receiver: Receiver, path: str, **body: Any) -> dict[str, Any]:
    response = await app.post("/webhooks", json={"name": f"Intranet {path}", "url": receiver.base + path, **body})
    assert response.status_code == 201, response.text
    return response.json()


def signed_by(received: Received, secret: str) -> bool:
    timestamp = int(received.headers["netvaerk-webhook-timestamp"])
    return verify(received.headers["netvaerk-webhook-signature"], secret, timestamp, received.body)


async def _deliveries(app, webhook_id: str, status: str | None = None) -> list[dict[str, Any]]:
    params = {"status": status} if status else {}
    response = await app.get(f"/webhooks/{webhook_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# -- the tests --------------------------------------------------------------------------------------------------
async def test_a_sent_invitation_reaches_the_receiver_once_signed_and_as_the_cloudevent(app, js, smtp, receiver):
    hook = await register(app, receiver, "/invitations", kinds=["invitation"])
    secret = hook.pop("secret")
    assert secret.startswith("whsec_") and len(secret) > 30
    listed = (await app.get("/webhooks")).json()
    assert listed == [hook] and "secret" not in (await app.get(f"/webhooks/{hook['id']}")).json()

    mette = member("mette@example.org")
    group = await members_in_a_group(js, mette)
    await wait_until(lambda: len(smtp[0].taken) >= 1, message="the welcome mail")
    await publish(js, meeting(group))
    await wait_until(lambda: len(smtp[0].taken) >= 2, message="the invitation mail")
    await wait_until(lambda: receiver.on("/invitations"), message="the webhook")
    await asyncio.sleep(1.0)  # anything more would have come by now (the welcome is not of its kinds)
    got = receiver.on("/invitations")
    assert len(got) == 1
    received = got[0]
    assert signed_by(received, secret)
    assert received.headers["content-type"] == "application/cloudevents+json"
    assert abs(int(received.headers["netvaerk-webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 30
    event, data = parse_event(received.body)
    assert isinstance(data, contracts.NotificationSent) and data.kind == "invitation"
    assert data.member_id == mette.member_id and b"@" not in received.body  # ids only
    logged = await _deliveries(app, hook["id"])
    assert [(d["id"], d["status"], d["event_id"]) for d in logged] == [
        (received.headers["netvaerk-webhook-id"], "delivered", event.id)
    ]


async def test_500_twice_then_200_gets_it_on_the_third_attempt_and_a_400_parks_it_at_once(app, js, smtp, receiver):
    flaky = await register(app, receiver, "/flaky", kinds=["welcome"])
    refusing = await register(app, receiver, "/refusing", kinds=["welcome"])
    receiver.answers["/flaky"] = [500, 500]
    receiver.answers["/refusing"] = [400]
    await members_in_a_group(js, member("mette@example.org"))
    await wait_until(lambda: len(receiver.on("/flaky")) >= 3, timeout=15, message="three attempts")
    await wait_until(
        lambda: _has(app, flaky["id"], "delivered"), timeout=10, message="the flaky subscriber's delivery delivered"
    )
    attempts = receiver.on("/flaky")
    assert len({a.headers["netvaerk-webhook-id"] for a in attempts}) == 1  # one delivery id: the receiver dedupes
    assert len({a.body for a in attempts}) == 1
    (delivered,) = await _deliveries(app, flaky["id"])
    assert (delivered["attempts"], delivered["last_status"]) == (3, 200)

    await wait_until(lambda: _has(app, refusing["id"], "failed"), timeout=10, message="the 400 parked")
    (parked,) = await _deliveries(app, refusing["id"], "failed")
    assert (parked["attempts"], parked["last_status"], parked["last_error"]) == (1, 400, "HTTP 400")
    assert len(receiver.on("/refusing")) == 1
    # an operator retries it once the receiver is fixed
    retried = await app.post(f"/webhooks/{refusing['id']}/deliveries/{parked['id']}/retry")
    assert retried.status_code == 200, retried.text
    await wait_until(lambda: _has(app, refusing["id"], "delivered"), timeout=10, message="the retry delivered")
    assert len(receiver.on("/refusing")) == 2
    again = await app.post(f"/webhooks/{refusing['id']}/deliveries/{parked['id']}/retry")
    assert again.status_code == 409


async def _has(app, webhook_id: str, status: str) -> bool:
    return bool(await _deliveries(app, webhook_id, status))


async def test_during_a_rotation_both_signatures_verify(app, js, smtp, receiver):
    hook = await register(app, receiver, "/rotating", kinds=["welcome"])
    old = hook["secret"]
    rotated = await app.post(f"/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old and rotated.json()["rotating_until"] is not None
    assert "secret" not in (await app.get(f"/webhooks/{hook['id']}")).json()
    await members_in_a_group(js, member("mette@example.org"))
    await wait_until(lambda: receiver.on("/rotating"), message="the webhook")
    (received,) = receiver.on("/rotating")
    signature = received.headers["netvaerk-webhook-signature"]
    assert signature.count("v1=") == 2
    assert signed_by(received, new) and signed_by(received, old)
    assert not signed_by(received, "whsec_someone-else")


async def test_a_subscriber_that_hangs_does_not_delay_another(app, js, smtp, receiver):
    receiver.hang.add("/hanging")
    hanging_hook = await register(app, receiver, "/hanging", kinds=["welcome"])
    await register(app, receiver, "/quick", kinds=["welcome"])
    people = [member(f"deltager{i}@example.org") for i in range(3)]
    await members_in_a_group(js, *people)
    await wait_until(lambda: len(receiver.on("/quick")) >= 3, timeout=10, message="the quick subscriber's three")
    # all three reached the quick subscriber before any POST to the hanging one gave up (its 2 s timeout): none of
    # them waited for it
    stuck = await _deliveries(app, hanging_hook["id"])
    assert stuck and all(d["status"] == "pending" and d["attempts"] == 0 for d in stuck), stuck
    hanging, quick = receiver.on("/hanging"), receiver.on("/quick")
    assert 0 < len(hanging) <= 2  # at most WEBHOOK_CONCURRENCY_PER_SUBSCRIBER at once
    assert quick[-1].at - hanging[0].at < 2.0
    assert len({q.headers["netvaerk-webhook-id"] for q in quick}) == 3
    # the hanging one's attempts time out and are retried; the emails went all along
    await wait_until(lambda: _attempted(app, hanging_hook["id"]), timeout=10, message="the hanging POSTs timed out")
    assert len(smtp[0].taken) == 3


async def _attempted(app, webhook_id: str) -> bool:
    return any(d["attempts"] >= 1 and "timeout" in (d["last_error"] or "") for d in await _deliveries(app, webhook_id))


async def test_an_organisation_filter_and_a_member_header_refused(app, js, smtp, receiver):
    ours = await register(app, receiver, "/ours", organisation_id=str(ORG))
    inside, outside = member("intern@example.org", ORG), member("ekstern@example.org")
    await members_in_a_group(js, inside, outside)
    await wait_until(lambda: len(smtp[0].taken) >= 2, message="two welcomes")
    await wait_until(lambda: receiver.on("/ours"), message="the webhook")
    await asyncio.sleep(1.0)
    (received,) = receiver.on("/ours")
    assert parse_event(received.body)[1].member_id == inside.member_id
    member_header = {"X-Netvaerk-Member": str(inside.member_id)}
    for method, path in (
        ("GET", "/webhooks"),
        ("GET", f"/webhooks/{ours['id']}"),
        ("POST", f"/webhooks/{ours['id']}/rotate-secret"),
        ("DELETE", f"/webhooks/{ours['id']}"),
        ("GET", f"/webhooks/{ours['id']}/deliveries"),
        ("GET", f"/members/{inside.member_id}/deliverability"),
        ("DELETE", f"/members/{inside.member_id}/deliverability"),
    ):
        assert (await app.request(method, path, headers=member_header)).status_code == 403, (method, path)
    refused = await app.post("/webhooks", json={"name": "x", "url": "https://a.example.org/"}, headers=member_header)
    assert refused.status_code == 403
    for url in ("http://hooks.example.org/x", "https://u:p@hooks.example.org/x", "ftp://hooks.example.org/x"):
        bad = await app.post("/webhooks", json={"name": "x", "url": url})
        assert bad.status_code == 422, (url, bad.text)
    assert (await app.delete(f"/webhooks/{ours['id']}")).status_code == 204
    assert (await app.get(f"/webhooks/{ours['id']}")).status_code == 404
    assert (await app.delete(f"/webhooks/{ours['id']}")).status_code == 404


async def test_a_550_marks_the_address_and_the_next_mail_to_it_is_not_attempted(app, js, smtp, receiver):
    handler, _ = smtp
    hook = await register(app, receiver, "/failures")
    bouncing = member(BOUNCING)
    group = await members_in_a_group(js, bouncing)
    await wait_until(lambda: BOUNCING in handler.rcpt, message="the welcome tried")
    state = await wait_until(
        lambda: _deliverability(app, bouncing.member_id, deliverable=False), message="the address marked"
    )
    assert state["reason"] == "smtp 550 5.1.1" and state["undeliverable_at"]
    await publish(js, meeting(group))
    await wait_until(lambda: _failed_with(app, bouncing.member_id, "invitation"), message="the invitation failed")
    assert handler.rcpt.count(BOUNCING) == 1  # no SMTP round trip for the invitation
    log = (await app.get("/deliveries", params={"member_id": str(bouncing.member_id), "kind": "invitation"})).json()
    assert "address marked undeliverable" in log[0]["last_error"]
    await wait_until(lambda: len(receiver.on("/failures")) >= 2, message="both failures on the webhook")
    reasons = sorted(parse_event(r.body)[1].reason for r in receiver.on("/failures"))
    assert reasons == ["address marked undeliverable", "smtp 550 5.1.1"]
    export = (await app.get(f"/members/{bouncing.member_id}/export")).json()
    assert export["contact"]["undeliverable_reason"] == "smtp 550 5.1.1"  # GDPR: in the export

    # the same address again changes nothing; another address clears the mark
    same = contracts.MemberUpdated(**bouncing.model_dump(), updated_at=datetime.now(UTC))
    await publish(js, same)
    await asyncio.sleep(1.0)
    assert await _deliverability(app, bouncing.member_id, deliverable=False)
    moved = same.model_copy(update={"email": "ny@example.org", "updated_at": datetime.now(UTC)})
    await publish(js, moved)
    await wait_until(lambda: _deliverability(app, bouncing.member_id, deliverable=True), message="the mark cleared")
    assert hook["id"]

    # the administration can clear a mark, too
    other = member(BOUNCING)
    await members_in_a_group(js, other)
    await wait_until(lambda: _deliverability(app, other.member_id, deliverable=False), message="marked again")
    cleared = await app.delete(f"/members/{other.member_id}/deliverability")
    assert cleared.status_code == 200 and cleared.json()["deliverable"] is True
    assert (await app.delete(f"/members/{uuid.uuid4()}/deliverability")).status_code == 404


async def _deliverability(app, member_id, *, deliverable: bool) -> dict[str, Any] | None:
    response = await app.get(f"/members/{member_id}/deliverability")
    if response.status_code != 200:
        return None
    body = response.json()
    return body if body["deliverable"] is deliverable else None


async def _failed_with(app, member_id, kind) -> bool:
    log = (await app.get("/deliveries", params={"member_id": str(member_id), "kind": kind})).json()
    return bool(log) and log[0]["status"] == "failed"
