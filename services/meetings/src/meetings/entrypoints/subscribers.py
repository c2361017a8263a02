"""MEMBERS events this service listens to (subscribed in bootstrap). Each subscriber only turns the contract into a
command and hands it to `handle`, as an HTTP route does.

The event consumer calls them with a unit of work joined to its batch transaction (which also writes the inbox
rows): their commit() writes this service's events, if any, and the consumer commits.
"""

from __future__ import annotations

from netvaerk_shared import contracts
from netvaerk_shared.consumer import Unprocessable
from netvaerk_shared.envelope import CloudEvent

from ..domain import commands
from ..service_layer.handlers import UnitOfWork, handle


async def on_group_created(uow: UnitOfWork, event: CloudEvent, data: contracts.GroupCreated) -> None:
    await handle(commands.RecordGroup(group_id=data.group_id, name=data.name, slug=data.slug, region=data.region), uow)


def _membership(data: contracts.MemberJoined) -> commands.RecordMembership:
    if data.joined_at.utcoffset() is None:  # the contract's times are instants; retrying will not add the offset
        raise Unprocessable("joined_at has no UTC offset")
    return commands.RecordMembership(
        group_id=data.group_id, member_id=data.member_id, role=data.role.value, joined_at=data.joined_at
    )


async def on_member_joined(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberJoined) -> None:
    await handle(_membership(data), uow)


async def on_members_joined(uow: UnitOfWork, batch: list[tuple[CloudEvent, contracts.MemberJoined]]) -> None:
    await handle(commands.RecordMemberships(tuple(_membership(data) for _, data in batch)), uow)
