"""The gateway's edge, pure ASGI, before any route: a token-bucket rate limit per client address (429), a body limit
counted while the body streams in (413, without reading the rest), and the security headers on every answer (a
strict Content-Security-Policy with no inline script, no framing, no referrer: a sign-in link's token never leaves
in a Referer header)."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class _TooLarge(Exception):
    pass


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
                response = PlainTextResponse(
                    "For mange forespørgsler. Vent lidt, og prøv igen. / Too many requests: try again shortly.",
                    status_code=429,
                    headers={"Retry-After": str(max(1, int(wait + 0.999)))},
                )
                await response(scope, receive, send_secured)
                return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(scope, receive, send_secured)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send_secured)
        except _TooLarge:
            await self._too_large(scope, receive, send_secured)

    async def _too_large(self, scope: Scope, receive: Receive, send: Any) -> None:
        response = PlainTextResponse(
            f"Forespørgslen er for stor (højst {self.max_body} bytes). / The request is too large.", status_code=413
        )
        await response(scope, receive, send)
