"""Settings of the web gateway: environment variables only."""

from __future__ import annotations

from typing import Self

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from netvaerk_shared.settings import PLACEHOLDERS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    service_name: str = "gateway"
    environment: str = "development"  # development | production | test
    log_level: str = "INFO"
    database_url: str = ""  # the gateway's own: sessions, sign-in links, administrators; unset: var/gateway.db
    migrations_dir: str | None = None
    members_url: str = "http://127.0.0.1:8001"
    meetings_url: str = "http://127.0.0.1:8002"
    notifications_url: str = "http://127.0.0.1:8003"
    # signs the short-lived tokens the services accept (netvaerk_shared.service_tokens); the services hold the same
    gateway_token_key: str = ""
    public_url: str = "http://127.0.0.1:8000"  # where members reach the gateway: the sign-in links point here
    service_timeout_seconds: float = 5.0
    session_days: int = 14
    link_minutes: int = 15
    sign_ins_per_address: int = 3  # links per address per 15 minutes
    sign_ins_per_client: int = 10  # sign-in requests per client address per 15 minutes
    rate_limit_per_minute: int = 300  # every request, per client address
    max_body_bytes: int = 64 * 1024

    @property
    def secure_cookies(self) -> bool:
        return self.environment == "production" or self.public_url.startswith("https://")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.environment not in {"development", "production", "test"}:
            raise ValueError("ENVIRONMENT must be development, production or test")
        if self.environment == "production":
            key = self.gateway_token_key
            if key.strip().lower() in PLACEHOLDERS or len(key) < 32:
                raise ValueError("GATEWAY_TOKEN_KEY must be a real secret of at least 32 characters in production")
            if not self.public_url.startswith("https://"):
                raise ValueError("PUBLIC_URL must be https:// in production (the session cookie is Secure)")
        if not self.gateway_token_key:
            raise ValueError("GATEWAY_TOKEN_KEY must be set: the services accept the gateway's calls by it")
        if not self.database_url:
            self.database_url = "sqlite+aiosqlite:///var/gateway.db"
        return self
