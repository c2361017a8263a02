"""Settings of the notifications service: environment variables only."""

from netvaerk_shared.settings import ServiceSettings


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
