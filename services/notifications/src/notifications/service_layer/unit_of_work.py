"""The unit of work the handlers are written against, and the one the delivery worker's commit point uses.

Handlers take any `UnitOfWork`: the runtime's (netvaerk_shared.uow.UnitOfWork, on its own transaction or joined to
the event consumer's), a unit test's FakeUnitOfWork, or `CommitPoint` below.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection

from netvaerk_shared import uow as shared_uow
from netvaerk_shared.db import is_sqlite

from ..adapters.repository import Repository


class UnitOfWork(Protocol):
    @property
    def repo(self) -> Repository: ...

    @property
    def clock(self) -> shared_uow.Clock: ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...


class CommitPoint:
    """The unit of work of the two-phase send's commit point (see entrypoints/worker.py).

    Its commit() returns as soon as the COMMIT is on its way to PostgreSQL, not when PostgreSQL has answered, so the
    mailer writes the final "." in the same breath: a process killed between those two writes is the only way left
    to lose a message, and one killed after both still commits (the server has the COMMIT) and delivers (the SMTP
    server has the "."). The commit's outcome is awaited afterwards, with `finished()`. On SQLite the commit is local
    and has finished when commit() returns.
    """

    def __init__(self, uow: shared_uow.UnitOfWork[Repository]) -> None:
        self._uow = uow
        self._committing: asyncio.Task[None] | None = None  # the commit under way, once COMMIT is on the wire

    @property
    def repo(self) -> Repository:
        return self._uow.repo

    @property
    def clock(self) -> shared_uow.Clock:
        return self._uow.clock

    async def __aenter__(self) -> CommitPoint:
        await self._uow.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._committing is None:
            await self._uow.__aexit__(exc_type, exc, tb)
        # else the commit is under way: finished() awaits it and leaves the unit of work

    async def commit(self) -> None:
        conn = self._uow.conn
        if conn is None or is_sqlite(conn):
            await self._uow.commit()
            return
        on_the_wire: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def committing(_: Connection) -> None:
            # SQLAlchemy calls this just before it hands COMMIT to asyncpg, which writes it to the socket before the
            # commit task first waits; the coroutine waiting below resumes only after that.
            if not on_the_wire.done():
                on_the_wire.set_result(None)

        event.listen(conn.sync_connection, "commit", committing, once=True)
        self._committing = asyncio.ensure_future(self._uow.commit())  # the outbox rows, then COMMIT
        await asyncio.wait((self._committing, on_the_wire), return_when=asyncio.FIRST_COMPLETED)
        if self._committing.done():
            # Failed before COMMIT (an outbox row refused, say) or at it: raised here, so no "." follows. Or done.
            await self.finished()

    async def finished(self) -> None:
        """Await the outcome of a commit under way and leave the unit of work (raises when the commit failed)."""
        committing, self._committing = self._committing, None
        if committing is None:
            return
        try:
            await committing
        except BaseException as exc:
            await self._uow.__aexit__(type(exc), exc, exc.__traceback__)  # rolls back what is left to roll back
            raise
        await self._uow.__aexit__(None, None, None)
