"""Command handlers: one function per command, registered in HANDLERS, each `handler(cmd, uow)` in one unit of work.

The unit of work brings the repository (`uow.repo`) and the clock (`uow.clock()`), and its commit() sends the events
the aggregates recorded; unit tests give it fakes. Every handler that changes seats locks the group first
(`get_group(..., lock=True)`), and a change that touches several groups locks them in id order.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters.repository import Repository
from ..domain import commands
from ..domain.errors import Conflict, Forbidden, NotFound
from ..domain.gdpr import EraseMember
from ..domain.model import UNSET, Group, Member, Organisation, check_cvr
from .gdpr import erase_member

UnitOfWork = AbstractUnitOfWork[Repository]


async def _group(uow: UnitOfWork, group_id: UUID) -> Group:
    group = await uow.repo.get_group(group_id, lock=True)
    if group is None:
        raise NotFound(f"No group {group_id}.")
    return group


async def _member(uow: UnitOfWork, member_id: UUID, *, lock: bool = False) -> Member:
    member = await uow.repo.get_member(member_id, lock=lock)
    if member is None:
        raise NotFound(f"No member {member_id}.")
    return member


async def _fill_free_seats(group: Group, uow: UnitOfWork, now: datetime) -> None:
    """Seats that freed go to the waiting list, first come first served, in the same transaction."""
    while (next_id := group.next_in_line()) is not None:
        group.promote(await _member(uow, next_id), now)


# -- groups ------------------------------------------------------------------------------------------------------
async def create_group(cmd: commands.CreateGroup, uow: UnitOfWork) -> Group:
    async with uow:
        group = Group.create(
            name=cmd.name,
            region=cmd.region,
            description=cmd.description,
            slug=cmd.slug,
            topics=cmd.topics,
            capacity=cmd.capacity,
            requires_approval=cmd.requires_approval,
        )
        if await uow.repo.group_slug_taken(group.slug):
            raise Conflict(f"A group with the slug {group.slug!r} already exists.")
        await uow.repo.add_group(group)
        await uow.commit()
    return group


async def update_group(cmd: commands.UpdateGroup, uow: UnitOfWork) -> Group:
    async with uow:
        group = await _group(uow, cmd.group_id)
        group.require_manager(cmd.actor)
        if group.update(cmd.changes):  # else every field given holds its value already: nothing to write or tell
            if "slug" in cmd.changes and await uow.repo.group_slug_taken(group.slug, other_than=group.id):
                raise Conflict(f"A group with the slug {group.slug!r} already exists.")
            await _fill_free_seats(group, uow, uow.clock())  # more capacity, or open again
            await uow.repo.save_group(group)
        await uow.commit()
    return group


# -- members -----------------------------------------------------------------------------------------------------
async def register_member(cmd: commands.RegisterMember, uow: UnitOfWork) -> Member:
    async with uow:
        check_cvr(cmd.organisation_cvr)
        org = await uow.repo.organisation(
            cmd.organisation_name, cmd.organisation_kind, cmd.organisation_cvr, uuid.uuid4
        )
        member = Member.register(
            name=cmd.name,
            email=cmd.email,
            organisation=org,
            job_title=cmd.job_title,
            locale=cmd.locale,
            now=uow.clock(),
            phone=cmd.phone,
            consents=cmd.consents,
        )
        if not await uow.repo.add_member(member):
            raise Conflict("A member with this email address is already registered.")
        await uow.commit()
    return member


async def update_member(cmd: commands.UpdateMember, uow: UnitOfWork) -> Member:
    changes = dict(cmd.changes)
    if "status" in changes and cmd.actor is not None:
        raise Forbidden("Only the association's administration may change a member's status.")
    async with uow:
        member = await _member(uow, cmd.member_id)
        had_right = member.may_join_groups
        now = uow.clock()
        organisation = None
        if (org := changes.pop("organisation", None)) is not None:
            organisation = await uow.repo.organisation(org["name"], org["kind"], check_cvr(org.get("cvr")), uuid.uuid4)
        if "email" in changes and await uow.repo.email_taken(changes["email"].strip().lower(), member.id):
            raise Conflict("A member with this email address is already registered.")
        changed = member.update(
            now,
            name=changes.get("name"),
            email=changes.get("email"),
            phone=changes["phone"] if "phone" in changes else UNSET,
            organisation=organisation,
            job_title=changes.get("job_title"),
            locale=changes.get("locale"),
            consents=changes.get("consents"),
            status=changes.get("status"),
        )
        if changed:  # else every field given holds its value already: nothing to write or tell
            await uow.repo.save_member(member)
            if had_right and not member.may_join_groups:
                await _end_group_memberships([member.id], uow, now)
        await uow.commit()
    return member


async def _end_group_memberships(member_ids: Iterable[UUID], uow: UnitOfWork, now: datetime) -> None:
    """Members who lost the right to join leave every group they are in, and their requests go; each seat that
    frees goes to the next on that group's waiting list. Archived groups are history and stay as they are."""
    affected: dict[UUID, list[UUID]] = {}
    for member_id in member_ids:
        for group_id in await uow.repo.groups_of(member_id):
            affected.setdefault(group_id, []).append(member_id)
    for group_id in sorted(affected, key=str):  # one lock order for every handler that takes several
        group = await _group(uow, group_id)
        if group.status == "archived":
            continue
        for member_id in affected[group_id]:
            group.leave(member_id, "membership_ended", now)
        await _fill_free_seats(group, uow, now)
        await uow.repo.save_group(group)


