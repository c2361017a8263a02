"""The gateway's edge in front of every route (rate limit, body limit, security headers) and its checked-in OpenAPI
document, which is what the code says."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from gateway.entrypoints.edge import GatewayEdge
from netvaerk_testing.api_contract import assert_document_current


def test_checked_in_openapi_is_current_and_valid():
    assert_document_current("gateway")


def inner() -> FastAPI:
    app = FastAPI()

    @app.post("/api/echo")
    async def api_echo() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/page")
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{len(await request.body())}")

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def test_a_client_over_its_rate_gets_429_the_api_as_problem_json_and_health_stays_open():
    edge = GatewayEdge(inner(), per_minute=60)  # a burst of 20
    transport = httpx.ASGITransport(app=edge, client=("192.0.2.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        statuses = [(await c.post("/page")).status_code for _ in range(25)]
        assert statuses[:20] == [200] * 20 and set(statuses[20:]) == {429}
        limited = await c.post("/api/echo")
        assert limited.status_code == 429 and limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) >= 1
        assert (await c.get("/healthz")).status_code == 200


async def test_a_body_over_the_limit_is_refused_and_every_answer_has_the_security_headers():
    edge = GatewayEdge(inner(), per_minute=6000, max_body=1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge), base_url="http://gw") as c:
        big = await c.post("/api/echo", content=b"x" * 2048, headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.headers["content-type"] == "application/problem+json"

        async def chunks():
            for _ in range(10):
                yield b"y" * 512

        streamed = await c.post("/page", content=chunks())
        assert streamed.status_code == 413
        ok = await c.post("/page", content=b"z" * 100)
        assert ok.status_code == 200
        for answer in (big, ok):
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["referrer-policy"] == "no-referrer" and answer.headers["x-frame-options"] == "DENY"
