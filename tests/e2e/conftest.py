"""The platform as real processes: three services (uvicorn), a real NATS JetStream, real databases (PostgreSQL, or
SQLite where no PostgreSQL can be had) and a real SMTP server (the Maildir sink)."""

from __future__ import annotations

import email
import email.policy
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netvaerk_testing.processes import ServiceProcess, free_port
from netvaerk_testing.smtp_sink import open_maildir, start_sink

TOKEN = "e2e-token-0123456789abcdef"
SERVICES = ("members", "meetings", "notifications")


def request_json(url: str, method: str, token: str, body=None, timeout: float = 5.0):
    """(status, headers with lower-case names, JSON body) of one call; (None, {}, {"error": ...}) when nothing
    answered (refused, reset, timed out: the service is away)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, json.loads(error.read() or b"null")
    except (OSError, ValueError) as error:
        return None, {}, {"error": repr(error)}


@dataclass
class Platform:
    services: dict[str, ServiceProcess]
    maildir: Path
    nats_url: str
    extra: dict = field(default_factory=dict)

    def call(self, service: str, method: str, path: str, body=None, headers=None) -> tuple[int, dict | list]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.services[service].url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def mails(self) -> list[email.message.EmailMessage]:
        box = open_maildir(self.maildir)
        return [email.message_from_bytes(box.get_bytes(k), policy=email.policy.default) for k in box.keys()]


class SmtpServer:
    """The platform's SMTP server, which a test may take away and bring back on the same port and Maildir."""

    def __init__(self, sink, port: int, maildir: Path) -> None:
        self.sink, self.port, self.maildir = sink, port, maildir

    def stop(self) -> None:
        if self.sink is not None:
            self.sink.stop()
            self.sink = None

    def start(self) -> None:
        if self.sink is None:
            self.sink = start_sink("127.0.0.1", self.port, self.maildir)


@pytest.fixture
def platform(clean_nats, make_database_url, tmp_path, request):
    backend = getattr(request, "param", "postgresql")
    smtp_port = free_port()
    maildir = tmp_path / "mail"
    smtp = SmtpServer(start_sink("127.0.0.1", smtp_port, maildir), smtp_port, maildir)
    common = {
        "NATS_URL": clean_nats,
        "API_TOKEN": TOKEN,
        "ENVIRONMENT": "test",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "INFO",
    }
    services = {}
    for name in SERVICES:
        env = {**common, "DATABASE_URL": make_database_url(backend, name)}
        if name == "notifications":
            env.update(
                {
                    "SMTP_HOST": "127.0.0.1",
                    "SMTP_PORT": str(smtp_port),
                    "DELIVERY_LEASE_SECONDS": "3",
                    "MAIL_FROM": "netvaerk@example.org",
                }
            )
        services[name] = ServiceProcess(name, env, tmp_path)
    try:
        for s in services.values():
            s.start(wait=False)
        for s in services.values():
            s.wait_ready()
        extra = {"backend": backend, "smtp": smtp}
        yield Platform(services=services, maildir=maildir, nats_url=clean_nats, extra=extra)
    finally:
        for s in services.values():
            s.stop()
        smtp.stop()


GATEWAY_KEY = "e2e-gateway-key-0123456789abcdef0123456789"


@dataclass
class Web:
    """The web gateway as a real process in front of the platform's services."""

    platform: Platform
    process: ServiceProcess

    @property
    def url(self) -> str:
        return self.process.url

    def sign_in_link(self, address: str, timeout: float = 20.0) -> str:
        """The sign-in link of the newest sign-in mail to `address` (waits for it)."""
        import re
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for mail in reversed(self.platform.mails()):
                if address in str(mail["To"]):
                    found = re.search(r"https?://[^\s\"<>]+/login/[A-Za-z0-9_-]+", mail_text(mail))
                    if found and found.group(0) not in self.used:
                        self.used.add(found.group(0))
                        return found.group(0)
            time.sleep(0.1)
        raise AssertionError(f"no sign-in mail to {address} within {timeout}s")

    used: set = field(default_factory=set)


def mail_text(mail) -> str:
    parts = [mail] if not mail.is_multipart() else [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    return "\n".join(p.get_content() for p in parts if p.get_content_type() == "text/plain")


@pytest.fixture
def web(clean_nats, make_database_url, tmp_path):
    """The platform (PostgreSQL) with the services accepting the gateway's tokens, and the gateway in front."""
    smtp_port = free_port()
    maildir = tmp_path / "mail"
    smtp = SmtpServer(start_sink("127.0.0.1", smtp_port, maildir), smtp_port, maildir)
    common = {
        "NATS_URL": clean_nats,
        "API_TOKEN": TOKEN,
        "GATEWAY_TOKEN_KEY": GATEWAY_KEY,
        "ENVIRONMENT": "test",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "INFO",
    }
    services = {}
    for name in SERVICES:
        env = {**common, "DATABASE_URL": make_database_url("postgresql", name)}
        if name == "notifications":
            env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_port), MAIL_FROM="netvaerk@example.org")
        services[name] = ServiceProcess(name, env, tmp_path)
    gateway_port = free_port()
    gateway = ServiceProcess(
        "gateway",
        {
            **common,
            "DATABASE_URL": make_database_url("postgresql", "gateway"),
            "PUBLIC_URL": f"http://127.0.0.1:{gateway_port}",
            "RATE_LIMIT_PER_MINUTE": "6000",
            **{f"{name.upper()}_URL": s.url for name, s in services.items()},
        },
        tmp_path,
        port=gateway_port,
    )
    try:
        for s in [*services.values(), gateway]:
            s.start(wait=False)
        for s in [*services.values(), gateway]:
            s.wait_ready()
        platform = Platform(services=services, maildir=maildir, nats_url=clean_nats, extra={"smtp": smtp})
        yield Web(platform=platform, process=gateway)
    finally:
        for s in [gateway, *services.values()]:
            s.stop()
        smtp.stop()
