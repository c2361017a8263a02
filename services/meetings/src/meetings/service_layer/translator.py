"""Domain events -> public integration events (the v1 contracts)."""

from __future__ import annotations

from netvaerk_shared import contracts

from ..domain import events
from ..domain.model import Meeting


def to_contract(event: object, aggregate: Meeting) -> contracts.EventData:
    if isinstance(event, events.MeetingScheduled) and isinstance(aggregate, Meeting):
        m = aggregate
        venue = m.venue
        return contracts.MeetingScheduled(
            meeting_id=m.id,
            group_id=m.group_id,
            title=m.title,
            starts_at=m.starts_at,
            ends_at=m.ends_at,
            timezone=m.timezone,
            venue=contracts.Venue(name=venue.name, address=venue.address, host_organisation=venue.host_organisation)
            if venue
            else None,
            online_url=m.online_url,
            capacity=m.capacity,
            agenda=tuple(
                contracts.AgendaItem(
                    position=i.position,
                    kind=i.kind,
                    title=i.title,
                    speaker=i.speaker,
                    speaker_organisation=i.speaker_organisation,
                    minutes=i.minutes,
                    tags=i.tags,
                )
                for i in m.agenda
            ),
            sequence=m.sequence,
        )
    raise TypeError(f"no contract for {type(event).__name__}")
