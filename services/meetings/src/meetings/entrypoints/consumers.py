"""MEMBERS events this service listens to. Each subscriber only turns the contract into a command.

They run inside the consumer's transaction (which also writes the inbox row): no commit here.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from netvaerk_shared import contracts
from netvaerk_shared.consumer import Unprocessable
from netvaerk_shared.envelope import CloudEvent

from ..domain import commands
from ..service_layer import handlers


async def on_group_created(conn: AsyncConnection, event: CloudEvent, data: contracts.GroupCreated) -> None:
    await handlers.record_group(
        commands.RecordGroup(group_id=data.group_id, name=data.name, slug=data.slug, region=data.region), conn
    )


def _membership(data: contracts.MemberJoined) -> commands.RecordMembership:
    if data.joined_at.utcoffset() is None:  # the contract's times are instants; retrying will not add the offset
        raise Unprocessable("joined_at has no UTC offset")
    return commands.RecordMembership(
        group_id=data.group_id, member_id=data.member_id, role=data.role.value, joined_at=data.joined_at
    )


async def on_member_joined(conn: AsyncConnection, event: CloudEvent, data: contracts.MemberJoined) -> None:
    await handlers.record_membership(_membership(data), conn)


async def on_members_joined(conn: AsyncConnection, batch: list[tuple[CloudEvent, contracts.MemberJoined]]) -> None:
    await handlers.record_memberships([_membership(data) for _, data in batch], conn)
