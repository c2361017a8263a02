"""The composition root: engine, messaging runtime, mailer and delivery worker, built when called."""

from __future__ import annotations

from pathlib import Path

from netvaerk_shared.consumer import Subscription
from netvaerk_shared.db import create_engine
from netvaerk_shared.runtime import ServiceRuntime

from .adapters import orm
from .adapters.mailer import SmtpMailer
from .config import Settings
from .service_layer.delivery import DeliveryWorker
from .service_layer.handlers import SUBSCRIPTIONS
from .views import refresh_delivery_gauges

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def bootstrap(settings: Settings | None = None, mailer=None) -> ServiceRuntime:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    migrations = Path(settings.migrations_dir) if settings.migrations_dir else MIGRATIONS
    runtime = ServiceRuntime(
        service="notifications",
        settings=settings,
        engine=engine,
        tables=orm.messaging,
        subscriptions=[Subscription(contract, one, many) for contract, (one, many) in SUBSCRIPTIONS.items()],
        migrations_dir=migrations,
    )
    mailer = mailer or SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_user,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout,
    )
    worker = DeliveryWorker(runtime, settings, mailer)
    runtime.delivery_worker = worker
    if settings.run_deliveries:
        runtime.add_worker("deliveries", worker.run, worker.wake)
    runtime.add_gauges(lambda: refresh_delivery_gauges(engine))
    return runtime