# -- organisations -----------------------------------------------------------------------------------------------
async def update_organisation(cmd: commands.UpdateOrganisation, uow: UnitOfWork) -> Organisation:
    """The administration corrects an organisation's name, kind or CVR number. No organisation.updated exists in
    the contract: every member of it gets a member.updated (their full profile carries the organisation), in the
    same transaction. Nothing is written or told when every field given holds its value already."""
    changes = cmd.changes
    async with uow:
        org = await uow.repo.get_organisation(cmd.organisation_id, lock=True)
        if org is None:
            raise NotFound(f"No organisation {cmd.organisation_id}.")
        if org.update(
            name=changes.get("name"), kind=changes.get("kind"), cvr=changes["cvr"] if "cvr" in changes else UNSET
        ):
            if not await uow.repo.save_organisation(org):
                raise Conflict(f"An organisation named {org.name!r} is already registered.")
            now = uow.clock()
            for member_id in await uow.repo.members_of_organisation(org.id):
                (await _member(uow, member_id)).organisation_changed(org, now)
        await uow.commit()
    return org


async def set_organisation_membership(cmd: commands.SetOrganisationMembership, uow: UnitOfWork) -> Organisation:
    async with uow:
        org = await uow.repo.get_organisation(cmd.organisation_id, lock=True)
        if org is None:
            raise NotFound(f"No organisation {cmd.organisation_id}.")
        was_active = org.membership_active
        org.set_membership(cmd.status, cmd.valid_until)
        await uow.repo.save_organisation_membership(org)
        if was_active and not org.membership_active:
            now, staff = uow.clock(), []
            for member_id in await uow.repo.members_of_organisation(org.id):
                member = await _member(uow, member_id)
                member.organisation = org
                if not member.may_join_groups:
                    staff.append(member_id)
            await _end_group_memberships(staff, uow, now)
        await uow.commit()
    return org


