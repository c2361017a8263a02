"""Alembic, run from code (service start-up, CLI) or from alembic.ini; one helper for every service's env.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import UtcDateTime, create_engine, is_sqlite, normalise_url
from .settings import MigrationSettings


def alembic_config(migrations_dir: Path, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    if url:
        cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


async def upgrade(engine: AsyncEngine, migrations_dir: Path, revision: str = "head") -> None:
    cfg = alembic_config(migrations_dir)

    def _run(sync_conn: Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Autogenerate writes our UtcDateTime as the template imports it."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "UtcDateTime()"
    return False


def run_env(context: EnvironmentContext, metadata: MetaData) -> None:
    """The body of every service's migrations/env.py (`context`: alembic.context)."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or MigrationSettings().database_url

    def configure(connection: Connection | None = None) -> None:
        kwargs: dict[str, Any] = dict(target_metadata=metadata, compare_type=True, render_item=_render_item)
        if connection is not None:
            kwargs["render_as_batch"] = connection.dialect.name == "sqlite"
            context.configure(connection=connection, **kwargs)
        else:
            context.configure(url=normalise_url(url), literal_binds=True, render_as_batch=is_sqlite(url), **kwargs)

    connection = config.attributes.get("connection")
    if not url and connection is None:
        raise SystemExit("set DATABASE_URL (or sqlalchemy.url) to migrate")

    if context.is_offline_mode():
        configure()
        with context.begin_transaction():
            context.run_migrations()
        return

    if connection is not None:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    def _migrate(sync_conn: Connection) -> None:
        configure(sync_conn)
        context.run_migrations()

    async def _online() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_migrate)
        finally:
            await engine.dispose()

    asyncio.run(_online())
