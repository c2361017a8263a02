"""The edge's rate limit, driven directly (the services' contract runs switch it off): a token bucket per client
address, 429 problem+json with Retry-After once the burst is spent, checked before the token, and never for the open
paths (health, metrics, documents)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from netvaerk_shared.http import PROBLEM, EdgeMiddleware, EdgePolicy, install_problem_handlers

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def edge(per_minute: int):
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things")
    async def things():
        return {"ok": True}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    return EdgeMiddleware(app, policy=EdgePolicy(per_minute=per_minute, token=TOKEN))


def client(middleware, address: str = "192.0.2.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=middleware, client=(address, 40000)), base_url="http://edge"
    )


async def test_the_burst_is_served_then_429_with_retry_after_as_problem_json():
    middleware = edge(per_minute=60)  # burst 10, then one a second
    async with client(middleware) as c:
        codes = [(await c.get("/things", headers=AUTH)).status_code for _ in range(10)]
        assert codes == [200] * 10
        r = await c.get("/things", headers=AUTH)
    assert r.status_code == 429
    assert r.headers["content-type"] == PROBLEM
    assert int(r.headers["retry-after"]) >= 1
    body = r.json()
    assert body["status"] == 429 and body["title"] == "Too Many Requests"
    assert body["retry_after"] == int(r.headers["retry-after"])


async def test_the_limit_comes_before_the_token_so_guessing_it_is_limited_too():
    middleware = edge(per_minute=60)
    async with client(middleware) as c:
        codes = [(await c.get("/things", headers={"Authorization": "Bearer wrong"})).status_code for _ in range(11)]
    assert codes == [401] * 10 + [429]


async def test_open_paths_are_never_limited_and_other_clients_keep_their_own_bucket():
    middleware = edge(per_minute=60)
    async with client(middleware) as c:
        for _ in range(11):
            await c.get("/things", headers=AUTH)
        assert (await c.get("/things", headers=AUTH)).status_code == 429
        assert [(await c.get("/healthz")).status_code for _ in range(30)] == [200] * 30
    async with client(middleware, address="192.0.2.2") as other:
        assert (await other.get("/things", headers=AUTH)).status_code == 200


async def test_the_bucket_refills_with_time():
    middleware = edge(per_minute=60)
    async with client(middleware) as c:
        for _ in range(11):
            await c.get("/things", headers=AUTH)
        tokens, last = middleware.buckets["192.0.2.1"]
        middleware.buckets["192.0.2.1"] = (tokens, last - 2.0)  # two seconds later, at one a second
        assert (await c.get("/things", headers=AUTH)).status_code == 200


async def test_zero_switches_the_limit_off():
    middleware = edge(per_minute=0)
    async with client(middleware) as c:
        assert {(await c.get("/things", headers=AUTH)).status_code for _ in range(50)} == {200}
