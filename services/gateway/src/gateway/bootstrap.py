"""The gateway's composition root: its database (migrated at start), the service clients and the sign-in limits,
built when called, never at import."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from netvaerk_shared.db import create_engine
from netvaerk_shared.migrate import upgrade

from .adapters.services import Services
from .adapters.store import Store
from .config import Settings

WINDOW_SECONDS = 15 * 60


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Window:
    """At most `limit` hits per key in a sliding 15 minutes (kept in memory: a restart forgets, which only ever
    lets someone through sooner; the per-address count of links is also kept in the database)."""

    limit: int
    hits: dict[str, list[float]] = field(default_factory=dict)

    def allow(self, key: str, now: float | None = None) -> bool:
        moment = time.monotonic() if now is None else now
        if len(self.hits) > 100_000:
            self.hits.clear()
        recent = [t for t in self.hits.get(key, []) if moment - t < WINDOW_SECONDS]
        if len(recent) >= self.limit:
            self.hits[key] = recent
            return False
        recent.append(moment)
        self.hits[key] = recent
        return True


@dataclass
class Gateway:
    settings: Settings
    store: Store
    services: Services
    clock: Callable[[], datetime]
    per_address: Window
    per_client: Window

    async def close(self) -> None:
        await self.services.close()
        await self.store.engine.dispose()


def migrations_dir(settings: Settings) -> Path:
    if settings.migrations_dir:
        return Path(settings.migrations_dir)
    return Path(__file__).resolve().parents[2] / "migrations"


async def bootstrap(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Gateway:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    await upgrade(engine, migrations_dir(settings))
    services = Services(
        {
            "members": settings.members_url,
            "meetings": settings.meetings_url,
            "notifications": settings.notifications_url,
        },
        settings.gateway_token_key,
        settings.service_timeout_seconds,
        transport=transport,
    )
    return Gateway(
        settings=settings,
        store=Store(engine),
        services=services,
        clock=clock,
        per_address=Window(settings.sign_ins_per_address),
        per_client=Window(settings.sign_ins_per_client),
    )
