"""Idempotent JetStream consumers with dead letters.

One durable pull consumer per (consuming service, event type). A fetched batch is handled in ONE database transaction:
the event ids go into the inbox (ON CONFLICT DO NOTHING), only new ids reach their handler (each in a savepoint), and
the messages are acked after the commit. So a redelivered event changes nothing, and an event is never acked before its
effect is durable. A handler failure is nacked with backoff; after `max_deliver` deliveries, or at once when the message
is malformed (not JSON, not a CloudEvent, data breaking its contract), the message is stored as a dead letter in the
service's own database, where an operator can list and replay it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import metrics, topology, tracing
from .contracts import EventData
from .db import dialect_insert
from .envelope import CloudEvent, MalformedEvent, parse_event
from .messaging import MessagingTables

log = logging.getLogger(__name__)

Handler = Callable[[AsyncConnection, CloudEvent, EventData], Awaitable[None]]
BatchHandler = Callable[[AsyncConnection, list[tuple[CloudEvent, EventData]]], Awaitable[None]]


class _HandlerFailed(Exception):
    """A handler failed on the fast path: the batch is rolled back and done again event by event."""

    def __init__(self, item, error: Exception) -> None:
        super().__init__(str(error))
        self.item, self.error = item, error


class Unprocessable(Exception):
    """Raised by a handler for an event that can never succeed: it becomes a dead letter at once, without retries."""


@dataclass(frozen=True)
class Subscription:
    """`handler` does the effect of one event. `batch_handler`, optional, does the same for many events in a few
    statements; it is used on the fast path, and `handler` takes over event by event when a batch fails."""

    contract: type[EventData]
    handler: Handler
    batch_handler: BatchHandler | None = None


@dataclass
class _Item:
    msg: object  # nats.aio.msg.Msg
    event: CloudEvent | None = None
    data: EventData | None = None
    dead_reason: str | None = None
    deliveries: int = 1


class EventConsumer:
    """Consumes one event type for one service."""

    def __init__(
        self,
        *,
        service: str,
        subscription: Subscription,
        engine: AsyncEngine,
        tables: MessagingTables,
        max_deliver: int = 5,
        batch_size: int = 200,
        fetch_timeout: float = 1.0,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self.contract = subscription.contract
        self.handler = subscription.handler
        self.batch_handler = subscription.batch_handler
        self.engine = engine
        self.tables = tables
        self.max_deliver = max_deliver
        self.batch_size = batch_size
        self.fetch_timeout = fetch_timeout
        self.on_commit = on_commit
        self.name = topology.durable_name(service, self.contract)
        self.stream = topology.stream_for(self.contract.service)
        self._last_error: dict[int, str] = {}
        self.ready = False  # subscribed and fetching (readiness)
        self._claim_stmt = None

    # -- the loop ------------------------------------------------------------------------------------------------
    async def run(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        await topology.wait_for_stream(js, self.stream, stop)
        config = topology.consumer_config(self.name, self.contract)
        sub = await js.pull_subscribe(
            config.filter_subject, durable=self.name, stream=self.stream, config=config
        )
        log.info("consumer %s started on %s (%s)", self.name, self.stream, config.filter_subject)
        self.ready = True
        failures = 0
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=self.fetch_timeout)
                except asyncio.TimeoutError:  # nats.errors.TimeoutError is one; a batch deadline raises the plain one
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    delay = min(10.0, 0.1 * 2 ** min(failures, 7))
                    log.warning("consumer %s: fetch failed, retrying in %.1fs: %s", self.name, delay, exc)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                if msgs:
                    await self.process(msgs)
        finally:
            self.ready = False
            try:
                await sub.unsubscribe()
            except Exception:
                pass

    async def process(self, msgs: list) -> None:
        items = [self._classify(m) for m in msgs]
        try:
            # Fast path: the whole batch in one transaction, no savepoints. Should a handler fail, the batch is done
            # again with a savepoint per event, so that one bad event does not hold back the others.
            failed = await self._transaction(items, isolate=False)
        except _HandlerFailed as first:
            try:  # (the event that failed is not run again: this delivery of it has had its try)
                known = {id(first.item): first.error} if first.item is not None else {}
                failed = await self._transaction(items, isolate=True, known=known)
            except Exception as exc:
                return await self._redeliver_all(items, exc)
        except Exception as exc:
            return await self._redeliver_all(items, exc)
        if self.on_commit is not None:
            self.on_commit()
        failed_msgs = {id(it.msg) for it, exc in failed if not isinstance(exc, Unprocessable)}
        for item in items:
            if id(item.msg) in failed_msgs:
                await _quiet(item.msg.nak(delay=self._backoff(item.deliveries)))
                metrics.events_consumed.labels(self.name, item.event.type, "retried").inc()
            elif item.dead_reason is not None:
                await _quiet(item.msg.term())
                metrics.events_dead_lettered.labels(self.name).inc()
                metrics.events_consumed.labels(self.name, item.event.type if item.event else "malformed",
                                               "dead_lettered").inc()
            else:
                await _quiet(item.msg.ack())

    async def _redeliver_all(self, items: list[_Item], exc: Exception) -> None:
        log.warning("consumer %s: batch transaction failed, redelivering %d: %s", self.name, len(items), exc)
        for item in items:
            await _quiet(item.msg.nak(delay=self._backoff(item.deliveries)))

    async def _transaction(self, items: list[_Item], *, isolate: bool,
                           known: dict[int, Exception] | None = None) -> list[tuple[_Item, Exception]]:
        for item in items:  # a first attempt may have marked an event unprocessable: start from what was read
            if item.dead_reason is not None and item.dead_reason.startswith("unprocessable: "):
                item.dead_reason = None
        live = [i for i in items if i.dead_reason is None]
        dead = [i for i in items if i.dead_reason is not None]
        failed: list[tuple[_Item, Exception]] = []
        processed: list[_Item] = []
        async with self.engine.begin() as conn:
            if dead:
                await self._store_dead(conn, dead)
            new_ids = await self._claim(conn, live)
            fresh = []
            for item in live:
                if item.event.id not in new_ids:
                    metrics.events_consumed.labels(self.name, item.event.type, "duplicate").inc()
                    continue
                new_ids.discard(item.event.id)  # the same id twice in one batch: handle it once
                fresh.append(item)
            if self.batch_handler is not None and not isolate and fresh:
                try:
                    await self.batch_handler(conn, [(it.event, it.data) for it in fresh])
                except Exception as exc:
                    log.warning("consumer %s: batch of %d failed, going event by event: %s", self.name, len(fresh),
                                exc)
                    raise _HandlerFailed(None, exc) from exc
                log.info("consumed %d x %s", len(fresh), self.contract.event_type(), extra={
                    "consumer": self.name, "event_ids": [it.event.id for it in fresh],
                    "trace_ids": sorted({t for it in fresh if (t := tracing.trace_id_of(it.event.traceparent))})})
                processed, fresh = fresh, []
            for item in fresh:
                error = (known or {}).get(id(item)) or await self._handle(conn, item, isolate=isolate)
                if error is None:
                    processed.append(item)
                elif not isolate:
                    raise _HandlerFailed(item, error)
                else:
                    failed.append((item, error))
            if failed:
                i = self.tables.inbox
                await conn.execute(
                    delete(i).where(and_(i.c.consumer == self.name,
                                         i.c.event_id.in_([it.event.id for it, _ in failed])))
                )
                unprocessable = [(it, e) for it, e in failed if isinstance(e, Unprocessable)]
                for it, e in unprocessable:
                    it.dead_reason = f"unprocessable: {e}"
                if unprocessable:
                    await self._store_dead(conn, [it for it, _ in unprocessable])
        for item in processed:
            metrics.events_consumed.labels(self.name, item.event.type, "processed").inc()
            self._last_error.pop(_stream_seq(item.msg), None)  # it failed before and now went through
        return failed

    # -- steps ---------------------------------------------------------------------------------------------------
    def _classify(self, msg) -> _Item:
        meta = getattr(msg, "metadata", None)
        deliveries = (getattr(meta, "num_delivered", None) or 1) if meta is not None else 1
        item = _Item(msg=msg, deliveries=deliveries)
        try:
            item.event, item.data = parse_event(msg.data)
        except MalformedEvent as exc:
            item.event = exc.event
            item.dead_reason = f"malformed: {exc}"
            log.error("consumer %s: dead letter (malformed) on %s: %s", self.name, msg.subject, exc)
            return item
        if item.event.type != self.contract.event_type():
            item.dead_reason = f"malformed: type {item.event.type} on the subject of {self.contract.event_type()}"
            return item
        if deliveries > self.max_deliver:
            seq = _stream_seq(msg)
            last = self._last_error.pop(seq, "unknown (process restarted)")
            item.dead_reason = f"gave up after {deliveries - 1} deliveries; last error: {last}"
            log.error("consumer %s: dead letter %s: %s", self.name, item.event.id, item.dead_reason,
                      extra={"dead_event_id": item.event.id})
        return item

    async def _claim(self, conn: AsyncConnection, live: list[_Item]) -> set[str]:
        """Insert the batch's event ids into the inbox; returns the ids that were new. One statement, built once
        (so SQLAlchemy's compiled cache holds it), run as executemany with RETURNING."""
        if not live:
            return set()
        if self._claim_stmt is None:
            self._claim_stmt = (dialect_insert(conn, self.tables.inbox).on_conflict_do_nothing()
                                .returning(self.tables.inbox.c.event_id))
        now = datetime.now(UTC)
        rows = [{"consumer": self.name, "event_id": it.event.id, "type": it.event.type, "processed_at": now}
                for it in live]
        return {r[0] for r in await conn.execute(self._claim_stmt, rows)}

    async def _handle(self, conn: AsyncConnection, item: _Item, *, isolate: bool) -> Exception | None:
        with _event_context(item.event):
            savepoint = await conn.begin_nested() if isolate else None
            try:
                await self.handler(conn, item.event, item.data)
                if savepoint is not None:
                    await savepoint.commit()
            except Exception as exc:
                if savepoint is not None:
                    await savepoint.rollback()
                self._last_error[_stream_seq(item.msg)] = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("consumer %s: handler failed (delivery %d of %d): %s", self.name, item.deliveries,
                            self.max_deliver, exc)
                return exc
            log.info("consumed %s", item.event.type, extra={"consumer": self.name})
            return None

    async def _store_dead(self, conn: AsyncConnection, items: list[_Item]) -> None:
        now = datetime.now(UTC)
        await conn.execute(
            insert(self.tables.dead_letters),
            [
                {
                    "id": str(uuid.uuid4()),
                    "consumer": self.name,
                    "stream": self.stream,
                    "stream_seq": _stream_seq(it.msg),
                    "subject": it.msg.subject,
                    "event_id": it.event.id if it.event else None,
                    "type": it.event.type if it.event else None,
                    "body": it.msg.data,
                    "headers": dict(it.msg.headers or {}),
                    "reason": it.dead_reason[:4000],
                    "deliveries": it.deliveries,
                    "created_at": now,
                }
                for it in items
            ],
        )

    def _backoff(self, deliveries: int) -> float:
        return min(30.0, 0.5 * 2 ** (deliveries - 1)) * (0.75 + random.random() / 2)

    # -- replay --------------------------------------------------------------------------------------------------
    async def replay(self, conn: AsyncConnection, row) -> str:
        """Run a dead letter through the handler again, inside the caller's transaction. Returns the outcome."""
        event, data = parse_event(row.body)  # MalformedEvent propagates: still not replayable
        claimed = (await conn.execute(
            dialect_insert(conn, self.tables.inbox).values(
                consumer=self.name, event_id=event.id, type=event.type, processed_at=datetime.now(UTC)
            ).on_conflict_do_nothing().returning(self.tables.inbox.c.event_id)
        )).first()
        if claimed is None:
            return "duplicate"
        with _event_context(event):
            await self.handler(conn, event, data)
        return "processed"


@contextmanager
def _event_context(event: CloudEvent):
    """Logs and the events a handler causes carry this event's id and continue its trace."""
    token_tp = tracing.current_traceparent.set(tracing.child_of(event.traceparent))
    token_id = tracing.current_event_id.set(event.id)
    try:
        yield
    finally:
        tracing.current_traceparent.reset(token_tp)
        tracing.current_event_id.reset(token_id)


def _stream_seq(msg) -> int | None:
    try:
        return msg.metadata.sequence.stream
    except Exception:
        return None


async def _quiet(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:  # the server will redeliver after ack_wait; nothing is lost
        log.warning("ack/nak failed: %s", exc)


async def list_dead_letters(engine: AsyncEngine, tables: MessagingTables, *, include_replayed: bool = False,
                            limit: int = 100) -> list[dict]:
    d = tables.dead_letters
    stmt = select(d).order_by(d.c.created_at.desc()).limit(limit)
    if not include_replayed:
        stmt = stmt.where(d.c.replayed_at.is_(None))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    out = []
    for r in rows:
        item = {k: v for k, v in r.items() if k != "body"}
        try:
            item["body"] = json.loads(r["body"])
        except Exception:
            item["body"] = r["body"].decode("utf-8", "replace")
        out.append(item)
    return out


async def replay_dead_letter(engine: AsyncEngine, tables: MessagingTables, consumers: dict[str, EventConsumer],
                             dead_letter_id: str) -> tuple[str, str | None]:
    """Returns (outcome, error). outcome: processed | duplicate | failed | not_found | already_replayed."""
    d = tables.dead_letters
    async with engine.connect() as conn:
        row = (await conn.execute(select(d).where(d.c.id == dead_letter_id))).first()
    if row is None:
        return "not_found", None
    if row.replayed_at is not None:
        return "already_replayed", None
    consumer = consumers.get(row.consumer)
    if consumer is None:
        return "failed", f"no consumer named {row.consumer} in this service"
    try:
        async with engine.begin() as conn:
            outcome = await consumer.replay(conn, row)
            await conn.execute(update(d).where(d.c.id == row.id).values(replayed_at=datetime.now(UTC),
                                                                        replay_error=None))
    except Exception as exc:
        async with engine.begin() as conn:
            await conn.execute(update(d).where(d.c.id == row.id).values(replay_error=str(exc)[:2000]))
        return "failed", str(exc)
    if consumer.on_commit is not None:
        consumer.on_commit()
    return outcome, None
