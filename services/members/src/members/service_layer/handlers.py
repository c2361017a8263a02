"""Command handlers: one function per command, registered in HANDLERS, each `handler(cmd, uow)` in one unit of work.

The unit of work brings the repository (`uow.repo`) and the clock (`uow.clock()`), and its commit() sends the events
the aggregates recorded; unit tests give it fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters.repository import Repository
from ..domain import commands
from ..domain.errors import Conflict, NotFound
from ..domain.model import Group, Member

UnitOfWork = AbstractUnitOfWork[Repository]


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


async def register_member(cmd: commands.RegisterMember, uow: UnitOfWork) -> Member:
    async with uow:
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
        )
        if not await uow.repo.add_member(member):
            raise Conflict("A member with this email address is already registered.")
        await uow.commit()
    return member


async def join_group(cmd: commands.JoinGroup, uow: UnitOfWork) -> Member:
    async with uow:
        group = await uow.repo.get_group(cmd.group_id)
        if group is None:
            raise NotFound(f"No group {cmd.group_id}.")
        member = await uow.repo.get_member(cmd.member_id)
        if member is None:
            raise NotFound(f"No member {cmd.member_id}.")
        now = uow.clock()
        member.join(group, cmd.role, now)
        await uow.repo.add_membership(member.id, group.id, cmd.role, now)
        await uow.commit()
    return member


Command = commands.CreateGroup | commands.RegisterMember | commands.JoinGroup

HANDLERS: dict[type[Command], Callable[[Any, UnitOfWork], Awaitable[Any]]] = {
    commands.CreateGroup: create_group,
    commands.RegisterMember: register_member,
    commands.JoinGroup: join_group,
}


async def handle(cmd: Command, uow: UnitOfWork) -> Any:
    """Run the command's handler; returns what it returns (the aggregate it created or changed)."""
    return await HANDLERS[type(cmd)](cmd, uow)
