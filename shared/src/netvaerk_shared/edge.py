"""The edge every request passes first (pure ASGI): trace context and metrics, then for every path but the open
ones a rate limit, the bearer token before a byte of the body is read, JSON only, and a body limit counted while
it streams in."""

from __future__ import annotations

import hmac
import logging
import time

from . import metrics, tracing
from .problems import problem_response

log = logging.getLogger(__name__)
access_log = logging.getLogger("netvaerk.access")
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB


def token_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/asyncapi.json")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class EdgePolicy:
    """The edge's settings, filled in from the service's settings when the app starts."""

    def __init__(self, per_minute: int = 600, max_body: int = DEFAULT_MAX_BODY, token: str = "") -> None:
        self.set(per_minute=per_minute, max_body=max_body, token=token)

    def set(self, *, per_minute: int, max_body: int, token: str) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(10.0, per_minute / 6.0)
        self.max_body = max_body
        self.token = token


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Pure ASGI, in this order: trace context and metrics; for every path but the open ones a token-bucket rate limit
    per client (429), the bearer token (401, before a byte of the body is read), then the body: JSON only (415) and at
    most `max_body` bytes, counted while it streams in (413, without reading the rest)."""

    def __init__(self, app, *, policy: EdgePolicy | None = None) -> None:
        self.app = app
        self.policy = policy or EdgePolicy()
        self.buckets: dict[str, tuple[float, float]] = {}

    def _allow(self, client: str) -> tuple[bool, float]:
        now = time.monotonic()
        rate, burst = self.policy.rate, self.policy.burst
        tokens, last = self.buckets.get(client, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return False, (1.0 - tokens) / rate
        self.buckets[client] = (tokens - 1.0, now)
        if len(self.buckets) > 10_000:  # forget idle clients
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 120}
        return True, 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"traceparent", b"").decode("latin-1")
        traceparent = tracing.child_of(incoming)
        token = tracing.current_traceparent.set(traceparent)
        start = time.perf_counter()
        status_holder = {"status": 500}

        async def _send(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"traceparent", traceparent.encode())]
            await send(message)

        try:
            refusal, receive = await self._check(scope, path, headers, receive)
            if refusal is not None:
                return await refusal(scope, receive, _send)
            try:
                await self.app(scope, receive, _send)
            except Exception:
                log.exception("unhandled error on %s %s", scope.get("method"), path)
                if status_holder.get("started"):
                    return  # too late for a problem response; the server closes the connection
                response = problem_response(500, "Something went wrong on our side; it has been logged.", instance=path)
                await response(scope, receive, _send)
        finally:
            route = scope.get("route")
            route_path = getattr(route, "path", None) or ("unmatched" if status_holder["status"] == 404 else path)
            metrics.http_requests.labels(scope.get("method", ""), route_path, str(status_holder["status"])).inc()
            elapsed = time.perf_counter() - start
            metrics.http_duration.labels(scope.get("method", ""), route_path).observe(elapsed)
            if not path.startswith(OPEN_PATHS):
                access_log.info(
                    "%s %s %s",
                    scope.get("method"),
                    path,
                    status_holder["status"],
                    extra={"status": status_holder["status"], "duration_ms": round(elapsed * 1000, 2)},
                )
            tracing.current_traceparent.reset(token)

    async def _check(self, scope, path: str, headers: dict, receive):
        """(a refusal response or None, the receive callable the app should use)."""
        if path.startswith(OPEN_PATHS):
            return None, receive
        policy = self.policy
        if policy.rate > 0:
            ok, retry = self._allow((scope.get("client") or ("?", 0))[0])
            if not ok:
                return problem_response(
                    429, "Slow down and try again shortly.", instance=path, retry_after=max(1, int(retry + 0.999))
                ), receive
        if not token_matches(headers.get(b"authorization", b"").decode("latin-1"), policy.token):
            return problem_response(
                401, "A valid bearer token is required.", instance=path, headers={"WWW-Authenticate": "Bearer"}
            ), receive
        if scope.get("method") not in _BODY_METHODS:
            return None, receive
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return problem_response(400, "Content-Length is not a number.", instance=path), receive
            if int(length) > policy.max_body:
                return self._too_large(path), receive
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if (chunked or (length is not None and int(length) > 0)) and not _is_json(
            headers.get(b"content-type", b"").decode("latin-1")
        ):
            return problem_response(
                415, "The body must be JSON (Content-Type: application/json).", instance=path
            ), receive
        try:
            body = await self._read(receive, policy.max_body)
        except _BodyTooLarge:
            return self._too_large(path), receive
        if body and not _is_json(headers.get(b"content-type", b"").decode("latin-1")):
            return problem_response(
                415, "The body must be JSON (Content-Type: application/json).", instance=path
            ), receive
        return None, _replay(body, receive)

    def _too_large(self, path: str):
        limit = self.policy.max_body
        message = f"The body may be at most {limit} bytes."
        return problem_response(413, message, instance=path, errors=[{"field": "body", "message": message}])

    @staticmethod
    async def _read(receive, limit: int) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def _receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return _receive
