"""Events published by the meetings service on stream MEETINGS (subjects meetings.>)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .base import EventData, register


class AgendaKind(StrEnum):
    check_in = "check_in"
    talk = "talk"
    discussion = "discussion"
    break_ = "break"
    other = "other"


class Venue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    address: str | None = None
    host_organisation: str | None = None


class AgendaItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    position: int = Field(ge=1)
    kind: AgendaKind
    title: str
    speaker: str | None = None
    speaker_organisation: str | None = None
    minutes: int = Field(ge=0, le=600)
    tags: tuple[str, ...] = ()


@register
class MeetingScheduled(EventData):
    """A meeting of a network group was put in the calendar. Times are UTC instants; `timezone` is where it is held."""

    service: ClassVar[str] = "meetings"
    aggregate: ClassVar[str] = "meeting"
    event: ClassVar[str] = "scheduled"
    subject_field: ClassVar[str] = "meeting_id"

    meeting_id: UUID
    group_id: UUID
    series_id: UUID | None = None
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str = "Europe/Copenhagen"
    venue: Venue | None = None
    online_url: str | None = None
    capacity: int | None = None
    rsvp_deadline: datetime | None = None
    agenda: tuple[AgendaItem, ...] = ()
    sequence: int = 0
