"""Idempotent JetStream consumers with dead letters.

One durable pull consumer per (consuming service, event type). A fetched batch is handled in ONE database transaction:
the event ids go into the inbox (ON CONFLICT DO NOTHING), only new ids reach their handler, and the messages are acked
after the commit. So a redelivered event changes nothing, and an event is never acked before its effect is durable.
Should a handler fail, the batch is done again with a savepoint per event: the others commit, the failed one is nacked.

Every failure is classified before it counts (`is_database_outage` plus a `SELECT 1` probe):

* The consumer's own database is away (connection refused or lost, "not currently accepting connections", too many
  connections, shutdown, timeouts, ...; or the batch transaction itself failed and the probe fails too). That is no
  event's fault: the batch is nacked with a short delay, nothing is counted, nothing becomes a dead letter, and the
  consumer stops fetching until the probe answers again (0.2 s, doubling to 2 s), then resumes. It logs one line
  when it pauses and one when it resumes. A handler error that looks like an outage (a lost connection, an OSError)
  is checked with the probe first: while the database answers it is the handler's failure (SMTP down, say).
* A handler raised for one event while the database answers: a real failure of that event. It is counted and
  nacked with backoff; the rest of the batch commits. After `max_deliver` real failures the event becomes a dead
  letter whose reason is the last error (exception class and message). `Unprocessable` from a handler, and malformed
  messages (not JSON, not a CloudEvent, data breaking its contract), are dead letters at once.
* The batch transaction failed while the database answers (a value it refuses, say): the batch is done again one
  event per transaction, so the failure lands on, and counts for, the one event that causes it.

The count is the consumer's own tally of real failures per stream sequence, kept in memory; JetStream's
num_delivered (which grows with every nak and redelivery, outages included) is not used. A process restart, or
another instance of the service taking the message, starts the tally afresh: a poison event then gets another
`max_deliver` tries there, but an event is never dead-lettered for failures that were not its own.

Dead letters live in the service's own database; an operator lists them and replays one, or many at once in their
original stream order, stopping at the first that fails again.
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

import sqlalchemy.exc as sa_exc
from nats.js import JetStreamContext
from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import metrics, topology, tracing
from .contracts import EventData
from .db import dialect_insert, is_outage
from .envelope import CloudEvent, MalformedEvent, parse_event
from .messaging import MessagingTables

log = logging.getLogger(__name__)

Handler = Callable[[AsyncConnection, CloudEvent, EventData], Awaitable[None]]
BatchHandler = Callable[[AsyncConnection, list[tuple[CloudEvent, EventData]]], Awaitable[None]]

PROBE_FIRST_DELAY = 0.2  # seconds between probes of an absent database: 0.2, 0.4, ... up to PROBE_MAX_DELAY
PROBE_MAX_DELAY = 2.0
PROBE_TIMEOUT = 5.0
OUTAGE_NAK_DELAY = 1.0  # a batch nacked for an outage comes back after this (the consumer is paused meanwhile)
TALLY_LIMIT = 100_000  # failing events remembered at most (the oldest are forgotten: they get fresh tries)


# -- classifying failures ----------------------------------------------------------------------------------------
# One classifier for the whole service (the HTTP side answers 503 by it): netvaerk_shared.db.is_outage.
is_database_outage = is_outage


def _from_database(exc: BaseException | None) -> bool:
    """Did `exc` come through SQLAlchemy (the database layer), rather than from a handler's other dealings?"""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sa_exc.SQLAlchemyError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def describe(exc: BaseException | None) -> str:
    """`ClassName: message` (the message's first line): what a log line or a dead letter says about an error."""
    if exc is None:
        return "unknown"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _HandlerFailed(Exception):
    """A handler failed on the fast path: the batch is rolled back and done again event by event."""

    def __init__(self, item, error: Exception) -> None:
        super().__init__(str(error))
        self.item, self.error = item, error


