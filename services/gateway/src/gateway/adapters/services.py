"""The services, as the gateway reaches them: over HTTP, with timeouts, each call carrying a short-lived token
signed for that service and naming the member it acts for (netvaerk_shared.service_tokens). A service that does not
answer becomes `Unavailable` (the page says what is unavailable); a refusal becomes `Refused` with the service's
problem+json, so its message and field errors reach the member."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import httpx

from netvaerk_shared import service_tokens

SERVICES = ("members", "meetings", "notifications")
TOKEN_REUSE_SECONDS = 30  # a token lives 60 s; minted again when half of that is gone
POOL_SIZE = 40  # connections per service


class Unavailable(Exception):
    def __init__(self, service: str) -> None:
        super().__init__(f"the {service} service is unavailable")
        self.service = service


class Refused(Exception):
    def __init__(self, service: str, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{service}: {status} {problem.get('detail', '')}")
        self.service = service
        self.status = status
        self.problem = problem

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or "")

    def field_errors(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for error in self.problem.get("errors") or []:
            if isinstance(error, dict) and error.get("field"):
                out.setdefault(str(error["field"]), str(error.get("message", "")))
        return out


class Services:
    def __init__(
        self, urls: dict[str, str], key: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.urls = {name: url.rstrip("/") for name, url in urls.items()}
        self.key = key
        # one client (one connection pool) per service, every connection kept alive: httpcore's pool walks all of
        # its connections on each request, and closes idle ones it should keep (bench/README, the gateway figure)
        self.clients = {
            name: httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
                limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
                transport=transport,
            )
            for name in self.urls
        }
        self._tokens: dict[tuple[str, UUID | None], tuple[str, float]] = {}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    def token(self, service: str, member_id: UUID | None) -> str:
        now = time.time()
        cached = self._tokens.get((service, member_id))
        if cached is not None and cached[1] > now:
            return cached[0]
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        token = service_tokens.mint(self.key, audience=service, member_id=member_id, now=now)
        self._tokens[(service, member_id)] = (token, now + TOKEN_REUSE_SECONDS)
        return token

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        member: UUID | None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        raw: bool = False,
    ) -> Any:
        """`member`: the member the call acts for; None: the administration (the gateway's own duties, such as
        finding the member of an address at sign-in, and the administrators' pages)."""
        headers = {"Authorization": f"Bearer {self.token(service, member)}"}
        try:
            response = await self.clients[service].request(
                method, self.urls[service] + path, json=json, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise Unavailable(service) from exc
        if response.status_code >= 500 or response.status_code in (502, 503, 504):
            raise Unavailable(service)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:200]}
            raise Refused(service, response.status_code, problem if isinstance(problem, dict) else {})
        if raw:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def ready(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for name in SERVICES:
            try:
                response = await self.clients[name].get(self.urls[name] + "/readyz", timeout=2.0)
                out[name] = response.status_code == 200
            except httpx.HTTPError:
                out[name] = False
        return out
