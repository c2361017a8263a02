"""Command handlers for the seats: answers, colleagues sent in one's place, attendance, and the roster's upkeep
from MEMBERS events (leaving, role changes, seat transfers, organisations). Registered in handlers.HANDLERS.

Every change to a meeting's seats goes through `uow.repo.seats.get()`, which locks the meeting's row until the
unit of work ends: the answers to one meeting are decided one at a time, in the order they arrive.
"""

from __future__ import annotations

from uuid import UUID

from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters.repository import Repositories
from ..domain import commands
from ..domain.errors import Forbidden, NotFound
from ..domain.rsvp import Answer, Seating

UnitOfWork = AbstractUnitOfWork[Repositories]


class MembershipNotYetKnown(RuntimeError):
    """A role change for a membership whose join has not been consumed yet (another durable): the consumer retries
    the event later, by which time the join is in."""


async def answer_invitation(cmd: commands.AnswerInvitation, uow: UnitOfWork) -> Answer:
    async with uow:
        seating = await _seating(uow, cmd.meeting_id)
        on_roster = await uow.repo.rosters.role_of(seating.group_id, cmd.member_id) is not None
        answer = seating.answer(cmd.member_id, cmd.response, uow.clock(), on_roster=on_roster)
        await uow.repo.seats.save(seating)
        await uow.commit()
    return answer


async def send_colleague(cmd: commands.SendColleague, uow: UnitOfWork) -> Answer:
    async with uow:
        seating = await _seating(uow, cmd.meeting_id)
        theirs = await uow.repo.seats.organisation_of(cmd.member_id)
        colleagues = await uow.repo.seats.organisation_of(cmd.colleague_id)
        same = theirs is not None and theirs == colleagues
        answer = seating.send_colleague(cmd.member_id, cmd.colleague_id, uow.clock(), same_organisation=same)
        await uow.repo.seats.save(seating)
        await uow.commit()
    return answer


async def record_attendance(cmd: commands.RecordAttendance, uow: UnitOfWork) -> None:
    async with uow:
        seating = await _seating(uow, cmd.meeting_id)
        rosters = uow.repo.rosters
        if cmd.by is not None and await rosters.role_of(seating.group_id, cmd.by) != "coordinator":
            raise Forbidden("Only the group's coordinators (or the administration) may record attendance.")
        on_roster = await rosters.role_of(seating.group_id, cmd.member_id) is not None
        seating.check_in(cmd.member_id, cmd.attended, uow.clock(), on_roster=on_roster)
        await uow.repo.seats.save(seating)
        await uow.commit()


# -- the roster's upkeep, from MEMBERS events --------------------------------------------------------------------
async def record_leaving(cmd: commands.RecordLeaving, uow: UnitOfWork) -> None:
    """The member left the group: the roster no longer has them, and their answers to the group's coming meetings
    are withdrawn (the waiting lists move up). A seat transfer's leaving leaves the answers to RecordSeatTransfer,
    which hands a held seat to the colleague, whichever of the two events comes first."""
    async with uow:
        await uow.repo.rosters.record_leaving(cmd.group_id, cmd.member_id, cmd.left_at)
        if cmd.reason != "seat_transferred":
            now = uow.clock()
            for meeting_id in await uow.repo.seats.coming_answers(cmd.member_id, now, cmd.group_id):
                seating = await _seating(uow, meeting_id)
                seating.withdraw(cmd.member_id, now)
                await uow.repo.seats.save(seating)
        await uow.commit()


async def record_role(cmd: commands.RecordRole, uow: UnitOfWork) -> None:
    async with uow:
        if not await uow.repo.rosters.record_role(cmd.group_id, cmd.member_id, cmd.role):
            if not await uow.repo.rosters.is_erased(cmd.member_id):
                raise MembershipNotYetKnown(f"no membership of {cmd.member_id} in {cmd.group_id} yet")
        await uow.commit()


async def record_seat_transfer(cmd: commands.RecordSeatTransfer, uow: UnitOfWork) -> None:
    async with uow:
        now = uow.clock()
        for meeting_id in await uow.repo.seats.coming_answers(cmd.from_member_id, now, cmd.group_id):
            seating = await _seating(uow, meeting_id)
            seating.transfer(cmd.from_member_id, cmd.to_member_id, now)
            await uow.repo.seats.save(seating)
        await uow.commit()


async def record_organisation(cmd: commands.RecordOrganisation, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.seats.record_organisation(cmd.member_id, cmd.organisation_id, cmd.at)
        await uow.commit()


async def forget_seats(uow: UnitOfWork, member_id: UUID) -> None:
    """Part of the GDPR erasure, inside its unit of work: the member's seats and places in coming meetings are given
    up (the waiting lists move up), then every answer and attendance row of theirs goes on under a random id."""
    now = uow.clock()
    for meeting_id in await uow.repo.seats.seated_answers(member_id, now):
        seating = await _seating(uow, meeting_id)
        seating.release_erased(member_id, now)
        await uow.repo.seats.save(seating)
    await uow.repo.seats.forget_member(member_id)


async def refill(uow: UnitOfWork, meeting_id: UUID) -> None:
    """Inside a unit of work that changed the meeting (its capacity raised): the waiting list fills new seats."""
    seating = await _seating(uow, meeting_id)
    seating.refill(uow.clock())
    await uow.repo.seats.save(seating)


async def _seating(uow: UnitOfWork, meeting_id: UUID) -> Seating:
    seating = await uow.repo.seats.get(meeting_id)
    if seating is None:
        raise NotFound(f"No meeting {meeting_id}.")
    return seating
