"""Configuration from environment variables only; every service extends ServiceSettings. The library reads the
environment nowhere else: the small classes here serve what runs before or without a service's settings (the first
log lines, Alembic's env.py, the operator command line)."""

from __future__ import annotations

from typing import Self

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"", "change-me", "changeme", "secret", "token", "password"}
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class LoggingSettings(BaseSettings):
    """LOG_LEVEL alone: what a service logs with before its full settings are read (they may still be invalid)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    log_level: str = "INFO"


class MigrationSettings(BaseSettings):
    """DATABASE_URL, for `alembic -c services/<svc>/alembic.ini ...` (netvaerk_shared.migrate.run_env); unset: ''."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    database_url: str = ""


class OperatorSettings(BaseSettings):
    """The connection of `python -m netvaerk_shared.operator`: NATS_URL, NATS_USER, NATS_PASSWORD (set but empty
    counts as unset)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    nats_url: str = DEFAULT_NATS_URL
    nats_user: str | None = None
    nats_password: str | None = None

    @field_validator("nats_url")
    @classmethod
    def _default_url(cls, value: str) -> str:
        return value or DEFAULT_NATS_URL

    @field_validator("nats_user", "nats_password")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class ServiceSettings(LoggingSettings):
    service_name: str = "service"
    environment: str = "development"  # development | production
    database_url: str = ""
    nats_url: str = DEFAULT_NATS_URL
    nats_user: str | None = None
    nats_password: str | None = None
    api_token: str = ""
    # the secret the web gateway signs its short-lived service tokens with (service_tokens); unset: none accepted
    gateway_token_key: str = ""
    run_relay: bool = True
    run_consumers: bool = True
    auto_migrate: bool = True
    # Alembic directory; unset: services/<svc>/migrations next to the source tree (editable installs, tests).
    # A non-editable install (the Docker images) has no such directory and sets MIGRATIONS_DIR.
    migrations_dir: str | None = None
    rate_limit_per_minute: int = 600  # per client address, for every HTTP endpoint
    max_body_bytes: int = 1 << 20  # a request body larger than this gets 413 while it streams in
    # An event larger than this is refused before the change commits (413). 0: the connected NATS server's
    # max_payload less room for headers (1 MiB less 4 KiB until the first connection).
    max_event_bytes: int = 0
    stream_replicas: int = 1  # 3 on a NATS cluster
    relay_batch_size: int = 500
    consumer_batch_size: int = 200
    consumer_max_deliver: int = 5  # after this many failed deliveries an event becomes a dead letter
    # GDPR export (netvaerk_shared.gdpr): the services that must each answer for their part, and how long to wait
    gdpr_export_services: str = "members,meetings,notifications"
    gdpr_export_timeout_seconds: float = 5.0

    @field_validator("environment")
    @classmethod
    def _env(cls, value: str) -> str:
        if value not in {"development", "production", "test"}:
            raise ValueError("ENVIRONMENT must be development, production or test")
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Self:
        # production: a real API_TOKEN, or none at all when GATEWAY_TOKEN_KEY is set (then only the web gateway's
        # short-lived tokens open the API: no long-lived secret exists that could leak)
        gateway_only = not self.api_token and bool(self.gateway_token_key)
        if self.environment == "production" and not gateway_only:
            if self.api_token.strip().lower() in PLACEHOLDERS:
                raise ValueError("API_TOKEN must be a real secret in production (or unset, with GATEWAY_TOKEN_KEY)")
            if len(self.api_token) < 16:
                raise ValueError("API_TOKEN must be at least 16 characters in production")
        if self.environment == "production" and self.gateway_token_key and len(self.gateway_token_key) < 32:
            raise ValueError("GATEWAY_TOKEN_KEY must be at least 32 characters in production")
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///var/{self.service_name}.db"
        return self
