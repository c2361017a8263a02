"""The edge every request passes first (pure ASGI): trace context and metrics, then for every path but the open
ones a rate limit, the bearer token before a byte of the body is read, JSON only, and a body limit counted while
it streams in."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import Response

from . import metrics, service_tokens, tracing
from .problems import problem_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)
access_log = logging.getLogger("netvaerk.access")
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB


def token_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/asyncapi.json")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


# A capability URL's body, where it has one: RFC 8058's one-click POST sends "List-Unsubscribe=One-Click" as a form
CAPABILITY_MAX_BODY = 1024
# where the edge leaves a verified gateway token's claims for the routes (request.state)
SIGNED_CALLER = "netvaerk_signed_caller"


class EdgePolicy:
    """The edge's settings, filled in from the service's settings when the app starts.

    `capability_paths`: path prefixes whose URL holds its own secret (a calendar feed's token, a signed unsubscribe
    link), to be used by clients that send no Authorization header (Outlook, Google and Apple Calendar; a mail
    client's one-click unsubscribe). There the URL's token is the credential and the route checks it; the edge still
    rate-limits per client, takes at most CAPABILITY_MAX_BODY bytes of JSON or form body, and never writes the path
    into the access log (only its route template: the token is a secret)."""

    def __init__(
        self,
        per_minute: int = 600,
        max_body: int = DEFAULT_MAX_BODY,
        token: str = "",
        capability_paths: tuple[str, ...] = (),
        gateway_key: str = "",
        audience: str = "",
    ) -> None:
        self.capability_paths = capability_paths
        self.set(per_minute=per_minute, max_body=max_body, token=token, gateway_key=gateway_key, audience=audience)

    def set(self, *, per_minute: int, max_body: int, token: str, gateway_key: str = "", audience: str = "") -> None:
        self.rate = per_minute / 60.0
        self.burst = max(10.0, per_minute / 6.0)
        self.max_body = max_body
        self.token = token
        self.gateway_key = gateway_key  # GATEWAY_TOKEN_KEY: verifies the gateway's short-lived tokens (service_tokens)
        self.audience = audience  # this service's name: a token signed for another service opens nothing here

    def signed_caller(self, authorization: str) -> service_tokens.Claims | None:
        """The claims of `Authorization: Bearer nvk1.…` when the gateway signed it for this service and it is valid."""
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self.gateway_key:
            return None
        return service_tokens.verify(self.gateway_key, given.strip(), audience=self.audience)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Pure ASGI, in this order: trace context and metrics; for every path but the open ones a token-bucket rate limit
    per client (429), the bearer token (401, before a byte of the body is read), then the body: JSON only (415) and at
    most `max_body` bytes, counted while it streams in (413, without reading the rest)."""

    def __init__(self, app: ASGIApp, *, policy: EdgePolicy | None = None) -> None:
        self.app = app
        self.policy = policy or EdgePolicy()
        self.buckets: dict[str, tuple[float, float]] = {}
        # the metrics' children by label values: prometheus_client's labels() takes a lock and builds a key per call
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path: str = scope.get("path", "")
        headers: dict[bytes, bytes] = dict(scope.get("headers") or ())
        incoming = headers.get(b"traceparent")
        traceparent = tracing.child_of(incoming.decode("latin-1") if incoming else None)
        token = tracing.current_traceparent.set(traceparent)
        start = time.perf_counter()
        status = 500
        started = False
        traceparent_header = (b"traceparent", traceparent.encode())

        async def _send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", ()), traceparent_header]
            await send(message)

        try:
            refusal, receive = await self._check(scope, path, headers, receive)
            if refusal is not None:
                return await refusal(scope, receive, _send)
            try:
                await self.app(scope, receive, _send)
            except Exception:
                log.exception("unhandled error on %s %s", scope.get("method"), path)
                if started:
                    return  # too late for a problem response; the server closes the connection
                response = problem_response(500, "Something went wrong on our side; it has been logged.", instance=path)
                await response(scope, receive, _send)
        finally:
            elapsed = time.perf_counter() - start
            self._measure(scope, path, status, elapsed)
            if not path.startswith(OPEN_PATHS):
                access_log.info(
                    "%s %s %s",
                    scope.get("method"),
                    self._loggable(scope, path),
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
                )
            tracing.current_traceparent.reset(token)

    def _capability(self, path: str) -> bool:
        return bool(self.policy.capability_paths) and path.startswith(self.policy.capability_paths)

    def _loggable(self, scope: Scope, path: str) -> str:
        """The path, or for a capability URL its route template (or prefix): never the secret in it."""
        if not self._capability(path):
            return path
        template = getattr(scope.get("route"), "path", None)
        if template:
            return str(template)
        return next(p for p in self.policy.capability_paths if path.startswith(p)) + "…"

    def _measure(self, scope: Scope, path: str, status: int, elapsed: float) -> None:
        method: str = scope.get("method", "")
        route_path = getattr(scope.get("route"), "path", None) or ("unmatched" if status == 404 else path)
        key = (method, route_path, str(status))
        counter = self._counted.get(key)
        if counter is None:
            if len(self._counted) > 10_000:  # paths are bounded by the routes; a flood of 404s is not
                self._counted.clear()
            counter = self._counted[key] = metrics.http_requests.labels(*key)
        counter.inc()
        timer = self._timed.get(key[:2])
        if timer is None:
            if len(self._timed) > 10_000:
                self._timed.clear()
            timer = self._timed[key[:2]] = metrics.http_duration.labels(method, route_path)
        timer.observe(elapsed)

    async def _check(
        self, scope: Scope, path: str, headers: dict[bytes, bytes], receive: Receive
    ) -> tuple[Response | None, Receive]:
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
        capability = self._capability(path)
        if capability:
            instance = self._loggable(scope, path)  # a refusal names the route, not the token
            if scope.get("method") not in _BODY_METHODS:
                return None, receive
            return await self._capability_body(headers, receive, instance)
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        signed = policy.signed_caller(authorization)
        if signed is not None:  # the caller is who the token names (deps.get_principal), whatever headers say
            scope.setdefault("state", {})[SIGNED_CALLER] = signed
        elif not token_matches(authorization, policy.token):
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

    async def _capability_body(
        self, headers: dict[bytes, bytes], receive: Receive, instance: str
    ) -> tuple[Response | None, Receive]:
        """A capability URL's body: at most CAPABILITY_MAX_BODY bytes, JSON or a form (RFC 8058), read here."""
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        try:
            body = await self._read(receive, CAPABILITY_MAX_BODY)
        except _BodyTooLarge:
            message = f"The body may be at most {CAPABILITY_MAX_BODY} bytes."
            return problem_response(
                413, message, instance=instance, errors=[{"field": "body", "message": message}]
            ), receive
        form = content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"
        if body and not (form or _is_json(content_type)):
            return problem_response(415, "The body must be JSON or a form.", instance=instance), receive
        return None, _replay(body, receive)

    def _too_large(self, path: str) -> Response:
        limit = self.policy.max_body
        message = f"The body may be at most {limit} bytes."
        return problem_response(413, message, instance=path, errors=[{"field": "body", "message": message}])

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
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


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def _receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return _receive
