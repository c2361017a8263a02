"""Transactional outbox: events are written with the change that caused them; a relay publishes them to JetStream.

The relay takes unpublished rows in order, publishes each with `Nats-Msg-Id` = event id, waits for every PubAck, and
only then marks them published. A crash between publish and mark republishes the rows: JetStream drops the duplicate
inside its window, and every consumer's inbox drops it after that. On PostgreSQL the rows are taken with
FOR UPDATE SKIP LOCKED, so several relays can run side by side without double work.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import metrics
from .db import asyncpg_dsn, is_sqlite
from .envelope import CONTENT_TYPE, CloudEvent, to_bytes
from .messaging import MessagingTables

log = logging.getLogger(__name__)


_INSERTS: dict = {}


def _insert(table):
    """One INSERT construct per table, built once (cheaper than building it for every change)."""
    if table not in _INSERTS:
        _INSERTS[table] = insert(table)
    return _INSERTS[table]


HEADER_ROOM = 4096  # bytes kept free for the NATS headers (Nats-Msg-Id, Content-Type) within max_payload
DEFAULT_MAX_EVENT_BYTES = (1 << 20) - HEADER_ROOM  # NATS's default max_payload, until a server says otherwise


class EventTooLarge(Exception):
    """An event that would not fit in one NATS message: the change is refused before anything commits, because a
    row that can never be published must never enter the outbox."""

    def __init__(self, event_type: str, size: int, limit: int, field: str | None) -> None:
        where = f" (mostly the field {field!r})" if field else ""
        super().__init__(f"The change would make a {event_type} event of {size} bytes{where}; "
                         f"at most {limit} bytes fit in one message. Send less text.")
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


async def enqueue(conn: AsyncConnection, tables: MessagingTables, events: Sequence[CloudEvent], subjects: Sequence[str],
                  *, notify: str | None = None, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
    """Add events to the outbox inside the caller's transaction. `notify`: a PostgreSQL channel to wake relays on commit.
    Raises EventTooLarge, before writing anything, for an event of more than `max_bytes`."""
    if not events:
        return
    now = datetime.now(UTC)
    rows = [{"event_id": e.id, "subject": s, "type": e.type, "body": to_bytes(e), "created_at": now, "attempts": 0}
            for e, s in zip(events, subjects, strict=True)]
    for row in rows:
        if len(row["body"]) > max_bytes:
            raise EventTooLarge(row["type"], len(row["body"]), max_bytes, _largest_field(row["body"]))
    await conn.execute(_insert(tables.outbox), rows[0] if len(rows) == 1 else rows)
    if notify and not is_sqlite(conn):
        await conn.exec_driver_sql(f"NOTIFY {notify}")


async def backlog(engine: AsyncEngine, tables: MessagingTables) -> tuple[int, float]:
    """(rows not yet published, age in seconds of the oldest of them)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.min(tables.outbox.c.created_at)).where(tables.outbox.c.published_at.is_(None))
            )
        ).one()
    count, oldest = row
    if oldest is None:
        return int(count), 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (datetime.now(UTC) - oldest).total_seconds())


FaultHook = Callable[[str], Awaitable[None] | None]


