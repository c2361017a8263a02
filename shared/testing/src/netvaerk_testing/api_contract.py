"""Test helpers for "the OpenAPI document is the contract, and it is true".

- `assert_document_current(service)`: the checked-in services/<svc>/openapi.json is what `create_app().openapi()` says
  today, and it is a valid OpenAPI 3.1 document whose schemas are valid JSON Schema 2020-12 with portable patterns.
- `load_schema(app, token, ...)`: the app's own document loaded by schemathesis with the bearer token configured, every
  check on, and generation bounded and deterministic (CI sees the same cases on every run, no example database).
- `running_service(...)`: a module-scoped fixture that serves the app in-process on a real runtime (a fresh
  PostgreSQL or SQLite database, the session's NATS) for the whole module, see `served`.
- `check`/`eventually`/`publish`: cases chosen by hand, checked like the generated ones, for the 2xx answers random
  data cannot reach (a group that exists, a member who joined it).

Two things about schemathesis 4.32 under pytest 9.2 shape this: its `pytest.from_fixture` fails (pytest renamed
`Node._nodeid`), so the schema is built at import from `app.openapi()`; and its pytest plugin ends every ASGI lifespan
after each test item, so the app is wrapped to keep its runtime up (see `_KeepAlive`).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netvaerk_shared.openapi_dump import REGENERATE, path_for, render

if TYPE_CHECKING:
    import pytest
    from fastapi import FastAPI
    from schemathesis import BaseSchema, Case, Response
    from schemathesis.config import SchemathesisConfig
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from netvaerk_shared.contracts import EventData
    from netvaerk_shared.runtime import ServiceRuntime
    from netvaerk_shared.settings import ServiceSettings

# Hypothesis keeps its caches in ./.hypothesis (and its example database, but none is configured here): not in the
# tree. Set before the first case runs, which is when Hypothesis first looks.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "netvaerk-hypothesis"))

TOKEN = "test-token-0123456789"
BACKENDS = ("postgresql", "sqlite")

# The generation budget: PostgreSQL (what production runs) gets every phase and MAX_EXAMPLES fuzzed cases an
# operation; SQLite (tests and small installs) the examples and fuzzing phases with fewer, so that the three services
# on both stay around a minute on 2 cores (CI's 15 minutes hold four services, the fault suite and browser tests).
# NETVAERK_CONTRACT_EXAMPLES raises the budget for a deeper run by hand (e.g. 300); CI keeps the default.
MAX_EXAMPLES = int(os.environ.get("NETVAERK_CONTRACT_EXAMPLES") or 20)
SQLITE = {"max_examples": max(8, MAX_EXAMPLES // 3), "coverage": False}
# schemathesis's default for positive_data_acceptance (the answers schema-valid data may get), which `expected` extends
POSITIVE_DATA_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]


def assert_document_current(service: str) -> None:
    path = path_for(service)
    assert path.exists(), f"{path} is missing: run {REGENERATE} {service}"
    text = render(service)
    assert path.read_text(encoding="utf-8") == text, (
        f"{path} drifted from the service's routes and models: run {REGENERATE} {service} and review the diff"
    )
    validate_openapi(json.loads(text))


def validate_openapi(document: dict[str, Any]) -> None:
    """The OpenAPI 3.1 meta-schema (through schemathesis's validator) and, for every schema in it, JSON Schema
    2020-12 (OpenAPI 3.1's dialect), which the meta-schema leaves unchecked."""
    import jsonschema
    import schemathesis

    assert document["openapi"].startswith("3.1."), document["openapi"]
    schemathesis.openapi.from_dict(document).validate()
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"components.schemas.{name} is not valid JSON Schema 2020-12: {exc.message}") from None
    for where, pattern in _patterns(document):
        # Python's `re` accepts patterns that ECMA-262 (unicode mode) and Rust's `regex` refuse, and a validator
        # or generator that cannot compile a pattern ignores it: every pattern must compile in jsonschema-rs
        assert _portable(pattern), f"{where}: pattern {pattern!r} is not a portable ECMA-262 regular expression"


def _patterns(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield where, value
            else:
                yield from _patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _patterns(value, f"{where}/{index}")


def _portable(pattern: str) -> bool:
    import jsonschema_rs

    try:
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern}, validate_formats=True)
    except Exception:
        return False
    return True


