"""The bulk import's handler: a batch of members (rows of a spreadsheet) with the groups they are to sit in, in one
unit of work, through the same aggregates and rules as one registration and one join at a time — the events go out
through the outbox in the same transaction (MemberRegistered for each new member, MemberJoined for each new seat).

Safe to run again: a member is found by email address and a seat by (member, group); what is there already is left
as it is (a stored profile is not overwritten by the file) and records no event, so the same file twice changes
nothing the second time. A line the rules refuse (an unknown group, a full or closed one, a member without the right
to join) is reported with its line number and leaves nothing behind; the other lines of the batch go in.
The administration places the members: a group that asks for a coordinator's approval takes them directly, and a
full group refuses the line rather than putting the member on its waiting list.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters.bulk_repository import BulkRepository
from ..adapters.repository import Repository, organisation_key
from ..domain.errors import DomainError
from ..domain.model import Group, Member, check_cvr

UnitOfWork = AbstractUnitOfWork[Repository]


@dataclass(frozen=True)
class ImportRow:
    """One line of the file, already through the input policy (the same model as POST /members)."""

    line: int
    name: str
    email: str  # lower case
    organisation_name: str
    organisation_kind: str
    job_title: str
    locale: str = "da"
    phone: str | None = None
    organisation_cvr: str | None = None
    consents: tuple[str, ...] = ()
    groups: tuple[tuple[str, str], ...] = ()  # (slug, role)


@dataclass(frozen=True)
class ImportMembers:
    rows: tuple[ImportRow, ...]
    lock: bool = True  # lock the groups and members read (a dry run, rolled back anyway, may leave it off)


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    reason: str


@dataclass
class BatchOutcome:
    registered: int = 0  # new members
    existing: int = 0  # lines whose member was registered already (their profile left as it is)
    joined: int = 0  # new seats
    errors: list[LineError] = field(default_factory=list)


class RegistrationRaced(Exception):
    """A member of the batch was registered by someone else between the batch's read and its insert."""


async def import_members(cmd: ImportMembers, uow: UnitOfWork) -> BatchOutcome:
    """Import the batch in one transaction; a registration that races it makes it start over once."""
    try:
        return await _import(cmd, uow)
    except RegistrationRaced:
        return await _import(cmd, uow)  # the addresses are registered now: this time they are found


async def _import(cmd: ImportMembers, uow: UnitOfWork) -> BatchOutcome:
    outcome = BatchOutcome()
    async with uow:
        bulk = BulkRepository(uow.repo.conn)
        await bulk.plan_for_each_batch()
        now = uow.clock()
        rows = []
        for row in cmd.rows:
            try:
                check_cvr(row.organisation_cvr)
            except DomainError as exc:
                outcome.errors.append(LineError(row.line, "cvr", exc.detail))
                continue
            rows.append(row)
        group_rows = await bulk.lock_groups({slug for r in rows for slug, _ in r.groups}, lock=cmd.lock)
        known = await bulk.members_by_email({r.email for r in rows}, lock=cmd.lock)
        groups = await bulk.groups(group_rows.values(), [m.id for m in known.values()])
        organisations = await bulk.organisations(
            {
                organisation_key(r.organisation_name): (r.organisation_name, r.organisation_kind, r.organisation_cvr)
                for r in rows
                if r.email not in known
            },
            uuid.uuid4,
        )
        new: dict[str, Member] = {}
        touched: dict[UUID, Member] = {}
        seats: list[dict[str, Any]] = []
        for row in rows:
            member = known.get(row.email) or new.get(row.email)
            fresh = member is None
            if member is None:
                try:
                    member = Member.register(
                        name=row.name,
                        email=row.email,
                        organisation=organisations[organisation_key(row.organisation_name)],
                        job_title=row.job_title,
                        locale=row.locale,
                        now=now,
                        phone=row.phone,
                        consents=row.consents,
                    )
                except DomainError as exc:
                    outcome.errors.append(LineError(row.line, "name", exc.detail))
                    continue
            taken = _join(member, row, groups, now, outcome)
            if taken is None:
                continue  # refused: the line left nothing behind
            seats.extend(taken)
            if fresh:
                new[member.email] = member
                outcome.registered += 1
            else:
                outcome.existing += 1
            touched[member.id] = member
        inserted = await bulk.add_members(list(new.values()))
        if len(inserted) < len(new):
            raise RegistrationRaced()
        await bulk.add_memberships(seats)
        outcome.joined = len(seats)
        uow.repo.seen.extend(touched.values())  # their events go out with the commit
        await uow.commit()
    return outcome


def _join(
    member: Member, row: ImportRow, groups: dict[str, Group], now: Any, outcome: BatchOutcome
) -> list[dict[str, Any]] | None:
    """Seat the member in the row's groups they are not in yet; None (and every change of this row undone) when
    one of them refuses."""
    undo = _Undo(member)
    taken: list[dict[str, Any]] = []
    for slug, role in row.groups:
        group = groups.get(slug)
        if group is None:
            undo()
            outcome.errors.append(LineError(row.line, "groups", f"No group has the slug {slug!r}."))
            return None
        if member.id in group.roster:
            continue  # seated already (a second run of the same file, or the slug twice on the line)
        undo.watch(group)
        try:
            group.request_join(member, role, now, approved=True, waitlist=False)
        except DomainError as exc:
            undo()
            outcome.errors.append(LineError(row.line, "groups", exc.detail))
            return None
        taken.append({"member_id": member.id, "group_id": group.id, "role": role, "joined_at": now})
    return taken


class _Undo:
    """Puts a member and the groups a line touched back as they were before the line: a line is all or nothing,
    and a batch goes on after a refused line with the same aggregates. (Only additions happen on these paths:
    seats, the member's memberships, recorded events.)"""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.events = len(member.events)
        self.memberships = dict(member.memberships)
        self.groups: list[tuple[Group, int, int]] = []

    def watch(self, group: Group) -> None:
        self.groups.append((group, len(group.events), len(group.queue)))

    def __call__(self) -> None:
        del self.member.events[self.events :]
        self.member.memberships = dict(self.memberships)
        for group, events, queue in self.groups:
            group.roster.pop(self.member.id, None)
            del group.events[events:]
            del group.queue[queue:]
