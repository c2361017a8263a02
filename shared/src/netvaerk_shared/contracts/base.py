"""The base of every integration event: a frozen Pydantic model that knows its CloudEvents type and NATS subject."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """The `data` of one CloudEvent. Subclasses set the class variables; fields are the public contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: ClassVar[str]  # producing service: members / meetings / notifications
    aggregate: ClassVar[str]  # member, group, meeting, notification ...
    event: ClassVar[str]  # joined, scheduled ... (snake_case, past tense)
    version: ClassVar[int] = 1
    subject_field: ClassVar[str]  # the field holding the aggregate id

    @classmethod
    def event_type(cls) -> str:
        return f"dk.danskit.{cls.aggregate}.{cls.event}.v{cls.version}"

    @classmethod
    def source(cls) -> str:
        return f"/{cls.service}"

    @classmethod
    def subject_prefix(cls) -> str:
        return f"{cls.service}.{cls.aggregate}.{cls.event}.v{cls.version}"

    def aggregate_id(self) -> str:
        return str(getattr(self, self.subject_field))

    def nats_subject(self) -> str:
        return f"{self.subject_prefix()}.{self.aggregate_id()}"


EVENT_TYPES: dict[str, type[EventData]] = {}


def register(cls: type[EventData]) -> type[EventData]:
    """Class decorator: put a contract into the catalogue (type -> model)."""
    key = cls.event_type()
    if key in EVENT_TYPES and EVENT_TYPES[key] is not cls:
        raise RuntimeError(f"two contracts claim {key}")
    EVENT_TYPES[key] = cls
    return cls
