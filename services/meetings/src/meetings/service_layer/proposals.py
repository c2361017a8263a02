"""Handlers for topic proposals and calendar feeds (registered in handlers.HANDLERS).

Who may: a member of the group (by the roster copy) proposes and backs; a coordinator of the group, or the
administration, accepts or declines. A calendar feed of a group is made by a member of it or the administration; a
member's own feed by that member or the administration; a feed is revoked by whoever may make it.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from uuid import UUID

from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters.repository import Repositories
from ..domain import commands
from ..domain.errors import Forbidden, NotFound
from ..domain.model import AgendaItem
from ..domain.proposal import Proposal

UnitOfWork = AbstractUnitOfWork[Repositories]


@dataclass(frozen=True)
class NewFeed:
    feed_id: UUID
    token: str  # shown once; only its SHA-256 is stored


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def submit_proposal(cmd: commands.SubmitProposal, uow: UnitOfWork) -> Proposal:
    if cmd.by is None:
        raise Forbidden("A proposal comes from a member of the group: act for one (X-Netvaerk-Member).")
    async with uow:
        if not await uow.repo.rosters.group_known(cmd.group_id):
            raise NotFound(f"The group {cmd.group_id} is unknown to the meetings service.")
        if await uow.repo.proposals.role_in(cmd.group_id, cmd.by) is None:
            raise Forbidden("Only members of the group may propose topics and talks for its meetings.")
        meeting = None
        if cmd.for_meeting_id is not None:
            meeting = await uow.repo.plan.get(cmd.for_meeting_id)
            if meeting is None:
                raise NotFound(f"No meeting {cmd.for_meeting_id}.")
        proposal = Proposal.submit(
            group_id=cmd.group_id,
            member_id=cmd.by,
            kind=cmd.kind,
            title=cmd.title,
            description=cmd.description,
            for_meeting=meeting,
            speaker=cmd.speaker,
            speaker_organisation=cmd.speaker_organisation,
            now=uow.clock(),
        )
        await uow.repo.proposals.add(proposal)
        await uow.commit()
    return proposal


async def back_proposal(cmd: commands.BackProposal, uow: UnitOfWork) -> None:
    async with uow:
        by = _backer(cmd.by)
        proposal = await _member_of_its_group(cmd.proposal_id, by, uow)
        proposal.back(by)
        await uow.repo.proposals.add_backing(proposal.id, by, uow.clock())
        await uow.commit()


async def withdraw_backing(cmd: commands.WithdrawBacking, uow: UnitOfWork) -> None:
    async with uow:
        by = _backer(cmd.by)
        proposal = await _member_of_its_group(cmd.proposal_id, by, uow)
        proposal.withdraw_backing()
        await uow.repo.proposals.remove_backing(proposal.id, by)
        await uow.commit()


async def accept_proposal(cmd: commands.AcceptProposal, uow: UnitOfWork) -> AgendaItem:
    async with uow:
        proposal = await _to_decide(cmd.proposal_id, cmd.by, uow)
        meeting = await uow.repo.plan.get(cmd.meeting_id)
        if meeting is None:
            raise NotFound(f"No meeting {cmd.meeting_id}.")
        placed = proposal.accept(meeting, minutes=cmd.minutes, now=uow.clock())
        await uow.repo.plan.update(meeting)
        await uow.repo.plan.save_agenda(meeting)
        await uow.repo.proposals.save_decision(proposal)
        await uow.commit()
    return placed


async def decline_proposal(cmd: commands.DeclineProposal, uow: UnitOfWork) -> None:
    async with uow:
        proposal = await _to_decide(cmd.proposal_id, cmd.by, uow)
        proposal.decline(cmd.reason, now=uow.clock())
        await uow.repo.proposals.save_decision(proposal)
        await uow.commit()


async def create_calendar_feed(cmd: commands.CreateCalendarFeed, uow: UnitOfWork) -> NewFeed:
    if (cmd.group_id is None) == (cmd.member_id is None):
        raise ValueError("a feed is a group's or a member's")
    async with uow:
        if cmd.group_id is not None:
            if not await uow.repo.rosters.group_known(cmd.group_id):
                raise NotFound(f"The group {cmd.group_id} is unknown to the meetings service.")
            if cmd.by is not None and await uow.repo.proposals.role_in(cmd.group_id, cmd.by) is None:
                raise Forbidden("Only members of the group may make a calendar feed of its meetings.")
        elif cmd.by is not None and cmd.by != cmd.member_id:
            raise Forbidden("A member may only make a calendar feed for themselves.")
        feed = NewFeed(feed_id=uuid.uuid4(), token=secrets.token_urlsafe(32))
        await uow.repo.feeds.add(
            feed_id=feed.feed_id,
            token_sha256=token_digest(feed.token),
            group_id=cmd.group_id,
            member_id=cmd.member_id,
            created_by=cmd.by,
            at=uow.clock(),
        )
        await uow.commit()
    return feed


async def revoke_calendar_feed(cmd: commands.RevokeCalendarFeed, uow: UnitOfWork) -> None:
    async with uow:
        feed = await uow.repo.feeds.get(cmd.feed_id)
        if feed is None:
            raise NotFound(f"No calendar feed {cmd.feed_id}.")
        if cmd.by is not None and cmd.by not in (feed["member_id"], feed["created_by"]):
            raise Forbidden("Only whoever made the feed (or the administration) may revoke it.")
        await uow.repo.feeds.revoke(cmd.feed_id, uow.clock())  # revoking twice changes nothing
        await uow.commit()


def _backer(by: UUID | None) -> UUID:
    if by is None:
        raise Forbidden("Backing a proposal is a member's: act for one (X-Netvaerk-Member).")
    return by


async def _member_of_its_group(proposal_id: UUID, by: UUID, uow: UnitOfWork) -> Proposal:
    proposal = await uow.repo.proposals.get(proposal_id)
    if proposal is None:
        raise NotFound(f"No proposal {proposal_id}.")
    if await uow.repo.proposals.role_in(proposal.group_id, by) is None:
        raise Forbidden("Only members of the group may back its proposals.")
    return proposal


async def _to_decide(proposal_id: UUID, by: UUID | None, uow: UnitOfWork) -> Proposal:
    proposal = await uow.repo.proposals.get(proposal_id, for_update=True)
    if proposal is None:
        raise NotFound(f"No proposal {proposal_id}.")
    if by is not None and await uow.repo.proposals.role_in(proposal.group_id, by) != "coordinator":
        raise Forbidden("Only a coordinator of the group (or the administration) may accept or decline a proposal.")
    return proposal
