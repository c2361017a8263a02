"""Signed webhooks: the administration's subscribers, and the delivery of this service's own events to them. Pure
Python: no database, no clock, no randomness, no I/O (the secrets and the jitter are handed in).

A subscriber (`Webhook`) names a URL, optionally the notification kinds it wants and an organisation whose members'
notifications alone it wants. Every `notification.sent` / `notification.failed` this service writes to its outbox is
owed, in that same transaction, to every subscriber that wants it (`Webhook.wants`): one `WebhookDelivery` per
(subscriber, event), by a unique key, so at most once each. Its life:

    pending --lease--> leased --delivered--> delivered
                              --attempt_failed--> pending again, after a backoff with jitter | failed (parked)
                              --release--> pending (given back untried)
    failed --retry (an operator)--> pending, with fresh attempts

A 2xx answer delivers it; a 5xx, 408, 429, a timeout or a connection error is retried with exponential backoff up to
the maximum of attempts, then parked `failed`; any other answer (a 4xx, a redirect: none is followed) parks it at once.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

from .errors import DomainError, LeaseLost, NotFailed

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
STATUSES = (PENDING, DELIVERED, FAILED)

MAX_URL_LENGTH = 2048
SIGNATURE_VERSION = "v1"


class BadWebhookUrl(DomainError):
    """A URL a subscriber may not have: 422 with the rule it breaks."""

    status = 422


# -- the URL rules (and the SSRF stance: see README "The notifications service") -------------------------------------
_LOOPBACK_NAMES = ("localhost", "localhost.")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    address = _ip(host)
    return host.lower() in _LOOPBACK_NAMES if address is None else address.is_loopback


def check_url(url: str, *, environment: str) -> str:
    """The URL as a subscriber may have it, or BadWebhookUrl: https (plain http only to a loopback address when
    ENVIRONMENT is development or test), at most MAX_URL_LENGTH characters, a host, no user name or password in it, no
    fragment; an IP address that is not public (private, loopback, link-local such as the cloud metadata address,
    reserved) only in development and test. Host names are not resolved here (see the README's SSRF notes)."""
    if len(url) > MAX_URL_LENGTH:
        raise BadWebhookUrl(f"The URL may be at most {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise BadWebhookUrl("The URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise BadWebhookUrl(f"Not a URL: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise BadWebhookUrl("The URL must be https.")
    if not host:
        raise BadWebhookUrl("The URL must name a host.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BadWebhookUrl("The URL may not carry a user name or password: the signature authenticates us.")
    if parts.fragment or url.endswith("#"):
        raise BadWebhookUrl("The URL may not have a fragment.")
    relaxed = environment in ("development", "test")
    if scheme == "http" and not (relaxed and _is_loopback(host)):
        raise BadWebhookUrl("The URL must be https (http only to a loopback address in development and test).")
    address = _ip(host)
    if address is not None and not address.is_global and not relaxed:
        raise BadWebhookUrl("The URL may not name a private, loopback, link-local or reserved address.")
    if address is None and _is_loopback(host) and not relaxed:
        raise BadWebhookUrl("The URL may not name a loopback host.")
    return url


# -- signing ------------------------------------------------------------------------------------------------------
def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>" under `secret`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`Netvaerk-Webhook-Signature`: "v1=<hex>", one entry per secret (the new one first), comma-separated."""
    return ",".join(f"{SIGNATURE_VERSION}={sign(secret, timestamp, body)}" for secret in secrets)


def verify(header: str, secret: str, timestamp: int, body: bytes) -> bool:
    """What a receiver does: one of the header's v1 entries is the signature under its secret."""
    expected = sign(secret, timestamp, body)
    for entry in header.split(","):
        version, _, value = entry.strip().partition("=")
        if version == SIGNATURE_VERSION and hmac.compare_digest(value, expected):
            return True
    return False


# -- the rules of delivery ----------------------------------------------------------------------------------------
def retry_delay(attempts: int, *, base: float, cap: float, jitter: float) -> timedelta:
    """Backoff after the `attempts`-th failed attempt: base, 2 base, 4 base, ... capped at `cap`, of which a random
    part (`jitter` in [0, 1): 0 the full delay, near 1 half of it) is left out, so that subscribers that failed
    together do not come back together."""
    full = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=full * (1 - 0.5 * min(max(jitter, 0.0), 1.0)))


def retryable(status: int | None) -> bool:
    """None: no answer (a timeout, a connection error). 5xx, 408 and 429 are worth another try; any other answer
    that is not 2xx (a 4xx, a redirect, which is not followed) is the subscriber's "no" and is not."""
    return status is None or status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class Webhook:
    """A subscriber. `kinds` None: every kind. `organisation_id` None: every member's notifications. The secret
    signs; after a rotation the previous one signs too until `previous_until`."""

    id: UUID
    name: str
    url: str
    secret: str
    created_at: datetime
    kinds: tuple[str, ...] | None = None
    organisation_id: UUID | None = None
    previous_secret: str | None = None
    previous_until: datetime | None = None

    def wants(self, kind: str, organisation_id: UUID | None) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self.organisation_id is None or self.organisation_id == organisation_id

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets a delivery made at `now` is signed with: the current one, and the previous one in its grace."""
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            return (self.secret, self.previous_secret)
        return (self.secret,)

    def rotated(self, new_secret: str, now: datetime, grace: timedelta) -> Webhook:
        """The subscriber with a new secret; the one it had signs as well for `grace`."""
        return replace(self, secret=new_secret, previous_secret=self.secret, previous_until=now + grace)


@dataclass(eq=False)
class WebhookDelivery:
    """One event owed to one subscriber. `event_id` is the CloudEvent's id; `body` its structured-mode JSON."""

    id: UUID
    webhook_id: UUID
    event_id: str
    event_type: str
    member_id: UUID | None
    body: bytes
    created_at: datetime
    next_attempt_at: datetime
    status: str = PENDING
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    events: list[object] = field(default_factory=list)  # none: webhook deliveries announce nothing

    def lease(self, owner: str, now: datetime, until: datetime) -> None:
        if self.status != PENDING or self.next_attempt_at > now:
            raise LeaseLost(f"webhook delivery {self.id} is not due")
        if self.lease_until is not None and self.lease_until >= now:
            raise LeaseLost(f"webhook delivery {self.id} is leased by {self.lease_owner}")
        self.lease_owner, self.lease_until = owner, until

    def release(self, owner: str) -> bool:
        if self.status != PENDING or self.lease_owner != owner:
            return False
        self.lease_owner, self.lease_until = None, None
        return True

    def delivered(self, owner: str, now: datetime, status: int) -> None:
        self._require_lease(owner)
        self.status, self.delivered_at, self.attempts = DELIVERED, now, self.attempts + 1
        self.last_status, self.last_error = status, None
        self.lease_owner, self.lease_until = None, None

    def attempt_failed(
        self, owner: str, now: datetime, *, status: int | None, error: str, max_attempts: int, delay: timedelta
    ) -> None:
        """Pending again after `delay`, or parked `failed` when the answer is final or the attempts are used up."""
        self._require_lease(owner)
        self.attempts += 1
        self.last_status, self.last_error = status, error
        give_up = not retryable(status) or self.attempts >= max_attempts
        self.status = FAILED if give_up else PENDING
        self.next_attempt_at = now if give_up else now + delay
        self.lease_owner, self.lease_until = None, None

    def retry(self, now: datetime) -> None:
        """An operator sends a parked delivery again: pending, due now, with fresh attempts."""
        if self.status != FAILED:
            raise NotFailed(f"Webhook delivery {self.id} has not failed: only failed ones can be retried.")
        self.status, self.attempts, self.next_attempt_at = PENDING, 0, now
        self.lease_owner, self.lease_until = None, None

    def _require_lease(self, owner: str) -> None:
        if self.status != PENDING or self.lease_owner != owner:
            raise LeaseLost(f"webhook delivery {self.id} is no longer ours ({self.status}, held by {self.lease_owner})")
