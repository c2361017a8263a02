"""Settings of the meetings service: environment variables only."""

from netvaerk_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "meetings"
