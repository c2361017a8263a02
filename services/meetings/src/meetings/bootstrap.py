"""The composition root: builds the engine and the messaging runtime when called, never at import."""

from __future__ import annotations

from pathlib import Path

from netvaerk_shared import contracts
from netvaerk_shared.consumer import Subscription
from netvaerk_shared.db import create_engine
from netvaerk_shared.runtime import ServiceRuntime

from .adapters import orm
from .adapters.repository import Repositories
from .config import Settings
from .entrypoints.subscribers import on_group_created, on_member_joined, on_members_joined
from .service_layer.translator import to_contract

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    migrations = Path(settings.migrations_dir) if settings.migrations_dir else MIGRATIONS
    subscriptions = (
        Subscription(contracts.GroupCreated, on_group_created),
        Subscription(contracts.MemberJoined, on_member_joined, on_members_joined),
    )
    return ServiceRuntime(
        service="meetings",
        settings=settings,
        engine=engine,
        tables=orm.messaging,
        repositories=Repositories,
        translate=to_contract,
        subscriptions=subscriptions,
        migrations_dir=migrations,
    )
