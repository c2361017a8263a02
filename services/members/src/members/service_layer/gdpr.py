"""GDPR in the members service: the erasure (a command handler, in HANDLERS; its notice is translated in
translator.py), and the purge of the member's events from MEMBERS once the notice is in the stream.

The order that keeps the notice: (1) `erase_member` deletes the member's rows and their outbox history, remembers
the id in erased_members (ids and times only: the proof of erasure, and what makes a repeated request answer with
the original time) and writes MemberErased to the outbox, in one transaction; (2) the relay publishes it; (3)
members hears its own notice on the durable `members-member-erased-v1` and purges `members.member.*.*.<id>` up to,
not including, the notice's stream sequence. So the purge can never run before the notice is stored, and never
takes it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from netvaerk_shared import topology
from netvaerk_shared.consumer import Subscription
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.envelope import CloudEvent
from netvaerk_shared.gdpr import ExportResponder, purge_before_notice
from netvaerk_shared.runtime import ServiceRuntime
from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters import orm
from ..adapters.gdpr import ErasureRepository, member_export
from ..domain import gdpr as domain
from ..domain.errors import NotFound


async def erase_member(cmd: domain.EraseMember, uow: AbstractUnitOfWork[Any]) -> domain.Erasure:
    """Delete the member's personal data here (every table that refers to them, their outbox history and dead
    letters), remember the id and the time in erased_members, and record MemberErased, which goes out through the
    outbox with the deletion. Idempotent: for a member erased already it changes nothing, records nothing and
    returns the original time. NotFound when there never was such a member (or they were erased before
    erased_members existed)."""
    async with uow:
        erasures = ErasureRepository(uow.repo.conn)
        if not await erasures.exists(cmd.member_id):
            erasure = await _done_before(erasures, cmd.member_id)
            await uow.commit()
            return erasure
        now = uow.clock()
        seated = await erasures.lock_groups_of(cmd.member_id)  # in id order, as every change of seats does
        counts = await erasures.erase(cmd.member_id)
        if not counts[orm.members.name]:
            # a concurrent erasure of the same member deleted the row while this one waited for it (PostgreSQL):
            # that one freed the seats, wrote erased_members and told everyone; this one has nothing left to do
            erasure = await _done_before(erasures, cmd.member_id)
            await uow.commit()
            return erasure
        await erasures.remember(cmd.member_id, now)
        for group_id in seated:  # the seats that freed go to the waiting lists, as when a member leaves
            group = await uow.repo.get_group(group_id, lock=True)
            if group is None:
                continue
            while (next_id := group.next_in_line()) is not None:
                member = await uow.repo.get_member(next_id)
                if member is None:
                    break
                group.promote(member, now)
            await uow.repo.save_group(group)
        erasure = domain.Erasure.of(cmd.member_id, now)
        uow.repo.seen.append(erasure)  # its notice is written to the outbox by commit(), after the scrub
        await uow.commit()
    return erasure


async def _done_before(erasures: ErasureRepository, member_id: UUID) -> domain.Erasure:
    erased_at = await erasures.erased_at(member_id)
    if erased_at is None:
        raise NotFound(f"No member {member_id}.")
    return domain.Erasure.done_before(member_id, erased_at)


def member_subjects(member_id: object) -> str:
    """Every event of the member's own on MEMBERS: `members.member.<event>.v<n>.<member_id>`."""
    return f"{MemberErased.service}.{MemberErased.aggregate}.*.*.{member_id}"


class StreamPurge:
    """Hears the erasure notices members itself published and purges the member's earlier events from MEMBERS. No
    database change: the consumer's inbox row only records that the notice was handled (a second delivery purges
    again, which finds nothing more)."""

    def __init__(self) -> None:
        self.runtime: ServiceRuntime | None = None

    def subscription(self) -> Subscription[MemberErased]:
        return Subscription(MemberErased, self.on_member_erased)

    async def on_member_erased(self, uow: AbstractUnitOfWork[Any], event: CloudEvent, data: MemberErased) -> None:
        js = self.runtime.js if self.runtime is not None else None
        if js is None:
            raise RuntimeError("JetStream not connected")  # retried by the consumer
        await purge_before_notice(
            js, topology.stream_for("members"), member_subjects(data.member_id), data.nats_subject()
        )


def wire(runtime: ServiceRuntime, purge: StreamPurge) -> None:
    """After the runtime is built: the purge gets its JetStream, and members answers for its part of exports."""
    purge.runtime = runtime
    runtime.add_worker(ExportResponder(runtime, member_export))
