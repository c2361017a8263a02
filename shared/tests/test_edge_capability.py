"""Capability URLs at the edge: routes whose URL carries its own secret (a calendar feed, a one-click unsubscribe link)
are called by clients that send no Authorization header. There the route checks the URL's token; the edge still
limits the rate and the body, and writes the route template into the access log, never the token."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from netvaerk_shared.http import EdgeMiddleware, EdgePolicy, install_problem_handlers, service_app

TOKEN = "test-token-0123456789"
SECRET = "Zk3v9QpL2mXw7bT4yR8nC1dH6sJ0aE5uG2iK9oP3qW7"


def edge(per_minute: int = 600) -> EdgeMiddleware:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/calendar/{token}.ics")
    async def feed(token: str):
        return {"feed": len(token)}

    @app.post("/unsubscribe/{token}")
    async def unsubscribe(token: str):
        return {"unsubscribed": True}

    @app.get("/things")
    async def things():
        return {"ok": True}

    policy = EdgePolicy(per_minute=per_minute, token=TOKEN, capability_paths=("/calendar/", "/unsubscribe/"))
    return EdgeMiddleware(app, policy=policy)


def client(middleware: EdgeMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=middleware, client=("192.0.2.7", 40000)), base_url="http://edge"
    )


async def test_a_capability_url_needs_no_bearer_token_every_other_path_still_does():
    async with client(edge()) as c:
        assert (await c.get(f"/calendar/{SECRET}.ics")).status_code == 200
        assert (await c.get(f"/calendar/{SECRET}.ics", headers={"Authorization": "Bearer wrong"})).status_code == 200
        assert (await c.get("/things")).status_code == 401
        assert (await c.get("/calendar-feeds")).status_code == 401  # not under the prefix "/calendar/"


async def test_the_access_log_has_the_route_template_never_the_token(caplog):
    caplog.set_level(logging.INFO, logger="netvaerk.access")
    async with client(edge()) as c:
        await c.get(f"/calendar/{SECRET}.ics")
        await c.get(f"/calendar/{SECRET}/nothing-here")  # no route: the prefix only
        await c.post(f"/unsubscribe/{SECRET}", content=b"List-Unsubscribe=One-Click")
    lines = [r.getMessage() for r in caplog.records if r.name == "netvaerk.access"]
    assert lines == [
        "GET /calendar/{token}.ics 200",
        "GET /calendar/… 404",
        "POST /unsubscribe/… 415",  # a body with no Content-Type: refused before routing, the prefix only
    ]
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the test's client
    assert server_side and not any(SECRET in r.getMessage() or SECRET in str(r.__dict__) for r in server_side)


async def test_rfc_8058_one_click_form_is_taken_other_bodies_are_bounded():
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client(edge()) as c:
        ok = await c.post(f"/unsubscribe/{SECRET}", content=b"List-Unsubscribe=One-Click", headers=form)
        assert ok.status_code == 200, ok.text
        assert (await c.post(f"/unsubscribe/{SECRET}")).status_code == 200  # no body at all
        big = await c.post(f"/unsubscribe/{SECRET}", content=b"x=" + b"a" * 2000, headers=form)
        assert big.status_code == 413 and SECRET not in big.text
        text = await c.post(f"/unsubscribe/{SECRET}", content=b"hello", headers={"Content-Type": "text/plain"})
        assert text.status_code == 415 and SECRET not in text.text


async def test_capability_urls_are_rate_limited_per_client():
    async with client(edge(per_minute=60)) as c:  # burst 10
        codes = [(await c.get(f"/calendar/{SECRET}.ics")).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]


def test_a_protected_route_under_a_capability_prefix_is_refused_when_the_app_is_built():
    capability, protected = APIRouter(), APIRouter()

    @capability.get("/calendar/{token}.ics")
    async def feed(token: str):
        return {}

    @protected.get("/calendar/admin")
    async def admin():
        return {}

    with pytest.raises(ValueError, match="capability prefix"):
        service_app(
            runtime_factory=lambda: None,  # type: ignore[arg-type,return-value]
            title="t",
            description="d",
            routers=[protected],
            domain_error=Exception,
            capability_routers=[capability],
        )
