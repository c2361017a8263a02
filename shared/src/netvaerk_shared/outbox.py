"""Transactional outbox: events are written with the change that caused them; a relay publishes them to JetStream.

The relay takes unpublished rows in order, publishes each with `Nats-Msg-Id` = event id, waits for every PubAck, and
only then marks them published. A crash between publish and mark republishes the rows: JetStream drops the duplicate
inside its window, and every consumer's inbox drops it after that. On PostgreSQL the rows are taken with
FOR UPDATE SKIP LOCKED, so several relays can run side by side without double work.

On PostgreSQL the relay works on a connection of its own, through asyncpg itself, with statements SQLAlchemy compiled
once from the tables: the same connection LISTENs for commits of other processes. A batch costs less than half of
what it costs through SQLAlchemy's pooled async engine (and the relay shares the producers' event loop, running a
batch per wake). Its commits do not wait for the WAL to reach the disk (`synchronous_commit = off` on that connection
only): what it writes are marks, and a mark lost in a server crash only republishes rows, which the two deduplications
above are there for; the outbox rows themselves are written by the producers' own, durable commits. SQLite keeps the
engine (one connection per process).

Every failure is classified before it counts. An outage (NATS not connected, no PubAck in time, no stream answering,
JetStream unavailable; the database away) holds the work, in order, and the relay backs off -- until NATS reconnects,
the database answers again or a commit wakes it, whichever comes first. Poison (a row that can never be published as
it is: larger than the server's max_payload, a subject this connection may not publish to, refused by JetStream for
itself) is parked: `parked_at`, `attempts` and a true `last_error` are set, and the relay goes on with the rest at once.
An operator puts a parked row back with retry_parked() (POST /admin/outbox/{event_id}/retry).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    Integer,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ClauseElement

from . import metrics
from .db import asyncpg_dsn, is_sqlite
from .envelope import CONTENT_TYPE, CloudEvent, to_bytes
from .messaging import MessagingTables

log = logging.getLogger(__name__)


_INSERTS: dict[Table, Insert] = {}


def _insert(table: Table) -> Insert:
    """One INSERT construct per table, built once (cheaper than building it for every change). inline(): without
    `RETURNING position`, which SQLAlchemy would otherwise add to a one-row INSERT (and process) for a primary key
    nobody reads."""
    stmt = _INSERTS.get(table)
    if stmt is None:
        stmt = _INSERTS[table] = insert(table).inline()
    return stmt


HEADER_ROOM = 4096  # bytes kept free for the NATS headers (Nats-Msg-Id, Content-Type) within max_payload
DEFAULT_MAX_EVENT_BYTES = (1 << 20) - HEADER_ROOM  # NATS's default max_payload, until a server says otherwise


class EventTooLarge(Exception):
    """An event that would not fit in one NATS message: the change is refused before anything commits, because a
    row that can never be published must never enter the outbox."""

    def __init__(self, event_type: str, size: int, limit: int, field: str | None) -> None:
        where = f" (mostly the field {field!r})" if field else ""
        super().__init__(
            f"The change would make a {event_type} event of {size} bytes{where}; "
            f"at most {limit} bytes fit in one message. Send less text."
        )
        self.event_type, self.size, self.limit, self.field = event_type, size, limit, field


def _largest_field(body: bytes) -> str | None:
    import json

    try:
        data = json.loads(body).get("data") or {}
        return max(data, key=lambda k: len(json.dumps(data[k], ensure_ascii=False))) if data else None
    except Exception:
        return None


def notify_channel(service: str) -> str:
    return f"outbox_{service}"


async def enqueue(
    conn: AsyncConnection,
    tables: MessagingTables,
    events: Sequence[CloudEvent],
    subjects: Sequence[str],
    *,
    notify: str | None = None,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> None:
    """Add events to the outbox inside the caller's transaction. `notify`: a PostgreSQL channel to wake relays on
    commit. Raises EventTooLarge, before writing anything, for an event of more than `max_bytes`."""
    if not events:
        return
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for event, subject in zip(events, subjects, strict=True):
        body = to_bytes(event)
        if len(body) > max_bytes:
            raise EventTooLarge(event.type, len(body), max_bytes, _largest_field(body))
        rows.append(
            {
                "event_id": event.id,
                "subject": subject,
                "type": event.type,
                "body": body,
                "created_at": now,
                "attempts": 0,
            }
        )
    await conn.execute(_insert(tables.outbox), rows[0] if len(rows) == 1 else rows)
    if notify and not is_sqlite(conn):
        await conn.exec_driver_sql(f"NOTIFY {notify}")


# ------------------------------------------------------------------------------------------------- operator's view


def _pending(o: Table) -> ColumnElement[bool]:
    """Rows the relay still has to publish: neither published nor parked (the where clause of ix_outbox_pending)."""
    return (o.c.published_at.is_(None)) & (o.c.parked_at.is_(None))


async def backlog(engine: AsyncEngine, tables: MessagingTables) -> tuple[int, float]:
    """(rows waiting to be published, age in seconds of the oldest of them). Parked rows are not counted: they wait
    for an operator, not for the relay (see parked())."""
    o = tables.outbox
    async with engine.connect() as conn:
        row = (await conn.execute(select(func.count(), func.min(o.c.created_at)).where(_pending(o)))).one()
    count, oldest = row
    if oldest is None:
        return int(count), 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (datetime.now(UTC) - oldest).total_seconds())


async def parked(engine: AsyncEngine, tables: MessagingTables, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
    """(how many rows are parked, the oldest `limit` of them). Never the body: it may hold personal data."""
    o = tables.outbox
    is_parked = o.c.parked_at.is_not(None)
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).where(is_parked))).scalar_one()
        rows = (
            []
            if not count or limit <= 0
            else (
                await conn.execute(
                    select(
                        o.c.position,
                        o.c.event_id,
                        o.c.type,
                        o.c.subject,
                        o.c.attempts,
                        o.c.last_error,
                        o.c.created_at,
                        o.c.parked_at,
                    )
                    .where(is_parked)
                    .order_by(o.c.position)
                    .limit(limit)
                )
            )
            .mappings()
            .all()
        )
    return int(count), [dict(r) for r in rows]


async def retry_parked(
    engine: AsyncEngine, tables: MessagingTables, event_id: str, *, notify: str | None = None
) -> str:
    """Put a parked row back in the relay's way (after the cause was fixed). 'retried', 'not_found' or 'not_parked'.
    The row keeps its position, so the relay sends it next, after events of its aggregate that went out meanwhile."""
    o = tables.outbox
    async with engine.begin() as conn:
        row = (await conn.execute(select(o.c.position, o.c.parked_at).where(o.c.event_id == event_id))).first()
        if row is None:
            return "not_found"
        if row.parked_at is None:
            return "not_parked"
        await conn.execute(update(o).where(o.c.position == row.position).values(parked_at=None))
        if notify and not is_sqlite(conn):
            await conn.exec_driver_sql(f"NOTIFY {notify}")
    log.info("outbox relay: parked event %s put back for the relay", event_id, extra={"event_id": event_id})
    return "retried"


# ------------------------------------------------------------------------------------------ what went wrong, and why

OUTAGE, POISON = "outage", "poison"

# JetStream answers to a publish, by err_code (nats-server server/errors.json).
# 4xx are about the message itself (poison) except these, which are about the account or the stream as a whole and
# pass when an operator fixes them: hold the work, in order.
_JS_OUTAGE_CODES = {
    10002,  # resource limits exceeded for account
    10005,  # cluster: no suitable peers
    10059,  # stream not found
    10109,  # stream sealed
    10120,  # no JetStream limits for the account
    10202,  # cluster member change in progress
}
_JS_POISON_CODES = {
    10054,  # message size exceeds the stream's max_msg_size
    10097,  # header size exceeds maximum allowed
}
_PERMISSION_DENIED = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)


def classify(exc: BaseException) -> str:
    """OUTAGE (NATS away, not connected, no PubAck in time, no stream answering yet, JetStream unavailable: the message
    may well go through later) or POISON (the message itself can never be published as it is)."""
    if isinstance(exc, (nats.errors.MaxPayloadError, nats.errors.BadSubjectError, nats.errors.BadHeaderError)):
        return POISON
    if isinstance(exc, nats.js.errors.APIError):
        code, err_code = exc.code or 0, exc.err_code
        if err_code in _JS_POISON_CODES:
            return POISON
        if err_code == 10077 and "too large" in (exc.description or "").lower():  # store failed: message too large
            return POISON
        if err_code in _JS_OUTAGE_CODES or code >= 500 or code == 429:
            return OUTAGE
        return POISON if 400 <= code < 500 else OUTAGE
    return OUTAGE  # connection closed / reconnecting, timeouts, no responders, anything unforeseen: hold and retry


def describe(exc: BaseException) -> str:
    """`ExceptionClass: message`, one line, never empty (nats' and asyncio's TimeoutError have no text of their own)."""
    text = str(exc).strip().split("\n", 1)[0].split(" [SQL:", 1)[0].strip()
    name = type(exc).__name__
    if not text:
        cause = exc.__cause__ or exc.__context__
        text = f"(no message; caused by {describe(cause)})" if cause is not None else "(no message)"
    return _clean(f"{name}: {text}", 500)


def _clean(text: str, limit: int = 2000) -> str:
    return text.replace("\x00", "\\0")[:limit]  # PostgreSQL refuses NUL in text


def _is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, nats.errors.Error):
        return False
    module = type(exc).__module__ or ""
    return isinstance(exc, (SQLAlchemyError, OSError, ConnectionError)) or module.startswith(
        ("asyncpg", "sqlite3", "aiosqlite")
    )


class Outage(Exception):
    """The relay cannot go on for now because `system` ('nats' or 'database') is away; the rows it could not publish
    stay unpublished, in order, and are tried again."""

    def __init__(self, system: str, reason: str, *, stream_missing: bool = False) -> None:
        super().__init__(f"{_SYSTEM_NAMES.get(system, system)} is unavailable: {reason}")
        self.system, self.reason, self.stream_missing = system, reason, stream_missing


_SYSTEM_NAMES = {"nats": "NATS", "database": "the database", "relay": "the relay"}


@asynccontextmanager
async def _database(doing: str) -> AsyncIterator[None]:
    """Database errors inside become an Outage of the database, saying what the relay was doing."""
    try:
        yield
    except Outage:
        raise
    except Exception as exc:
        if _is_database_error(exc):
            raise Outage("database", f"{doing}: {describe(exc)}") from exc
        raise


def _connection_state(nc: Client) -> str:
    state = "closed" if nc.is_closed else "reconnecting" if nc.is_reconnecting else "not connected"
    last = getattr(nc, "last_error", None)
    return f"NATS connection {state}" + (f" (last error {describe(last)})" if last is not None else "")


def _wire_size(body: bytes, headers: dict[str, str]) -> int:
    """What the server counts against max_payload for an HPUB: the header block (NATS/1.0 line, `key: value` lines,
    blank line) plus the payload. nats-py checks the payload alone; a message over the limit that reaches the server
    is answered with -ERR 'Maximum Payload Violation', and nats-py then closes the connection for good."""
    return 10 + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2 + len(body)


class _Row(NamedTuple):
    """An outbox row the relay publishes (what it selects; a SQLAlchemy Row of these columns reads the same)."""

    position: int
    event_id: str
    subject: str
    type: str
    body: bytes


@dataclass
class _Batch:
    done: list[_Row] = field(default_factory=list)
    parked: list[tuple[_Row, str]] = field(default_factory=list)  # (row, reason)
    outage: Outage | None = None
    held: _Row | None = None  # the first row the outage kept back: it gets the outage as last_error


class _Compiled:
    """A statement SQLAlchemy compiled once for asyncpg's dialect ($1, $2 ... placeholders), which the relay runs on
    its asyncpg connection: the tables stay the one description of the schema, and no statement is built, compiled
    or looked up in a cache per batch."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
        self.sql = compiled.string
        self._names = tuple(compiled.positiontup or ())
        self._defaults = dict(compiled.params)  # literal values in the statement (attempts + 1) are parameters too

    def args(self, **values: Any) -> list[Any]:
        params = {**self._defaults, **values}
        return [params[name] for name in self._names]