# -- seats -------------------------------------------------------------------------------------------------------
async def join_group(cmd: commands.JoinGroup, uow: UnitOfWork) -> str:
    """'joined', 'pending' or 'waitlisted'. The administration places a member directly (no approval needed);
    a member acting for themself joins as a member and waits for a coordinator where the group asks for it."""
    if cmd.actor is not None and cmd.actor != cmd.member_id:
        raise Forbidden("A member may only join a group themselves.")
    if cmd.actor is not None and cmd.role != "member":
        raise Forbidden("Only the administration may place a coordinator; a coordinator may change roles later.")
    async with uow:
        group = await _group(uow, cmd.group_id)
        member = await _member(uow, cmd.member_id, lock=True)
        outcome = group.request_join(member, cmd.role, uow.clock(), approved=cmd.actor is None, waitlist=cmd.waitlist)
        await uow.repo.save_group(group)
        await uow.commit()
    return outcome


async def leave_group(cmd: commands.LeaveGroup, uow: UnitOfWork) -> None:
    async with uow:
        group = await _group(uow, cmd.group_id)
        if cmd.actor != cmd.member_id:
            group.require_manager(cmd.actor)
        now = uow.clock()
        group.leave(cmd.member_id, "left" if cmd.actor == cmd.member_id else "removed", now)
        await _fill_free_seats(group, uow, now)
        await uow.repo.save_group(group)
        await uow.commit()


async def change_role(cmd: commands.ChangeRole, uow: UnitOfWork) -> Group:
    async with uow:
        group = await _group(uow, cmd.group_id)
        group.require_manager(cmd.actor)
        if group.change_role(cmd.member_id, cmd.role):
            await uow.repo.save_group(group)
        await uow.commit()
    return group


async def approve_join(cmd: commands.ApproveJoin, uow: UnitOfWork) -> str:
    async with uow:
        group = await _group(uow, cmd.group_id)
        group.require_manager(cmd.actor)
        member = await _member(uow, cmd.member_id, lock=True)
        outcome = group.approve(member, uow.clock())
        await uow.repo.save_group(group)
        await uow.commit()
    return outcome


async def decline_join(cmd: commands.DeclineJoin, uow: UnitOfWork) -> None:
    async with uow:
        group = await _group(uow, cmd.group_id)
        group.require_manager(cmd.actor)
        group.decline(cmd.member_id, cmd.reason)
        await uow.repo.save_group(group)
        await uow.commit()


async def transfer_seat(cmd: commands.TransferSeat, uow: UnitOfWork) -> None:
    async with uow:
        group = await _group(uow, cmd.group_id)
        if cmd.actor != cmd.from_member_id:
            group.require_manager(cmd.actor)
        holder = await _member(uow, cmd.from_member_id)
        colleague = await _member(uow, cmd.to_member_id, lock=True)
        group.transfer_seat(holder, colleague, uow.clock())
        await uow.repo.save_group(group)
        await uow.commit()


Command = (
    commands.CreateGroup
    | commands.UpdateGroup
    | commands.RegisterMember
    | commands.UpdateMember
    | commands.UpdateOrganisation
    | commands.SetOrganisationMembership
    | commands.JoinGroup
    | commands.LeaveGroup
    | commands.ChangeRole
    | commands.ApproveJoin
    | commands.DeclineJoin
    | commands.TransferSeat
    | EraseMember
)

HANDLERS: dict[type[Command], Callable[[Any, UnitOfWork], Awaitable[Any]]] = {
    commands.CreateGroup: create_group,
    commands.UpdateGroup: update_group,
    commands.RegisterMember: register_member,
    commands.UpdateMember: update_member,
    commands.UpdateOrganisation: update_organisation,
    commands.SetOrganisationMembership: set_organisation_membership,
    commands.JoinGroup: join_group,
    commands.LeaveGroup: leave_group,
    commands.ChangeRole: change_role,
    commands.ApproveJoin: approve_join,
    commands.DeclineJoin: decline_join,
    commands.TransferSeat: transfer_seat,
    EraseMember: erase_member,  # GDPR (service_layer/gdpr.py)
}


async def handle(cmd: Command, uow: UnitOfWork) -> Any:
    """Run the command's handler; returns what it returns (the aggregate it created or changed)."""
    return await HANDLERS[type(cmd)](cmd, uow)