def config(
    token: str,
    *,
    expected: dict[tuple[str, str], list[int]] | None = None,
    max_examples: int = MAX_EXAMPLES,
    coverage: bool = True,
) -> SchemathesisConfig:
    """Every check on; `expected` widens positive_data_acceptance for operations whose documented business rules
    refuse some schema-valid requests: {(METHOD, path): [status, ...]} (added to schemathesis's defaults).
    `coverage=False` leaves out the coverage phase (the deterministic boundary cases of every keyword: most of the
    cases, and all about the edge's validation, which does not depend on the database)."""
    from schemathesis.config import SchemathesisConfig

    operations = [
        {
            "include-method": method,
            "include-path": path,
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_DATA_ACCEPTED + [str(s) for s in statuses]}
            },
        }
        for (method, path), statuses in (expected or {}).items()
    ]
    return SchemathesisConfig.from_dict(
        {
            "seed": 20270311,
            "generation": {"max-examples": max_examples, "deterministic": True, "database": "none"},
            "checks": {"enabled": True},
            "auth": {"openapi": {"bearer": {"bearer": token}}},
            "operations": operations,
            "phases": {"coverage": {"enabled": coverage}},
            "cache": {"enabled": False},
        }
    )


def load_schema(app: FastAPI, token: str, **config_kwargs: Any) -> BaseSchema:
    """The app's document (no need to start it) as a schemathesis schema whose cases are sent to `app` in-process.
    Start the app with `served` before the cases run."""
    import schemathesis

    schema = schemathesis.openapi.from_dict(app.openapi(), config=config(token, **config_kwargs))
    schema.app = kept_alive(app)
    return schema


