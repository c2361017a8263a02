"""MEMBERS and MEETINGS events this service listens to. Each subscriber only turns the contract into a command and
hands it to `handle`, with the unit of work the event consumer joined to its transaction (which also writes the inbox
row and commits): no commit here. The batch subscribers do the same for a whole fetched batch, in one command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from netvaerk_shared import contracts, tracing
from netvaerk_shared.consumer import Unprocessable
from netvaerk_shared.contracts import meetings as plan
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


async def on_member_updated(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberUpdated) -> None:
    """The profile changed: the contact copy follows (a new address clears an undeliverable mark of the old one)."""
    await handle(commands.RecordContacts((_contact(data),)), uow)


async def on_members_updated(uow: UnitOfWork, batch: list[tuple[CloudEvent, contracts.MemberUpdated]]) -> None:
    await handle(commands.RecordContacts(tuple(_contact(data) for _, data in batch)), uow)


async def on_member_joined(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberJoined) -> None:
    await handle(commands.RecordJoins((_join(event, data),)), uow)


async def on_members_joined(uow: UnitOfWork, batch: list[tuple[CloudEvent, contracts.MemberJoined]]) -> None:
    await handle(commands.RecordJoins(tuple(_join(event, data) for event, data in batch)), uow)


async def on_member_left(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberLeft) -> None:
    await handle(commands.RecordLeaving(member_id=data.member_id, group_id=data.group_id, left_at=data.left_at), uow)


async def on_member_role_changed(uow: UnitOfWork, event: CloudEvent, data: contracts.MemberRoleChanged) -> None:
    await handle(
        commands.RecordRole(
            member_id=data.member_id, group_id=data.group_id, role=data.role.value, changed_at=event.time
        ),
        uow,
    )


async def on_meeting_scheduled(uow: UnitOfWork, event: CloudEvent, data: contracts.MeetingScheduled) -> None:
    meeting = model.Meeting(
        meeting_id=data.meeting_id, group_id=data.group_id, sequence=data.sequence, data=data.model_dump(mode="json")
    )
    await handle(
        commands.RecordMeeting(meeting, cause_event_id=_cause(event), traceparent=tracing.child_of(event.traceparent)),
        uow,
    )


async def on_meeting_rescheduled(uow: UnitOfWork, event: CloudEvent, data: plan.MeetingRescheduled) -> None:
    await handle(
        commands.RecordReschedule(
            meeting_id=data.meeting_id,
            group_id=data.group_id,
            sequence=data.sequence,
            fields=data.model_dump(mode="json", include=set(model.MEETING_FIELDS)),
            previous_starts_at=data.previous_starts_at,
            cause_event_id=_cause(event),
            traceparent=tracing.child_of(event.traceparent),
        ),
        uow,
    )


async def on_meeting_cancelled(uow: UnitOfWork, event: CloudEvent, data: plan.MeetingCancelled) -> None:
    await handle(
        commands.RecordCancellation(
            meeting_id=data.meeting_id,
            group_id=data.group_id,
            sequence=data.sequence,
            reason=data.reason,
            cause_event_id=_cause(event),
            traceparent=tracing.child_of(event.traceparent),
        ),
        uow,
    )


def on_agenda_updated(
    window_seconds: int,
) -> Callable[[UnitOfWork, CloudEvent, plan.AgendaUpdated], Awaitable[None]]:
    """The subscriber, with the service's AGENDA_UPDATE_WINDOW_SECONDS (bootstrap gives it)."""

    async def subscriber(uow: UnitOfWork, event: CloudEvent, data: plan.AgendaUpdated) -> None:
        await handle(
            commands.RecordAgenda(
                meeting_id=data.meeting_id,
                group_id=data.group_id,
                sequence=data.sequence,
                agenda=tuple(item.model_dump(mode="json") for item in data.agenda),
                held=data.status == plan.MeetingStatus.held,
                window_seconds=window_seconds,
                cause_event_id=_cause(event),
                traceparent=tracing.child_of(event.traceparent),
            ),
            uow,
        )

    return subscriber


async def on_rsvp_recorded(uow: UnitOfWork, event: CloudEvent, data: plan.RsvpRecorded) -> None:
    await handle(
        commands.RecordRsvp(
            meeting_id=data.meeting_id,
            group_id=data.group_id,
            member_id=data.member_id,
            response=data.response.value,
            status=data.status.value,
            waitlist_position=data.waitlist_position,
            on_behalf_of=data.on_behalf_of,
            cause_event_id=_cause(event),
            traceparent=tracing.child_of(event.traceparent),
            answered_at=data.answered_at,
        ),
        uow,
    )


async def on_waitlist_promoted(uow: UnitOfWork, event: CloudEvent, data: plan.WaitlistPromoted) -> None:
    await handle(
        commands.RecordPromotion(
            meeting_id=data.meeting_id,
            member_id=data.member_id,
            cause_event_id=_cause(event),
            traceparent=tracing.child_of(event.traceparent),
        ),
        uow,
    )


async def on_proposal_accepted(uow: UnitOfWork, event: CloudEvent, data: plan.ProposalAccepted) -> None:
    await handle(
        commands.RecordProposalAccepted(
            proposal_id=data.proposal_id,
            meeting_id=data.meeting_id,
            member_id=data.member_id,
            agenda_position=data.agenda_position,
            cause_event_id=_cause(event),
            traceparent=tracing.child_of(event.traceparent),
        ),
        uow,
    )


async def on_member_erased(uow: UnitOfWork, event: CloudEvent, data: MemberErased) -> None:
    await handle(commands.ForgetMember(member_id=data.member_id, erased_at=data.erased_at), uow)


def _contact(data: contracts.MemberRegistered | contracts.MemberUpdated) -> model.Contact:
    return model.Contact(
        member_id=data.member_id,
        name=data.name,
        email=str(data.email),
        locale=data.locale.value,
        organisation_id=data.organisation.id,
        profile_at=data.updated_at if isinstance(data, contracts.MemberUpdated) else data.registered_at,
    )


def _join(event: CloudEvent, data: contracts.MemberJoined) -> commands.Join:
    return commands.Join(
        member_id=data.member_id,
        group_id=data.group_id,
        role=data.role.value,
        cause_event_id=_cause(event),
        traceparent=tracing.child_of(event.traceparent),  # the welcome continues the join's trace
        joined_at=data.joined_at,
    )


def _cause(event: CloudEvent) -> UUID:
    try:
        return UUID(event.id)
    except ValueError as exc:
        raise Unprocessable(f"event id {event.id!r} is not a UUID as the v1 contract requires") from exc
