"""Idempotent JetStream consumers with dead letters.

One durable pull consumer per (consuming service, event type). A fetched batch is handled in ONE database transaction:
the event ids go into the inbox (ON CONFLICT DO NOTHING), only new ids reach their handler, and the messages are acked
after the commit. So a redelivered event changes nothing, and an event is never acked before its effect is durable.
Should a handler fail, the batch is done again with a savepoint per event: the others commit, the failed one is nacked.
A handler gets a unit of work joined to that transaction: the events its aggregates record go to the outbox with it.

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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

import sqlalchemy.exc as sa_exc
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import Row, and_, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import metrics, topology, tracing
from .contracts import EventData
from .db import dialect_insert, is_outage
from .envelope import CloudEvent, MalformedEvent, parse_event
from .messaging import MessagingTables
from .uow import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork[Any], CloudEvent, EventData], Awaitable[None]]
BatchHandler = Callable[[UnitOfWork[Any], list[tuple[CloudEvent, EventData]]], Awaitable[None]]
UnitOfWorkOn = Callable[[AsyncConnection], UnitOfWork[Any]]  # a unit of work joined to the consumer's transaction
ReplayOutcome = Literal["processed", "duplicate", "failed", "not_found", "already_replayed"]
T = TypeVar("T")

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


def _looks_away(exc: BaseException) -> bool:
    """A handler's error that may be the database going away (the probe decides)."""
    return is_database_outage(exc) or _from_database(exc)


def describe(exc: BaseException | None) -> str:
    """`ClassName: message` (the message's first line): what a log line or a dead letter says about an error."""
    if exc is None:
        return "unknown"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class Unprocessable(Exception):
    """Raised by a handler for an event that can never succeed: it becomes a dead letter at once, without retries."""


E = TypeVar("E", bound=EventData)


@dataclass(frozen=True)
class Subscription(Generic[E]):
    """`handler` does the effect of one event. `batch_handler`, optional, does the same for many events in a few
    statements; it is used on the fast path, and `handler` takes over event by event when a batch fails. Each call
    gets a unit of work of its own, joined to the consumer's transaction: `async with uow: ...; await uow.commit()`.
    Generic in the contract, so a subscriber typed for `MemberJoined` fits a `Subscription(MemberJoined, ...)`."""

    contract: type[E]
    handler: Callable[[UnitOfWork[Any], CloudEvent, E], Awaitable[None]]
    batch_handler: Callable[[UnitOfWork[Any], list[tuple[CloudEvent, E]]], Awaitable[None]] | None = None


# -- what became of a message ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Processed:
    """Its effect committed with its inbox row: ack."""

    label: ClassVar[str] = "processed"


@dataclass(frozen=True)
class Duplicate:
    """The inbox had it already (or the batch had it twice): nothing done, ack."""

    label: ClassVar[str] = "duplicate"


@dataclass(frozen=True)
class Failed:
    """This delivery failed: nak with backoff. A handler's failure counts towards max_deliver."""

    error: Exception
    label: ClassVar[str] = "retried"


@dataclass(frozen=True)
class DeadLettered:
    """A dead letter (malformed, unprocessable, or out of tries): stored, then terminated. `reason` is what the
    operator reads."""

    reason: str
    deliveries: int = 1
    label: ClassVar[str] = "dead_lettered"


@dataclass(frozen=True)
class Away:
    """Not done because the database is away: nak with a short delay, nothing counted."""

    label: ClassVar[str] = "deferred"


Outcome = Processed | Duplicate | Failed | DeadLettered | Away


@dataclass(frozen=True)
class _Live:
    """A message carrying an event of the consumer's contract: its handler runs, unless the inbox has it."""

    msg: Msg
    event: CloudEvent
    data: EventData
    deliveries: int = 1  # the attempt this is, by the consumer's own count of real failures (+1)


@dataclass(frozen=True)
class _Parked:
    """A message that is a dead letter on arrival (malformed, or out of tries with its dead letter not stored last
    time): the dead letter is stored with the batch; no handler sees it."""

    msg: Msg
    event: CloudEvent | None  # None when the message was not even a CloudEvent
    dead: DeadLettered


