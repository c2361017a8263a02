"""Engines for PostgreSQL (asyncpg) and the embedded default SQLite (aiosqlite), built when called, never at import."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy import DateTime, Table, TypeDecorator, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def is_sqlite(target: object) -> bool:
    """For a URL string, an engine or a connection."""
    dialect = getattr(target, "dialect", None)
    if dialect is not None:
        return dialect.name == "sqlite"
    return make_url(str(target)).get_backend_name() == "sqlite"


def normalise_url(url: str) -> str:
    """Accept postgresql:// and postgres:// as well as the asyncpg form; SQLite stays as given."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    url = normalise_url(url)
    if not is_sqlite(url):
        # no pre-ping: it costs a round trip per checkout; a connection the server dropped is invalidated (with the
        # rest of the pool) by the first error on it, and pool_recycle retires old ones
        return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # One connection per process: SQLite has one writer at a time anyway, and queueing in the pool is cheaper and
    # fairer than sleeping in busy_timeout. BEGIN IMMEDIATE keeps a reader from failing when it later writes.
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a committed change survives a power cut
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # what is deleted is overwritten with zeros, not left in free pages (GDPR erasure: see gdpr.forget_on_disk)
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def dialect_insert(conn_or_engine: object, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with the backend's ON CONFLICT support (PostgreSQL or SQLite)."""
    return sqlite.insert(table) if is_sqlite(conn_or_engine) else postgresql.insert(table)


def asyncpg_dsn(url: str) -> str:
    """The plain libpq DSN for asyncpg (LISTEN/NOTIFY, benchmarks) from a SQLAlchemy URL."""
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on PostgreSQL and on SQLite (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLSTATE classes: 08 connection exception, 53 insufficient resources (too many connections, disk full, out of
# memory), 57 operator intervention (admin/crash shutdown, cannot connect now, database dropped, statement timeout),
# 58 system error (I/O). Plus single codes: 3D000 database does not exist, 55P03 lock timeout.
_OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57", "58")
_OUTAGE_SQLSTATES = {"3D000", "55P03"}
# asyncpg's (and SQLAlchemy's adapted) errors for a connection that is gone or was never made; InternalClientError
# ("cannot switch to state ...; another operation is in progress") is what a connection killed mid-statement leaves
_OUTAGE_DRIVER_ERRORS = {
    "InterfaceError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "PostgresConnectionError",
    "CannotConnectNowError",
    "TooManyConnectionsError",
    "InternalClientError",
}
_OUTAGE_MESSAGES = (
    "not currently accepting connections",
    "does not allow connections",
    "too many connections",
    "remaining connection slots",
    "the database system is",
    "terminating connection",
    "connection is closed",
    "connection was closed",
    "server closed the connection",
    "could not connect",
    "connection refused",
    "connection reset",
    "connection timed out",
    # SQLite: the file is away, locked past busy_timeout, or the disk is full
    "database is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
)


def is_outage(exc: BaseException | None) -> bool:
    """Does `exc` say the database is unreachable or unusable (rather than that one event is at fault)?

    True for: OSError (connection refused/reset, DNS) and timeouts; SQLAlchemy's DisconnectionError, pool TimeoutError,
    OperationalError and InterfaceError; any DBAPIError whose connection was invalidated; a driver error whose SQLSTATE
    is 08xxx, 53xxx (too many connections), 57xxx (shutdown, cannot connect now, statement timeout), 58xxx, 3D000 or
    55P03; and the messages PostgreSQL and SQLite give for the same ("database ... is not currently accepting
    connections", "too many connections", "database is locked", ...). The exception's chain (`orig`, `__cause__`,
    `__context__`) is looked at too. A handler's error that passes this test is still checked with a probe: an SMTP
    `ConnectionRefusedError` is an OSError too."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or len(seen) > 20:
            continue
        seen.add(id(e))
        if isinstance(
            e,
            (
                OSError,
                TimeoutError,
                sa_exc.DisconnectionError,
                sa_exc.TimeoutError,
                sa_exc.OperationalError,
                sa_exc.InterfaceError,
            ),
        ):
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and (state.startswith(_OUTAGE_SQLSTATE_CLASSES) or state in _OUTAGE_SQLSTATES):
            return True
        if type(e).__name__ in _OUTAGE_DRIVER_ERRORS:
            return True
        message = str(e).lower()
        if any(m in message for m in _OUTAGE_MESSAGES):
            return True
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return False
