"""The messaging side of one service process: NATS connection, its stream, the outbox relay and the consumers."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from . import metrics, topology
from .consumer import EventConsumer, Subscription
from .db import is_sqlite
from .messaging import MessagingTables
from .migrate import upgrade
from .outbox import DEFAULT_MAX_EVENT_BYTES, HEADER_ROOM, FaultHook, Relay, backlog, parked
from .settings import ServiceSettings
from .uow import Clock, OutboxTap, Translate, UnitOfWork, utc_now

log = logging.getLogger(__name__)
STOP_TIMEOUT_SECONDS = 10.0


class Worker(Protocol):
    """A service's own background loop (e.g. email delivery), declared on the runtime with `add_worker`: started with
    the messaging, restarted should it crash, and woken after each consumer commit."""

    name: str

    async def run(self, stop: asyncio.Event) -> None: ...

    def wake(self) -> None: ...


class ServiceRuntime:
    """Built by the service's bootstrap, its one composition root, with everything injected: the engine, the
    repositories and translator its units of work use, the event subscriptions, and then its workers and gauges."""

    # Test-only: the fault hook every relay of this process is given (see Relay's fault_hook). Nothing in the
    # services sets it; netvaerk_testing.faulty_service does, before it starts uvicorn, for the end-to-end fault tests.
    relay_fault_hook: ClassVar[FaultHook | None] = None

    def __init__(
        self,
        *,
        service: str,
        settings: ServiceSettings,
        engine: AsyncEngine,
        tables: MessagingTables,
        repositories: Callable[[Any], Any],
        translate: Translate,
        subscriptions: Sequence[Subscription[Any]] = (),
        migrations_dir: Path | None = None,
        clock: Clock = utc_now,
        outbox_tap: OutboxTap | None = None,
    ) -> None:
        self.service = service
        self.outbox_tap = outbox_tap  # see uow.OutboxTap: every unit of work of this runtime calls it
        self.repositories = repositories
        self.translate = translate
        self.clock = clock
        self.settings = settings
        self.engine = engine
        self.tables = tables
        self.migrations_dir = migrations_dir
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.relay: Relay | None = None
        self._server_max_payload: int | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._erasures: set[asyncio.Task[None]] = set()
        self.consumers: dict[str, EventConsumer] = {}
        self.workers: dict[str, Worker] = {}
        self._gauges: list[Callable[[], Awaitable[None]]] = []
        for sub in subscriptions:
            consumer = EventConsumer(
                service=service,
                subscription=sub,
                engine=engine,
                tables=tables,
                max_deliver=settings.consumer_max_deliver,
                batch_size=settings.consumer_batch_size,
                on_commit=self._after_erasure_commit if _is_erasure(sub) else self._after_consumer_commit,
                unit_of_work=self.uow_on,
            )
            self.consumers[consumer.name] = consumer

    def uow(self) -> UnitOfWork:
        """A unit of work in a transaction of its own (HTTP routes, workers)."""
        return self._unit_of_work(conn=None, on_commit=self.wake_relay)

    def uow_on(self, conn: Any) -> UnitOfWork:
        """A unit of work joined to a transaction the caller holds (the event consumer's batch, a replay); the
        caller commits and wakes the relay."""
        return self._unit_of_work(conn=conn, on_commit=None)

    def _unit_of_work(self, *, conn: Any, on_commit: Callable[[], None] | None) -> UnitOfWork:
        # With a relay in this process the in-process wake is enough (and saves a round trip per change); an
        # instance that runs no relay (RUN_RELAY=false) wakes the others with NOTIFY.
        return UnitOfWork(
            self.engine,
            self.tables,
            self.service,
            repositories=self.repositories,
            translate=self.translate,
            clock=self.clock,
            on_commit=on_commit,
            notify=self.relay is None,
            max_event_bytes=self.max_event_bytes(),
            conn=conn,
            outbox_tap=self.outbox_tap,
        )

    def max_event_bytes(self) -> int:
        """The largest event this service may write: the setting, else what the connected server takes."""
        if self.settings.max_event_bytes > 0:
            return self.settings.max_event_bytes
        server = getattr(self.nc, "max_payload", None) if self.nc is not None else None
        if server:
            self._server_max_payload = int(server)
        known = self._server_max_payload
        return (known - HEADER_ROOM) if known else DEFAULT_MAX_EVENT_BYTES

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def add_gauges(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """A service's own gauges, refreshed on every /metrics scrape with the shared ones."""
        self._gauges.append(refresh)

    def add_worker(self, worker: Worker) -> None:
        """Declare a background loop of the service's own (see Worker); `runtime.workers[name]` finds it again."""
        self.workers[worker.name] = worker

    def _after_consumer_commit(self) -> None:
        self.wake_relay()
        for worker in self.workers.values():
            worker.wake()

    def _after_erasure_commit(self) -> None:
        """A member's erasure committed (every service hears MemberErased, members its own notice): on SQLite the
        write-ahead log still holds the pages as they were before it, so it is checkpointed and truncated."""
        self._after_consumer_commit()
        if is_sqlite(self.engine):
            task = asyncio.create_task(self._forget_on_disk(), name=f"{self.service}-forget-on-disk")
            self._erasures.add(task)
            task.add_done_callback(self._erasures.discard)

    async def _forget_on_disk(self) -> None:
        from .gdpr import forget_on_disk

        try:
            await forget_on_disk(self.engine)
        except Exception as exc:  # the next erasure, or SQLite's own checkpoints, take it up
            log.warning("checkpoint after an erasure failed: %s", exc)

    async def start(self) -> None:
        if self.settings.auto_migrate and self.migrations_dir is not None:
            await upgrade(self.engine, self.migrations_dir)
        self._tasks.append(asyncio.create_task(self._messaging(), name=f"{self.service}-messaging"))

    async def _messaging(self) -> None:
        # Keep trying: the HTTP side serves (and /readyz says "nats unreachable") while NATS is away.
        delay = 0.2
        nc: Client | None = None
        while not self._stop.is_set():
            try:
                nc = self.nc = await topology.connect(
                    self.settings.nats_url,
                    user=self.settings.nats_user,
                    password=self.settings.nats_password,
                    name=self.service,
                    on_reconnect=self._nats_reconnected,
                    on_error=self._nats_error,
                )
                if delay > 0.2:
                    log.warning("NATS reachable: connected")
                break
            except Exception as exc:
                # one line when it starts, not one per attempt: the HTTP side serves meanwhile
                (log.warning if delay == 0.2 else log.debug)(
                    "NATS not reachable yet (%s: %s); retrying with backoff up to 5 s",
                    type(exc).__name__,
                    str(exc) or "no message",
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if nc is None or self._stop.is_set():
            return
        js = self.js = nc.jetstream()
        while not self._stop.is_set():  # every service publishes into a stream of its own
            try:
                await topology.ensure_stream(js, self.service, replicas=self.settings.stream_replicas)
                break
            except Exception as exc:
                log.warning("could not declare stream %s: %s", topology.stream_for(self.service), exc)
                await asyncio.sleep(1.0)
        if self.settings.run_relay:
            relay = self.relay = Relay(
                engine=self.engine,
                tables=self.tables,
                js=js,
                nc=nc,
                service=self.service,
                batch_size=self.settings.relay_batch_size,
                fault_hook=ServiceRuntime.relay_fault_hook,  # read off the class: a plain function, not a method
                ensure_stream=self._declare_stream,
            )
            self._tasks.append(asyncio.create_task(self._guard("relay", functools.partial(relay.run, self._stop))))
        if self.settings.run_consumers:
            for consumer in self.consumers.values():
                run = functools.partial(consumer.run, js, self._stop)
                self._tasks.append(asyncio.create_task(self._guard(consumer.name, run)))
        for name, worker in self.workers.items():
            self._tasks.append(asyncio.create_task(self._guard(name, functools.partial(worker.run, self._stop))))

    def _nats_reconnected(self) -> None:
        """NATS is back: the relay ends its backoff now (and stops waiting for PubAcks the old connection lost)."""
        if self.relay is not None:
            self.relay.nats_reconnected()

    def _nats_error(self, exc: Exception) -> None:
        """A permissions violation names a subject this service may not publish to: the relay parks those rows."""
        if self.relay is not None:
            self.relay.nats_error(exc)

    async def _declare_stream(self) -> None:
        """The relay calls this when no stream answered for this service's subjects (NATS lost its store)."""
        if self.js is not None:  # always so: the relay is made after the JetStream context
            await topology.ensure_stream(self.js, self.service, replicas=self.settings.stream_replicas)

    async def _guard(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """A background loop that dies is logged and restarted (`run()` again), never silently lost."""
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed; restarting in 1s", name)
                await asyncio.sleep(1.0)
                if self._stop.is_set():
                    return

    async def stop(self) -> None:
        self._stop.set()
        if self.relay is not None:
            self.relay.wake()
        for task in self._tasks:
            task.cancel()
        # bounded: a task stuck in a database or NATS call it cannot leave must not hold the process (or a test's
        # lifespan) past its shutdown; whatever it had not committed is redone by the next process
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_SECONDS)
            if pending:
                log.warning("stop: %d background task(s) did not end within %ss", len(pending), STOP_TIMEOUT_SECONDS)
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.close(), 2)
            except Exception:
                pass
        try:
            await asyncio.wait_for(self.engine.dispose(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("stop: the database pool did not close within %ss", STOP_TIMEOUT_SECONDS)

    async def readiness(self) -> dict[str, bool]:
        db_ok = True
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2)
        except Exception:
            db_ok = False
        nats_ok = bool(self.nc is not None and self.nc.is_connected)
        checks = {"database": db_ok, "nats": nats_ok}
        if self.settings.run_consumers and self.consumers:
            # a consumer that cannot subscribe (its stream missing, permissions) makes the service unable to work
            checks["consumers"] = all(c.ready for c in self.consumers.values())
        return checks

    async def refresh_gauges(self) -> None:
        try:
            count, age = await backlog(self.engine, self.tables)
            metrics.outbox_backlog.set(count)
            metrics.outbox_oldest_age.set(age)
            metrics.outbox_parked.set((await parked(self.engine, self.tables, limit=0))[0])
            d = self.tables.dead_letters
            async with self.engine.connect() as conn:
                open_ = (await conn.execute(select(func.count()).where(d.c.replayed_at.is_(None)))).scalar_one()
            metrics.dead_letters_open.set(open_)
            for refresh in self._gauges:
                await refresh()
        except Exception as exc:
            log.warning("could not refresh gauges (database: %s: %s)", type(exc).__name__, exc)


def _is_erasure(sub: Subscription[Any]) -> bool:
    from .contracts.members import MemberErased

    return sub.contract is MemberErased
