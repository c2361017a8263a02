"""Command handlers: one function per command, registered in HANDLERS. Each runs in one unit of work.

`repository` is the factory conn -> repository; unit tests pass a fake.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from netvaerk_shared.uow import commit_with_events

from ..adapters.repository import Repository
from ..domain import commands
from ..domain.errors import Conflict, NotFound
from ..domain.model import Group, Member
from .translator import to_contract

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def create_group(cmd: commands.CreateGroup, uow, clock: Clock = utc_now, repository=Repository) -> Group:
    async with uow:
        repo = repository(uow.conn)
        group = Group.create(
            name=cmd.name,
            region=cmd.region,
            description=cmd.description,
            slug=cmd.slug,
            topics=cmd.topics,
            capacity=cmd.capacity,
            requires_approval=cmd.requires_approval,
        )
        if await repo.group_slug_taken(group.slug):
            raise Conflict(f"A group with the slug {group.slug!r} already exists.")
        await repo.add_group(group)
        await commit_with_events(uow, repo.seen, to_contract)
    return group


async def register_member(cmd: commands.RegisterMember, uow, clock: Clock = utc_now, repository=Repository) -> Member:
    async with uow:
        repo = repository(uow.conn)
        email = cmd.email.strip().lower()
        if await repo.email_taken(email):
            raise Conflict("A member with this email address is already registered.")
        org = await repo.organisation(cmd.organisation_name, cmd.organisation_kind, cmd.organisation_cvr, uuid.uuid4)
        member = Member.register(
            name=cmd.name,
            email=email,
            organisation=org,
            job_title=cmd.job_title,
            locale=cmd.locale,
            now=clock(),
            phone=cmd.phone,
        )
        await repo.add_member(member)
        await commit_with_events(uow, repo.seen, to_contract)
    return member


async def join_group(cmd: commands.JoinGroup, uow, clock: Clock = utc_now, repository=Repository) -> Member:
    async with uow:
        repo = repository(uow.conn)
        group = await repo.get_group(cmd.group_id)
        if group is None:
            raise NotFound(f"No group {cmd.group_id}.")
        member = await repo.get_member(cmd.member_id)
        if member is None:
            raise NotFound(f"No member {cmd.member_id}.")
        now = clock()
        member.join(group, cmd.role, now)
        await repo.add_membership(member.id, group.id, cmd.role, now)
        await commit_with_events(uow, repo.seen, to_contract)
    return member


HANDLERS = {
    commands.CreateGroup: create_group,
    commands.RegisterMember: register_member,
    commands.JoinGroup: join_group,
}


async def handle(cmd, uow, clock: Clock = utc_now, repository=Repository):
    return await HANDLERS[type(cmd)](cmd, uow, clock, repository)
