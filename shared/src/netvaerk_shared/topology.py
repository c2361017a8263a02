"""JetStream topology: one stream per producing service, durable pull consumers one per consuming service and type."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from .contracts import EventData

log = logging.getLogger(__name__)

STREAMS: dict[str, str] = {"members": "MEMBERS", "meetings": "MEETINGS", "notifications": "NOTIFICATIONS"}
DUPLICATE_WINDOW_S = 120.0


def stream_for(service: str) -> str:
    return STREAMS[service]


def stream_config(service: str, *, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=STREAMS[service],
        subjects=[f"{service}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
        description=f"Integration events of the {service} service (CloudEvents 1.0, structured JSON)",
    )


def durable_name(consumer_service: str, contract: type[EventData]) -> str:
    """`meetings-member-joined-v1`: one durable per consuming service and subject filter (works on NATS 2.9 too)."""
    return f"{consumer_service}-{contract.aggregate}-{contract.event}-v{contract.version}".replace("_", "-")


ACK_WAIT_SECONDS = 10


def consumer_config(durable: str, contract: type[EventData], *, max_ack_pending: int = 5000) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=durable,
        name=durable,
        filter_subject=f"{contract.subject_prefix()}.>",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        # How long a message fetched by a process that then died waits before JetStream hands it out again: a batch
        # commits in milliseconds, so 10 s is ample, and a kill -9 delays the messages it held by at most that.
        ack_wait=ACK_WAIT_SECONDS,
        max_ack_pending=max_ack_pending,
        # The consumer dead-letters an event itself after settings.consumer_max_deliver; this is only a backstop.
        max_deliver=-1,
    )


async def connect(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    name: str = "netvaerk",
    on_reconnect: Callable[[], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
) -> Client:
    """Connect and keep reconnecting forever; callers decide what to do while the server is away.

    The log gets one line per change of the connection's state (disconnected, each new kind of error while away,
    reconnected, closed), never nats-py's traceback per reconnect attempt. `on_reconnect` is called when the
    connection is back (the relay cuts its backoff short with it); `on_error` with every asynchronous error the server
    or nats-py reports (the relay learns of a permissions violation only this way: no PubAck ever comes for it)."""
    seen: set[str] = set()
    holder: dict = {}

    async def error_cb(exc: Exception) -> None:
        if on_error is not None:
            on_error(exc)
        kind = type(exc).__name__
        if kind in seen:
            log.debug("NATS: %s again: %s", kind, exc)
            return
        seen.add(kind)
        log.warning("NATS error: %s: %s", kind, str(exc) or "(no message)")

    async def disconnected_cb() -> None:
        nc = holder.get("nc")
        if nc is not None and (nc.is_closed or nc.is_draining):
            return  # our own close(): closed_cb says so
        log.warning("NATS disconnected; reconnecting every 0.5 s while the outbox holds new events")

    async def reconnected_cb() -> None:
        seen.clear()
        nc = holder.get("nc")
        server = getattr(getattr(nc, "connected_url", None), "netloc", "?")
        log.warning("NATS reconnected to %s", server.rsplit("@", 1)[-1])
        if on_reconnect is not None:
            on_reconnect()

    async def closed_cb() -> None:
        log.info("NATS connection closed")

    nc = await nats.connect(
        url,
        user=user,
        password=password,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        allow_reconnect=True,
        error_cb=error_cb,
        disconnected_cb=disconnected_cb,
        reconnected_cb=reconnected_cb,
        closed_cb=closed_cb,
    )
    holder["nc"] = nc
    return nc


async def ensure_stream(js: JetStreamContext, service: str, *, replicas: int = 1) -> None:
    config = stream_config(service, replicas=replicas)
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


async def wait_for_stream(js: JetStreamContext, stream: str, stop: asyncio.Event | None = None) -> None:
    """Consumers start before the producer may have declared its stream: wait for it rather than create it."""
    delay = 0.2
    while True:
        try:
            await js.stream_info(stream)
            return
        except NotFoundError:
            pass
        except Exception as exc:  # NATS away: same answer, wait
            log.debug("stream_info failed: %s", exc)
        if stop is not None and stop.is_set():
            raise asyncio.CancelledError
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