class _KeepAlive:
    """ASGI wrapper around a service app for schemathesis's in-process transport, which starts an app's lifespan on
    the first request and (its pytest plugin) ends every lifespan after each test item: that would stop the runtime
    (relay, consumers, NATS connection) after the first operation and leave the rest to a half-stopped service.
    The first lifespan startup starts the app's own lifespan; later startups and shutdowns leave it running, until
    `served` asks for the real shutdown."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.closing = False
        # the app's own lifespan while it runs: its task, and the queues to it and from it
        self._lifespan: tuple[asyncio.Task[None], asyncio.Queue[Message], asyncio.Queue[Message]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._lifespan is None:
                        await self._start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.closing and self._lifespan is not None:
                    await self._stop(*self._lifespan)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        to_app: asyncio.Queue[Message] = asyncio.Queue()
        from_app: asyncio.Queue[Message] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

        async def lifespan() -> None:
            await self.app(scope, to_app.get, from_app.put)

        task = asyncio.create_task(lifespan())
        await to_app.put({"type": "lifespan.startup"})
        reply = await from_app.get()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(reply.get("message") or "the app failed to start")
        self._lifespan = (task, to_app, from_app)

    async def _stop(
        self, task: asyncio.Task[None], to_app: asyncio.Queue[Message], from_app: asyncio.Queue[Message]
    ) -> None:
        await to_app.put({"type": "lifespan.shutdown"})
        reply = await from_app.get()
        await task
        self._lifespan = None
        if reply["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(reply.get("message") or "the app failed to stop")


def kept_alive(app: FastAPI) -> _KeepAlive:
    """The one _KeepAlive of `app` (every schema loaded for it sends its cases through the same one)."""
    keep = getattr(app.state, "contract_keep_alive", None)
    if keep is None:
        keep = app.state.contract_keep_alive = _KeepAlive(app)
    return keep


@contextmanager
def served(app: FastAPI, runtime: ServiceRuntime) -> Iterator[FastAPI]:
    """Start `app` (lifespan and all) on `runtime` in schemathesis's ASGI event loop, where its cases will run (an
    engine or NATS connection cannot cross event loops), and keep it running across test items; stop it afterwards."""
    from schemathesis.python import asgi

    from netvaerk_shared.http import use_runtime

    keep = kept_alive(app)
    use_runtime(app, runtime)
    try:
        # entering starts the lifespan; NATS connects in the background, and until it has the service truthfully
        # answers /readyz with 503: the cases start once it is ready. (The ignores: schemathesis types ASGI messages as
        # dict, where ASGI and Starlette, whose types _KeepAlive has, say MutableMapping.)
        with asgi.get_client(keep) as client:  # type: ignore[arg-type]
            deadline = time.monotonic() + 30
            while (status := client.get("/readyz").status_code) != 200:
                assert time.monotonic() < deadline, f"{runtime.service} not ready after 30 s (/readyz {status})"
                time.sleep(0.05)
        yield app
    finally:
        keep.closing = True
        try:
            # a lifespan to end, if the plugin ended the last one already
            with asgi.get_client(keep):  # type: ignore[arg-type]
                pass
            asgi.shutdown_lifespans()  # now it stops the runtime: relay, consumers, engine
        finally:
            keep.closing = False


@contextmanager
def contract_database(backend: str, pg_admin_url: str | None, directory: str | Path) -> Iterator[str]:
    """A fresh database for a whole module of contract cases (the plugin's `make_database_url` is per test)."""
    from . import infra

    if backend == "postgresql" and pg_admin_url is not None:
        name = f"t_contract_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(infra.create_database(pg_admin_url, name))
        try:
            yield url
        finally:
            asyncio.run(infra.drop_database(pg_admin_url, name))
    else:
        yield infra.sqlite_url(Path(directory) / f"contract-{uuid.uuid4().hex[:6]}.db")


def running_service(
    app: FastAPI,
    bootstrap: Callable[[Any], ServiceRuntime],
    settings_cls: type[ServiceSettings],
    **overrides: Any,
) -> Callable[..., Any]:
    """A module-scoped fixture, parametrised over BACKENDS: `app` served on a fresh database and the session's NATS
    (streams emptied first), with the rate limiter off (the edge's own test covers it) and TOKEN as the API token."""
    import pytest

    from .plugin import reset_streams, service_settings

    @pytest.fixture(scope="module", params=BACKENDS)
    def running(
        request: pytest.FixtureRequest,
        nats_url: str,
        pg_admin_url: str | None,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[ServiceRuntime]:
        asyncio.run(reset_streams(nats_url))
        with contract_database(request.param, pg_admin_url, tmp_path_factory.mktemp("contract")) as url:
            settings = service_settings(
                settings_cls, url, nats_url, api_token=TOKEN, rate_limit_per_minute=0, **overrides
            )
            runtime = bootstrap(settings)
            with served(app, runtime):
                yield runtime

    return running


# --------------------------------------------------------------------------------------- cases chosen by hand


def _case(schema: BaseSchema, method: str, path: str, case: dict[str, Any]) -> Case:
    headers = {"Authorization": f"Bearer {TOKEN}", **case.pop("headers", {})}
    return schema[path][method].Case(headers=headers, **case)


def check(schema: BaseSchema, method: str, path: str, expect: int, **case: Any) -> Response:
    """One case chosen by hand (path_parameters=, query=, body=), sent with the token, checked by every check like
    the generated ones, and answered with `expect`: for the answers random data cannot reach (a group that exists, a
    member who joined it)."""
    response = _case(schema, method, path, case).call_and_validate()
    assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:500]}"
    return response


def publish(nats_url: str, *events: EventData) -> None:
    """Publish event contracts into JetStream as their producer's relay would (its stream declared first)."""
    import nats

    from netvaerk_shared.envelope import make_event, to_bytes
    from netvaerk_shared.topology import ensure_stream

    async def _publish() -> None:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            for data in events:
                await ensure_stream(js, data.subject_prefix().split(".", 1)[0])
                event = make_event(data)
                await js.publish(data.nats_subject(), to_bytes(event), headers={"Nats-Msg-Id": event.id})
        finally:
            await nc.close()

    asyncio.run(_publish())


def eventually(
    schema: BaseSchema,
    method: str,
    path: str,
    expect: int = 200,
    *,
    until: Callable[[Response], bool] | None = None,
    timeout: float = 15.0,
    **case: Any,
) -> Response:
    """`check` once the service has caught up with its events: retried until it answers `expect` (and
    `until(response)` holds), then checked."""
    deadline = time.monotonic() + timeout
    while True:
        response = _case(schema, method, path, dict(case)).call()
        if response.status_code == expect and (until is None or until(response)):
            break
        assert time.monotonic() < deadline, f"{method} {path} still {response.status_code} after {timeout} s"
        time.sleep(0.05)
    return check(schema, method, path, expect, **case)