class Relay:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        tables: MessagingTables,
        js: JetStreamContext,
        service: str,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        publish_timeout: float = 5.0,
        retention: timedelta = timedelta(hours=24),
        fault_hook: FaultHook | None = None,
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
        self._wake = asyncio.Event()
        self._sqlite = is_sqlite(engine)
        self._last_cleanup = 0.0
        self._select_stmt = None

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows in this process."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self._listen()
        failures = 0
        try:
            while not stop.is_set():
                try:
                    published = await self.publish_batch()
                    failures = 0
                    await self._cleanup()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    metrics.publish_failures.inc()
                    delay = min(30.0, 0.2 * 2 ** min(failures, 8)) * (0.5 + random.random() / 2)
                    log.warning("outbox relay: publish failed, retrying in %.1fs: %s", delay, exc)
                    await _sleep_or(stop, delay)
                    continue
                if published >= self.batch_size:
                    continue  # more waiting: go again at once
                self._wake.clear()
                if published:
                    continue  # a wake may have come in while we published: look once more
                await _wait_any(stop, self._wake, self.poll_interval)
        finally:
            if listener is not None:
                await listener.close()

    async def publish_batch(self) -> int:
        """Publish up to batch_size rows. Returns how many were published (and marked)."""
        if self._sqlite:
            # SQLite has no SKIP LOCKED: relays in one process take turns; read, publish outside any transaction
            # (so HTTP requests are not held up while NATS is slow), then mark. One process per SQLite file.
            async with _sqlite_lock(self.engine):
                async with self.engine.connect() as conn:
                    rows = (await conn.execute(self._select())).all()
                if not rows:
                    return 0
                done, error = await self._publish(rows)
                async with self.engine.begin() as conn:
                    await self._mark(conn, rows, done, error)
            if error is not None:
                raise error
            return len(done)
        async with self.engine.begin() as conn:
            rows = (await conn.execute(self._select().with_for_update(skip_locked=True))).all()
            if not rows:
                return 0
            done, error = await self._publish(rows)
            await self._mark(conn, rows, done, error)
        if error is not None:
            raise error
        return len(done)

    def _select(self):
        if self._select_stmt is None:  # built once: the relay runs it on every wake
            o = self.tables.outbox
            self._select_stmt = (
                select(o.c.position, o.c.event_id, o.c.subject, o.c.type, o.c.body)
                .where(o.c.published_at.is_(None))
                .order_by(o.c.position)
                .limit(self.batch_size)
            )
        return self._select_stmt

    async def _publish(self, rows) -> tuple[list, Exception | None]:
        futures = []
        error: Exception | None = None
        try:
            for row in rows:
                # no wait_stall: nats-py would wrap every message in its own wait_for (7x slower); a batch stays far
                # below its pending limit, and the gather below is bounded by publish_timeout
                fut = await self.js.publish_async(
                    row.subject,
                    row.body,
                    headers={"Nats-Msg-Id": row.event_id, "Content-Type": CONTENT_TYPE},
                )
                futures.append((row, fut))
        except Exception as exc:  # connection lost while sending
            error = exc
        done = []
        if futures:
            results = await asyncio.wait_for(
                asyncio.gather(*(f for _, f in futures), return_exceptions=True), self.publish_timeout
            )
            for (row, _), result in zip(futures, results, strict=True):
                if isinstance(result, BaseException):
                    error = error or (result if isinstance(result, Exception) else RuntimeError(str(result)))
                else:
                    done.append(row)
        if self.fault_hook is not None and done:
            outcome = self.fault_hook("after_publish")
            if asyncio.iscoroutine(outcome):
                await outcome
        return done, error

    async def _mark(self, conn: AsyncConnection, rows, done, error) -> None:
        o = self.tables.outbox
        now = datetime.now(UTC)
        done_positions = [r.position for r in done]
        for i in range(0, len(done_positions), 1000):
            await conn.execute(update(o).where(o.c.position.in_(done_positions[i:i + 1000])).values(published_at=now))
        if error is not None:
            failed = [r.position for r in rows if r.position not in set(done_positions)]
            if failed:
                await conn.execute(
                    update(o).where(o.c.position.in_(failed[:1000]))
                    .values(attempts=o.c.attempts + 1, last_error=str(error)[:2000])
                )
        for r in done:
            metrics.events_published.labels(type=r.type).inc()

    async def _cleanup(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_cleanup < 60:
            return
        self._last_cleanup = loop.time()
        o = self.tables.outbox
        async with self.engine.begin() as conn:
            await conn.execute(delete(o).where(o.c.published_at < datetime.now(UTC) - self.retention))

    async def _listen(self):
        """On PostgreSQL, wake on NOTIFY from any process (other instances, the CLI); SQLite relies on wake()."""
        if self._sqlite:
            return None
        try:
            import asyncpg

            conn = await asyncpg.connect(asyncpg_dsn(self.engine.url.render_as_string(hide_password=False)))
            await conn.add_listener(notify_channel(self.service), lambda *_: self._wake.set())
            return conn
        except Exception as exc:
            log.warning("outbox relay: LISTEN unavailable, polling every %.1fs: %s", self.poll_interval, exc)
            return None


_SQLITE_LOCKS: dict[str, asyncio.Lock] = {}


def _sqlite_lock(engine: AsyncEngine) -> asyncio.Lock:
    key = str(engine.url)
    if key not in _SQLITE_LOCKS:
        _SQLITE_LOCKS[key] = asyncio.Lock()
    return _SQLITE_LOCKS[key]


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
