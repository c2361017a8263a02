"""The unit of work: one database transaction, the service's repositories on it, and the events its aggregates record.

`async with uow:` opens the transaction (or joins one: the event consumer's batch) and builds the repositories on
its connection (`uow.repo`). `await uow.commit()` takes the events every aggregate the repositories handed out or
saved has recorded (`repo.seen`, each aggregate's `events` list), translates them into v1 contracts with the service's
translator and writes them to the outbox in the same transaction, then commits. Leaving the block without commit()
rolls back.

A command handler is written once against this interface, `handle(cmd, uow)`, whether an HTTP route or an event
subscriber called it:

    async with uow:
        member = await uow.repo.get_member(cmd.member_id)
        member.join(group, cmd.role, uow.clock())
        await uow.repo.add_membership(...)
        await uow.commit()

Joined to the consumer's transaction, commit() writes the outbox rows and leaves committing (and waking the relay)
to the consumer, which also records the event in its inbox: the effect, its events and "this event was handled"
commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import tracing
from .contracts import EventData
from .envelope import CloudEvent, make_event
from .messaging import MessagingTables
from .outbox import DEFAULT_MAX_EVENT_BYTES, enqueue, notify_channel


class Aggregate(Protocol):
    events: list[Any]  # domain events recorded and not yet published


class Repositories(Protocol):
    """What a service's repository (or bundle of repositories) offers the unit of work: the aggregates it saw."""

    @property
    def seen(self) -> Iterable[Aggregate]: ...


R = TypeVar("R", bound=Repositories)
Translate = Callable[[Any, Any], EventData]  # (domain event, the aggregate that recorded it) -> contract
Clock = Callable[[], datetime]
# Called with the events just written to the outbox, on the same connection and in the same transaction: a service
# that must do more with its own events, atomically with them (notifications: its webhook deliveries), does it here.
OutboxTap = Callable[[AsyncConnection, Sequence[CloudEvent]], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class LeftWithoutCommit(RuntimeError):
    """A unit of work was left without commit() and without an exception: its changes were rolled back."""


class AbstractUnitOfWork(Generic[R]):
    """Collecting the aggregates' events is the same for the real unit of work and a unit test's fake; only where
    the transaction and the outbox are differs (`_begin`, `_write`, `_commit`, `_rollback`)."""

    repo: R

    def __init__(self, *, repositories: Callable[[Any], R], translate: Translate, clock: Clock = utc_now) -> None:
        self._repositories = repositories
        self._translate = translate
        self.clock = clock
        self._active = False

    async def __aenter__(self) -> AbstractUnitOfWork[R]:
        if self._active:
            raise RuntimeError("this unit of work is already open")
        handle = await self._begin()
        self.repo = self._repositories(handle)
        self._active, self._committed = True, False
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active = False
        if exc is not None:
            await self._rollback(exc)
            return
        if not self._committed:
            left = LeftWithoutCommit("unit of work left without commit(); its changes were rolled back")
            await self._rollback(left)
            raise left

    def collect(self) -> list[EventData]:
        """Take the events the aggregates recorded, as contracts, in the order they were recorded per aggregate."""
        out: list[EventData] = []
        for aggregate in self.repo.seen:
            while aggregate.events:
                out.append(self._translate(aggregate.events.pop(0), aggregate))
        return out

    async def commit(self) -> None:
        if not self._active:
            raise RuntimeError("commit() outside `async with uow:`")
        events = self.collect()
        if events:
            await self._write(events)
        await self._commit(bool(events))
        self._committed = True

    # -- where the transaction is ----------------------------------------------------------------------------------
    async def _begin(self) -> Any:
        raise NotImplementedError

    async def _write(self, events: list[EventData]) -> None:
        raise NotImplementedError

    async def _commit(self, published: bool) -> None:
        raise NotImplementedError

    async def _rollback(self, exc: BaseException) -> None:
        raise NotImplementedError


class UnitOfWork(AbstractUnitOfWork[R]):
    """A transaction on `engine` (or, with `conn`, joined to the caller's: then commit() writes the outbox rows and the
    caller commits). Built by the service's runtime (`runtime.uow()`, `runtime.uow_on(conn)`), never by hand."""

    def __init__(
        self,
        engine: AsyncEngine,
        tables: MessagingTables,
        service: str,
        *,
        repositories: Callable[[AsyncConnection], R],
        translate: Translate,
        clock: Clock = utc_now,
        on_commit: Callable[[], None] | None = None,
        notify: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        conn: AsyncConnection | None = None,
        outbox_tap: OutboxTap | None = None,
    ) -> None:
        super().__init__(repositories=repositories, translate=translate, clock=clock)
        self.outbox_tap = outbox_tap
        self.engine = engine
        self.tables = tables
        self.service = service
        self.on_commit = on_commit
        self.notify = notify  # NOTIFY relays in other processes; needless when on_commit wakes one in this process
        self.max_event_bytes = max_event_bytes
        self._joined = conn
        self.conn: AsyncConnection | None = conn
        self._ctx: Any = None

    async def _begin(self) -> AsyncConnection:
        if self._joined is not None:
            self.conn = self._joined
        else:
            self._ctx = self.engine.begin()
            self.conn = await self._ctx.__aenter__()
        return self.conn

    async def _write(self, events: list[EventData]) -> None:
        assert self.conn is not None
        causation = tracing.current_event_id.get()  # events caused by a consumed event name it
        written = [make_event(e, causationid=causation) for e in events]
        await enqueue(
            self.conn,
            self.tables,
            written,
            [e.nats_subject() for e in events],
            notify=notify_channel(self.service) if self.notify else None,
            max_bytes=self.max_event_bytes,
        )
        if self.outbox_tap is not None:
            await self.outbox_tap(self.conn, written)

    async def _commit(self, published: bool) -> None:
        if self._joined is not None:
            return  # the consumer commits its batch, then wakes the relay
        # taken before the await: a commit that fails or is cancelled half-way has already left the transaction's
        # context (it rolled back and returned the connection), so _rollback must not exit it a second time
        ctx, self._ctx = self._ctx, None
        await ctx.__aexit__(None, None, None)
        if published and self.on_commit is not None:
            self.on_commit()

    async def _rollback(self, exc: BaseException) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            await ctx.__aexit__(type(exc), exc, exc.__traceback__)
        # joined: the consumer rolls back the event's savepoint (or its batch) when the handler raises
