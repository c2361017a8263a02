"""Domain events -> public integration events (the v1 contracts)."""

from __future__ import annotations

from netvaerk_shared import contracts

from ..domain import events
from ..domain.model import Group, Member


def to_contract(event: object, aggregate: Group | Member) -> contracts.EventData:
    if isinstance(event, events.GroupCreated) and isinstance(aggregate, Group):
        g = aggregate
        return contracts.GroupCreated(
            group_id=g.id,
            name=g.name,
            slug=g.slug,
            region=g.region,
            description=g.description,
            topics=g.topics,
            capacity=g.capacity,
            requires_approval=g.requires_approval,
        )
    if isinstance(event, events.MemberRegistered) and isinstance(aggregate, Member):
        m = aggregate
        return contracts.MemberRegistered(
            member_id=m.id,
            name=m.name,
            email=m.email,
            phone=m.phone,
            organisation=contracts.Organisation(
                id=m.organisation.id, name=m.organisation.name, kind=m.organisation.kind, cvr=m.organisation.cvr
            ),
            job_title=m.job_title,
            locale=m.locale,
            registered_at=m.registered_at,
        )
    if isinstance(event, events.MemberJoined):
        return contracts.MemberJoined(
            member_id=event.member_id, group_id=event.group_id, role=event.role, joined_at=event.joined_at
        )
    raise TypeError(f"no contract for {type(event).__name__}")