_Item = _Live | _Parked
_Outcomes = list[tuple[_Item, Outcome]]


@dataclass(frozen=True)
class _Stumble:
    """The fast path failed: its transaction is rolled back and the batch is done again with a savepoint per event."""

    error: Exception
    item: _Live | None  # the event it failed on when known (the default loop knows it, a batch handler does not)


@dataclass(frozen=True)
class _Broken:
    """A transaction failed as a whole (claim, dead letters, commit, ...); `away`: the database is away."""

    error: Exception
    away: bool


@dataclass
class BatchResult:
    """What became of each message of a fetched batch; `committed`: some transaction of it committed (wake the relay
    and the workers); `away`: why the database was found away (the consumer pauses)."""

    outcomes: _Outcomes = field(default_factory=list)
    committed: bool = False
    away: BaseException | None = None

    def add(self, other: BatchResult) -> BatchResult:
        self.outcomes += other.outcomes
        self.committed = self.committed or other.committed
        self.away = other.away if other.away is not None else self.away
        return self

    def defer(self, items: Sequence[_Item], error: BaseException) -> BatchResult:
        """These wait for the database: nak soon, nothing counted."""
        self.outcomes += [(item, Away()) for item in items]
        self.away = error
        return self


@dataclass
class _Tally:
    failures: int
    last_error: str

    def dead_letter(self) -> DeadLettered:
        return DeadLettered(f"gave up after {self.failures} deliveries; last error: {self.last_error}", self.failures)


