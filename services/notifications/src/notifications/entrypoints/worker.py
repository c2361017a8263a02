"""The delivery worker: sends what is owed, exactly once as far as SMTP allows, and records it through the handlers.

Each due delivery is leased (so several instances never send the same one), prepared (what the message is made of,
or the wait for what has not arrived yet), composed, and handed to the two-phase mailer: the message body goes out
inside DATA, then "sent" and the NotificationSent outbox row commit together (`MarkSent` in a `CommitPoint` unit of
work, whose COMMIT is put on the wire at once, or on SQLite done without the event loop taking a turn), and only
then does the final "." make the server take the message. A crash before that commit leaves nothing delivered and
the lease runs out, so another attempt follows; the worst case left is a lost message in the microseconds between
the COMMIT and the ".", never a duplicate.

Each delivery is its own unit: whatever goes wrong with one (it cannot be built, the server refuses it) is recorded on
that delivery and the batch goes on. Temporary trouble (what it needs has not arrived, the SMTP server is away or
answers 4xx) is retried with backoff; a delivery that can never go (building it raises, a 5xx, an invalid address)
ends `failed` with its reason and is announced by a NotificationFailed, written to the outbox in the same
transaction. The rules are the Delivery's (domain/model.py); here SMTP's answers become its Failures. Only trouble
that is no delivery's own stops a batch (the SMTP server away, our database failing): the rest of it is given back
untried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from netvaerk_shared import tracing
from netvaerk_shared.runtime import ServiceRuntime
from netvaerk_shared.uow import Clock

from ..adapters.mailer import (
    SmtpError,
    SmtpOutcomeUnknown,
    SmtpRejected,
    make_address,
    refuses_address,
    smtp_reason,
)
from ..adapters.messages import Undeliverable, compose
from ..adapters.throttle import TokenBucket
from ..adapters.unsubscribe import UnsubscribeTokens
from ..config import Settings
from ..domain import commands, model
from ..domain.errors import LeaseLost
from ..domain.model import Delivery, Material
from ..service_layer.handlers import handle
from ..service_layer.unit_of_work import CommitPoint

log = logging.getLogger(__name__)

# Trouble with our own database (or the network under it), not with one delivery: it stops the batch.
INFRASTRUCTURE_ERRORS = (SQLAlchemyError, OSError, asyncio.TimeoutError)


class Mailer(Protocol):
    """What the worker needs of adapters/mailer.py's SmtpMailer (tests hand in a fake)."""

    async def send(self, message: EmailMessage, *, before_commit_point: Callable[[], Awaitable[None]]) -> None: ...

    async def close(self) -> None: ...


