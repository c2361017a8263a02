"""The gateway's own tables (SQLite here; the e2e tests run them on PostgreSQL): a sign-in link works once, for its
time only, and only its hash is stored; sessions end one by one or all at once; erasure leaves nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import select

from gateway.adapters.store import LinkState, Store, sessions, sign_in_links
from gateway.bootstrap import migrations_dir
from gateway.config import Settings
from netvaerk_shared.db import create_engine
from netvaerk_shared.migrate import upgrade

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    await upgrade(engine, migrations_dir(Settings(gateway_token_key="k" * 40)))
    yield Store(engine)
    await engine.dispose()


async def test_a_link_works_once_and_for_its_time_only(store):
    member = uuid4()
    _, token = await store.create_link(member, NOW, timedelta(minutes=15))
    assert await store.peek_link(token, NOW) is LinkState.OK
    assert await store.use_link(token, NOW + timedelta(minutes=1)) == (LinkState.OK, member)
    assert await store.use_link(token, NOW + timedelta(minutes=2)) == (LinkState.USED, None)
    _, late = await store.create_link(member, NOW, timedelta(minutes=15))
    assert await store.use_link(late, NOW + timedelta(minutes=15)) == (LinkState.EXPIRED, None)
    assert await store.use_link("no-such-token", NOW) == (LinkState.UNKNOWN, None)
    assert await store.use_link("x" * 10_000, NOW) == (LinkState.UNKNOWN, None)
    assert await store.links_since(member, NOW - timedelta(minutes=15)) == 2


async def test_only_the_hash_of_a_secret_is_stored(store):
    _, token = await store.create_link(uuid4(), NOW, timedelta(minutes=15))
    session_token, _ = await store.create_session(uuid4(), NOW, timedelta(days=14))
    async with store.engine.connect() as conn:
        rows = [*(await conn.execute(select(sign_in_links))).all(), *(await conn.execute(select(sessions))).all()]
    text = repr(rows)
    assert token not in text and session_token not in text and len(rows) == 2


async def test_two_at_once_with_one_link_give_one_session(store):
    member = uuid4()
    _, token = await store.create_link(member, NOW, timedelta(minutes=15))
    results = await asyncio.gather(*(store.use_link(token, NOW) for _ in range(5)))
    assert [r[1] for r in results].count(member) == 1


async def test_sessions_end_one_by_one_or_everywhere_and_erasure_leaves_nothing(store):
    member = uuid4()
    first, one = await store.create_session(member, NOW, timedelta(days=14))
    second, _ = await store.create_session(member, NOW, timedelta(days=14))
    assert (await store.session(first, NOW)).member_id == member  # type: ignore[union-attr]
    assert await store.session(first, NOW + timedelta(days=15)) is None
    await store.end_session(one.session_id)
    assert await store.session(first, NOW) is None and await store.session(second, NOW) is not None
    assert await store.end_all_sessions(member) == 1
    await store.create_link(member, NOW, timedelta(minutes=15))
    await store.create_session(member, NOW, timedelta(days=14))
    assert await store.add_admin(member, NOW) and not await store.add_admin(member, NOW)
    admin_token, _ = await store.create_session(member, NOW, timedelta(days=14))
    assert (await store.session(admin_token, NOW)).is_admin  # type: ignore[union-attr]
    someone_else, _ = await store.create_session(uuid4(), NOW, timedelta(days=14))
    assert not (await store.session(someone_else, NOW)).is_admin  # type: ignore[union-attr]
    exported = await store.export(member)
    assert len(exported["sessions"]) == 2 and len(exported["sign_in_links"]) == 1 and exported["administrator_since"]
    await store.forget(member)
    assert await store.export(member) == {"sessions": [], "sign_in_links": [], "administrator_since": None}