class EventConsumer:
    """Consumes one event type for one service."""

    def __init__(
        self,
        *,
        service: str,
        subscription: Subscription[Any],
        engine: AsyncEngine,
        tables: MessagingTables,
        unit_of_work: UnitOfWorkOn,
        max_deliver: int = 5,
        batch_size: int = 200,
        fetch_timeout: float = 1.0,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self.contract = subscription.contract
        self.handler = subscription.handler
        self.batch_handler = subscription.batch_handler
        self.unit_of_work = unit_of_work
        self.engine = engine
        self.tables = tables
        self.max_deliver = max_deliver
        self.batch_size = batch_size
        self.fetch_timeout = fetch_timeout
        self.on_commit = on_commit
        self.name = topology.durable_name(service, self.contract)
        self.stream = topology.stream_for(self.contract.service)
        self._tally: dict[int | str, _Tally] = {}  # real handler failures per stream sequence (see the module doc)
        self._away: BaseException | None = None  # why the last batch found the database away
        self.ready = False  # subscribed and fetching (readiness)
        self.paused = False  # waiting for the database to come back
        self._claim_stmt: Any = None

    # -- the loop ------------------------------------------------------------------------------------------------
    async def run(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        await topology.wait_for_stream(js, self.stream, stop)
        config = topology.consumer_config(self.name, self.contract)
        subject = config.filter_subject
        assert subject is not None  # consumer_config always filters: one durable per event type
        sub = await js.pull_subscribe(subject, durable=self.name, stream=self.stream, config=config)
        log.info("consumer %s started on %s (%s)", self.name, self.stream, subject)
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

    # -- one fetched batch ---------------------------------------------------------------------------------------
    async def process(self, msgs: Sequence[Msg]) -> bool:
        """Handle one fetched batch and ack, nak or term every message of it. False when the database is away: then
        the messages not done were nacked without counting, and the caller should pause (`_pause`)."""
        result = await self._outcomes([self._read(m) for m in msgs])
        self._away = result.away
        if result.committed and self.on_commit is not None:
            self.on_commit()
        await self._settle(result.outcomes)
        return result.away is None

    async def _outcomes(self, items: list[_Item]) -> BatchResult:
        done = await self._batch(items)
        if not isinstance(done, _Broken):
            return await self._count(BatchResult(done, committed=True))
        if done.away:
            return BatchResult().defer(items, done.error)
        log.warning(
            "consumer %s: batch transaction failed while the database answers (%s); redoing the %d "
            "events one per transaction",
            self.name,
            describe(done.error),
            len(items),
        )
        return await self._one_per_transaction(items)

    async def _batch(self, items: list[_Item]) -> _Outcomes | _Broken:
        """The batch in one transaction: fast (no savepoints) first, then with a savepoint per event should the fast
        path stumble."""
        first = await self._guard(self._fast(items))
        if not isinstance(first, _Stumble):
            return first
        if _looks_away(first.error) and not await self.probe():
            return _Broken(first.error, away=True)
        # the event that failed is not run again: this delivery of it has had its try (unless the error came from
        # the database layer: a connection lost and found again, say; then it runs again)
        spared = None if _from_database(first.error) else first
        return await self._guard(self._isolated(items, spared))

    async def _one_per_transaction(self, items: list[_Item]) -> BatchResult:
        """After a batch transaction failed with the database answering: one transaction per event, so that what
        fails is put down to the one event it failed for."""
        result = BatchResult()
        for index, item in enumerate(items):
            done = await self._guard(self._isolated([item]))
            if isinstance(done, _Broken) and done.away:
                return result.defer(items[index:], done.error)
            result.add(await self._count(self._alone(item, done)))
            if result.away is not None:
                return result.defer(items[index + 1 :], result.away)
        return result

    def _alone(self, item: _Item, done: _Outcomes | _Broken) -> BatchResult:
        if not isinstance(done, _Broken):
            return BatchResult(done, committed=True)
        if isinstance(item, _Parked):  # not counted (no handler failed); nacked with backoff, tried again later
            log.error(
                "consumer %s: could not store the dead letter of stream sequence %s: %s",
                self.name,
                _stream_seq(item.msg),
                describe(done.error),
            )
        return BatchResult([(item, Failed(done.error))])  # the database refuses something of this event

    async def _guard(self, transaction: Awaitable[T]) -> T | _Broken:
        """A transaction that raised: is the database away (it says so, or the probe fails), or did it refuse?"""
        try:
            return await transaction
        except Exception as exc:
            return _Broken(exc, away=is_database_outage(exc) or not await self.probe())

    # -- the two transactions of a batch ---------------------------------------------------------------------------
    async def _fast(self, items: list[_Item]) -> _Outcomes | _Stumble:
        """The fresh events all at once, without savepoints; rolled back should a handler fail."""
        async with self.engine.begin() as conn:
            known, fresh = await self._open(conn, items)
            stumble = await self._run_batch(conn, fresh) if fresh else None
            if stumble is not None:
                await conn.rollback()
                return stumble
        return self._committed([*known, *((item, Processed()) for item in fresh)])

    async def _isolated(self, items: list[_Item], spared: _Stumble | None = None) -> _Outcomes:
        """The fresh events one after the other, each in a savepoint: what fails is rolled back alone."""
        async with self.engine.begin() as conn:
            known, fresh = await self._open(conn, items)
            ran = [(item, await self._in_savepoint(conn, item, spared)) for item in fresh]
            await self._close(conn, ran)
        return self._committed([*known, *ran])

    async def _open(self, conn: AsyncConnection, items: list[_Item]) -> tuple[_Outcomes, list[_Live]]:
        """Store the dead letters on arrival and claim the events in the inbox: the outcomes known before any handler
        runs (dead letters, duplicates), and the fresh events."""
        parked = [(item, item.dead) for item in items if isinstance(item, _Parked)]
        live = [item for item in items if isinstance(item, _Live)]
        await self._store_dead(conn, parked)
        new_ids = await self._claim(conn, [item.event for item in live])
        known: _Outcomes = [*parked]
        fresh: list[_Live] = []
        for item in live:
            if item.event.id in new_ids:
                new_ids.discard(item.event.id)  # the same id twice in one batch: handle it once
                fresh.append(item)
            else:
                known.append((item, Duplicate()))
        return known, fresh

    async def _close(self, conn: AsyncConnection, ran: list[tuple[_Live, Outcome]]) -> None:
        """Failed and unprocessable events leave the inbox again (a later delivery, or a replay, claims them); the
        unprocessable ones are dead letters in the same transaction."""
        out = [item.event.id for item, outcome in ran if isinstance(outcome, Failed | DeadLettered)]
        if not out:
            return
        i = self.tables.inbox
        await conn.execute(delete(i).where(and_(i.c.consumer == self.name, i.c.event_id.in_(out))))
        await self._store_dead(conn, [(item, dead) for item, dead in ran if isinstance(dead, DeadLettered)])

    def _committed(self, outcomes: _Outcomes) -> _Outcomes:
        """The transaction committed: the tallies of the events done with go, and an unprocessable one says so."""
        for item, outcome in outcomes:
            if isinstance(outcome, Processed | DeadLettered):
                self._forget(item)  # it failed before and now went through, or it is a dead letter now
            if isinstance(outcome, DeadLettered) and isinstance(item, _Live):
                self._log_dead(item.event, outcome)
        return outcomes

    # -- running handlers ------------------------------------------------------------------------------------------
    async def _run_batch(self, conn: AsyncConnection, fresh: list[_Live]) -> _Stumble | None:
        """The subscription's batch handler; by default, the handler for one event after the other."""
        if self.batch_handler is None:
            return await self._one_after_the_other(conn, fresh)
        return await self._all_at_once(self.batch_handler, conn, fresh)

    async def _one_after_the_other(self, conn: AsyncConnection, fresh: list[_Live]) -> _Stumble | None:
        """The default batch handler: it knows the event it failed on."""
        for item in fresh:
            error = await self._call(conn, item)
            if error is not None:
                return _Stumble(error, item)
        return None

    async def _all_at_once(self, handler: BatchHandler, conn: AsyncConnection, fresh: list[_Live]) -> _Stumble | None:
        """A batch handler, with one unit of work for the batch."""
        try:
            await handler(self.unit_of_work(conn), [(item.event, item.data) for item in fresh])
        except Exception as exc:
            log.info("consumer %s: batch of %d failed, going event by event: %s", self.name, len(fresh), describe(exc))
            return _Stumble(exc, None)
        log.info(
            "consumed %d x %s",
            len(fresh),
            self.contract.event_type(),
            extra={
                "consumer": self.name,
                "event_ids": [item.event.id for item in fresh],
                "trace_ids": sorted({t for it in fresh if (t := tracing.trace_id_of(it.event.traceparent))}),
            },
        )
        return None

    async def _in_savepoint(self, conn: AsyncConnection, item: _Live, spared: _Stumble | None) -> Outcome:
        if spared is not None and spared.item is item:
            return _failure(item, spared.error)
        savepoint = await conn.begin_nested()
        error = await self._call(conn, item)
        if error is not None:
            await savepoint.rollback()
            return _failure(item, error)
        await savepoint.commit()
        return Processed()

    async def _call(self, conn: AsyncConnection, item: _Live) -> Exception | None:
        """The handler for one event, with a unit of work of its own on `conn`; returns what it raised."""
        with _event_context(item.event):
            try:
                await self.handler(self.unit_of_work(conn), item.event, item.data)
            except Exception as exc:
                log.debug("consumer %s: handler raised for %s: %s", self.name, item.event.id, describe(exc))
                return exc
            log.info("consumed %s", item.event.type, extra={"consumer": self.name})
            return None

    # -- counting failures -----------------------------------------------------------------------------------------
    async def _count(self, result: BatchResult) -> BatchResult:
        """Count the handlers' failures of a committed transaction; those out of tries become dead letters."""
        failed, others = _handler_failures(result.outcomes)
        if not failed:
            return result
        rest = BatchResult(others, committed=result.committed)
        away = await self._went_away(failed)
        if away is not None:
            return rest.defer([item for item, _ in failed], away)
        counted = [(item, self._record_failure(item, error)) for item, error in failed]
        rest.outcomes += [(item, outcome) for item, outcome in counted if isinstance(outcome, Failed)]
        return rest.add(await self._bury([(item, dead) for item, dead in counted if isinstance(dead, DeadLettered)]))

    async def _went_away(self, failed: list[tuple[_Live, Exception]]) -> Exception | None:
        """Did the database go away under the handlers? Then none of these failures is its event's."""
        suspect = next((error for _, error in failed if _looks_away(error)), None)
        return suspect if suspect is not None and not await self.probe() else None

    def _record_failure(self, item: _Live, error: Exception) -> Failed | DeadLettered:
        key = _tally_key(item.msg, item.event)
        tally = self._tally.pop(key, None) or _Tally(0, "")
        tally.failures += 1
        tally.last_error = f"{type(error).__name__}: {error}"[:2000]
        self._tally[key] = tally  # (re)inserted last: the oldest entries are the first forgotten
        while len(self._tally) > TALLY_LIMIT:
            self._tally.pop(next(iter(self._tally)))
        if tally.failures >= self.max_deliver:
            return tally.dead_letter()
        log.warning(
            "consumer %s: handler failed for event %s (failure %d of %d, retried later): %s",
            self.name,
            item.event.id,
            tally.failures,
            self.max_deliver,
            describe(error),
            extra={"consumer": self.name, "failed_event_id": item.event.id},
        )
        return Failed(error)

    async def _bury(self, dying: list[tuple[_Live, DeadLettered]]) -> BatchResult:
        """Store events that ran out of tries as dead letters (their own transaction: the batch's has committed)."""
        if not dying:
            return BatchResult()
        stored = await self._guard(self._store_dead_alone(dying))
        if isinstance(stored, _Broken) and stored.away:
            return BatchResult().defer([item for item, _ in dying], stored.error)
        if isinstance(stored, _Broken):
            # Their tally stays at max_deliver: the next delivery of each is dead-lettered with the next batch.
            log.error("consumer %s: could not store %d dead letters: %s", self.name, len(dying), describe(stored.error))
            return BatchResult([(item, Failed(stored.error)) for item, _ in dying])
        for item, dead in dying:
            self._forget(item)
            self._log_dead(item.event, dead)
        return BatchResult([*dying], committed=True)

    def _forget(self, item: _Item) -> None:
        if item.event is not None:
            self._tally.pop(_tally_key(item.msg, item.event), None)

    def _log_dead(self, event: CloudEvent, dead: DeadLettered) -> None:
        log.error(
            "consumer %s: dead letter %s: %s",
            self.name,
            event.id,
            dead.reason,
            extra={"consumer": self.name, "dead_event_id": event.id},
        )

    # -- steps ---------------------------------------------------------------------------------------------------
    def _read(self, msg: Msg) -> _Item:
        try:
            event, data = parse_event(msg.data)
        except MalformedEvent as exc:
            log.error("consumer %s: dead letter (malformed) on %s: %s", self.name, msg.subject, exc)
            return _Parked(msg, exc.event, DeadLettered(f"malformed: {exc}"))
        if event.type != self.contract.event_type():
            wrong = f"malformed: type {event.type} on the subject of {self.contract.event_type()}"
            return _Parked(msg, event, DeadLettered(wrong))
        tally = self._tally.get(_tally_key(msg, event))
        if tally is None:
            return _Live(msg, event, data)
        if tally.failures < self.max_deliver:
            return _Live(msg, event, data, deliveries=tally.failures + 1)
        dead = tally.dead_letter()  # out of tries, but its dead letter could not be stored last time
        self._log_dead(event, dead)
        return _Parked(msg, event, dead)

    async def _claim(self, conn: AsyncConnection, events: list[CloudEvent]) -> set[str]:
        """Insert the events' ids into the inbox; returns the ids that were new. One statement, built once (so
        SQLAlchemy's compiled cache holds it), run as executemany with RETURNING."""
        if not events:
            return set()
        if self._claim_stmt is None:
            self._claim_stmt = (
                dialect_insert(conn, self.tables.inbox).on_conflict_do_nothing().returning(self.tables.inbox.c.event_id)
            )
        now = datetime.now(UTC)
        rows = [{"consumer": self.name, "event_id": e.id, "type": e.type, "processed_at": now} for e in events]
        return {r[0] for r in await conn.execute(self._claim_stmt, rows)}

    async def _store_dead_alone(self, dead: Sequence[tuple[_Item, DeadLettered]]) -> None:
        async with self.engine.begin() as conn:
            await self._store_dead(conn, dead)

    async def _store_dead(self, conn: AsyncConnection, dead: Sequence[tuple[_Item, DeadLettered]]) -> None:
        if not dead:
            return
        now = datetime.now(UTC)
        await conn.execute(
            insert(self.tables.dead_letters),
            [
                {
                    "id": str(uuid.uuid4()),
                    "consumer": self.name,
                    "stream": self.stream,
                    "stream_seq": _stream_seq(item.msg),
                    "subject": item.msg.subject,
                    "event_id": item.event.id if item.event else None,
                    "type": item.event.type if item.event else None,
                    "body": item.msg.data,
                    "headers": dict(item.msg.headers or {}),
                    "reason": letter.reason.replace("\x00", "\\u0000")[:4000],  # PostgreSQL takes no NUL in text
                    "deliveries": letter.deliveries,
                    "created_at": now,
                }
                for item, letter in dead
            ],
        )

    async def _settle(self, outcomes: _Outcomes) -> None:
        for item, outcome in outcomes:
            await _quiet(self._answer(item, outcome))
            if isinstance(outcome, DeadLettered):
                metrics.events_dead_lettered.labels(self.name).inc()
            metrics.events_consumed.labels(self.name, _kind(item), outcome.label).inc()

    def _answer(self, item: _Item, outcome: Outcome) -> Awaitable[None]:
        if isinstance(outcome, Away):
            return item.msg.nak(delay=OUTAGE_NAK_DELAY)
        if isinstance(outcome, DeadLettered):
            return item.msg.term()
        if isinstance(outcome, Failed):
            tally = self._tally.get(_tally_key(item.msg, item.event)) if item.event is not None else None
            return item.msg.nak(delay=self._backoff(tally.failures if tally else 1))
        return item.msg.ack()

    def _backoff(self, deliveries: int) -> float:
        """Delay before the next try after `deliveries` real failures."""
        return min(30.0, 0.5 * 2 ** (deliveries - 1)) * (0.75 + random.random() / 2)

    # -- replay --------------------------------------------------------------------------------------------------
    async def replay(self, conn: AsyncConnection, row: Row[Any]) -> Literal["processed", "duplicate"]:
        """Run a dead letter through the handler again, with a unit of work on the caller's transaction."""
        event, data = parse_event(row.body)  # MalformedEvent propagates: still not replayable
        if not await self._claim(conn, [event]):
            return "duplicate"
        with _event_context(event):
            await self.handler(self.unit_of_work(conn), event, data)
        return "processed"


def _handler_failures(outcomes: _Outcomes) -> tuple[list[tuple[_Live, Exception]], _Outcomes]:
    """The failures of handlers (to be counted), and the rest."""
    failed: list[tuple[_Live, Exception]] = []
    others: _Outcomes = []
    for item, outcome in outcomes:
        if isinstance(item, _Live) and isinstance(outcome, Failed):
            failed.append((item, outcome.error))
        else:
            others.append((item, outcome))
    return failed, others


def _failure(item: _Live, error: Exception) -> Failed | DeadLettered:
    if isinstance(error, Unprocessable):
        return DeadLettered(f"unprocessable: {error}", item.deliveries)
    return Failed(error)


@contextmanager
def _event_context(event: CloudEvent) -> Iterator[None]:
    """Logs and the events a handler causes carry this event's id and continue its trace."""
    token_tp = tracing.current_traceparent.set(tracing.child_of(event.traceparent))
    token_id = tracing.current_event_id.set(event.id)
    try:
        yield
    finally:
        tracing.current_traceparent.reset(token_tp)
        tracing.current_event_id.reset(token_id)


def _stream_seq(msg: Msg) -> int | None:
    try:
        return msg.metadata.sequence.stream
    except Exception:
        return None


def _tally_key(msg: Msg, event: CloudEvent) -> int | str:
    """What the failure tally counts by: the stream sequence (the event id for a message without one)."""
    seq = _stream_seq(msg)
    return event.id if seq is None else seq


def _kind(item: _Item) -> str:
    return item.event.type if item.event is not None else "malformed"


async def _quiet(answer: Awaitable[None]) -> None:
    try:
        await answer
    except Exception as exc:  # the server will redeliver after ack_wait; nothing is lost
        log.warning("ack/nak failed: %s", exc)


# -- dead letters, for the operator ------------------------------------------------------------------------------
async def list_dead_letters(
    engine: AsyncEngine, tables: MessagingTables, *, include_replayed: bool = False, limit: int = 100
) -> list[dict[str, Any]]:
    d = tables.dead_letters
    stmt = select(d).order_by(d.c.created_at.desc()).limit(limit)
    if not include_replayed:
        stmt = stmt.where(d.c.replayed_at.is_(None))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    return [{**{k: v for k, v in r.items() if k != "body"}, "body": _readable(r["body"])} for r in rows]


def _readable(body: bytes) -> Any:
    try:
        return json.loads(body)
    except Exception:
        return body.decode("utf-8", "replace")


async def _replay_row(
    engine: AsyncEngine, tables: MessagingTables, consumer: EventConsumer, row: Row[Any]
) -> tuple[ReplayOutcome, str | None]:
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


async def _replay_with(
    engine: AsyncEngine, tables: MessagingTables, consumers: dict[str, EventConsumer], row: Row[Any]
) -> tuple[ReplayOutcome, str | None]:
    consumer = consumers.get(row.consumer)
    if consumer is None:
        return "failed", f"no consumer named {row.consumer} in this service"
    return await _replay_row(engine, tables, consumer, row)


async def replay_dead_letter(
    engine: AsyncEngine, tables: MessagingTables, consumers: dict[str, EventConsumer], dead_letter_id: str
) -> tuple[ReplayOutcome, str | None]:
    """Returns (outcome, error). outcome: processed | duplicate | failed | not_found | already_replayed."""
    d = tables.dead_letters
    async with engine.connect() as conn:
        row = (await conn.execute(select(d).where(d.c.id == dead_letter_id))).first()
    if row is None:
        return "not_found", None
    if row.replayed_at is not None:
        return "already_replayed", None
    return await _replay_with(engine, tables, consumers, row)


class UnknownConsumer(LookupError):
    """replay_dead_letters was asked for a consumer this service does not have."""


async def replay_dead_letters(
    engine: AsyncEngine,
    tables: MessagingTables,
    consumers: dict[str, EventConsumer],
    *,
    consumer: str | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
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
    replayed, failed = await _replay_in_order(engine, tables, consumers, rows)
    async with engine.connect() as conn:
        remaining = (await conn.execute(select(func.count()).select_from(d).where(*where))).scalar_one()
    if replayed or failed:
        log.info("replayed %d dead letters%s", len(replayed), f" of {consumer}" if consumer else "")
    return {"replayed": replayed, "failed": failed, "remaining": remaining}


async def _replay_in_order(
    engine: AsyncEngine, tables: MessagingTables, consumers: dict[str, EventConsumer], rows: Sequence[Row[Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Replay `rows` one after the other until one fails: (the replayed, the one that failed or None)."""
    replayed: list[dict[str, Any]] = []
    for row in rows:
        outcome, error = await _replay_with(engine, tables, consumers, row)
        entry = {"id": row.id, "event_id": row.event_id, "stream_seq": row.stream_seq}
        if outcome == "failed":
            log.warning(
                "replay of dead letters stopped at %s (event %s, stream sequence %s) after %d: %s",
                row.id,
                row.event_id,
                row.stream_seq,
                len(replayed),
                error,
            )
            return replayed, {**entry, "error": error or "failed"}
        replayed.append({**entry, "outcome": outcome})
    return replayed, None