class _DatabaseAway(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(describe(error))
        self.error = error


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
    dead_reason: str | None = None  # a dead letter (stored with the batch, or by _bury)
    deliveries: int = 1  # the attempt this is, by the consumer's own count of real failures (+1)
    failure: Exception | None = None  # this delivery failed: nak with backoff
    away: bool = False  # not done because the database is away: nak without counting


@dataclass
class _Tally:
    failures: int
    last_error: str


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
        self._tally: dict[object, _Tally] = {}  # real handler failures per stream sequence (see the module doc)
        self._away: BaseException | None = None  # why the last batch found the database away
        self._committed = False
        self.ready = False  # subscribed and fetching (readiness)
        self.paused = False  # waiting for the database to come back
        self._claim_stmt = None

    # -- the loop ------------------------------------------------------------------------------------------------
    async def run(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        await topology.wait_for_stream(js, self.stream, stop)
        config = topology.consumer_config(self.name, self.contract)
        sub = await js.pull_subscribe(config.filter_subject, durable=self.name, stream=self.stream, config=config)
        log.info("consumer %s started on %s (%s)", self.name, self.stream, config.filter_subject)
        self.ready = True
        failures = 0
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=self.fetch_timeout)
                except TimeoutError:  # nats.errors.TimeoutError is one; a batch deadline raises the plain one
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
                if msgs and not await self.process(msgs):
                    await self._pause(stop)
        finally:
            self.ready = False
            self.paused = False
            try:
                await sub.unsubscribe()
            except Exception:
                pass

    async def _pause(self, stop: asyncio.Event) -> None:
        """No fetching while the database is away: probe it with backoff, resume when it answers."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.paused = True
        log.warning(
            "database unavailable, pausing consumer %s: %s",
            self.name,
            describe(self._away),
            extra={"consumer": self.name},
        )
        delay = PROBE_FIRST_DELAY
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return
                except TimeoutError:
                    pass
                if await self.probe():
                    log.warning(
                        "database back, resuming consumer %s (paused %.1fs)",
                        self.name,
                        loop.time() - started,
                        extra={"consumer": self.name},
                    )
                    return
                delay = min(delay * 2, PROBE_MAX_DELAY)
        finally:
            self.paused = False

    async def probe(self) -> bool:
        """SELECT 1 on a connection of the pool: does the database answer? (A pooled connection the server dropped
        fails once and takes the stale pool with it, so a second try follows such a failure at once.)"""
        for attempt in range(2):
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    async with self.engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:
                stale = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
                if attempt or not stale:
                    log.debug("consumer %s: database probe failed: %s", self.name, describe(exc))
                    return False
        return False

    async def process(self, msgs: list) -> bool:
        """Handle one fetched batch and ack, nak or term every message of it. False when the database is away: then
        the messages not done were nacked without counting, and the caller should pause (`_pause`)."""
        self._away, self._committed = None, False
        items = [self._read(m) for m in msgs]
        try:
            failed = await self._batch(items)
        except _DatabaseAway as away:
            self._away = away.error
            for item in items:
                item.away = True
        except Exception as exc:
            log.warning(
                "consumer %s: batch transaction failed while the database answers (%s); redoing the %d "
                "events one per transaction",
                self.name,
                describe(exc),
                len(items),
            )
            await self._one_by_one(items)
        else:
            self._committed = True
            await self._count(failed)
        if self._committed and self.on_commit is not None:
            self.on_commit()
        await self._settle(items)
        return self._away is None

    async def _batch(self, items: list[_Item]) -> list[tuple[_Item, Exception]]:
        """The batch in one transaction: fast (no savepoints) first, then with a savepoint per event should a
        handler fail. Returns the handler failures of the committed transaction. Raises _DatabaseAway when the
        database is away, any other error when the transaction failed while the database answers."""
        try:
            try:
                return await self._transaction(items, isolate=False)
            except _HandlerFailed as first:
                if await self._database_away(first.error):
                    raise _DatabaseAway(first.error) from first.error
                # the event that failed is not run again: this delivery of it has had its try (unless the error
                # came from the database layer: a connection lost and found again, say; then it runs again)
                known = (
                    {id(first.item): first.error} if first.item is not None and not _from_database(first.error) else {}
                )
                return await self._transaction(items, isolate=True, known=known)
        except _DatabaseAway:
            raise
        except Exception as exc:
            if is_database_outage(exc) or not await self.probe():
                raise _DatabaseAway(exc) from exc
            raise

    async def _database_away(self, error: BaseException) -> bool:
        """For an error a handler raised: was it the database going away? It must look so (or come from the database
        layer at all), and the probe must fail."""
        return (is_database_outage(error) or _from_database(error)) and not await self.probe()

    async def _one_by_one(self, items: list[_Item]) -> None:
        """After a batch transaction failed with the database answering: one transaction per event, so that what
        fails is put down to the one event it failed for."""
        for index, item in enumerate(items):
            try:
                failed = await self._transaction([item], isolate=True)
            except Exception as exc:
                if is_database_outage(exc) or not await self.probe():
                    self._away = exc
                    for rest in items[index:]:
                        rest.away = True
                    return
                if item.dead_reason is not None and not item.dead_reason.startswith("unprocessable: "):
                    log.error(
                        "consumer %s: could not store the dead letter of stream sequence %s: %s",
                        self.name,
                        _stream_seq(item.msg),
                        describe(exc),
                    )
                    item.dead_reason, item.failure = None, exc  # nacked with backoff; nothing else to do with it
                    continue
                item.dead_reason = None
                failed = [(item, exc)]  # the database refuses something of this event: its own failure
            else:
                self._committed = True
            await self._count(failed)
            if self._away is not None:
                for rest in items[index + 1 :]:
                    rest.away = True
                return

    async def _count(self, failed: list[tuple[_Item, Exception]]) -> None:
        """Count the real failures of a committed transaction; those out of tries become dead letters."""
        failed = [(it, e) for it, e in failed if not isinstance(e, Unprocessable)]
        if not failed:
            return
        looks_away = [e for _, e in failed if is_database_outage(e) or _from_database(e)]
        if looks_away and not await self.probe():  # the database went away under the handler: not its failure
            self._away = looks_away[0]
            for it, _ in failed:
                it.away = True
            return
        dying = []
        for item, error in failed:
            tally = self._record_failure(item, error)
            item.failure = error
            if tally.failures >= self.max_deliver:
                item.dead_reason = f"gave up after {tally.failures} deliveries; last error: {tally.last_error}"
                item.deliveries = tally.failures
                dying.append(item)
            else:
                log.warning(
                    "consumer %s: handler failed for event %s (failure %d of %d, retried later): %s",
                    self.name,
                    item.event.id,
                    tally.failures,
                    self.max_deliver,
                    describe(error),
                    extra={"consumer": self.name, "failed_event_id": item.event.id},
                )
        if dying:
            await self._bury(dying)

    async def _bury(self, items: list[_Item]) -> None:
        """Store events that ran out of tries as dead letters (their own transaction: the batch's has committed)."""
        try:
            async with self.engine.begin() as conn:
                await self._store_dead(conn, items)
        except Exception as exc:
            # Their tally stays at max_deliver: the next delivery of each is dead-lettered with the next batch.
            away = is_database_outage(exc) or not await self.probe()
            if away:
                self._away = exc
            else:
                log.error("consumer %s: could not store %d dead letters: %s", self.name, len(items), describe(exc))
            for item in items:
                item.dead_reason, item.away = None, away
            return
        self._committed = True
        for item in items:
            self._dead_lettered(item)

    def _dead_lettered(self, item: _Item) -> None:
        """A dead letter is stored (committed): its tally is done with, and the log says so once."""
        self._tally.pop(_tally_key(item), None)
        log.error(
            "consumer %s: dead letter %s: %s",
            self.name,
            item.event.id,
            item.dead_reason,
            extra={"consumer": self.name, "dead_event_id": item.event.id},
        )

    def _record_failure(self, item: _Item, error: Exception) -> _Tally:
        key = _tally_key(item)
        tally = self._tally.pop(key, None) or _Tally(0, "")
        tally.failures += 1
        tally.last_error = f"{type(error).__name__}: {error}"[:2000]
        self._tally[key] = tally  # (re)inserted last: the oldest entries are the first forgotten
        while len(self._tally) > TALLY_LIMIT:
            self._tally.pop(next(iter(self._tally)))
        return tally

    async def _settle(self, items: list[_Item]) -> None:
        for item in items:
            kind = item.event.type if item.event else "malformed"
            if item.away:
                await _quiet(item.msg.nak(delay=OUTAGE_NAK_DELAY))
                metrics.events_consumed.labels(self.name, kind, "deferred").inc()
            elif item.dead_reason is not None:
                await _quiet(item.msg.term())
                metrics.events_dead_lettered.labels(self.name).inc()
                metrics.events_consumed.labels(self.name, kind, "dead_lettered").inc()
            elif item.failure is not None:
                tally = self._tally.get(_tally_key(item))
                await _quiet(item.msg.nak(delay=self._backoff(tally.failures if tally else 1)))
                metrics.events_consumed.labels(self.name, kind, "retried").inc()
            else:
                await _quiet(item.msg.ack())

    async def _transaction(
        self, items: list[_Item], *, isolate: bool, known: dict[int, Exception] | None = None
    ) -> list[tuple[_Item, Exception]]:
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
                    log.info(
                        "consumer %s: batch of %d failed, going event by event: %s",
                        self.name,
                        len(fresh),
                        describe(exc),
                    )
                    raise _HandlerFailed(None, exc) from exc
                log.info(
                    "consumed %d x %s",
                    len(fresh),
                    self.contract.event_type(),
                    extra={
                        "consumer": self.name,
                        "event_ids": [it.event.id for it in fresh],
                        "trace_ids": sorted({t for it in fresh if (t := tracing.trace_id_of(it.event.traceparent))}),
                    },
                )
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
                    delete(i).where(
                        and_(i.c.consumer == self.name, i.c.event_id.in_([it.event.id for it, _ in failed]))
                    )
                )
                unprocessable = [(it, e) for it, e in failed if isinstance(e, Unprocessable)]
                for it, e in unprocessable:
                    it.dead_reason = f"unprocessable: {e}"
                if unprocessable:
                    await self._store_dead(conn, [it for it, _ in unprocessable])
        for item in processed:
            metrics.events_consumed.labels(self.name, item.event.type, "processed").inc()
            self._tally.pop(_tally_key(item), None)  # it failed before and now went through
        for item in dead:
            self._tally.pop(_tally_key(item), None)
        for item, error in failed:
            if isinstance(error, Unprocessable):
                self._dead_lettered(item)
        return failed

    # -- steps ---------------------------------------------------------------------------------------------------
    def _read(self, msg) -> _Item:
        item = _Item(msg=msg)
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
        tally = self._tally.get(_tally_key(item))
        if tally is None:
            return item
        item.deliveries = tally.failures + 1
        if tally.failures >= self.max_deliver:  # out of tries, but its dead letter could not be stored last time
            item.deliveries = tally.failures
            item.dead_reason = f"gave up after {tally.failures} deliveries; last error: {tally.last_error}"
            log.error(
                "consumer %s: dead letter %s: %s",
                self.name,
                item.event.id,
                item.dead_reason,
                extra={"consumer": self.name, "dead_event_id": item.event.id},
            )
        return item

    async def _claim(self, conn: AsyncConnection, live: list[_Item]) -> set[str]:
        """Insert the batch's event ids into the inbox; returns the ids that were new. One statement, built once
        (so SQLAlchemy's compiled cache holds it), run as executemany with RETURNING."""
        if not live:
            return set()
        if self._claim_stmt is None:
            self._claim_stmt = (
                dialect_insert(conn, self.tables.inbox).on_conflict_do_nothing().returning(self.tables.inbox.c.event_id)
            )
        now = datetime.now(UTC)
        rows = [
            {"consumer": self.name, "event_id": it.event.id, "type": it.event.type, "processed_at": now} for it in live
        ]
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
                log.debug("consumer %s: handler raised for %s: %s", self.name, item.event.id, describe(exc))
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
                    "reason": it.dead_reason.replace("\x00", "\\u0000")[:4000],  # PostgreSQL takes no NUL in text
                    "deliveries": it.deliveries,
                    "created_at": now,
                }
                for it in items
            ],
        )

    def _backoff(self, deliveries: int) -> float:
        """Delay before the next try after `deliveries` real failures."""
        return min(30.0, 0.5 * 2 ** (deliveries - 1)) * (0.75 + random.random() / 2)

    # -- replay --------------------------------------------------------------------------------------------------
    async def replay(self, conn: AsyncConnection, row) -> str:
        """Run a dead letter through the handler again, inside the caller's transaction. Returns the outcome."""
        event, data = parse_event(row.body)  # MalformedEvent propagates: still not replayable
        claimed = (
            await conn.execute(
                dialect_insert(conn, self.tables.inbox)
                .values(consumer=self.name, event_id=event.id, type=event.type, processed_at=datetime.now(UTC))
                .on_conflict_do_nothing()
                .returning(self.tables.inbox.c.event_id)
            )
        ).first()
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