class DeliveryWorker:
    """The runtime's Worker named "deliveries": started with the messaging, woken after each consumer commit and by
    an operator's retry."""

    name = "deliveries"

    def __init__(
        self,
        runtime: ServiceRuntime,
        settings: Settings,
        mailer: Mailer,
        clock: Clock | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        # A MAIL_FROM that is not one valid address would fail every delivery: refuse it here, at start-up.
        make_address(settings.mail_from, settings.mail_from_name)
        self.runtime = runtime
        self.settings = settings
        self.mailer = mailer
        self.clock = clock or runtime.clock
        self.owner = uuid.uuid4().hex
        self.unsubscribe = UnsubscribeTokens(settings.unsubscribe_key(), settings.public_base_url)
        self._wake = asyncio.Event()
        self.sent = 0
        # SMTP_MAX_PER_SECOND across this worker's sends (0: no limit); `monotonic` is the throttle's clock
        self.throttle = TokenBucket(settings.smtp_max_per_second, clock=monotonic or time.monotonic)

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    handled = await self.run_once()
                except Exception:
                    log.exception("delivery worker: batch failed; retrying in 2s")
                    handled = 0
                    await asyncio.sleep(2)
                if handled:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except TimeoutError:
                    pass
        finally:
            await self.mailer.close()

    async def run_once(self) -> int:
        """One batch: lease what is due and try each. Returns how many were handled (0 when SMTP was away)."""
        settings = self.settings
        limit = settings.delivery_batch_size
        if not self.throttle.unlimited:  # no more than the throttle lets go within half a lease
            limit = max(1, min(limit, int(self.throttle.rate * settings.delivery_lease_seconds / 2)))
        leased: list[Delivery] = await handle(
            commands.LeaseDeliveries(self.owner, limit, settings.delivery_lease_seconds),
            self.runtime.uow(),
        )
        for i, delivery in enumerate(leased):
            try:
                smtp_up = await self._deliver(delivery)
            except BaseException:
                # Our database failed us (or we are cancelled): give the rest back for any instance and let run()
                # back off. This one keeps its lease until it runs out, which spaces out its next attempt.
                with contextlib.suppress(Exception):
                    await self._release(leased[i + 1 :])
                raise
            if not smtp_up:
                # the SMTP server is away: give the rest back instead of knocking on a closed door for each
                await self._release(leased[i + 1 :])
                return 0
        return len(leased)

    async def _release(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            ids = tuple(d.id for d in deliveries)
            await handle(commands.ReleaseDeliveries(self.owner, ids), self.runtime.uow())

    async def _deliver(self, delivery: Delivery) -> bool:
        """Try one delivery and record the outcome. False when the SMTP server could not be reached (the caller stops
        the batch). Raises only for trouble with our own database (INFRASTRUCTURE_ERRORS)."""
        with _on_behalf_of(delivery):
            settings = self.settings
            try:
                prepared: tuple[Delivery, Material] | None = await handle(
                    commands.PrepareDelivery(
                        delivery.id, self.owner, settings.delivery_wait_seconds, settings.delivery_max_attempts
                    ),
                    self.runtime.uow(),
                )
            except LeaseLost:
                log.info("delivery %s taken over by another instance", delivery.id)
                return True
            if prepared is None:
                return True  # waiting for its data, skipped, or failed for a payload that names nothing: recorded
            delivery, material = prepared
            try:
                message = compose(
                    delivery,
                    material,
                    mail_from=settings.mail_from,
                    mail_from_name=settings.mail_from_name,
                    now=self.clock(),
                    unsubscribe_url=self.unsubscribe.url,
                )
            except Undeliverable as exc:
                log.error("delivery %s cannot be built: %s", delivery.id, exc)
                invalid = exc.reason == "invalid recipient address"
                refused = material.contact.email if invalid else None
                await self._failed(delivery, model.cannot_be_sent(str(exc), exc.reason), refused_address=refused)
                return True
            wait = self.throttle.reserve()
            if wait > 0:
                await asyncio.sleep(wait)
            return await self._send(delivery, material, message)

    async def _send(self, delivery: Delivery, material: Material, message: EmailMessage) -> bool:
        commit = CommitPoint(self.runtime.engine, self.runtime.uow_on, self.runtime.wake_relay)
        committing = False
        sent = commands.MarkSent(
            delivery.id,
            self.owner,
            to_email=material.contact.email,
            subject=str(message["Subject"]),
            message_id=str(message["Message-ID"]),
        )

        async def commit_point() -> None:
            nonlocal committing
            committing = True
            await handle(sent, commit)

        try:
            try:
                await self.mailer.send(message, before_commit_point=commit_point)
            finally:
                try:
                    await commit.finished()
                except Exception:
                    # the "." went out but "sent" did not commit: the delivery stays pending and will be sent
                    # again -- the one case left that can double a message (a database failing its COMMIT)
                    log.exception("delivery %s: commit failed after the message was released", delivery.id)
        except LeaseLost:
            log.info("delivery %s taken over by another instance", delivery.id)
            return True
        except SmtpOutcomeUnknown as exc:
            log.error("delivery %s: no reply to the final dot; kept as sent (may be lost): %s", delivery.id, exc)
            return True
        except SmtpError as exc:
            permanent = isinstance(exc, SmtpRejected) and exc.permanent
            # SMTP trouble that is not the message's fault is retried until it passes: never given up on
            failure = (model.cannot_be_sent if permanent else model.temporary)(str(exc), smtp_reason(exc))
            if exc.committed:
                await self._undo_sent(delivery, failure)
            else:
                refused = material.contact.email if refuses_address(exc) else None
                await self._failed(delivery, failure, refused_address=refused)
            return isinstance(exc, SmtpRejected)
        except Exception as exc:
            if committing and isinstance(exc, INFRASTRUCTURE_ERRORS):
                raise  # our own commit failed: the database's trouble, not this delivery's
            detail = _without_secret(delivery, f"{type(exc).__name__}: {exc}")
            if not committing and isinstance(exc, (OSError, asyncio.TimeoutError)):
                # network trouble the mailer let through: as SmtpTransient
                await self._failed(delivery, model.temporary(detail, "smtp unreachable"))
                return False
            # The mailer could not put this message on the wire at all (it cannot be flattened, has no recipient, its
            # "sent" cannot even be written, ...): nothing went out, and nothing ever will.
            log.error("delivery %s cannot be sent: %s", delivery.id, detail)
            await self._failed(delivery, model.cannot_be_sent(detail, f"send: {type(exc).__name__}"))
            return True
        self.sent += 1
        log.info("sent %s to member %s", delivery.kind, delivery.member_id, extra={"delivery_id": str(delivery.id)})
        return True

    async def _failed(self, delivery: Delivery, failure: model.Failure, *, refused_address: str | None = None) -> None:
        """Record a failed attempt; `refused_address`: the server refused that address for good, so it is marked
        undeliverable with the failure's reason, in the same transaction."""
        failure = dataclasses.replace(failure, error=_without_secret(delivery, failure.error))  # it is logged below
        max_attempts = self.settings.delivery_max_attempts
        try:
            after: Delivery = await handle(
                commands.RecordFailure(delivery.id, self.owner, failure, max_attempts, refused_address),
                self.runtime.uow(),
            )
        except LeaseLost:
            # after a slow attempt another instance may have taken over (or sent it): leave its delivery alone
            log.info("delivery %s taken over by another instance; leaving it alone (%s)", delivery.id, failure.error)
            return
        give_up = after.status == model.FAILED
        (log.error if give_up else log.warning)(
            "delivery %s %s: %s", delivery.id, "failed for good" if give_up else "will be retried", failure.error
        )

    async def _undo_sent(self, delivery: Delivery, failure: model.Failure) -> None:
        await handle(commands.UndoSent(delivery.id, failure), self.runtime.uow())
        log.error(
            "delivery %s refused after commit (%s); NotificationSent for it was already published",
            delivery.id,
            failure.error,
        )


def _without_secret(delivery: Delivery, text: str) -> str:
    """An error may quote what it choked on: a sign-in link (the delivery's secret) reaches no log line."""
    return text.replace(delivery.secret, "[link]") if delivery.secret else text


@contextlib.contextmanager
def _on_behalf_of(delivery: Delivery) -> Iterator[None]:
    """What a delivery does happens long after its cause, but on its behalf: the message and the events continue the
    cause's trace, and the events name the cause as their causation (the unit of work reads both from here)."""
    traceparent = tracing.current_traceparent.set(tracing.child_of(delivery.traceparent))
    event_id = tracing.current_event_id.set(str(delivery.cause_event_id))
    try:
        yield
    finally:
        tracing.current_event_id.reset(event_id)
        tracing.current_traceparent.reset(traceparent)
