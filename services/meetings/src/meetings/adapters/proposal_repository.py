"""Topic proposals and calendar feeds on the unit of work's connection (`uow.repo.proposals`, `uow.repo.feeds`).

A proposal is decided once: `get(..., for_update=True)` locks its row (FOR UPDATE on PostgreSQL; SQLite has one
writer at a time), so two coordinators deciding at once are one after the other, and the second finds it decided.
Backing is one row a member and proposal, written with ON CONFLICT DO NOTHING: backing twice counts once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netvaerk_shared.db import dialect_insert

from ..domain.proposal import Proposal
from . import orm


class ProposalRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: list[Proposal] = []

    async def role_in(self, group_id: UUID, member_id: UUID) -> str | None:
        """The member's role in the group by the roster copy (member / coordinator), None when not in it."""
        gm = orm.group_members
        stmt = select(gm.c.role).where(gm.c.group_id == group_id, gm.c.member_id == member_id, gm.c.left_at.is_(None))
        return (await self.conn.execute(stmt)).scalar_one_or_none()

    async def add(self, proposal: Proposal) -> None:
        await self.conn.execute(insert(orm.proposals), _row(proposal))
        self.seen.append(proposal)

    async def get(self, proposal_id: UUID, *, for_update: bool = False) -> Proposal | None:
        p = orm.proposals
        stmt = select(p).where(p.c.id == proposal_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).mappings().first()
        if row is None:
            return None
        proposal = Proposal(
            id=row["id"],
            group_id=row["group_id"],
            member_id=row["member_id"],
            kind=row["kind"],
            title=row["title"],
            description=row["description"],
            submitted_at=row["submitted_at"],
            for_meeting_id=row["for_meeting_id"],
            speaker=row["speaker"],
            speaker_organisation=row["speaker_organisation"],
            status=row["status"],
            decided_at=row["decided_at"],
            meeting_id=row["meeting_id"],
            agenda_position=row["agenda_position"],
            reason=row["reason"],
        )
        self.seen.append(proposal)
        return proposal

    async def save_decision(self, proposal: Proposal) -> None:
        p = orm.proposals
        await self.conn.execute(
            update(p)
            .where(p.c.id == proposal.id)
            .values(
                status=proposal.status,
                decided_at=proposal.decided_at,
                meeting_id=proposal.meeting_id,
                agenda_position=proposal.agenda_position,
                reason=proposal.reason,
            )
        )

    async def add_backing(self, proposal_id: UUID, member_id: UUID, at: datetime) -> None:
        stmt = dialect_insert(self.conn, orm.proposal_backers).values(
            proposal_id=proposal_id, member_id=member_id, backed_at=at
        )
        await self.conn.execute(stmt.on_conflict_do_nothing(index_elements=["proposal_id", "member_id"]))

    async def remove_backing(self, proposal_id: UUID, member_id: UUID) -> None:
        b = orm.proposal_backers
        await self.conn.execute(delete(b).where(b.c.proposal_id == proposal_id, b.c.member_id == member_id))

    async def backers(self, proposal_id: UUID) -> int:
        b = orm.proposal_backers
        stmt = select(func.count()).select_from(b).where(b.c.proposal_id == proposal_id)
        return int((await self.conn.execute(stmt)).scalar_one())

    async def forget_member(self, member_id: UUID) -> int:
        """GDPR erasure: the member's proposals and backings go on under a random id each (one per row, so nothing
        links them together or to the person; counts stay right). Returns the rows anonymised."""
        p, b = orm.proposals, orm.proposal_backers
        changed = 0
        for proposal_id in (await self.conn.execute(select(p.c.id).where(p.c.member_id == member_id))).scalars().all():
            await self.conn.execute(update(p).where(p.c.id == proposal_id).values(member_id=uuid4()))
            changed += 1
        backed = (await self.conn.execute(select(b.c.proposal_id).where(b.c.member_id == member_id))).scalars().all()
        for proposal_id in backed:
            await self.conn.execute(
                update(b).where(b.c.proposal_id == proposal_id, b.c.member_id == member_id).values(member_id=uuid4())
            )
            changed += 1
        return changed


class CalendarFeedRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(
        self,
        *,
        feed_id: UUID,
        token_sha256: str,
        group_id: UUID | None,
        member_id: UUID | None,
        created_by: UUID | None,
        at: datetime,
    ) -> None:
        await self.conn.execute(
            insert(orm.calendar_feeds),
            {
                "id": feed_id,
                "token_sha256": token_sha256,
                "group_id": group_id,
                "member_id": member_id,
                "created_by": created_by,
                "created_at": at,
            },
        )

    async def get(self, feed_id: UUID) -> dict[str, Any] | None:
        f = orm.calendar_feeds
        row = (await self.conn.execute(select(f).where(f.c.id == feed_id))).mappings().first()
        return dict(row) if row else None

    async def revoke(self, feed_id: UUID, at: datetime) -> None:
        f = orm.calendar_feeds
        await self.conn.execute(update(f).where(f.c.id == feed_id, f.c.revoked_at.is_(None)).values(revoked_at=at))

    async def forget_member(self, member_id: UUID) -> int:
        """GDPR erasure: the member's feeds, and the group feeds they made, are gone (their URLs open nothing)."""
        f = orm.calendar_feeds
        result = await self.conn.execute(delete(f).where((f.c.member_id == member_id) | (f.c.created_by == member_id)))
        return int(result.rowcount or 0)


def _row(p: Proposal) -> dict[str, Any]:
    return {
        "id": p.id,
        "group_id": p.group_id,
        "member_id": p.member_id,
        "kind": p.kind,
        "title": p.title,
        "description": p.description,
        "for_meeting_id": p.for_meeting_id,
        "speaker": p.speaker,
        "speaker_organisation": p.speaker_organisation,
        "status": p.status,
        "submitted_at": p.submitted_at,
        "decided_at": p.decided_at,
        "meeting_id": p.meeting_id,
        "agenda_position": p.agenda_position,
        "reason": p.reason,
    }
