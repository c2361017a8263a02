"""A unit of work over one database transaction: the change and its outbox rows commit together, or neither does."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .contracts import EventData
from .envelope import make_event
from .messaging import MessagingTables
from .outbox import DEFAULT_MAX_EVENT_BYTES, enqueue, notify_channel


async def commit_with_events(uow, aggregates, translate) -> None:
    """Publish every domain event the aggregates recorded (as `translate(event, aggregate)` contracts), then commit."""
    for aggregate in aggregates:
        while aggregate.events:
            uow.publish(translate(aggregate.events.pop(0), aggregate))
    await uow.commit()


class UnitOfWork:
    """`async with uow:` opens a transaction; `uow.publish(event_data)` queues an integration event; `commit()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        tables: MessagingTables,
        service: str,
        on_commit: Callable[[], None] | None = None,
        notify: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.engine = engine
        self.max_event_bytes = max_event_bytes
        self.notify = notify  # NOTIFY relays in other processes; needless when on_commit wakes one in this process
        self.tables = tables
        self.service = service
        self.on_commit = on_commit
        self.conn: AsyncConnection | None = None
        self._pending: list[EventData] = []
        self._causation: str | None = None

    async def __aenter__(self) -> UnitOfWork:
        self._ctx = self.engine.begin()
        self.conn = await self._ctx.__aenter__()
        self._pending = []
        self._committed = False
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._committed:
            exc_type, exc = RuntimeError, RuntimeError("unit of work left without commit()")
            await self._ctx.__aexit__(exc_type, exc, None)
            raise exc
        if exc_type is not None:
            await self._ctx.__aexit__(exc_type, exc, tb)

    def publish(self, *events: EventData, causationid: str | None = None) -> None:
        self._pending.extend(events)
        self._causation = causationid or self._causation

    async def commit(self) -> None:
        assert self.conn is not None
        if self._pending:
            cloud = [make_event(e, causationid=self._causation) for e in self._pending]
            await enqueue(
                self.conn,
                self.tables,
                cloud,
                [e.nats_subject() for e in self._pending],
                notify=notify_channel(self.service) if self.notify else None,
                max_bytes=self.max_event_bytes,
            )
        await self._ctx.__aexit__(None, None, None)
        self._committed = True
        if self._pending and self.on_commit is not None:
            self.on_commit()
