"""The composition root: builds the engine and the messaging runtime when called, never at import."""

from __future__ import annotations

from pathlib import Path

from netvaerk_shared import contracts
from netvaerk_shared.consumer import Subscription
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.db import create_engine
from netvaerk_shared.gdpr import ExportResponder
from netvaerk_shared.runtime import ServiceRuntime

from .adapters import orm
from .adapters.repository import Repositories
from .config import Settings
from .entrypoints import subscribers
from .entrypoints.subscribers import on_group_created, on_member_erased, on_member_joined, on_members_joined
from .service_layer.translator import to_contract
from .views import member_part

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    migrations = Path(settings.migrations_dir) if settings.migrations_dir else MIGRATIONS
    subscriptions = (
        Subscription(contracts.GroupCreated, on_group_created),
        Subscription(contracts.GroupUpdated, subscribers.on_group_updated),  # name, status: archived takes no more
        Subscription(contracts.MemberJoined, on_member_joined, on_members_joined),
        Subscription(MemberErased, on_member_erased),
        # the roster's upkeep (issue 9: seats)
        Subscription(contracts.MemberLeft, subscribers.on_member_left),
        Subscription(contracts.MemberRoleChanged, subscribers.on_member_role_changed),
        Subscription(contracts.SeatTransferred, subscribers.on_seat_transferred),
        Subscription(contracts.MemberRegistered, subscribers.on_member_registered),
        Subscription(contracts.MemberUpdated, subscribers.on_member_updated),
    )
    runtime = ServiceRuntime(
        service="meetings",
        settings=settings,
        engine=engine,
        tables=orm.messaging,
        repositories=Repositories,
        translate=to_contract,
        subscriptions=subscriptions,
        migrations_dir=migrations,
    )
    runtime.add_worker(ExportResponder(runtime, member_part))  # its part of a GDPR export, over NATS
    return runtime
