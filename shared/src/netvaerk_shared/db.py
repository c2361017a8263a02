"""Engines for PostgreSQL (asyncpg) and the embedded default SQLite (aiosqlite), built when called, never at import."""
from __future__ import annotations

from pathlib import Path

from datetime import UTC

from sqlalchemy import DateTime, TypeDecorator, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def is_sqlite(target) -> bool:
    """For a URL string, an engine or a connection."""
    dialect = getattr(target, "dialect", None)
    if dialect is not None:
        return dialect.name == "sqlite"
    return make_url(str(target)).get_backend_name() == "sqlite"


def normalise_url(url: str) -> str:
    """Accept postgresql:// and postgres:// as well as the asyncpg form; SQLite stays as given."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
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
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a committed change survives a power cut
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def dialect_insert(conn_or_engine, table):
    """INSERT with the backend's ON CONFLICT support (PostgreSQL or SQLite)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (sqlite if is_sqlite(conn_or_engine) else postgresql).insert(table)


def asyncpg_dsn(url: str) -> str:
    """The plain libpq DSN for asyncpg (LISTEN/NOTIFY, benchmarks) from a SQLAlchemy URL."""
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC on the way in and out, on PostgreSQL and on SQLite (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
