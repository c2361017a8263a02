"""The webhook worker: POSTs this service's own events (notification.sent / notification.failed) to the
administration's subscribers, signed, at most once per (subscriber, event) and retried until a subscriber takes it.

Where the deliveries come from: they are written by the outbox tap (adapters/webhook_repository.py, given to the
runtime in bootstrap) in the very transaction that writes the NotificationSent / NotificationFailed outbox row. That
was chosen over consuming our own NOTIFICATIONS stream with a durable because it is simpler and holds more: a delivery
is owed exactly when the event is committed, whichever code path wrote it (the send's commit point, a failure, a
delivery given up on while it waited for its data, and any added later), with no extra hop through NATS, no durable
and no NATS permission of ours to read our own stream, and nothing to lose or reorder in between. The body is that
event's CloudEvent, byte for byte as `envelope.to_bytes` makes it (the same `id` as on NATS). Its cost is a few
statements inside those transactions (one SELECT of the subscribers, one INSERT): on the email commit point that is
before the COMMIT, not between the COMMIT and the final ".".

Each delivery is leased (so two instances never post the same one at once; SKIP LOCKED on PostgreSQL), then POSTed
as a task of its own: at most WEBHOOK_CONCURRENCY_PER_SUBSCRIBER in flight per subscriber and WEBHOOK_MAX_IN_FLIGHT
in all, each bounded by WEBHOOK_TIMEOUT_SECONDS, so a slow or dead subscriber holds up only its own deliveries, never
another subscriber's nor the emails (which have a worker of their own). The answer decides (domain/webhooks.py): 2xx
delivered; a 5xx, 408, 429, a timeout or a connection error retried with exponential backoff and jitter, up to
WEBHOOK_MAX_ATTEMPTS, then parked failed (GET /webhooks/{id}/deliveries?status=failed, and a retry route); any other
answer parked at once. Redirects are not followed. Neither the URL, the secret nor the body is ever logged.

Headers: `Netvaerk-Webhook-Id` (the delivery's id: the same on every attempt, so the receiver dedupes on it),
`Netvaerk-Webhook-Timestamp` (unix seconds) and `Netvaerk-Webhook-Signature: v1=<hex HMAC-SHA256 of
"<timestamp>.<body>">`, two comma-separated entries during a rotation's grace period (the new secret's first).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import uuid
from collections.abc import Callable
from uuid import UUID

import httpx

from netvaerk_shared.envelope import CONTENT_TYPE
from netvaerk_shared.runtime import ServiceRuntime
from netvaerk_shared.uow import Clock

from ..config import Settings
from ..domain import webhook_commands as commands
from ..domain.errors import LeaseLost
from ..domain.webhooks import Webhook, WebhookDelivery, signature_header
from ..service_layer.handlers import handle

log = logging.getLogger(__name__)

USER_AGENT = "Netvaerk-Webhooks/1"


class WebhookWorker:
    """The runtime's Worker named "webhooks"."""

    name = "webhooks"

    def __init__(
        self,
        runtime: ServiceRuntime,
        settings: Settings,
        *,
        clock: Clock | None = None,
        jitter: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.clock = clock or runtime.clock
        self.jitter = jitter
        self.transport = transport
        self.owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self._in_flight: dict[UUID, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        timeout = self.settings.webhook_timeout_seconds
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=self.settings.webhook_max_in_flight, max_keepalive_connections=8),
            headers={"User-Agent": USER_AGENT},
            transport=self.transport,
            trust_env=False,  # no proxy from the environment: the URL rules are about where we connect
        )
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    started = await self.run_once()
                except Exception:
                    log.exception("webhook worker: leasing failed; retrying in 2s")
                    started = 0
                    await asyncio.sleep(2)
                if started:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._client.aclose()
            self._client = None

    async def run_once(self) -> int:
        """Lease what is due, as far as there is room, and start one task per delivery. Returns how many started."""
        settings = self.settings
        room = settings.webhook_max_in_flight - len(self._tasks)
        if room <= 0:
            return 0
        leased: list[tuple[WebhookDelivery, Webhook]] = await handle(
            commands.LeaseWebhookDeliveries(
                self.owner,
                room,
                max(settings.webhook_lease_seconds, int(settings.webhook_timeout_seconds) + 10),
                settings.webhook_concurrency_per_subscriber,
                tuple(self._in_flight.items()),
            ),
            self.runtime.uow(),
        )
        for delivery, webhook in leased:
            self._in_flight[webhook.id] = self._in_flight.get(webhook.id, 0) + 1
            task = asyncio.create_task(self._attempt(delivery, webhook), name=f"webhook-{delivery.id}")
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, webhook_id=webhook.id))
        return len(leased)

    def _finished(self, task: asyncio.Task[None], *, webhook_id: UUID) -> None:
        self._tasks.discard(task)
        left = self._in_flight.get(webhook_id, 1) - 1
        if left > 0:
            self._in_flight[webhook_id] = left
        else:
            self._in_flight.pop(webhook_id, None)
        self._wake.set()  # room again: look for more

    async def _attempt(self, delivery: WebhookDelivery, webhook: Webhook) -> None:
        status, error = await self.post(delivery, webhook)
        settings = self.settings
        try:
            after: WebhookDelivery = await handle(
                commands.RecordWebhookAttempt(
                    delivery.id,
                    self.owner,
                    status,
                    error,
                    settings.webhook_max_attempts,
                    settings.webhook_backoff_base_seconds,
                    settings.webhook_backoff_max_seconds,
                    self.jitter(),
                ),
                self.runtime.uow(),
            )
        except LeaseLost:
            log.info("webhook delivery %s was taken over by another instance", delivery.id)
            return
        except Exception:
            # our database failed us: the lease runs out and the delivery is tried again (the receiver dedupes)
            log.exception("webhook delivery %s: could not record the attempt", delivery.id)
            return
        extra = {"delivery_id": str(delivery.id), "webhook_id": str(webhook.id)}
        if after.status == "delivered":
            self.delivered += 1
            log.info("webhook delivery %s delivered (%s)", delivery.id, status, extra=extra)
        elif after.status == "failed":
            log.error("webhook delivery %s parked failed: %s", delivery.id, error, extra=extra)
        else:
            log.warning("webhook delivery %s will be retried: %s", delivery.id, error, extra=extra)

    async def post(self, delivery: WebhookDelivery, webhook: Webhook) -> tuple[int | None, str | None]:
        """One signed POST: (HTTP status or None, None for a 2xx else what went wrong, free of the URL and body)."""
        assert self._client is not None, "the worker is not running"
        now = self.clock()
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Netvaerk-Webhook-Id": str(delivery.id),
            "Netvaerk-Webhook-Timestamp": str(timestamp),
            "Netvaerk-Webhook-Signature": signature_header(webhook.signing_secrets(now), timestamp, delivery.body),
        }
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                # streamed and not read: only the status matters, and a huge answer costs us nothing
                async with self._client.stream("POST", webhook.url, content=delivery.body, headers=headers) as answer:
                    status = answer.status_code
        except TimeoutError:
            return None, f"timeout after {self.settings.webhook_timeout_seconds} s"
        except httpx.TimeoutException as exc:
            return None, f"timeout: {type(exc).__name__}"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {_short(exc)}"
        except OSError as exc:
            return None, f"{type(exc).__name__}: {_short(exc)}"
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"


def _short(exc: BaseException) -> str:
    # httpx's messages name the host at most; cut them short anyway, one line
    return " ".join(str(exc).split())[:200] or "no message"
