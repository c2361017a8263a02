"""Settings of the notifications service: environment variables only."""

from typing import Self

from pydantic import field_validator, model_validator

from netvaerk_shared.settings import PLACEHOLDERS, ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "notifications"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "netvaerk@example.org"
    mail_from_name: str = "Dansk IT Netværk"
    delivery_batch_size: int = 50
    delivery_lease_seconds: int = 30  # a delivery claimed by a process that died is taken over after this
    delivery_max_attempts: int = 8  # failed sends (SMTP 4xx, a server away) count; waiting for data does not
    # How long a delivery waits for what it needs (the member's contact, the group, the meeting) to arrive from the
    # other services before it fails (permanent=false): an upstream outage is waited out, not counted as attempts.
    delivery_wait_seconds: int = 3600
    run_deliveries: bool = True
    # The most messages a second the delivery worker hands the SMTP server (a token bucket); 0: no limit.
    smtp_max_per_second: float = 0.0
    # Signed webhooks (entrypoints/webhook_worker.py): the worker, each POST's time limit (connecting, sending and the
    # answer together), attempts before a delivery is parked failed, the backoff (base doubling up to max, with
    # jitter), how many POSTs to one subscriber at once and in all, the lease, and how long a rotated-out secret
    # still signs.
    run_webhooks: bool = True
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 10
    webhook_backoff_base_seconds: float = 5.0
    webhook_backoff_max_seconds: float = 3600.0
    webhook_concurrency_per_subscriber: int = 2
    webhook_max_in_flight: int = 32
    webhook_lease_seconds: int = 60
    webhook_secret_grace_seconds: int = 86400
    # At most one agenda notice per meeting in this many seconds, however often its agenda is edited.
    agenda_update_window_seconds: int = 3600
    # Reminders and nudges: the worker that turns due reminder rows into deliveries, and how often it looks.
    run_reminders: bool = True
    reminder_poll_seconds: float = 30.0
    reminder_batch_size: int = 100
    # Where members reach this service's public routes (the web gateway): List-Unsubscribe links start with it.
    public_base_url: str = "https://netvaerk.danskit.example.org"
    # The HMAC key of one-click unsubscribe tokens; unset, one derived from API_TOKEN (so changing that token voids
    # the links in every mail sent before, as changing this does). Set, at least 16 characters that are no placeholder.
    unsubscribe_secret: str = ""

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")) or any(c.isspace() or ord(c) < 32 for c in value):
            raise ValueError("PUBLIC_BASE_URL must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _unsubscribe_links(self) -> Self:
        secret = self.unsubscribe_secret.strip()
        if secret and (secret.lower() in PLACEHOLDERS or len(secret) < 16):
            raise ValueError("UNSUBSCRIBE_SECRET, when set, must be a real secret of at least 16 characters")
        if self.environment == "production" and not self.public_base_url.startswith("https://"):
            raise ValueError("PUBLIC_BASE_URL must be https in production (RFC 8058)")
        return self

    def unsubscribe_key(self) -> bytes:
        return (self.unsubscribe_secret or f"netvaerk-unsubscribe:{self.api_token}").encode()
