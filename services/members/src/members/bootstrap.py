"""The composition root: builds the engine and the messaging runtime when called, never at import."""

from __future__ import annotations

from pathlib import Path

from netvaerk_shared.db import create_engine
from netvaerk_shared.runtime import ServiceRuntime

from .adapters import orm
from .adapters.repository import Repository
from .config import Settings
from .service_layer.translator import to_contract

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    migrations = Path(settings.migrations_dir) if settings.migrations_dir else MIGRATIONS
    return ServiceRuntime(
        service="members",
        settings=settings,
        engine=engine,
        tables=orm.messaging,
        repositories=Repository,
        translate=to_contract,
        subscriptions=(),  # members listens to no one
        migrations_dir=migrations,
    )
