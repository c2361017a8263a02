"""MEMBERS and MEETINGS events this service listens to. Each subscriber only turns the contract into a command and
hands it to `handle`, with the unit of work the event consumer joined to its transaction (which also writes the inbox
row and commits): no commit here. The batch subscribers do the same for a whole fetched batch, in one command.
"""

from __future__ import annotations

from uuid import UUID

from netvaerk_shared import contracts, tracing
from netvaerk_shared.consumer import Unprocessable
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.envelope import CloudEvent

from ..domain import commands, model
from ..service_layer.handlers import handle
from ..service_layer.unit_of_work import UnitOfWork


async def on_group_created(uow: UnitOfWork, event: CloudEvent, data: contracts.GroupCreated) -> None:
    await handle(commands.RecordGroup(group_id=data.group_id, name=data.name), uow)


async def on_member_registered(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberRegistered) -> None:
    await handle(commands.RecordContacts((_contact(data),)), uow)


async def on_members_registered(uow: UnitOfWork, batch: list[tuple[CloudEvent, contracts.MemberRegistered]]) -> None:
    await handle(commands.RecordContacts(tuple(_contact(data) for _, data in batch)), uow)


async def on_member_joined(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberJoined) -> None:
    await handle(commands.RecordJoins((_join(event, data),)), uow)


async def on_members_joined(uow: UnitOfWork, batch: list[tuple[CloudEvent, contracts.MemberJoined]]) -> None:
    await handle(commands.RecordJoins(tuple(_join(event, data) for event, data in batch)), uow)


async def on_meeting_scheduled(uow: UnitOfWork, event: CloudEvent, data: contracts.MeetingScheduled) -> None:
    meeting = model.Meeting(
        meeting_id=data.meeting_id, group_id=data.group_id, sequence=data.sequence, data=data.model_dump(mode="json")
    )
    await handle(
        commands.RecordMeeting(meeting, cause_event_id=_cause(event), traceparent=tracing.child_of(event.traceparent)),
        uow,
    )


async def on_member_erased(uow: UnitOfWork, event: CloudEvent, data: MemberErased) -> None:
    await handle(commands.ForgetMember(member_id=data.member_id, erased_at=data.erased_at), uow)


def _contact(data: contracts.MemberRegistered) -> model.Contact:
    return model.Contact(member_id=data.member_id, name=data.name, email=str(data.email), locale=data.locale.value)


def _join(event: CloudEvent, data: contracts.MemberJoined) -> commands.Join:
    return commands.Join(
        member_id=data.member_id,
        group_id=data.group_id,
        role=data.role.value,
        cause_event_id=_cause(event),
        traceparent=tracing.child_of(event.traceparent),  # the welcome continues the join's trace
    )


def _cause(event: CloudEvent) -> UUID:
    try:
        return UUID(event.id)
    except ValueError as exc:
        raise Unprocessable(f"event id {event.id!r} is not a UUID as the v1 contract requires") from exc
