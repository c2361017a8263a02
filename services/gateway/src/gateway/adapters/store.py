"""The gateway's own database: single-use sign-in links, sessions and the administrators. Secrets are kept as
SHA-256 hashes only; the member is named by id only (their data lives in the services, behind their APIs)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from uuid import UUID, uuid4

from sqlalchemy import Column, Index, MetaData, String, Table, Uuid, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from netvaerk_shared.db import UtcDateTime

metadata = MetaData()

sign_in_links = Table(
    "sign_in_links",
    metadata,
    Column("link_id", Uuid, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("member_id", Uuid, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Index("ix_sign_in_links_member", "member_id", "created_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("member_id", Uuid, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_sessions_member", "member_id"),
)

administrators = Table(
    "administrators",
    metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("added_at", UtcDateTime, nullable=False),
)

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 64  # what a URL or cookie may carry to be looked up at all


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class LinkState(Enum):
    OK = "ok"
    EXPIRED = "expired"
    USED = "used"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Session:
    session_id: UUID
    member_id: UUID
    csrf: str
    expires_at: datetime
    is_admin: bool = False


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- sign-in links ----------------------------------------------------------------------------------------------
    async def links_since(self, member_id: UUID, since: datetime) -> int:
        async with self.engine.connect() as conn:
            query = select(func.count()).where(
                sign_in_links.c.member_id == member_id, sign_in_links.c.created_at >= since
            )
            return int((await conn.execute(query)).scalar_one())

    async def create_link(self, member_id: UUID, now: datetime, valid: timedelta) -> tuple[UUID, str]:
        link_id, token = uuid4(), secrets.token_urlsafe(TOKEN_BYTES)
        async with self.engine.begin() as conn:
            # links older than a day are of no use to anyone: they go (so the table holds a day of sign-ins at most)
            await conn.execute(delete(sign_in_links).where(sign_in_links.c.expires_at < now - timedelta(days=1)))
            await conn.execute(
                sign_in_links.insert().values(
                    link_id=link_id,
                    token_hash=digest(token),
                    member_id=member_id,
                    created_at=now,
                    expires_at=now + valid,
                )
            )
        return link_id, token

    async def peek_link(self, token: str, now: datetime) -> LinkState:
        if len(token) > MAX_TOKEN_CHARS:
            return LinkState.UNKNOWN
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(sign_in_links).where(sign_in_links.c.token_hash == digest(token)))).first()
        if row is None:
            return LinkState.UNKNOWN
        if row.used_at is not None:
            return LinkState.USED
        return LinkState.EXPIRED if row.expires_at <= now else LinkState.OK

    async def use_link(self, token: str, now: datetime) -> tuple[LinkState, UUID | None]:
        """Spend a link: exactly one caller gets OK for it, however many try at once."""
        if len(token) > MAX_TOKEN_CHARS:
            return LinkState.UNKNOWN, None
        hashed = digest(token)
        async with self.engine.begin() as conn:
            spent = await conn.execute(
                update(sign_in_links)
                .where(
                    sign_in_links.c.token_hash == hashed,
                    sign_in_links.c.used_at.is_(None),
                    sign_in_links.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(sign_in_links.c.member_id)
            )
            member = spent.scalar_one_or_none()
        if member is not None:
            return LinkState.OK, member
        return await self.peek_link(token, now), None

    # -- sessions ---------------------------------------------------------------------------------------------------
    async def create_session(self, member_id: UUID, now: datetime, lifetime: timedelta) -> tuple[str, Session]:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session = Session(uuid4(), member_id, secrets.token_urlsafe(24), now + lifetime)
        async with self.engine.begin() as conn:
            await conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            await conn.execute(
                sessions.insert().values(
                    session_id=session.session_id,
                    token_hash=digest(token),
                    member_id=member_id,
                    csrf=session.csrf,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
        return token, session

    async def session(self, token: str, now: datetime) -> Session | None:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        async with self.engine.connect() as conn:  # one query: the session and whether its member administers
            query = (
                select(sessions, administrators.c.member_id.label("admin"))
                .select_from(sessions.outerjoin(administrators, administrators.c.member_id == sessions.c.member_id))
                .where(sessions.c.token_hash == digest(token), sessions.c.expires_at > now)
            )
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Session(row.session_id, row.member_id, row.csrf, row.expires_at, row.admin is not None)

    async def end_session(self, session_id: UUID) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(sessions).where(sessions.c.session_id == session_id))

    async def end_all_sessions(self, member_id: UUID) -> int:
        async with self.engine.begin() as conn:
            return (await conn.execute(delete(sessions).where(sessions.c.member_id == member_id))).rowcount or 0

    # -- administrators ---------------------------------------------------------------------------------------------
    async def is_admin(self, member_id: UUID) -> bool:
        async with self.engine.connect() as conn:
            query = select(administrators.c.member_id).where(administrators.c.member_id == member_id)
            return (await conn.execute(query)).first() is not None

    async def add_admin(self, member_id: UUID, now: datetime) -> bool:
        async with self.engine.begin() as conn:
            if (await conn.execute(select(administrators).where(administrators.c.member_id == member_id))).first():
                return False
            await conn.execute(administrators.insert().values(member_id=member_id, added_at=now))
            return True

    # -- GDPR -------------------------------------------------------------------------------------------------------
    async def export(self, member_id: UUID) -> dict[str, object]:
        """What the gateway holds on a member: when their sessions and sign-in links were made (never the secrets)."""
        async with self.engine.connect() as conn:
            own_sessions = (await conn.execute(select(sessions).where(sessions.c.member_id == member_id))).all()
            links = (await conn.execute(select(sign_in_links).where(sign_in_links.c.member_id == member_id))).all()
            admin = (await conn.execute(select(administrators).where(administrators.c.member_id == member_id))).first()
        return {
            "sessions": [
                {"created_at": s.created_at.isoformat(), "expires_at": s.expires_at.isoformat()} for s in own_sessions
            ],
            "sign_in_links": [
                {
                    "created_at": link.created_at.isoformat(),
                    "used_at": link.used_at.isoformat() if link.used_at else None,
                }
                for link in links
            ],
            "administrator_since": admin.added_at.isoformat() if admin else None,
        }

    async def forget(self, member_id: UUID) -> None:
        """Erasure: the member's sessions, links and administrator row go."""
        async with self.engine.begin() as conn:
            for table in (sessions, sign_in_links, administrators):
                await conn.execute(delete(table).where(table.c.member_id == member_id))
