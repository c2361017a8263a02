"""The unit of work the handlers are written against, and the one the delivery worker's commit point uses.

Handlers take any `UnitOfWork`: the runtime's (netvaerk_shared.uow.UnitOfWork, on its own transaction or joined to
the event consumer's), a unit test's FakeUnitOfWork, or `CommitPoint` below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

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

    It holds its own connection and transaction and runs the handler's unit of work joined to them, so that what
    happens between the COMMIT and the mailer's final "." is as little as it can be:

    - On PostgreSQL, commit() returns as soon as the COMMIT is on its way to the server, not when the server has
      answered, so the mailer writes the "." in the same breath: a process killed between those two writes is the only
      way left to lose a message, and one killed after both still commits (the server has the COMMIT) and delivers
      (the SMTP server has the "."). The commit's outcome is awaited afterwards, with `finished()`.
    - On SQLite the commit is local and has finished when commit() returns; the connection goes back to the pool (a
      rollback on SQLite's thread) only in `finished()`, after the ".".
    """

    def __init__(
        self,
        engine: AsyncEngine,
        joined: Callable[[AsyncConnection], shared_uow.UnitOfWork[Repository]],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._joined = joined
        self._on_commit = on_commit
        self._conn: AsyncConnection | None = None
        self._trans: AsyncTransaction | None = None
        self._uow: shared_uow.UnitOfWork[Repository] | None = None
        self._committing: asyncio.Task[None] | None = None  # the COMMIT under way (PostgreSQL), once on the wire
        self._committed = False

    @property
    def repo(self) -> Repository:
        assert self._uow is not None, "CommitPoint used outside `async with`"
        return self._uow.repo

    @property
    def clock(self) -> shared_uow.Clock:
        assert self._uow is not None, "CommitPoint used outside `async with`"
        return self._uow.clock

    async def __aenter__(self) -> CommitPoint:
        self._conn = await self._engine.connect()
        self._trans = await self._conn.begin()
        self._uow = self._joined(self._conn)
        await self._uow.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._committing is not None or self._committed:
            return  # committed or committing: finished() awaits the outcome and gives the connection back
        assert self._uow is not None
        try:
            await self._uow.__aexit__(exc_type, exc, tb)  # raises LeftWithoutCommit when left without commit()
        finally:
            await self._release(commit_failed=None)

    async def commit(self) -> None:
        assert self._uow is not None and self._trans is not None and self._conn is not None
        await self._uow.commit()  # "sent" is written already; this adds the outbox rows, on our transaction
        await self._uow.__aexit__(None, None, None)
        if is_sqlite(self._conn):
            await self._trans.commit()
            self._committed = True
            return
        on_the_wire: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def committing(_: Connection) -> None:
            # SQLAlchemy calls this just before it hands COMMIT to asyncpg, which writes it to the socket before the
            # commit task first waits; the coroutine waiting below resumes only after that.
            if not on_the_wire.done():
                on_the_wire.set_result(None)

        event.listen(self._conn.sync_connection, "commit", committing, once=True)
        self._committing = asyncio.ensure_future(self._trans.commit())
        await asyncio.wait((self._committing, on_the_wire), return_when=asyncio.FIRST_COMPLETED)
        if self._committing.done():
            # Failed before COMMIT or at it: raised here, so no "." follows. Or done.
            await self.finished()

    async def finished(self) -> None:
        """Await the outcome of a commit under way and give the connection back (raises when the commit failed)."""
        committing, self._committing = self._committing, None
        if committing is not None:
            try:
                await committing
            except BaseException as exc:
                await self._release(commit_failed=exc)
                raise
            self._committed = True
        if self._conn is not None:
            await self._release(commit_failed=None)

    async def _release(self, *, commit_failed: BaseException | None) -> None:
        conn, trans, self._conn, self._trans = self._conn, self._trans, None, None
        if conn is None:
            return
        try:
            if trans is not None and trans.is_active and not self._committed:
                await trans.rollback()
        finally:
            await conn.close()
        if self._committed and commit_failed is None and self._on_commit is not None:
            self._on_commit()
