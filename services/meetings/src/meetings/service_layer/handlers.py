"""Command handlers: one function per command, registered in HANDLERS, each `handler(cmd, uow)` in one unit of work.

HTTP routes and event subscribers call the same `handle(cmd, uow)`. A subscriber's unit of work is joined to the
event consumer's transaction, which also records the event id in the inbox: effect and inbox row commit together or
not at all. The unit of work brings the repositories (`uow.repo.meetings`, `uow.repo.rosters`) and the clock
(`uow.clock()`); unit tests give it fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters.repository import Repositories
from ..domain import commands
from ..domain.errors import NotFound
from ..domain.model import Meeting
from . import plan, proposals, seat_handlers

UnitOfWork = AbstractUnitOfWork[Repositories]


async def schedule_meeting(cmd: commands.ScheduleMeeting, uow: UnitOfWork) -> Meeting:
    meeting = Meeting.schedule(
        group_id=cmd.group_id,
        title=cmd.title,
        starts_at=cmd.starts_at,
        ends_at=cmd.ends_at,
        now=uow.clock(),
        timezone=cmd.timezone,
        venue=cmd.venue,
        online_url=cmd.online_url,
        capacity=cmd.capacity,
        agenda=cmd.agenda,
        rsvp_deadline=cmd.rsvp_deadline,
    )
    async with uow:
        if not await uow.repo.rosters.group_known(cmd.group_id):
            raise NotFound(
                f"The group {cmd.group_id} is unknown to the meetings service: it has not (yet) received "
                "the group's creation from the members service. Check the group id, or try again shortly."
            )
        await plan.refuse_archived(uow, cmd.group_id)
        await plan.may_plan(uow, cmd.group_id, cmd.by)
        await uow.repo.meetings.add(meeting)
        await uow.commit()
    return meeting


# -- the roster copy, fed by MEMBERS events ----------------------------------------------------------------------
async def record_group(cmd: commands.RecordGroup, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.rosters.record_group(cmd.group_id, cmd.name, cmd.slug, cmd.region)
        await uow.commit()


async def record_group_change(cmd: commands.RecordGroupChange, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.rosters.record_group_change(cmd.group_id, cmd.name, cmd.slug, cmd.region, cmd.status)
        await uow.commit()


async def record_membership(cmd: commands.RecordMembership, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.rosters.record_membership(cmd.group_id, cmd.member_id, cmd.role, cmd.joined_at)
        await uow.commit()


async def record_memberships(cmd: commands.RecordMemberships, uow: UnitOfWork) -> None:
    """The same as record_membership for a whole batch of events, in a few statements."""
    async with uow:
        await uow.repo.rosters.record_memberships(
            (c.group_id, c.member_id, c.role, c.joined_at) for c in cmd.memberships
        )
        await uow.commit()


async def forget_member(cmd: commands.ForgetMember, uow: UnitOfWork) -> None:
    """GDPR erasure (MemberErased): the member leaves the roster copy (as members freed their seats), their answers,
    attendance and proposals stay counted under random ids, nothing here names the member any more. A second
    delivery changes nothing."""
    async with uow:
        await uow.repo.rosters.forget_member(cmd.member_id, cmd.erased_at)
        await uow.repo.proposals.forget_member(cmd.member_id)  # proposals and backings, under random ids
        await uow.repo.feeds.forget_member(cmd.member_id)  # the member's calendar feeds, gone
        await seat_handlers.forget_seats(uow, cmd.member_id)  # answers and attendance too (issue 9: seats)
        await uow.commit()


Command = (
    commands.ScheduleMeeting
    | commands.RecordGroup
    | commands.RecordGroupChange
    | commands.RecordMembership
    | commands.RecordMemberships
    | commands.ForgetMember
    | commands.AnswerInvitation
    | commands.SendColleague
    | commands.RecordAttendance
    | commands.RecordLeaving
    | commands.RecordRole
    | commands.RecordSeatTransfer
    | commands.RecordOrganisation
    | commands.RescheduleMeeting
    | commands.CancelMeeting
    | commands.ReplaceAgenda
    | commands.RecordMinutes
    | commands.PlanSeries
    | commands.CancelSeries
    | commands.SubmitProposal
    | commands.BackProposal
    | commands.WithdrawBacking
    | commands.AcceptProposal
    | commands.DeclineProposal
    | commands.CreateCalendarFeed
    | commands.RevokeCalendarFeed
)

HANDLERS: dict[type[Command], Callable[[Any, UnitOfWork], Awaitable[Any]]] = {
    commands.ScheduleMeeting: schedule_meeting,
    commands.RecordGroup: record_group,
    commands.RecordGroupChange: record_group_change,
    commands.RecordMembership: record_membership,
    commands.RecordMemberships: record_memberships,
    commands.ForgetMember: forget_member,
    commands.AnswerInvitation: seat_handlers.answer_invitation,
    commands.SendColleague: seat_handlers.send_colleague,
    commands.RecordAttendance: seat_handlers.record_attendance,
    commands.RecordLeaving: seat_handlers.record_leaving,
    commands.RecordRole: seat_handlers.record_role,
    commands.RecordSeatTransfer: seat_handlers.record_seat_transfer,
    commands.RecordOrganisation: seat_handlers.record_organisation,
    commands.RescheduleMeeting: plan.reschedule_meeting,
    commands.CancelMeeting: plan.cancel_meeting,
    commands.ReplaceAgenda: plan.replace_agenda,
    commands.RecordMinutes: plan.record_minutes,
    commands.PlanSeries: plan.plan_series,
    commands.CancelSeries: plan.cancel_series,
    commands.SubmitProposal: proposals.submit_proposal,
    commands.BackProposal: proposals.back_proposal,
    commands.WithdrawBacking: proposals.withdraw_backing,
    commands.AcceptProposal: proposals.accept_proposal,
    commands.DeclineProposal: proposals.decline_proposal,
    commands.CreateCalendarFeed: proposals.create_calendar_feed,
    commands.RevokeCalendarFeed: proposals.revoke_calendar_feed,
}


async def handle(cmd: Command, uow: UnitOfWork) -> Any:
    """Run the command's handler; returns what it returns (the meeting scheduled, or nothing)."""
    return await HANDLERS[type(cmd)](cmd, uow)
