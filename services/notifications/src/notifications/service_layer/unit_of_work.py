"""The unit of work the handlers are written against, and the one the delivery worker's commit point uses.

Handlers take any `UnitOfWork`: the runtime's (netvaerk_shared.uow.UnitOfWork, on its own transaction or joined to
the event consumer's), a unit test's FakeUnitOfWork, or `CommitPoint` below.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
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
    - On SQLite the database is this process, so the window is ours to close. The COMMIT runs on aiosqlite's thread
      while the event loop's thread waits for it (a few dozen microseconds), and commit() returns without the loop
      taking a turn: nothing from here to the mailer's write of the "." suspends, so no other task's work can fall
      into the gap (awaiting aiosqlite's future did: a kill -9 there lost a mail committed as sent). The transaction
      commits with synchronous=NORMAL: once its WAL frames are written the commit survives a kill -9, and the fsync
      that synchronous=FULL would do before returning (the longer part of the COMMIT) comes in `finished()`, after
      the ".". That is PostgreSQL's order too: the "." goes out before the server's fsync, so only a power cut or a
      failing disk in that fraction of a millisecond can send a message twice -- the database failing its COMMIT.
      `finished()` also gives the connection back to the pool, after the ".".
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
        self._sqlite: Any = None  # the aiosqlite connection under ours (SQLite only)
        self._wal_unsynced = False  # SQLite: committed, its WAL not yet fsynced

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
        if is_sqlite(self._conn):
            self._sqlite = (await self._conn.get_raw_connection()).driver_connection
            try:
                # before BEGIN: SQLite refuses to change it inside a transaction; _release() sets FULL again
                async with self._sqlite.execute("PRAGMA synchronous=NORMAL"):
                    pass
            except BaseException:
                await self._release(commit_failed=None)
                raise
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
        if self._sqlite is not None:
            # No await from here to the mailer's ".": see the class docstring.
            _commit_blocking(self._sqlite)
            self._committed = self._wal_unsynced = True
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
        if self._wal_unsynced:
            self._wal_unsynced = False
            try:
                await _sync_wal(self._sqlite)
            except BaseException as exc:
                await self._release(commit_failed=exc)
                raise
        if self._conn is not None:
            await self._release(commit_failed=None)

    async def _release(self, *, commit_failed: BaseException | None) -> None:
        conn, trans, self._conn, self._trans = self._conn, self._trans, None, None
        if conn is None:
            return
        sqlite, self._sqlite = self._sqlite, None
        try:
            if trans is not None and trans.is_active:
                # On SQLite a commit happened under SQLAlchemy (see commit()): its COMMIT then finds nothing to do.
                await (trans.commit() if self._committed else trans.rollback())
            if sqlite is not None:
                async with sqlite.execute("PRAGMA synchronous=FULL"):  # as for every other unit of work
                    pass
        finally:
            await conn.close()
        if self._committed and commit_failed is None and self._on_commit is not None:
            self._on_commit()


def _commit_blocking(connection: Any) -> None:
    """COMMIT on the aiosqlite connection's own thread while this thread (the event loop's) waits for it, so that the
    caller goes on in the same step of the loop. The queue is aiosqlite's, used as SQLAlchemy's dialect uses it; the
    connection is ours alone (nothing else is queued on it), so the COMMIT runs at once."""
    done = threading.Event()
    failed: list[BaseException] = []

    def commit() -> None:
        try:
            connection._conn.commit()
        except BaseException as exc:
            failed.append(exc)
        finally:
            done.set()

    connection._tx.put_nowait((None, commit))
    if not done.wait(_SQLITE_COMMIT_TIMEOUT):
        # it may still commit: then the message is lost (kept as sent), never sent twice
        raise TimeoutError(f"SQLite COMMIT took longer than {_SQLITE_COMMIT_TIMEOUT}s")
    if failed:
        raise DBAPIError.instance("COMMIT", None, failed[0], sqlite3.Error) from failed[0]


_SQLITE_COMMIT_TIMEOUT = 30.0  # as busy_timeout; the COMMIT holds the write lock already and does not wait for it


async def _sync_wal(connection: Any) -> None:
    """What synchronous=FULL does at a COMMIT in WAL mode: fdatasync the write-ahead log."""
    rows = await connection.execute_fetchall("PRAGMA database_list")
    path = next((file for _, name, file in rows if name == "main"), "")
    if path:  # "" for an in-memory database
        await asyncio.to_thread(_fdatasync, path + "-wal")


def _fdatasync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
