"""Short-lived tokens the web gateway signs for one service and one caller, so that a service trusts who is asking
without trusting the network: `nvk1.<claims>.<signature>`, the claims base64url JSON `{"aud": service, "sub": member
id or null (the administration), "iat", "exp"}`, the signature HMAC-SHA256 over `nvk1.<claims>` with
GATEWAY_TOKEN_KEY, a secret the gateway and the services share and nobody else holds.

A token lives at most MAX_TTL_SECONDS and opens one service only (`aud`), so one that leaks from a log or a proxy is
worth little and soon worth nothing. The member it names is the caller: a service takes the caller from the token,
never from a header the holder could change."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from uuid import UUID

PREFIX = "nvk1."
DEFAULT_TTL_SECONDS = 60
MAX_TTL_SECONDS = 300
CLOCK_SKEW_SECONDS = 30
MAX_TOKEN_CHARS = 512


@dataclass(frozen=True)
class Claims:
    audience: str
    member_id: UUID | None  # None: the administration
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: str, signed: str) -> str:
    return _b64(hmac.new(key.encode(), signed.encode("ascii"), hashlib.sha256).digest())


def mint(
    key: str, *, audience: str, member_id: UUID | None, ttl: int = DEFAULT_TTL_SECONDS, now: float | None = None
) -> str:
    if not key:
        raise ValueError("GATEWAY_TOKEN_KEY is not set")
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"a service token lives 1 to {MAX_TTL_SECONDS} seconds")
    issued = int(time.time() if now is None else now)
    claims = {"aud": audience, "sub": str(member_id) if member_id else None, "iat": issued, "exp": issued + ttl}
    signed = PREFIX + _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{signed}.{_sign(key, signed)}"


def verify(key: str, token: str, *, audience: str, now: float | None = None) -> Claims | None:
    """The claims of a token signed with `key` for `audience` that is valid now; None for anything else (forged,
    expired, for another service, too long-lived, malformed). Never raises on what a client sent."""
    if not key or not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    signed, _, signature = token.rpartition(".")
    if not signed.startswith(PREFIX) or not hmac.compare_digest(signature.encode(), _sign(key, signed).encode()):
        return None
    try:
        claims = json.loads(_unb64(signed[len(PREFIX) :]))
        aud, sub, iat, exp = claims["aud"], claims["sub"], claims["iat"], claims["exp"]
        if not (isinstance(iat, int) and isinstance(exp, int) and isinstance(aud, str)):
            return None
        member = UUID(sub) if sub is not None else None
    except (ValueError, KeyError, TypeError):
        return None
    moment = time.time() if now is None else now
    if aud != audience or exp <= moment or iat > moment + CLOCK_SKEW_SECONDS or exp - iat > MAX_TTL_SECONDS:
        return None
    return Claims(audience=aud, member_id=member, issued_at=iat, expires_at=exp)
