"""One-click unsubscribe (RFC 8058): the token in a mail's List-Unsubscribe link, HMAC-signed (member id, category),
so the link works without signing in and names nothing readable.

token = base64url(member id's 16 bytes + the category's number) "." base64url(HMAC-SHA256(key, "v1" + those bytes))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from uuid import UUID

from ..domain.model import CATEGORIES

_CONTEXT = b"netvaerk-unsubscribe-v1:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeTokens:
    def __init__(self, key: bytes, base_url: str) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _CONTEXT + payload, hashlib.sha256).digest()

    def token(self, member_id: UUID, category: str) -> str:
        payload = member_id.bytes + bytes([CATEGORIES.index(category)])
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def url(self, member_id: UUID, category: str) -> str:
        return f"{self.base_url}/unsubscribe/{self.token(member_id, category)}"

    def read(self, token: str) -> tuple[UUID, str] | None:
        """(member id, category) of a token we signed; None for anything else (forged, garbled, cut short)."""
        if len(token) > 200 or not token.isascii():
            return None
        encoded, _, signature = token.partition(".")
        try:
            payload, given = _unb64(encoded), _unb64(signature)
        except (binascii.Error, ValueError):
            return None
        if _b64(payload) != encoded or _b64(given) != signature:  # the decoder skips what is not base64url
            return None
        if len(payload) != 17 or not hmac.compare_digest(given, self._sign(payload)):
            return None
        if payload[16] >= len(CATEGORIES):
            return None
        return UUID(bytes=payload[:16]), CATEGORIES[payload[16]]
