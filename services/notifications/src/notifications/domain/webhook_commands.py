"""What the administration and the webhook worker ask of the webhooks (domain/webhooks.py)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class RegisterWebhook:
    webhook_id: UUID
    name: str
    url: str
    secret: str
    environment: str  # the URL rules are looser in development and test (http to loopback)
    kinds: tuple[str, ...] | None = None
    organisation_id: UUID | None = None


@dataclass(frozen=True)
class RotateWebhookSecret:
    webhook_id: UUID
    secret: str
    grace_seconds: int


@dataclass(frozen=True)
class DeleteWebhook:
    webhook_id: UUID


@dataclass(frozen=True)
class RetryWebhookDelivery:
    webhook_id: UUID
    delivery_id: UUID


@dataclass(frozen=True)
class LeaseWebhookDeliveries:
    """Due deliveries, at most `limit`, and of each subscriber at most `per_webhook` less what the worker has in
    flight of it already (`in_flight`: (webhook id, count) pairs)."""

    owner: str
    limit: int
    lease_seconds: int
    per_webhook: int
    in_flight: tuple[tuple[UUID, int], ...] = ()


@dataclass(frozen=True)
class ReleaseWebhookDeliveries:
    owner: str
    delivery_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class RecordWebhookAttempt:
    """What one POST came to: `status` the HTTP status (None: no answer), `error` None when it was a 2xx."""

    delivery_id: UUID
    owner: str
    status: int | None
    error: str | None
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    jitter: float  # in [0, 1): how much of the backoff is left out