def _tally_key(item: _Item) -> object:
    seq = _stream_seq(item.msg)
    if seq is not None:
        return seq
    return ("event", item.event.id) if item.event is not None else ("msg", id(item.msg))


async def _quiet(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:  # the server will redeliver after ack_wait; nothing is lost
        log.warning("ack/nak failed: %s", exc)


async def list_dead_letters(
    engine: AsyncEngine, tables: MessagingTables, *, include_replayed: bool = False, limit: int = 100
) -> list[dict]:
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


async def _replay_row(
    engine: AsyncEngine, tables: MessagingTables, consumer: EventConsumer, row
) -> tuple[str, str | None]:
    """One dead letter through its consumer again, in its own transaction; the row says when, or why not."""
    d = tables.dead_letters
    try:
        async with engine.begin() as conn:
            outcome = await consumer.replay(conn, row)
            await conn.execute(
                update(d).where(d.c.id == row.id).values(replayed_at=datetime.now(UTC), replay_error=None)
            )
    except Exception as exc:
        error = describe(exc)
        try:
            async with engine.begin() as conn:
                await conn.execute(update(d).where(d.c.id == row.id).values(replay_error=error[:2000]))
        except Exception as again:  # the database is away: the caller hears of the first error
            log.warning("could not record the replay error of dead letter %s: %s", row.id, describe(again))
        return "failed", error
    if consumer.on_commit is not None:
        consumer.on_commit()
    return outcome, None


async def replay_dead_letter(
    engine: AsyncEngine, tables: MessagingTables, consumers: dict[str, EventConsumer], dead_letter_id: str
) -> tuple[str, str | None]:
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
    return await _replay_row(engine, tables, consumer, row)


class UnknownConsumer(LookupError):
    """replay_dead_letters was asked for a consumer this service does not have."""


async def replay_dead_letters(
    engine: AsyncEngine,
    tables: MessagingTables,
    consumers: dict[str, EventConsumer],
    *,
    consumer: str | None = None,
    limit: int = 1000,
) -> dict:
    """Replay the open dead letters (of one consumer, or all) in their original order, each in its own transaction,
    and stop at the first that fails again, so that nothing after it overtakes it.

    Original order: stream by stream, by stream sequence (the order the producer published in); dead letters without
    a sequence last, by when they were stored. Returns {"replayed": [{id, event_id, stream_seq, outcome}],
    "failed": {id, event_id, stream_seq, error} or None, "remaining": open dead letters left (of that consumer)}.
    Raises UnknownConsumer when `consumer` is not one of this service's."""
    if consumer is not None and consumer not in consumers:
        raise UnknownConsumer(consumer)
    d = tables.dead_letters
    where = [d.c.replayed_at.is_(None)] + ([d.c.consumer == consumer] if consumer is not None else [])
    stmt = (
        select(d)
        .where(*where)
        .order_by(d.c.stream, d.c.stream_seq.is_(None), d.c.stream_seq, d.c.created_at, d.c.id)
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    replayed: list[dict] = []
    failed: dict | None = None
    for row in rows:
        target = consumers.get(row.consumer)
        if target is None:
            outcome, error = "failed", f"no consumer named {row.consumer} in this service"
        else:
            outcome, error = await _replay_row(engine, tables, target, row)
        entry = {"id": row.id, "event_id": row.event_id, "stream_seq": row.stream_seq}
        if outcome == "failed":
            failed = {**entry, "error": error or "failed"}
            log.warning(
                "replay of dead letters stopped at %s (event %s, stream sequence %s) after %d: %s",
                row.id,
                row.event_id,
                row.stream_seq,
                len(replayed),
                error,
            )
            break
        replayed.append({**entry, "outcome": outcome})
    async with engine.connect() as conn:
        remaining = (await conn.execute(select(func.count()).select_from(d).where(*where))).scalar_one()
    if replayed or failed:
        log.info("replayed %d dead letters%s", len(replayed), f" of {consumer}" if consumer else "")
    return {"replayed": replayed, "failed": failed, "remaining": remaining}
