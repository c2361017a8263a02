"""The gateway's edge, pure ASGI, before any route: a token-bucket rate limit per client address (429), a body limit
counted while the body streams in (413, without reading the rest), and the security headers on every answer (a
strict Content-Security-Policy with no inline script, no framing, no referrer: a sign-in link's token never leaves
in a Referer header)."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netvaerk_shared.problems import problem_response

OPEN_PATHS = ("/healthz", "/readyz", "/static/")
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class GatewayEdge:
    def __init__(self, app: ASGIApp, *, per_minute: int = 300, max_body: int = 64 * 1024) -> None:
        self.app = app
        self.configure(per_minute=per_minute, max_body=max_body)
        self.buckets: dict[str, tuple[float, float]] = {}

    def configure(self, *, per_minute: int, max_body: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(20.0, per_minute / 5.0)
        self.max_body = max_body

    def _allow(self, client: str) -> float:
        """0 when the request may go on, else the seconds until it may."""
        now = time.monotonic()
        if len(self.buckets) > 100_000:
            self.buckets.clear()
        tokens, last = self.buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self.buckets[client] = (tokens - 1.0, now)
        return 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        path: str = scope.get("path", "")
        if not path.startswith(OPEN_PATHS) and self.rate > 0:
            wait = self._allow((scope.get("client") or ("?", 0))[0])
            if wait:
                retry = max(1, int(wait + 0.999))
                response: Response = (
                    problem_response(429, "Slow down and try again shortly.", instance=path, retry_after=retry)
                    if path.startswith("/api/")
                    else PlainTextResponse(
                        "For mange forespørgsler. Vent lidt, og prøv igen. / Too many requests: try again shortly.",
                        status_code=429,
                        headers={"Retry-After": str(retry)},
                    )
                )
                await response(scope, receive, send_secured)
                return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(scope, receive, send_secured)
            return
        if scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            # read here, at most max_body bytes (64 KiB: a form or a JSON document), then replayed to the app
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await self._too_large(scope, receive, send_secured)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body, sent = b"".join(chunks), False

            async def replay() -> Message:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_secured)
            return
        await self.app(scope, receive, send_secured)

    async def _too_large(self, scope: Scope, receive: Receive, send: Any) -> None:
        path = scope.get("path", "")
        response: Response = (
            problem_response(413, f"The body may be at most {self.max_body} bytes.", instance=path)
            if path.startswith("/api/")
            else PlainTextResponse(
                f"Forespørgslen er for stor (højst {self.max_body} bytes). / The request is too large.",
                status_code=413,
            )
        )
        await response(scope, receive, send)