@dataclass(frozen=True)
class _PgStatements:
    take: _Compiled
    published: _Compiled
    parked: _Compiled
    held: _Compiled

    @classmethod
    def build(cls, o: Table, dialect: Dialect) -> _PgStatements:
        position = o.c.position
        return cls(
            take=_Compiled(_take(o, bindparam("limit", type_=Integer)).with_for_update(skip_locked=True), dialect),
            published=_Compiled(
                update(o)
                .where(position == func.any(bindparam("positions", type_=ARRAY(BigInteger))))
                .values(published_at=bindparam("now")),
                dialect,
            ),
            parked=_Compiled(_park(o), dialect),
            held=_Compiled(_hold(o), dialect),
        )


def _park(o: Table) -> Update:
    """Park a row that can never be published as it is (parameters: row_position, now, reason)."""
    return (
        update(o)
        .where(o.c.position == bindparam("row_position"))
        .values(parked_at=bindparam("now"), attempts=o.c.attempts + 1, last_error=bindparam("reason"))
    )


def _hold(o: Table) -> Update:
    """Count a failed attempt on the row an outage held back (parameters: row_position, reason)."""
    return (
        update(o)
        .where(o.c.position == bindparam("row_position"))
        .values(attempts=o.c.attempts + 1, last_error=bindparam("reason"))
    )


