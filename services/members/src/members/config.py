"""Settings of the members service: environment variables only."""

from netvaerk_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "members"
