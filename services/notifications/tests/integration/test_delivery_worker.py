"""The delivery worker on a real database (PostgreSQL and SQLite) with a fake mailer and no NATS: what it marks sent,
retries, fails, undoes or leaves alone, and that a delivery is sent once however many workers reach for it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from netvaerk_shared import contracts
from netvaerk_shared.contracts.notifications import NotificationFailed
from netvaerk_shared.envelope import make_event, parse_event
from netvaerk_shared.migrate import upgrade
from netvaerk_testing.plugin import service_settings
from notifications.adapters import orm
from notifications.adapters.mailer import SmtpOutcomeUnknown, SmtpRejected, SmtpTransient
from notifications.bootstrap import bootstrap
from notifications.config import Settings
from notifications.domain.errors import LeaseLost
from notifications.entrypoints import subscribers
from notifications.entrypoints.worker import DeliveryWorker

d = orm.deliveries
SENT_TYPE = "dk.danskit.notification.sent.v1"
FAILED_TYPE = "dk.danskit.notification.failed.v1"


class FakeMailer:
    """Stands in for SmtpMailer. `outcome(message, commit)` plays the SMTP server; `commit` is the worker's
    before_commit_point, which the real mailer awaits just before the final "."."""

    def __init__(self) -> None:
        self.outcome = accept
        self.tried: list = []  # every message handed to send()
        self.delivered: list = []  # messages the server took: the commit point passed and no error followed
        self.commit_errors: list = []  # what before_commit_point raised
        self.closed = False

    async def send(self, message, *, before_commit_point) -> None:
        self.tried.append(message)

        async def commit() -> None:
            try:
                await before_commit_point()
            except BaseException as exc:
                self.commit_errors.append(exc)
                raise

        await self.outcome(message, commit)
        self.delivered.append(message)

    async def close(self) -> None:
        self.closed = True


async def accept(message, commit) -> None:
    await asyncio.sleep(0)  # let a concurrent worker run, as real I/O would
    await commit()


def recipient(message) -> str:
    return message["To"].addresses[0].addr_spec


@pytest.fixture
async def runtime(database_url):
    settings = service_settings(Settings, database_url, "nats://127.0.0.1:1")  # never connected: not started
    runtime = bootstrap(settings, mailer=FakeMailer())
    await upgrade(runtime.engine, runtime.migrations_dir)
    yield runtime
    await runtime.engine.dispose()


@pytest.fixture
def mailer(runtime) -> FakeMailer:
    return runtime.workers["deliveries"].mailer


# -- what the consumers would have written ---------------------------------------------------------------------
async def handle(runtime, subscriber, data, event=None):
    """Run a subscriber as the event consumer does: with a unit of work joined to a transaction it commits."""
    event = event or make_event(data)
    async with runtime.engine.begin() as conn:
        await subscriber(runtime.uow_on(conn), event, data)
    return event


def group_created(name="Offentlig digitalisering øst") -> contracts.GroupCreated:
    return contracts.GroupCreated(
        group_id=uuid.uuid4(), name=name, slug="offentlig-digitalisering-oest", region="Øst", description=""
    )


def member_registered(name="Mette Eksempel", email="mette@example.org", locale="da") -> contracts.MemberRegistered:
    return contracts.MemberRegistered(
        member_id=uuid.uuid4(),
        name=name,
        email=email,
        job_title="Arkitekt",
        locale=locale,
        registered_at=datetime.now(UTC),
        organisation=contracts.Organisation(id=uuid.uuid4(), name="Eksempel Kommune", kind="public_authority"),
    )


def member_joined(member, group) -> contracts.MemberJoined:
    return contracts.MemberJoined(
        member_id=member.member_id, group_id=group.group_id, role="member", joined_at=datetime.now(UTC)
    )


async def welcomes_owed(runtime, people, *, registered=True) -> dict:
    """A group and `people` [(name, email)] registered (or not) who joined it: one welcome owed each.
    Returns email -> (the MemberJoined CloudEvent that caused it, the MemberRegistered data)."""
    group = group_created()
    await handle(runtime, subscribers.on_group_created, group)
    owed = {}
    for name, email in people:
        member = member_registered(name, email)
        if registered:
            await handle(runtime, subscribers.on_member_registered, member)
        owed[email] = (await handle(runtime, subscribers.on_member_joined, member_joined(member, group)), member)
    return owed


async def deliveries(runtime) -> list:
    async with runtime.engine.connect() as conn:
        return (await conn.execute(select(d).order_by(d.c.created_at))).all()


async def outbox(runtime) -> list:
    o = orm.messaging.outbox
    async with runtime.engine.connect() as conn:
        return (await conn.execute(select(o).order_by(o.c.position))).all()


async def make_due(runtime) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(d).where(d.c.status == "pending").values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


# -- (a) the happy path ------------------------------------------------------------------------------------------
async def test_a_sent_delivery_is_marked_sent_and_announced_by_exactly_one_notification_sent(runtime, mailer):
    owed_to = await welcomes_owed(runtime, [("Mette Eksempel", "mette@example.org")])
    cause, member = owed_to["mette@example.org"]
    [owed] = await deliveries(runtime)

    assert await runtime.workers["deliveries"].run_once() == 1

    [message] = mailer.delivered
    assert recipient(message) == "mette@example.org"
    assert message["Subject"] == "Velkommen i Offentlig digitalisering øst"
    [row] = await deliveries(runtime)
    assert row.id == owed.id
    assert (row.status, row.attempts, row.lease_owner, row.lease_until) == ("sent", 1, None, None)
    assert row.message_id == message["Message-ID"] == f"<{row.id}@netvaerk.danskit.example.org>"
    assert row.subject == "Velkommen i Offentlig digitalisering øst"
    assert row.to_email == "mette@example.org" and row.sent_at is not None
    assert runtime.workers["deliveries"].sent == 1

    [out] = await outbox(runtime)
    assert out.type == SENT_TYPE and out.published_at is None
    assert out.subject == f"notifications.notification.sent.v1.{row.id}"
    event, data = parse_event(bytes(out.body))
    assert event.type == SENT_TYPE and event.id == out.event_id
    assert event.data["cause_event_id"] == cause.id and event.causationid == cause.id
    assert isinstance(data, contracts.NotificationSent)
    assert (data.notification_id, data.member_id, data.kind, data.channel) == (
        row.id,
        member.member_id,
        contracts.NotificationKind.welcome,
        contracts.Channel.email,
    )
    assert b"@" not in out.body  # ids only: the address stays in this database

    # nothing is owed any more: a second round sends nothing and announces nothing
    assert await runtime.workers["deliveries"].run_once() == 0
    assert len(mailer.tried) == 1 and len(await outbox(runtime)) == 1


# -- (b) the SMTP server is away ---------------------------------------------------------------------------------
async def test_a_transient_failure_before_the_commit_point_retries_later_and_gives_the_rest_back_untried(
    runtime, mailer
):
    owed_to = await welcomes_owed(runtime, [(f"Deltager {i}", f"deltager{i}@example.org") for i in range(3)])
    email_of = {member.member_id: email for email, (_, member) in owed_to.items()}

    async def outage(message, commit):
        raise SmtpTransient("smtp 127.0.0.1:1025: connection refused")

    mailer.outcome = outage
    before = datetime.now(UTC)
    assert await runtime.workers["deliveries"].run_once() == 0
    after = datetime.now(UTC)

    [tried] = mailer.tried  # the first failure stops the batch
    assert mailer.delivered == [] and mailer.commit_errors == []
    rows = await deliveries(runtime)
    [failed] = [r for r in rows if email_of[r.member_id] == recipient(tried)]
    assert (failed.status, failed.attempts, failed.lease_owner, failed.lease_until) == ("pending", 1, None, None)
    assert "connection refused" in failed.last_error
    assert failed.next_attempt_at > after  # in the future: 2 s of backoff after the first attempt
    assert before + timedelta(seconds=2) <= failed.next_attempt_at <= after + timedelta(seconds=2)
    rest = [r for r in rows if r.id != failed.id]
    assert len(rest) == 2
    for r in rest:  # released untried: due again at once, for any instance
        assert (r.status, r.attempts, r.lease_owner, r.lease_until, r.last_error) == ("pending", 0, None, None, None)
    assert await outbox(runtime) == []

    # the server is back: the two released go at once, the failed one only after its backoff
    mailer.outcome = accept
    assert await runtime.workers["deliveries"].run_once() == 2
    assert sorted(recipient(m) for m in mailer.delivered) == sorted(email_of[r.member_id] for r in rest)
    assert len(await outbox(runtime)) == 2


# -- (c) refused for good before the commit point ----------------------------------------------------------------
async def test_a_permanent_refusal_before_the_commit_point_fails_the_delivery_and_the_batch_goes_on(runtime, mailer):
    await welcomes_owed(runtime, [("Ukendt Modtager", "ukendt@example.org"), ("Mette Eksempel", "mette@example.org")])

    async def refuse_unknown(message, commit):
        if recipient(message) == "ukendt@example.org":
            raise SmtpRejected(550, "5.1.1 ukendt@example.org: mailbox unavailable", permanent=True)
        await commit()

    mailer.outcome = refuse_unknown
    assert await runtime.workers["deliveries"].run_once() == 2

    assert [recipient(m) for m in mailer.delivered] == ["mette@example.org"]
    by_member = {r.member_id: r for r in await deliveries(runtime)}
    statuses = sorted((r.status, r.attempts) for r in by_member.values())
    assert statuses == [("failed", 1), ("sent", 1)]
    failed = next(r for r in by_member.values() if r.status == "failed")
    assert failed.last_error.startswith("550 ") and failed.sent_at is None and failed.lease_owner is None
    sent_out, failed_out = sorted(await outbox(runtime), key=lambda o: o.type != SENT_TYPE)
    assert sent_out.type == SENT_TYPE and parse_event(bytes(sent_out.body))[1].notification_id != failed.id
    assert failed_out.type == FAILED_TYPE
    assert failed_out.subject == f"notifications.notification.failed.v1.{failed.id}"
    event, data = parse_event(bytes(failed_out.body))
    assert isinstance(data, NotificationFailed)
    assert (data.notification_id, data.member_id, data.kind, data.channel) == (
        failed.id,
        failed.member_id,
        contracts.NotificationKind.welcome,
        contracts.Channel.email,
    )
    assert (data.reason, data.permanent) == ("smtp 550 5.1.1", True)
    assert event.causationid == str(failed.cause_event_id) and b"@" not in failed_out.body

    await make_due(runtime)
    assert await runtime.workers["deliveries"].run_once() == 0  # failed is final: never tried again
    assert len(mailer.tried) == 2


async def test_a_message_the_mailer_cannot_put_on_the_wire_fails_alone(runtime, mailer):
    """Anything but SmtpError from the mailer before the commit point (here: what aiosmtplib's flatten raises for a
    header it cannot write) means this message never goes: failed, announced, and the batch goes on."""
    await welcomes_owed(runtime, [("Ukendt Modtager", "ukendt@example.org"), ("Mette Eksempel", "mette@example.org")])

    async def cannot_flatten(message, commit):
        if recipient(message) == "ukendt@example.org":
            raise UnicodeEncodeError("ascii", "ø", 0, 1, "ordinal not in range(128)")
        await commit()

    mailer.outcome = cannot_flatten
    assert await runtime.workers["deliveries"].run_once() == 2

    assert [recipient(m) for m in mailer.delivered] == ["mette@example.org"]
    rows = await deliveries(runtime)
    [failed] = [r for r in rows if r.status == "failed"]
    assert failed.attempts == 1 and failed.last_error.startswith("UnicodeEncodeError: ")
    [out] = [o for o in await outbox(runtime) if o.type == FAILED_TYPE]
    data = parse_event(bytes(out.body))[1]
    assert (data.notification_id, data.reason, data.permanent) == (failed.id, "send: UnicodeEncodeError", True)


# -- (d) refused at the final "." after "sent" committed ---------------------------------------------------------
@pytest.mark.parametrize(("code", "status"), [(451, "pending"), (554, "failed")])
async def test_a_refusal_after_the_commit_point_undoes_sent_but_notification_sent_is_already_out(
    runtime, mailer, code, status
):
    """Documented behaviour: the NotificationSent written at the commit point is not taken back. A 4xx at the dot
    puts the delivery back to pending; a 5xx there is permanent (SmtpRejected.permanent), so it fails for good."""
    await welcomes_owed(runtime, [("Mette Eksempel", "mette@example.org")])

    async def refuse_at_the_dot(message, commit):
        await commit()
        raise SmtpRejected(code, "message refused at end of data", committed=True)

    mailer.outcome = refuse_at_the_dot
    before = datetime.now(UTC)
    assert await runtime.workers["deliveries"].run_once() == 1

    assert mailer.delivered == [] and mailer.commit_errors == []
    [row] = await deliveries(runtime)
    assert row.status == status
    assert row.sent_at is None and row.attempts == 1 and row.lease_owner is None
    assert row.last_error.startswith(f"{code} ")
    assert row.next_attempt_at >= before + timedelta(seconds=2)
    assert runtime.workers["deliveries"].sent == 0
    out, *failed_out = await outbox(runtime)
    assert out.type == SENT_TYPE and parse_event(bytes(out.body))[1].notification_id == row.id
    if status == "failed":  # the NotificationSent is corrected by a NotificationFailed
        [failed_out] = failed_out
        assert failed_out.type == FAILED_TYPE
        assert parse_event(bytes(failed_out.body))[1] == NotificationFailed(
            notification_id=row.id,
            member_id=row.member_id,
            kind="welcome",
            channel="email",
            cause_event_id=row.cause_event_id,
            reason=f"smtp {code}",
            permanent=True,
        )
    else:
        assert failed_out == []

    # pending really means "will be sent again"; failed means never again
    mailer.outcome = accept
    await make_due(runtime)
    await runtime.workers["deliveries"].run_once()
    [row] = await deliveries(runtime)
    if status == "pending":
        assert row.status == "sent" and row.attempts == 2 and len(mailer.delivered) == 1
        assert [parse_event(bytes(o.body))[1].notification_id for o in await outbox(runtime)] == [row.id, row.id]
    else:
        assert row.status == "failed" and mailer.delivered == [] and len(await outbox(runtime)) == 2


async def test_no_reply_to_the_final_dot_keeps_sent(runtime, mailer):
    await welcomes_owed(runtime, [("Mette Eksempel", "mette@example.org")])

    async def silence(message, commit):
        await commit()
        raise SmtpOutcomeUnknown("no reply to the final '.': timed out")

    mailer.outcome = silence
    assert await runtime.workers["deliveries"].run_once() == 1
    [row] = await deliveries(runtime)
    assert row.status == "sent" and row.sent_at is not None  # resending could deliver it twice
    assert len(await outbox(runtime)) == 1


# -- (e) another instance took the delivery over -----------------------------------------------------------------
async def test_the_commit_point_refuses_when_another_instance_holds_the_lease(runtime, mailer):
    await welcomes_owed(runtime, [("Mette Eksempel", "mette@example.org")])

    async def taken_over_while_sending(message, commit):
        async with runtime.engine.begin() as conn:  # our lease ran out and another instance claimed the delivery
            await conn.execute(update(d).values(lease_owner="another-instance"))
        await commit()

    mailer.outcome = taken_over_while_sending
    assert await runtime.workers["deliveries"].run_once() == 1

    [error] = mailer.commit_errors  # the mailer saw the refusal, so it would never write the "."
    assert isinstance(error, LeaseLost)
    assert mailer.delivered == []
    [row] = await deliveries(runtime)
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 0, "another-instance")
    assert row.sent_at is None and row.message_id is None
    assert await outbox(runtime) == []
    assert runtime.workers["deliveries"].sent == 0


@pytest.mark.parametrize("other_status", ["pending", "sent"])
async def test_a_failure_after_losing_the_lease_leaves_the_other_instances_delivery_alone(
    runtime, mailer, other_status
):
    """The lease ran out during a slow SMTP exchange and another instance took over (and maybe sent it already):
    our late transient failure must not put its delivery back to pending, or it would be sent twice."""
    await welcomes_owed(runtime, [("Mette Eksempel", "mette@example.org")])

    async def slow_then_gone(message, commit):
        async with runtime.engine.begin() as conn:
            await conn.execute(
                update(d).values(
                    lease_owner=None if other_status == "sent" else "another-instance", status=other_status, attempts=3
                )
            )
        raise SmtpTransient("smtp 127.0.0.1:1025: timed out")

    mailer.outcome = slow_then_gone
    await runtime.workers["deliveries"].run_once()

    [row] = await deliveries(runtime)
    assert (row.status, row.attempts, row.last_error) == (other_status, 3, None)
    assert row.lease_owner == (None if other_status == "sent" else "another-instance")


# -- (f) the contact has not arrived yet -------------------------------------------------------------------------
async def test_a_welcome_without_its_contact_waits_and_goes_once_the_contact_arrives(runtime, mailer):
    owed_to = await welcomes_owed(runtime, [("Sen Registrering", "sen@example.org")], registered=False)
    _, member = owed_to["sen@example.org"]

    assert await runtime.workers["deliveries"].run_once() == 1
    after_first = datetime.now(UTC)
    assert mailer.tried == []
    [row] = await deliveries(runtime)
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 0, None)  # waiting is not an attempt
    assert "no contact yet" in row.last_error
    assert row.next_attempt_at > after_first
    assert await runtime.workers["deliveries"].run_once() == 0  # not due yet: it looks again shortly

    await handle(runtime, subscribers.on_member_registered, member)  # the contact arrives: due at once
    assert await runtime.workers["deliveries"].run_once() == 1
    [message] = mailer.delivered
    assert recipient(message) == "sen@example.org"
    [row] = await deliveries(runtime)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert len(await outbox(runtime)) == 1


# -- (g) one delivery, two workers -------------------------------------------------------------------------------
async def test_an_event_seen_twice_owes_one_delivery_and_two_workers_send_each_exactly_once(runtime, mailer):
    group = group_created()
    await handle(runtime, subscribers.on_group_created, group)
    people = [member_registered(f"Deltager {i}", f"deltager{i}@example.org") for i in range(5)]
    for person in people:
        await handle(runtime, subscribers.on_member_registered, person)
        joined = member_joined(person, group)
        event = await handle(runtime, subscribers.on_member_joined, joined)
        await handle(runtime, subscribers.on_member_joined, joined, event)  # redelivered: the same CloudEvent
    owed = await deliveries(runtime)
    assert len(owed) == 5
    assert sorted(r.member_id for r in owed) == sorted(p.member_id for p in people)

    async def open_a_connection():
        async with runtime.engine.connect() as conn:
            await conn.execute(select(1))
            await asyncio.sleep(0.05)

    await asyncio.gather(open_a_connection(), open_a_connection())  # two pooled connections: the claims really race
    first = runtime.workers["deliveries"]
    second = DeliveryWorker(runtime, runtime.settings, mailer)
    handled = await asyncio.gather(first.run_once(), second.run_once())
    assert sum(handled) == 5
    assert await first.run_once() == 0 and await second.run_once() == 0

    assert sorted(recipient(m) for m in mailer.tried) == sorted(p.email for p in people)  # nobody got two
    assert len(mailer.delivered) == 5 and mailer.commit_errors == []
    assert first.sent + second.sent == 5
    rows = await deliveries(runtime)
    assert {r.status for r in rows} == {"sent"} and {r.attempts for r in rows} == {1}
    announced = [parse_event(bytes(o.body))[1].notification_id for o in await outbox(runtime)]
    assert sorted(announced) == sorted(r.id for r in rows)
