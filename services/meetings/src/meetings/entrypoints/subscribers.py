"""MEMBERS events this service listens to (subscribed in bootstrap). Each subscriber only turns the contract into a
command and hands it to `handle`, as an HTTP route does.

The event consumer calls them with a unit of work joined to its batch transaction (which also writes the inbox
rows): their commit() writes this service's events, if any, and the consumer commits.
"""

from __future__ import annotations

from datetime import datetime

from netvaerk_shared import contracts
from netvaerk_shared.consumer import Unprocessable
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.envelope import CloudEvent

from ..domain import commands
from ..service_layer.handlers import UnitOfWork, handle


async def on_group_created(uow: UnitOfWork, event: CloudEvent, data: contracts.GroupCreated) -> None:
    await handle(commands.RecordGroup(group_id=data.group_id, name=data.name, slug=data.slug, region=data.region), uow)


async def on_group_updated(uow: UnitOfWork, event: CloudEvent, data: contracts.GroupUpdated) -> None:
    await handle(
        commands.RecordGroupChange(
            group_id=data.group_id, name=data.name, slug=data.slug, region=data.region, status=data.status.value
        ),
        uow,
    )


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


async def on_member_erased(uow: UnitOfWork, event: CloudEvent, data: MemberErased) -> None:
    await handle(commands.ForgetMember(member_id=data.member_id, erased_at=data.erased_at), uow)


# -- the roster's upkeep (issue 9: seats) ------------------------------------------------------------------------
def _instant(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:  # the contract's times are instants; retrying will not add the offset
        raise Unprocessable(f"{name} has no UTC offset")
    return moment


async def on_member_left(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberLeft) -> None:
    left_at = _instant(data.left_at, "left_at")
    await handle(
        commands.RecordLeaving(
            group_id=data.group_id, member_id=data.member_id, left_at=left_at, reason=data.reason.value
        ),
        uow,
    )


async def on_member_role_changed(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberRoleChanged) -> None:
    await handle(commands.RecordRole(group_id=data.group_id, member_id=data.member_id, role=data.role.value), uow)


async def on_seat_transferred(uow: UnitOfWork, event: CloudEvent, data: contracts.SeatTransferred) -> None:
    await handle(
        commands.RecordSeatTransfer(
            group_id=data.group_id,
            organisation_id=data.organisation_id,
            from_member_id=data.from_member_id,
            to_member_id=data.to_member_id,
        ),
        uow,
    )


async def on_member_registered(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberRegistered) -> None:
    """Of the profile only the organisation's id is kept (who is whose colleague); no name, no contact data."""
    at = _instant(data.registered_at, "registered_at")
    await handle(
        commands.RecordOrganisation(member_id=data.member_id, organisation_id=data.organisation.id, at=at), uow
    )


async def on_member_updated(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberUpdated) -> None:
    at = _instant(data.updated_at, "updated_at")
    await handle(
        commands.RecordOrganisation(member_id=data.member_id, organisation_id=data.organisation.id, at=at), uow
    )