def _take(o: Table, limit: int | ColumnElement[int]) -> Select[Any]:
    """The next rows to publish, in order (the where clause matches ix_outbox_pending's)."""
    return (
        select(o.c.position, o.c.event_id, o.c.subject, o.c.type, o.c.body)
        .where(_pending(o))
        .order_by(o.c.position)
        .limit(limit)
    )


# ---------------------------------------------------------------------------------------------------------- the relay

FaultHook = Callable[[str], Awaitable[None] | None]
MIN_RETRY_GAP = 0.1  # seconds: a burst of commits during an outage does not turn into a burst of failing attempts
CONNECT_TIMEOUT = 5.0  # seconds the relay waits for its own PostgreSQL connection
LISTEN_RETRY = 5.0  # seconds between attempts to LISTEN again while the relay is idle and the database away


class Relay:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        tables: MessagingTables,
        js: JetStreamContext | None,
        service: str,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        publish_timeout: float = 5.0,
        retention: timedelta = timedelta(hours=24),
        fault_hook: FaultHook | None = None,
        nc: Client | None = None,
        ensure_stream: Callable[[], Awaitable[None]] | None = None,
        max_backoff: float = 10.0,
        probe_interval: float = 0.5,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.js = js
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.publish_timeout = publish_timeout
        self.retention = retention
        self.fault_hook = fault_hook
        self.ensure_stream = ensure_stream
        self.max_backoff = max_backoff
        self.probe_interval = probe_interval
        self._nc = nc
        self._wake = asyncio.Event()
        self._interrupt = asyncio.Event()  # reconnected, or a permissions violation: stop waiting for PubAcks
        self._nats_generation = 0  # +1 on every reconnect
        self._denied: dict[str, str] = {}  # subject -> the server's permissions violation, during one batch
        self._sqlite = is_sqlite(engine)
        self._last_cleanup = 0.0
        self._select_stmt: Select[Any] | None = None
        self._pg_statements = None if self._sqlite else _PgStatements.build(tables.outbox, engine.dialect)
        self._pg: Any = None  # PostgreSQL: the relay's own asyncpg connection (its batches, and LISTEN)
        self._listen_warned = False
        self._next_listen = 0.0
        self._last_outage_log: tuple[str, float] = ("", 0.0)

    @property
    def nc(self) -> Client | None:
        """The NATS connection (given, else the JetStream context's)."""
        return self._nc if self._nc is not None else getattr(self.js, "_nc", None)

    # --- signals -----------------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows in this process."""
        self._wake.set()

    def nats_reconnected(self) -> None:
        """nats-py's reconnected_cb: whatever backoff the relay is in for NATS ends now."""
        self._nats_generation += 1
        self._interrupt.set()
        self._wake.set()

    def nats_error(self, exc: BaseException) -> None:
        """nats-py's error_cb: a permissions violation names the subject this connection may not publish to."""
        match = _PERMISSION_DENIED.search(str(exc))
        if match:
            self._denied[match.group(1)] = str(exc)
            self._interrupt.set()

    # --- the loop ----------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self._ensure_listener()
        loop = asyncio.get_running_loop()
        failures = 0
        away: tuple[str, float] | None = None  # (system, since)
        try:
            while not stop.is_set():
                generation = self._nats_generation
                # A commit from here on wakes the next round; what committed before is visible to this one (the wake
                # comes after the commit, the SELECT after this clear). No empty look "in case" after every batch.
                self._wake.clear()
                try:
                    handled = await self.publish_batch()
                    await self._cleanup()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    outage = exc if isinstance(exc, Outage) else Outage("relay", describe(exc))
                    failures += 1
                    metrics.publish_failures.labels(cause=OUTAGE).inc()
                    if away is None or away[0] != outage.system:
                        away = (outage.system, loop.time())
                    delay = self._backoff(failures)
                    self._log_outage(outage, delay, failures, exc)
                    if outage.stream_missing and self.ensure_stream is not None:
                        await self._declare_stream()
                    if await self._pause(stop, delay, outage.system, generation):
                        failures = 0  # the thing that was away is back: no leftover backoff
                    continue
                if away is not None:
                    log.info(
                        "outbox relay: %s is back after %.1fs; publishing again",
                        _SYSTEM_NAMES.get(away[0], away[0]),
                        loop.time() - away[1],
                    )
                    away = None
                failures = 0
                if handled >= self.batch_size or self._wake.is_set():
                    continue  # more waiting, or a commit came in while we published: go again at once
                await self._ensure_listener()
                await _wait_any(stop, self._wake, self.poll_interval)
        finally:
            await self._close_connection()

    def _backoff(self, failures: int) -> float:
        """0.2-0.4 s after the first failure, doubling up to max_backoff (with jitter)."""
        return min(self.max_backoff, 0.2 * 2 ** min(failures, 8)) * (0.5 + random.random() / 2)

    async def _pause(self, stop: asyncio.Event, delay: float, system: str, generation: int) -> bool:
        """Back off for `delay` seconds, cut short when the cause goes away: NATS reconnected, the database answers
        again (probed every probe_interval and on every wake), or a commit woke the relay while NATS is connected.
        True when the cause is known to be gone."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + delay
        while not stop.is_set():
            if system == "nats" and self._nats_generation != generation:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await _wait_any(
                stop, self._wake, min(remaining, self.probe_interval) if system == "database" else remaining
            )
            if stop.is_set():
                return False
            if self._wake.is_set():
                self._wake.clear()
                if system == "nats" and self._nats_generation != generation:
                    return True
                nc = self.nc
                if system == "nats" and nc is not None and not nc.is_connected:
                    continue  # a commit does not bring NATS back
                if system == "database":  # a commit went through (or NATS came back): does the database answer?
                    if await self._database_answers():
                        return True
                    continue
                await _sleep_or(stop, start + MIN_RETRY_GAP - loop.time())
                return False
            if system == "database" and await self._database_answers():
                return True
        return False

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(max(1.0, self.probe_interval * 2)):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # still away (or the probe timed out)
            return False

    async def _declare_stream(self) -> None:
        assert self.ensure_stream is not None
        try:
            await self.ensure_stream()
            log.warning("outbox relay: no stream answered for %s; declared it again", self.service)
        except Exception as exc:
            log.warning("outbox relay: could not declare the %s stream: %s", self.service, describe(exc))

    def _log_outage(self, outage: Outage, delay: float, failures: int, exc: BaseException) -> None:
        now = asyncio.get_running_loop().time()
        key = f"{outage.system}:{outage.reason}"
        last_key, last_at = self._last_outage_log
        repeat = key == last_key and now - last_at < 30.0
        if not repeat:
            self._last_outage_log = (key, now)
        level = logging.DEBUG if repeat else logging.WARNING
        if outage.system == "relay":  # not an outage we know: a bug; keep the work, show the traceback once
            log.log(
                logging.DEBUG if repeat else logging.ERROR,
                "outbox relay: unexpected %s; keeping the outbox as it is, retrying in %.1fs (attempt %d)",
                outage.reason,
                delay,
                failures,
                exc_info=None if repeat else exc,
            )
            return
        log.log(
            level,
            "outbox relay: %s; holding the rest of the outbox in order, retrying in %.1fs (attempt %d)",
            outage,
            delay,
            failures,
            extra={"failed_system": outage.system},
        )

    # --- one batch ---------------------------------------------------------------------------------------------------

    async def publish_batch(self) -> int:
        """Publish up to batch_size rows, in order. Returns how many rows it is done with: published (and marked) or
        parked. Raises Outage when NATS or the database is away; rows not published stay where they are."""
        if self._sqlite:
            # SQLite has no SKIP LOCKED: relays in one process take turns; read, publish outside any transaction
            # (so HTTP requests are not held up while NATS is slow), then mark. One process per SQLite file.
            async with _sqlite_lock(self.engine):
                async with _database("reading the outbox"):
                    async with self.engine.connect() as conn:
                        rows = (await conn.execute(self._select())).all()
                if not rows:
                    return 0
                batch = await self._publish(rows)
                async with _database("marking the outbox"):
                    async with self.engine.begin() as conn:
                        await self._mark(conn, batch)
        else:
            async with _database("taking rows from the outbox"):
                batch_or_none = await self._publish_batch_pg()
            if batch_or_none is None:
                return 0
            batch = batch_or_none
        self._account(batch)
        if batch.outage is not None:
            raise batch.outage
        return len(batch.done) + len(batch.parked)

    async def _publish_batch_pg(self) -> _Batch | None:
        """BEGIN; take the rows FOR UPDATE SKIP LOCKED; publish; mark; COMMIT: on the relay's own connection. A
        database error leaves the connection for a new one (the next batch, after the backoff, opens it)."""
        statements = self._pg_statements
        assert statements is not None
        conn = await self._connection()
        try:
            async with conn.transaction():
                records = await conn.fetch(statements.take.sql, *statements.take.args(limit=self.batch_size))
                if not records:
                    return None
                batch = await self._publish([_Row(*record) for record in records])
                await self._mark_pg(conn, statements, batch)
            return batch
        except Exception as exc:
            if _is_database_error(exc):
                self._drop_connection()
            raise

    def _select(self) -> Select[Any]:
        if self._select_stmt is None:  # built once: the relay runs it on every wake
            self._select_stmt = _take(self.tables.outbox, self.batch_size)
        return self._select_stmt

    async def _publish(self, rows: Sequence[_Row]) -> _Batch:
        """Send every row (publish_async), then wait for the PubAcks; sort the rows into done, parked (poison) and
        held back (outage). Never raises for NATS."""
        batch = _Batch()
        nc = self.nc
        if nc is not None and not nc.is_connected:
            batch.outage, batch.held = Outage("nats", _connection_state(nc)), rows[0]
            return batch
        limit = getattr(nc, "max_payload", None) if nc is not None else None
        self._denied.clear()
        self._interrupt.clear()
        generation = self._nats_generation
        sent: list[tuple[_Row, asyncio.Future[Any]]] = []
        send_failure: tuple[_Row, Outage] | None = None
        assert self.js is not None
        for row in rows:
            headers = {"Nats-Msg-Id": row.event_id, "Content-Type": CONTENT_TYPE}
            if limit:
                size = _wire_size(row.body, headers)
                if size > limit:
                    batch.parked.append(
                        (
                            row,
                            f"MaxPayloadError: the event is {size} bytes with its headers; the "
                            f"connected NATS server takes at most {limit} bytes (max_payload)",
                        )
                    )
                    continue
            try:
                # no wait_stall: nats-py would wrap every message in its own wait_for (7x slower); a batch stays far
                # below its pending limit, and the wait below is bounded by publish_timeout
                fut = await self.js.publish_async(row.subject, row.body, headers=headers)
            except Exception as exc:
                self._drop_orphan(sent)
                if classify(exc) == POISON:
                    batch.parked.append((row, describe(exc)))
                    continue
                send_failure = (row, Outage("nats", f"sending: {describe(exc)}"))
                break
            sent.append((row, fut))
        if sent:
            await self._await_acks(sent, generation)
        for row, fut in sent:
            if fut.done() and not fut.cancelled():
                error = fut.exception()
                if error is None:
                    batch.done.append(row)
                    continue
                kind, reason = classify(error), describe(error)
                missing = isinstance(error, nats.js.errors.NoStreamResponseError)
                if missing:
                    reason += " (no stream takes this subject: not declared yet, or lost)"
            else:
                missing = False
                if row.subject in self._denied:
                    kind, reason = POISON, f"permissions violation: {self._denied[row.subject]}"
                elif self._nats_generation != generation:
                    kind, reason = OUTAGE, "NATS reconnected before its PubAck came (JetStream drops a repeat)"
                else:
                    kind, reason = OUTAGE, f"TimeoutError: no PubAck within {self.publish_timeout:g}s"
            if kind == POISON:
                batch.parked.append((row, reason))
            elif batch.outage is None:
                batch.outage, batch.held = Outage("nats", reason, stream_missing=missing), row
        if batch.outage is None and send_failure is not None:
            batch.held, batch.outage = send_failure
        if self.fault_hook is not None and batch.done:
            outcome = self.fault_hook("after_publish")
            if asyncio.iscoroutine(outcome):
                await outcome
        return batch

    async def _await_acks(self, sent: list[tuple[_Row, asyncio.Future[Any]]], generation: int) -> None:
        """Wait up to publish_timeout for every PubAck; stop early when NATS reconnected (acks of messages sent before
        are lost) or when every missing ack belongs to a subject the server refused. Futures still open are
        cancelled (which frees their place in nats-py's pending limit)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        try:
            while True:
                self._interrupt.clear()
                if self._nats_generation != generation:
                    break
                waiting = [f for row, f in sent if not f.done() and row.subject not in self._denied]
                remaining = deadline - loop.time()
                if not waiting or remaining <= 0:
                    break
                gathered = asyncio.gather(*waiting, return_exceptions=True)
                gathered.add_done_callback(_retrieve)
                interrupt = asyncio.ensure_future(self._interrupt.wait())
                try:
                    await asyncio.wait((gathered, interrupt), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    interrupt.cancel()
        finally:
            for _, f in sent:
                if not f.done():
                    f.cancel()

    def _drop_orphan(self, sent: list[tuple[_Row, asyncio.Future[Any]]]) -> None:
        """publish_async registers its future before nc.publish runs: when that raises, the future is never resolved
        and holds a place in the pending limit forever. It is the last one registered: cancel it."""
        futures = getattr(self.js, "_publish_async_futures", None)
        if not futures:
            return
        last = next(reversed(futures.values()))
        if not last.done() and all(last is not f for _, f in sent):
            last.cancel()

    async def _mark_pg(self, conn: Any, statements: _PgStatements, batch: _Batch) -> None:
        """The marks of a batch on the relay's asyncpg connection: one UPDATE for every published row."""
        now = datetime.now(UTC)
        if batch.done:
            positions = [r.position for r in batch.done]
            await conn.execute(statements.published.sql, *statements.published.args(now=now, positions=positions))
        for row, reason in batch.parked:
            args = statements.parked.args(now=now, reason=_clean(reason), row_position=row.position)
            await conn.execute(statements.parked.sql, *args)
        if batch.held is not None and batch.outage is not None:
            args = statements.held.args(reason=_clean(str(batch.outage)), row_position=batch.held.position)
            await conn.execute(statements.held.sql, *args)

    async def _mark(self, conn: AsyncConnection, batch: _Batch) -> None:
        o = self.tables.outbox
        now = datetime.now(UTC)
        done_positions = [r.position for r in batch.done]
        for i in range(0, len(done_positions), 1000):
            await conn.execute(update(o).where(o.c.position.in_(done_positions[i : i + 1000])).values(published_at=now))
        for row, reason in batch.parked:
            await conn.execute(_park(o), {"row_position": row.position, "now": now, "reason": _clean(reason)})
        if batch.held is not None and batch.outage is not None:
            await conn.execute(_hold(o), {"row_position": batch.held.position, "reason": _clean(str(batch.outage))})

    def _account(self, batch: _Batch) -> None:
        """Metrics and the one log line per parked row, once the marks are committed."""
        published = Counter(r.type for r in batch.done)  # one labels() lookup per type, not per row
        for event_type, count in published.items():
            metrics.events_published.labels(type=event_type).inc(count)
        for row, reason in batch.parked:
            metrics.publish_failures.labels(cause=POISON).inc()
            log.error(
                "outbox relay: parked event %s (%s, subject %s, outbox position %s): %s. It can never be "
                "published as it is; the relay goes on with the rest. Fix the cause, then "
                "POST /admin/outbox/%s/retry",
                row.event_id,
                row.type,
                row.subject,
                row.position,
                reason,
                row.event_id,
                extra={"event_id": row.event_id, "outbox_position": row.position},
            )

    async def _cleanup(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_cleanup < 60:
            return
        self._last_cleanup = loop.time()
        o = self.tables.outbox
        async with _database("deleting published rows past retention"):
            async with self.engine.begin() as conn:
                await conn.execute(delete(o).where(o.c.published_at < datetime.now(UTC) - self.retention))

    # --- LISTEN (PostgreSQL) -----------------------------------------------------------------------------------------

    async def _connection(self) -> Any:
        """PostgreSQL: the relay's own asyncpg connection, opened when there is none (or it was lost), LISTENing on
        the service's channel so that commits in other processes (other instances, the CLI) wake the relay."""
        conn = self._pg
        if conn is not None and not conn.is_closed():
            return conn
        self._drop_connection()
        import asyncpg

        url = asyncpg_dsn(self.engine.url.render_as_string(hide_password=False))
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        try:
            await conn.execute("SET synchronous_commit TO off")  # marks need not be durable (module doc)
            await conn.add_listener(notify_channel(self.service), self._notified)
        except BaseException:
            conn.terminate()
            raise
        self._pg = conn
        if self._listen_warned:
            log.info("outbox relay: LISTEN %s again", notify_channel(self.service))
            self._listen_warned = False
        return conn

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _ensure_listener(self) -> None:
        """On PostgreSQL, wake on NOTIFY from any process; SQLite relies on wake(). A connection lost with the database
        is opened again before the relay waits (at most every LISTEN_RETRY seconds); meanwhile it polls."""
        if self._sqlite or (self._pg is not None and not self._pg.is_closed()):
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_listen:
            return
        self._next_listen = loop.time() + LISTEN_RETRY
        try:
            await self._connection()
        except Exception as exc:
            if not self._listen_warned:
                log.warning(
                    "outbox relay: LISTEN unavailable, polling every %.1fs: %s", self.poll_interval, describe(exc)
                )
                self._listen_warned = True

    def _drop_connection(self) -> None:
        """Forget a connection that failed (or went away): the next batch opens a new one."""
        conn, self._pg = self._pg, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _close_connection(self) -> None:
        conn, self._pg = self._pg, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()


def _retrieve(future: asyncio.Future) -> None:
    """Read a cancelled gather's outcome, so that asyncio does not log "exception was never retrieved"."""
    try:
        future.exception()
    except BaseException:
        pass


_SQLITE_LOCKS: dict[str, asyncio.Lock] = {}


def _sqlite_lock(engine: AsyncEngine) -> asyncio.Lock:
    key = str(engine.url)
    if key not in _SQLITE_LOCKS:
        _SQLITE_LOCKS[key] = asyncio.Lock()
    return _SQLITE_LOCKS[key]


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
