"""The gateway's short-lived service tokens: a service takes the caller from a token signed for it, never from a
header, and nothing else that looks like one opens anything (forged, expired, for another service, too long-lived)."""

from __future__ import annotations

import base64
import json
import time
from uuid import uuid4

import httpx
from fastapi import Depends, FastAPI

from netvaerk_shared import service_tokens
from netvaerk_shared.deps import Caller, require_token
from netvaerk_shared.http import EdgeMiddleware, EdgePolicy, install_problem_handlers

KEY = "k" * 40
STATIC = "static-api-token-0123456789"


def test_a_minted_token_verifies_for_its_service_only_and_until_it_expires():
    member = uuid4()
    now = time.time()
    token = service_tokens.mint(KEY, audience="members", member_id=member, ttl=60, now=now)
    claims = service_tokens.verify(KEY, token, audience="members", now=now + 59)
    assert claims is not None and claims.member_id == member
    assert service_tokens.verify(KEY, token, audience="meetings", now=now) is None
    assert service_tokens.verify(KEY, token, audience="members", now=now + 61) is None
    assert service_tokens.verify("x" * 40, token, audience="members", now=now) is None
    admin = service_tokens.mint(KEY, audience="members", member_id=None, now=now)
    assert service_tokens.verify(KEY, admin, audience="members", now=now).member_id is None  # type: ignore[union-attr]


def _forge(claims: dict) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    signed = service_tokens.PREFIX + body
    return f"{signed}.{service_tokens._sign(KEY, signed)}"


def test_claims_a_signer_could_not_have_meant_are_refused_even_when_signed():
    now = int(time.time())
    assert (
        service_tokens.verify(
            KEY, _forge({"aud": "members", "sub": None, "iat": now, "exp": now + 3600}), audience="members"
        )
        is None
    )
    assert (
        service_tokens.verify(
            KEY, _forge({"aud": "members", "sub": "not-a-uuid", "iat": now, "exp": now + 60}), audience="members"
        )
        is None
    )
    assert (
        service_tokens.verify(
            KEY, _forge({"aud": "members", "sub": None, "iat": now + 600, "exp": now + 660}), audience="members"
        )
        is None
    )
    assert (
        service_tokens.verify(KEY, _forge({"aud": "members", "iat": now, "exp": now + 60}), audience="members") is None
    )
    assert (
        service_tokens.verify(
            KEY, _forge({"aud": "members", "sub": None, "iat": "0", "exp": now + 60}), audience="members"
        )
        is None
    )


def test_garbage_never_raises():
    token = service_tokens.mint(KEY, audience="members", member_id=uuid4())
    for bad in [
        "",
        "nvk1.",
        "nvk1..",
        "nvk1.@@@.sig",
        token[:-2],
        token + "x",
        "nvk1." + "A" * 600,
        token.replace(".", "", 1),
    ]:
        assert service_tokens.verify(KEY, bad, audience="members") is None
    assert service_tokens.verify("", token, audience="members") is None  # no key configured: none accepted


def app() -> EdgeMiddleware:
    inner = FastAPI()
    install_problem_handlers(inner)

    @inner.get("/whoami", dependencies=[Depends(require_token)])
    async def whoami(caller: Caller):
        return {"member": str(caller.member_id) if caller.member_id else None}

    inner.state.edge = EdgePolicy(token=STATIC, gateway_key=KEY, audience="members")
    return EdgeMiddleware(inner, policy=inner.state.edge)


async def test_the_edge_takes_the_caller_from_the_token_and_ignores_the_header():
    member, other = uuid4(), uuid4()
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
        signed = service_tokens.mint(KEY, audience="members", member_id=member)
        answer = await c.get("/whoami", headers={"Authorization": f"Bearer {signed}", "X-Netvaerk-Member": str(other)})
        assert answer.status_code == 200 and answer.json() == {"member": str(member)}
        for_meetings = service_tokens.mint(KEY, audience="meetings", member_id=member)
        assert (await c.get("/whoami", headers={"Authorization": f"Bearer {for_meetings}"})).status_code == 401
        expired = service_tokens.mint(KEY, audience="members", member_id=member, now=time.time() - 120)
        assert (await c.get("/whoami", headers={"Authorization": f"Bearer {expired}"})).status_code == 401
        # the operators' API token still works, and with it the header names the member acted for
        static = await c.get("/whoami", headers={"Authorization": f"Bearer {STATIC}", "X-Netvaerk-Member": str(other)})
        assert static.json() == {"member": str(other)}


def test_production_takes_a_real_api_token_or_none_beside_the_gateway_key():
    import pytest
    from pydantic import ValidationError

    from netvaerk_shared.settings import ServiceSettings

    with pytest.raises(ValidationError, match="API_TOKEN"):
        ServiceSettings(environment="production", api_token="change-me", gateway_token_key=KEY)
    with pytest.raises(ValidationError, match="API_TOKEN"):
        ServiceSettings(environment="production", api_token="")  # no way in at all
    with pytest.raises(ValidationError, match="GATEWAY_TOKEN_KEY"):
        ServiceSettings(environment="production", api_token="", gateway_token_key="short")
    only_gateway = ServiceSettings(environment="production", api_token="", gateway_token_key=KEY)
    assert only_gateway.api_token == "" and only_gateway.gateway_token_key == KEY
