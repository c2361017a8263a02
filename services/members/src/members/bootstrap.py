"""The composition root: builds the engine and the messaging runtime when called, never at import."""

from __future__ import annotations

from pathlib import Path

from netvaerk_shared.db import create_engine
from netvaerk_shared.runtime import ServiceRuntime
from netvaerk_shared.uow import Translate

from .adapters import orm
from .adapters.repository import Repository
from .config import Settings
from .service_layer import gdpr
from .service_layer.translator import to_contract

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def bootstrap(settings: Settings | None = None, *, translate: Translate = to_contract) -> ServiceRuntime:
    """`translate`: how its units of work turn domain events into contracts (the CSV import passes one that trusts
    the input it has validated: service_layer/translator.py)."""
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    migrations = Path(settings.migrations_dir) if settings.migrations_dir else MIGRATIONS
    purge = gdpr.StreamPurge()
    runtime = ServiceRuntime(
        service="members",
        settings=settings,
        engine=engine,
        tables=orm.messaging,
        repositories=Repository,
        translate=translate,
        subscriptions=(purge.subscription(),),  # members hears only its own erasure notices (to purge MEMBERS)
        migrations_dir=migrations,
    )
    gdpr.wire(runtime, purge)  # the purge's JetStream, and the responder for the GDPR export
    return runtime
