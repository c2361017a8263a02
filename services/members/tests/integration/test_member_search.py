"""The administration's member search (GET /admin/members) on PostgreSQL and SQLite: filters, free text that knows
the Danish letters, keyset pages that neither repeat nor skip anyone while members come and go, admin only, hostile
query parameters refused; migration 0004 up and down; on PostgreSQL the pages come from the indexes."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, insert, literal, select, text

from members.adapters import orm
from members.adapters.search import Filters, fold, fold_text, organisations_matching, page_statement, terms
from members.bootstrap import MIGRATIONS, bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_shared.db import create_engine
from netvaerk_shared.migrate import alembic_config, upgrade
from netvaerk_testing import hostile
from netvaerk_testing.plugin import running_app, service_settings

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ADMIN_PATH = "/admin/members"


@pytest.fixture
async def service(clean_nats, database_url):
    runtime = bootstrap(service_settings(Settings, database_url, clean_nats))
    app = create_app()
    async with running_app(app, runtime) as client:
        yield client, runtime, app.openapi()


async def _organisation(runtime, name: str, kind: str) -> uuid.UUID:
    oid = uuid.uuid4()
    async with runtime.engine.begin() as conn:
        await conn.execute(
            insert(orm.organisations).values(id=oid, name=name, name_key=name.lower(), kind=kind, cvr=None)
        )
    return oid


async def _group(runtime, slug: str) -> uuid.UUID:
    gid = uuid.uuid4()
    async with runtime.engine.begin() as conn:
        await conn.execute(
            insert(orm.groups).values(
                id=gid, name=slug, slug=slug, region="Øst", description="", topics=[], requires_approval=False
            )
        )
    return gid


async def _member(runtime, name: str, org: uuid.UUID, *, email=None, job="Konsulent", status=None, groups=()):
    mid = uuid.uuid4()
    row = {
        "id": mid,
        "name": name,
        "email": email or f"{uuid.uuid4().hex[:10]}@example.org",
        "phone": None,
        "organisation_id": org,
        "job_title": job,
        "locale": "da",
        "registered_at": NOW,
    }
    if status is not None:
        row["status"] = status
    async with runtime.engine.begin() as conn:
        await conn.execute(insert(orm.members).values(**row))
        for gid in groups:
            await conn.execute(
                insert(orm.memberships).values(member_id=mid, group_id=gid, role="member", joined_at=NOW)
            )
    return mid


async def _names(client, **query) -> list[str]:
    response = await client.get(ADMIN_PATH, params={"limit": 200, **query})
    assert response.status_code == 200, response.text
    return sorted(hit["name"] for hit in response.json()["items"])


async def test_filters_and_free_text_that_knows_the_danish_letters(service):
    client, runtime, _ = service
    kommune = await _organisation(runtime, "Århus Kommune", "public_authority")
    leverandor = await _organisation(runtime, "Bølge Data A/S", "supplier")
    oest = await _group(runtime, "offentlig-digitalisering-oest")
    vest = await _group(runtime, "offentlig-digitalisering-vest")
    await _member(runtime, "Søren Ærø", kommune, email="soeren@example.org", job="Kontorchef", groups=[oest])
    await _member(runtime, "Åse Andersen", kommune, job="IT-arkitekt", groups=[oest, vest])
    await _member(runtime, "Mette Eksempel", leverandor, email="mette@example.org", job="Salgschef", groups=[vest])
    await _member(runtime, "Jens 100% Hansen", leverandor, job="Udvikler_senior")

    assert await _names(client) == ["Jens 100% Hansen", "Mette Eksempel", "Søren Ærø", "Åse Andersen"]
    for q in ("søren", "SØREN", "soeren", "Soeren ÆRØ", "aeroe"):
        assert await _names(client, q=q) == ["Søren Ærø"], q
    assert await _names(client, q="åse") == ["Åse Andersen"]
    assert await _names(client, q="aase") == ["Åse Andersen"]
    # an organisation's name, its Danish letters, and words across fields: every word must match somewhere
    assert await _names(client, q="aarhus") == ["Søren Ærø", "Åse Andersen"]
    assert await _names(client, q="ÅRHUS arkitekt") == ["Åse Andersen"]
    assert await _names(client, q="bølge mette") == ["Mette Eksempel"]
    assert await _names(client, q="mette@example.org") == ["Mette Eksempel"]
    assert await _names(client, q="kontorchef") == ["Søren Ærø"]
    assert await _names(client, q="søren mette") == []
    # LIKE's wildcards are text like any other
    assert await _names(client, q="%") == ["Jens 100% Hansen"]
    assert await _names(client, q="m_tte") == []  # as a wildcard it would find Mette
    assert await _names(client, q="er_s") == ["Jens 100% Hansen"]  # "udvikler_senior"

    assert await _names(client, group_id=str(oest)) == ["Søren Ærø", "Åse Andersen"]
    assert await _names(client, group_id=str(vest), q="andersen") == ["Åse Andersen"]
    assert await _names(client, organisation_id=str(leverandor)) == ["Jens 100% Hansen", "Mette Eksempel"]
    assert await _names(client, kind="public_authority") == ["Søren Ærø", "Åse Andersen"]
    assert await _names(client, kind="other") == []
    assert await _names(client, group_id=str(uuid.uuid4())) == []

    hit = (await client.get(ADMIN_PATH, params={"q": "mette"})).json()["items"][0]
    assert hit["email"] == "mette@example.org" and hit["status"] == "active"
    assert hit["organisation"] == {"id": str(leverandor), "name": "Bølge Data A/S", "kind": "supplier", "cvr": None}


async def test_status_filter(service):
    client, runtime, _ = service
    if "status" not in orm.members.c:
        pytest.fail("members.status (helper M's column) is not in the schema yet")
    org = await _organisation(runtime, "Eksempel Kommune", "public_authority")
    await _member(runtime, "Aktiv Eksempel", org, status="active")
    await _member(runtime, "Udløbet Eksempel", org, status="lapsed")
    await _member(runtime, "Ophørt Eksempel", org, status="ended")
    assert await _names(client, status="lapsed") == ["Udløbet Eksempel"]
    assert await _names(client, status="ended", q="ophørt") == ["Ophørt Eksempel"]
    assert await _names(client, status="active") == ["Aktiv Eksempel"]


async def _walk(client, limit: int, between=None, **query) -> list[dict]:
    """Every page from the first to the last; `between(page_number)` runs after each page."""
    seen: list[dict] = []
    cursor = None
    page = 0
    while True:
        params = {"limit": limit, **query, **({"cursor": cursor} if cursor else {})}
        response = await client.get(ADMIN_PATH, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        seen.extend(body["items"])
        page += 1
        if between is not None:
            await between(page)
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


async def test_pages_neither_repeat_nor_skip_anyone_while_members_come_and_go(service):
    client, runtime, _ = service
    org = await _organisation(runtime, "Eksempel Kommune", "public_authority")
    # names that tie after folding (Ærø/Aeroe, Møller/Moeller) and differ only in case: the id breaks the tie
    names = [f"Medlem {i:02d}" for i in range(23)] + ["Ærø Hansen", "Aeroe Hansen", "Møller", "Moeller", "møller"]
    ids = {await _member(runtime, name, org): name for name in names}
    ordered = await _walk(client, 4)
    assert [h["member_id"] for h in ordered] == sorted(
        (str(i) for i in ids), key=lambda i: (fold_text(ids[uuid.UUID(i)]), uuid.UUID(i).hex)
    )
    assert len({h["member_id"] for h in ordered}) == len(names)

    # walk again; after page 2 a member is added before the cursor and one after it, one member still ahead is
    # removed and one already seen is removed
    first_pages = [h["member_id"] for h in ordered[:8]]
    ahead = uuid.UUID(ordered[20]["member_id"])
    behind = uuid.UUID(ordered[3]["member_id"])
    added: dict[str, uuid.UUID] = {}

    async def churn(page: int) -> None:
        if page != 2:
            return
        added["before"] = await _member(runtime, "Aaaa Tidlig", org)
        added["after"] = await _member(runtime, "Zzzz Sen", org)
        async with runtime.engine.begin() as conn:
            await conn.execute(delete(orm.members).where(orm.members.c.id.in_([ahead, behind])))

    walked = [h["member_id"] for h in await _walk(client, 4, between=churn)]
    assert len(walked) == len(set(walked)), "a member came twice"
    assert walked[:8] == first_pages
    expected = [i for i in (h["member_id"] for h in ordered) if i != str(ahead)] + [str(added["after"])]
    assert walked == expected  # nobody skipped; the newcomer after the cursor appears once, in order
    assert str(added["before"]) not in walked  # it sorts before the pages already read


async def test_admin_only_and_hostile_query_parameters_are_problems(service):
    client, runtime, document = service
    member = str(uuid.uuid4())
    response = await client.get(ADMIN_PATH, headers={"X-Netvaerk-Member": member})
    assert response.status_code == 403 and response.headers["content-type"] == "application/problem+json"

    cases = hostile.query_variants(document, ADMIN_PATH)
    assert {name for _, name, _ in cases} >= {"q", "group_id", "organisation_id", "kind", "status", "limit", "cursor"}
    for label, name, query in cases:
        response = await client.get(ADMIN_PATH, params=query)
        assert response.status_code == 422, (label, name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == name, (label, name, response.text)
    for query in ({"limit": "0"}, {"limit": "201"}, {"limit": "-1"}, {"limit": str(2**63)}, {"q": "æ" * 201}):
        assert (await client.get(ADMIN_PATH, params=query)).status_code == 422, query
    forged = [
        "abc",  # not JSON inside
        base64.urlsafe_b64encode(b'["x", 5]').decode().rstrip("="),
        base64.urlsafe_b64encode(b'["x", "not-a-uuid"]').decode().rstrip("="),
        base64.urlsafe_b64encode(b'{"a": 1}').decode().rstrip("="),
        base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
    ]
    for cursor in forged:
        response = await client.get(ADMIN_PATH, params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["errors"] == [{"field": "cursor", "message": response.json()["detail"]}]
    assert (await client.get(ADMIN_PATH, params={"q": "   "})).status_code == 200  # blank: no filter


async def _indexes(engine) -> set[str]:
    """Index names of members and memberships, expression indexes included (SQLAlchemy's inspector skips those
    on SQLite)."""
    if engine.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('members', 'memberships')"
    else:
        query = "SELECT indexname FROM pg_indexes WHERE tablename IN ('members', 'memberships')"
    async with engine.connect() as conn:
        return set((await conn.execute(text(query))).scalars())


async def test_migration_0004_adds_the_search_indexes_and_takes_them_off_again(database_url):
    from alembic import command

    engine = create_engine(database_url)
    try:
        await upgrade(engine, MIGRATIONS)
        wanted = {"ix_members_sort", "ix_members_organisation", "ix_memberships_group"}
        assert wanted <= await _indexes(engine)
        cfg = alembic_config(MIGRATIONS)

        def _down(sync_conn):
            cfg.attributes["connection"] = sync_conn
            command.downgrade(cfg, "0003")

        async with engine.begin() as conn:
            await conn.run_sync(_down)
        assert not wanted & await _indexes(engine)
        await upgrade(engine, MIGRATIONS)
        assert wanted <= await _indexes(engine)
    finally:
        await engine.dispose()


async def test_on_postgresql_pages_come_from_the_indexes(clean_nats, postgres_database_url):
    """The expressions of adapters/search.py and of migration 0004 are the same: else PostgreSQL would scan."""
    runtime = bootstrap(service_settings(Settings, postgres_database_url, clean_nats))
    async with running_app(create_app(), runtime):
        orgs = [
            {"id": uuid.uuid4(), "name": f"Org {i}", "name_key": f"org {i}", "kind": "supplier", "cvr": None}
            for i in range(200)
        ]
        filler = [
            {
                "id": uuid.uuid4(),
                "name": f"Medlem {i}",
                "email": f"medlem-{i}@example.org",
                "organisation_id": orgs[i % len(orgs)]["id"],
                "job_title": "Konsulent",
                "locale": "da",
                "registered_at": NOW,
            }
            for i in range(20_000)
        ]
        async with runtime.engine.begin() as conn:
            await conn.execute(insert(orm.organisations), orgs)
            await conn.execute(insert(orm.members), filler)
        for i in range(3):
            await _member(runtime, f"Søren {i}", orgs[0]["id"])
        await _organisation(runtime, "Sørensen og Søn", "supplier")  # matches "søren", has no members
        async with runtime.engine.connect() as conn:
            trigrams = (await conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))).first()
            assert trigrams is not None, "pg_trgm was not created by migration 0004 on the test server"
            await conn.execute(text("ANALYZE"))
            await conn.execute(text("SET plan_cache_mode = force_custom_plan"))  # as search_members does

            async def plan(filters: Filters) -> str:
                organisations = await organisations_matching(conn, terms(filters.q))
                compiled = page_statement(filters, None, 10, organisations, "postgresql").compile(dialect=conn.dialect)
                params = compiled.construct_params()
                values = tuple(params[name] for name in compiled.positiontup or ())
                return "\n".join((await conn.exec_driver_sql("EXPLAIN " + compiled.string, values)).scalars())

            assert "ix_members_sort" in await plan(Filters())
            # Whether the planner takes the trigram index depends on its estimates; that it *can* take it (the
            # expressions are identical) shows with the alternatives off
            await conn.execute(text("SET enable_seqscan = off"))
            await conn.execute(text("SET enable_indexscan = off"))
            searched = await plan(Filters(q="søren"))
            assert "ix_members_search_trgm" in searched, searched
            assert "ix_members_organisation" in searched, searched  # OR-ed into the same bitmap scan
            assert "ix_memberships_group" in await plan(Filters(group_id=uuid.uuid4()))


async def test_the_sql_fold_and_the_python_fold_agree(service):
    _, runtime, _ = service
    sample = "Søren ÆRØ Åse Ängel Öre Mette"
    async with runtime.engine.connect() as conn:
        folded = (await conn.execute(select(fold(literal(sample))))).scalar_one()
    assert folded == fold_text(sample) == "soeren aeroe aase aengel oere mette"


async def test_migration_0005_fills_the_search_columns_of_existing_rows_and_every_write_keeps_them(database_url):
    """Rows stored before 0005 get their folded text when the columns are added; any later INSERT or UPDATE (by
    whatever writer) recomputes it: the columns are the database's."""
    from alembic import command

    engine = create_engine(database_url)
    cfg = alembic_config(MIGRATIONS)

    def _to(revision: str):
        def run(sync_conn):
            cfg.attributes["connection"] = sync_conn
            if revision == "0004":
                command.downgrade(cfg, revision)
            else:
                command.upgrade(cfg, revision)

        return run

    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.begin() as conn:
            await conn.run_sync(_to("0004"))
            oid, mid = uuid.uuid4(), uuid.uuid4()
            # only the columns 0004 has (the orm's computed columns are never written)
            await conn.execute(insert(orm.organisations).values(id=oid, name="Org", name_key="org", kind="other"))
            member = {"name": "Søren Ærø", "email": "soeren-0005@example.org", "job_title": "IT-Arkitekt"}
            await conn.execute(
                insert(orm.members).values(id=mid, organisation_id=oid, locale="da", registered_at=NOW, **member)
            )
            await conn.run_sync(_to("head"))
        m = orm.members
        query = select(m.c.sort_key, m.c.search_text).where(m.c.id == mid)
        async with engine.begin() as conn:
            assert (await conn.execute(query)).one() == (
                "soeren aeroe",
                "soeren aeroe soeren-0005@example.org it-arkitekt",
            )
            await conn.execute(m.update().where(m.c.id == mid).values(name="Åse Østergaard", job_title="Chef"))
            assert (await conn.execute(query)).one() == (
                "aase oestergaard",
                "aase oestergaard soeren-0005@example.org chef",
            )
        assert {"ix_members_sort"} <= await _indexes(engine)
    finally:
        await engine.dispose()
