"""No poison pill holds up the line: the delivery worker with the real SmtpMailer, the development SMTP sink and a
real database (PostgreSQL and SQLite). A delivery that cannot be built or is refused for good ends `failed` with its
reason and a NotificationFailed, alone; the rest of its batch is delivered; temporary trouble is retried."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select, update

from netvaerk_shared import contracts
from netvaerk_shared.contracts.notifications import NotificationFailed
from netvaerk_shared.envelope import make_event, parse_event
from netvaerk_shared.migrate import upgrade
from netvaerk_testing.infra import free_port
from netvaerk_testing.plugin import service_settings
from netvaerk_testing.smtp_sink import RCPT_TO_HEADER, SERVER_HOSTNAME, MaildirSink
from notifications.adapters import orm
from notifications.bootstrap import bootstrap
from notifications.config import Settings
from notifications.domain import commands
from notifications.domain.errors import NotFailed, NotFound
from notifications.entrypoints import subscribers
from notifications.service_layer.handlers import handle as handle_command

d = orm.deliveries
SENT_TYPE = "dk.danskit.notification.sent.v1"
FAILED_TYPE = "dk.danskit.notification.failed.v1"
HOSTILE_NAME = "Evil\r\nBcc: victim@example.net"


class RefusingSink(MaildirSink):
    """The development sink, refusing the recipients in `refuse` at RCPT with the reply given there."""

    def __init__(self, maildir_path) -> None:
        super().__init__(maildir_path)
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"


@pytest.fixture
def sink(tmp_path):
    handler = RefusingSink(tmp_path / "mail")
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname=SERVER_HOSTNAME)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def make_runtime(database_url):
    """Factory: a notifications runtime with the real SmtpMailer on `smtp_port` (NATS never connected)."""

    async def _make(smtp_port: int, **overrides):
        settings = service_settings(
            Settings,
            database_url,
            "nats://127.0.0.1:1",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_timeout=5.0,
            **overrides,
        )
        runtime = bootstrap(settings)
        await upgrade(runtime.engine, runtime.migrations_dir)
        return runtime

    return _make


@pytest.fixture
async def runtime(make_runtime, sink):
    runtime = await make_runtime(sink[1])
    yield runtime
    await runtime.workers["deliveries"].mailer.close()
    await runtime.engine.dispose()


def received(sink) -> list[email.message.EmailMessage]:
    box = mailbox.Maildir(sink[0].maildir_path, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]


# -- what the consumers would have written ---------------------------------------------------------------------
async def handle(runtime, subscriber, data):
    """Run a subscriber as the event consumer does: with a unit of work joined to a transaction it commits."""
    async with runtime.engine.begin() as conn:
        await subscriber(runtime.uow_on(conn), make_event(data), data)


async def retry_failed(runtime, notification_id) -> str:
    """The operator's retry (POST /admin/deliveries/{id}/retry) through its handler, as the route's outcome."""
    try:
        await handle_command(commands.RetryDelivery(notification_id), runtime.uow())
    except NotFound:
        return "not_found"
    except NotFailed:
        return "not_failed"
    return "retried"


async def a_group(runtime) -> contracts.GroupCreated:
    group = contracts.GroupCreated(
        group_id=uuid.uuid4(), name="Offentlig digitalisering øst", slug="od-oest", region="Øst", description=""
    )
    await handle(runtime, subscribers.on_group_created, group)
    return group


async def joins(runtime, group, name: str, email_address: str, *, directly: bool = False) -> uuid.UUID:
    """A member registered (through the handler, or `directly` into the contacts table, past every check) who
    joined `group`: one welcome owed."""
    member_id = uuid.uuid4()
    if not directly:
        await handle(
            runtime,
            subscribers.on_member_registered,
            contracts.MemberRegistered(
                member_id=member_id,
                name=name,
                email=email_address,
                job_title="Arkitekt",
                locale="da",
                registered_at=datetime.now(UTC),
                organisation=contracts.Organisation(id=uuid.uuid4(), name="Eksempel Kommune", kind="public_authority"),
            ),
        )
    else:
        async with runtime.engine.begin() as conn:
            await conn.execute(
                insert(orm.contacts).values(
                    member_id=member_id, name=name, email=email_address, locale="da", updated_at=datetime.now(UTC)
                )
            )
    await handle(
        runtime,
        subscribers.on_member_joined,
        contracts.MemberJoined(
            member_id=member_id, group_id=group.group_id, role="member", joined_at=datetime.now(UTC)
        ),
    )
    return member_id


async def by_member(runtime) -> dict:
    async with runtime.engine.connect() as conn:
        return {r.member_id: r for r in (await conn.execute(select(d))).all()}


async def outbox(runtime) -> list:
    o = orm.messaging.outbox
    async with runtime.engine.connect() as conn:
        return (await conn.execute(select(o).order_by(o.c.position))).all()


async def failed_events(runtime) -> list[NotificationFailed]:
    return [parse_event(bytes(o.body))[1] for o in await outbox(runtime) if o.type == FAILED_TYPE]


async def make_due(runtime) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(d).where(d.c.status == "pending").values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


# -- the issue: a hostile name no longer stalls anyone -------------------------------------------------------------
async def test_a_member_with_a_header_injecting_name_and_one_who_joined_with_them_both_get_their_welcome(runtime, sink):
    group = await a_group(runtime)
    evil = await joins(runtime, group, HOSTILE_NAME, "evil@example.org")
    mette = await joins(runtime, group, "Mette Eksempel", "mette@example.org")

    assert await runtime.workers["deliveries"].run_once() == 2

    rows = await by_member(runtime)
    assert {(rows[m].status, rows[m].attempts, rows[m].last_error) for m in (evil, mette)} == {("sent", 1, None)}
    mails = {m["To"].addresses[0].addr_spec: m for m in received(sink)}
    assert set(mails) == {"evil@example.org", "mette@example.org"}
    hostile = mails["evil@example.org"]
    assert hostile.get_all("Bcc") is None and len(hostile.get_all("To")) == 1
    assert hostile["To"].addresses[0].display_name == "Evil Bcc: victim@example.net"
    assert hostile[RCPT_TO_HEADER] == "evil@example.org"  # the envelope: nobody else
    assert hostile.get_body(("plain",)).get_content().splitlines()[0] == "Kære Evil Bcc: victim@example.net"
    assert all("victim" not in m[RCPT_TO_HEADER] for m in mails.values())
    assert [o.type for o in await outbox(runtime)] == [SENT_TYPE, SENT_TYPE]


# -- cannot be built: failed for good, alone -----------------------------------------------------------------------
async def test_a_delivery_whose_message_cannot_be_built_fails_alone_and_the_rest_of_its_batch_is_sent(runtime, sink):
    group = await a_group(runtime)
    # written straight into our table, past the contract's EmailStr: an address the email package refuses
    broken = await joins(runtime, group, HOSTILE_NAME, "mette@example.org\r\nBcc: victim@example.net", directly=True)
    jonas = await joins(runtime, group, "Jonas Holm", "jonas@example.org")

    assert await runtime.workers["deliveries"].run_once() == 2  # one claimed batch, both handled

    rows = await by_member(runtime)
    failed, sent = rows[broken], rows[jonas]
    assert (failed.status, failed.attempts, failed.lease_owner, failed.lease_until) == ("failed", 1, None, None)
    assert failed.sent_at is None and failed.message_id is None
    assert "InvalidAddress" in failed.last_error and "CR or LF" in failed.last_error  # the true reason, for us
    assert (sent.status, sent.attempts) == ("sent", 1)
    [mail] = received(sink)
    assert mail["To"].addresses[0].addr_spec == "jonas@example.org" and mail[RCPT_TO_HEADER] == "jonas@example.org"

    out = await outbox(runtime)
    assert sorted(o.type for o in out) == [FAILED_TYPE, SENT_TYPE]
    [failed_out] = [o for o in out if o.type == FAILED_TYPE]
    assert failed_out.subject == f"notifications.notification.failed.v1.{failed.id}"
    assert b"@" not in failed_out.body  # ids and a reason only: no address
    event, data = parse_event(bytes(failed_out.body))
    assert data == NotificationFailed(
        notification_id=failed.id,
        member_id=broken,
        kind="welcome",
        channel="email",
        cause_event_id=failed.cause_event_id,
        reason="invalid recipient address",
        permanent=True,
    )
    assert event.source == "/notifications" and event.causationid == str(failed.cause_event_id)

    await make_due(runtime)
    assert await runtime.workers["deliveries"].run_once() == 0  # failed is final
    assert len(received(sink)) == 1 and len(await outbox(runtime)) == 2


async def test_an_invitation_that_cannot_be_built_fails_for_good_and_the_welcome_beside_it_goes(runtime, sink):
    group = await a_group(runtime)
    mette = await joins(runtime, group, "Mette Eksempel", "mette@example.org")
    start = datetime.now(UTC) + timedelta(days=30)
    meeting = contracts.MeetingScheduled(
        meeting_id=uuid.uuid4(),
        group_id=group.group_id,
        title="Forårsmøde",
        starts_at=start,
        ends_at=start + timedelta(hours=2),
        timezone="Mars/Olympus_Mons",
    )  # no such zone: no ICS can be built
    await handle(runtime, subscribers.on_meeting_scheduled, meeting)

    assert await runtime.workers["deliveries"].run_once() == 2

    async with runtime.engine.connect() as conn:
        rows = {r.kind: r for r in (await conn.execute(select(d).where(d.c.member_id == mette))).all()}
    assert (rows["welcome"].status, rows["invitation"].status) == ("sent", "failed")
    assert rows["invitation"].attempts == 1 and "ZoneInfoNotFoundError" in rows["invitation"].last_error
    [mail] = received(sink)
    assert mail["Subject"] == "Velkommen i Offentlig digitalisering øst"
    [data] = await failed_events(runtime)
    assert (data.notification_id, data.kind, data.reason, data.permanent) == (
        rows["invitation"].id,
        contracts.NotificationKind.invitation,
        "build: ZoneInfoNotFoundError",
        True,
    )


# -- refused by the server ------------------------------------------------------------------------------------------
async def test_a_5xx_from_the_server_fails_the_delivery_for_good_and_the_next_one_is_sent(runtime, sink):
    sink[0].refuse["ukendt@example.org"] = "550 5.1.1 <ukendt@example.org>: Recipient address rejected"
    group = await a_group(runtime)
    unknown = await joins(runtime, group, "Ukendt Modtager", "ukendt@example.org")
    mette = await joins(runtime, group, "Mette Eksempel", "mette@example.org")

    assert await runtime.workers["deliveries"].run_once() == 2

    rows = await by_member(runtime)
    failed = rows[unknown]
    assert (failed.status, failed.attempts, failed.lease_owner) == ("failed", 1, None)
    assert failed.last_error.startswith("550 ") and "Recipient address rejected" in failed.last_error
    assert rows[mette].status == "sent"
    assert [m["To"].addresses[0].addr_spec for m in received(sink)] == ["mette@example.org"]
    [data] = await failed_events(runtime)
    assert (data.notification_id, data.member_id, data.reason, data.permanent) == (
        failed.id,
        unknown,
        "smtp 550 5.1.1",
        True,
    )

    sink[0].refuse.clear()
    await make_due(runtime)
    assert await runtime.workers["deliveries"].run_once() == 0  # never tried again
    assert len(received(sink)) == 1


async def test_a_4xx_from_the_server_is_retried_with_backoff_and_goes_once_accepted(runtime, sink):
    sink[0].refuse["mette@example.org"] = "451 4.3.0 Try again later"
    group = await a_group(runtime)
    mette = await joins(runtime, group, "Mette Eksempel", "mette@example.org")

    before = datetime.now(UTC)
    await runtime.workers["deliveries"].run_once()

    row = (await by_member(runtime))[mette]
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 1, None)
    assert row.last_error.startswith("451 ") and row.next_attempt_at >= before + timedelta(seconds=2)
    assert received(sink) == [] and await outbox(runtime) == []
    assert await runtime.workers["deliveries"].run_once() == 0  # backing off

    sink[0].refuse.clear()
    await make_due(runtime)
    assert await runtime.workers["deliveries"].run_once() == 1
    row = (await by_member(runtime))[mette]
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert len(received(sink)) == 1 and [o.type for o in await outbox(runtime)] == [SENT_TYPE]


async def test_an_unreachable_server_is_retried_and_never_given_up_on(make_runtime):
    runtime = await make_runtime(free_port(), delivery_max_attempts=2)  # nothing listens there
    try:
        group = await a_group(runtime)
        mette = await joins(runtime, group, "Mette Eksempel", "mette@example.org")
        for attempt in (1, 2, 3):
            assert await runtime.workers["deliveries"].run_once() == 0
            row = (await by_member(runtime))[mette]
            assert (row.status, row.attempts, row.lease_owner) == ("pending", attempt, None)
            assert row.last_error.startswith("smtp 127.0.0.1:")
            await make_due(runtime)
        assert await outbox(runtime) == []
    finally:
        await runtime.workers["deliveries"].mailer.close()
        await runtime.engine.dispose()


async def test_a_contact_that_never_arrives_is_given_up_on_and_announced_as_not_permanent(make_runtime, sink):
    runtime = await make_runtime(sink[1], delivery_max_attempts=2, delivery_wait_seconds=1)
    try:
        group = await a_group(runtime)
        member_id = uuid.uuid4()
        await handle(
            runtime,
            subscribers.on_member_joined,
            contracts.MemberJoined(
                member_id=member_id, group_id=group.group_id, role="member", joined_at=datetime.now(UTC)
            ),
        )
        for _ in range(3):  # waiting for the contact burns no attempt
            assert await runtime.workers["deliveries"].run_once() == 1
            row = (await by_member(runtime))[member_id]
            assert (row.status, row.attempts) == ("pending", 0) and "waiting" in row.last_error
            await make_due(runtime)
        await asyncio.sleep(1.1)  # past delivery_wait_seconds
        assert await runtime.workers["deliveries"].run_once() == 1
        row = (await by_member(runtime))[member_id]
        assert (row.status, row.attempts) == ("failed", 1) and "no contact yet" in row.last_error
        [data] = await failed_events(runtime)
        assert (data.member_id, data.reason, data.permanent) == (member_id, "not ready: no contact", False)
        assert received(sink) == []
    finally:
        await runtime.workers["deliveries"].mailer.close()
        await runtime.engine.dispose()


async def test_an_operator_retries_a_failed_delivery_and_it_is_sent_once(runtime, sink):
    sink[0].refuse["ukendt@example.org"] = "550 5.1.1 <ukendt@example.org>: Recipient address rejected"
    group = await a_group(runtime)
    unknown = await joins(runtime, group, "Ukendt Modtager", "ukendt@example.org")
    assert await runtime.workers["deliveries"].run_once() == 1
    failed = (await by_member(runtime))[unknown]
    assert failed.status == "failed"

    sink[0].refuse.clear()  # the operator had the mailbox created
    assert await retry_failed(runtime, failed.id) == "retried"
    row = (await by_member(runtime))[unknown]
    assert (row.status, row.attempts) == ("pending", 0)
    assert await runtime.workers["deliveries"].run_once() == 1
    assert (await by_member(runtime))[unknown].status == "sent"
    assert [m["To"].addresses[0].addr_spec for m in received(sink)] == ["ukendt@example.org"]
    assert await retry_failed(runtime, failed.id) == "not_failed"  # sent: never again
    assert await retry_failed(runtime, uuid.uuid4()) == "not_found"
