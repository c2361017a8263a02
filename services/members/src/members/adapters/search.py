"""The administration's member search: filters, free text and keyset pagination, one SELECT per page.

Free text is matched on a folded form of the text, the same in SQL and in Python and on PostgreSQL and SQLite:
the Danish letters spelled out (æ/ä -> ae, ø/ö -> oe, å -> aa, either case), then lower case. So "søren", "SØREN"
and "soeren" find Søren, and "århus" finds Aarhus. Each word of the query must occur in the member's name, email,
job title or organisation name. The member's folded text is stored in its row (members.search_text, and the folded
name members.sort_key: generated columns the database keeps, migration 0005), so a search compares plain columns
and evaluates no fold per row; an organisation's name is matched on the organisations' own small table. PostgreSQL
serves free text from trigram indexes where pg_trgm could be installed (migrations 0004, 0005); SQLite, and
PostgreSQL without it, scan.

Pages are ordered by (folded name, id) and continue after the last row of the previous page (keyset), never by an
offset: a member added or removed between two pages moves no one else across the page boundary, so nobody is
repeated or skipped. The cursor is that (folded name, id) pair, opaque to clients (base64url of JSON).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, and_, any_, bindparam, func, literal, literal_column, or_, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Uuid

from . import orm

# What the folding spells out before lower-casing. fold() below, the members' generated columns (orm, migration
# 0005) and the organisations' index of migration 0004 spell the same replacements in the same order: an expression
# index serves a query only when the expressions are identical.
FOLDS = orm.FOLDS
_FOLD_TABLE = str.maketrans(dict(FOLDS))
MAX_TERMS = 8  # words of a query that count; more would only make the statement longer


def fold_text(text: str) -> str:
    """The Python side of fold(): what a query term is matched as."""
    return text.translate(_FOLD_TABLE).lower()


def fold(expr: ColumnElement[Any]) -> ColumnElement[str]:
    """lower(replace(replace(expr, 'Æ', 'ae'), …)): the constants inline, never bound, so that PostgreSQL matches
    the expression with the one in the index."""
    for letter, spelled in FOLDS:
        expr = func.replace(expr, literal_column(f"'{letter}'"), literal_column(f"'{spelled}'"))
    return func.lower(expr)


_m, _o, _ms = orm.members, orm.organisations, orm.memberships
SORT_KEY = _m.c.sort_key  # fold(name)
# one document per member for the free text, fold(name || ' ' || email || ' ' || job_title) (an organisation's name
# is matched on its own, smaller table)
DOCUMENT = _m.c.search_text


class BadCursor(ValueError):
    """The cursor is not one this service issued."""


@dataclass(frozen=True)
class Cursor:
    key: str
    member_id: UUID

    def encode(self) -> str:
        raw = json.dumps([self.key, self.member_id.hex], ensure_ascii=False, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            key, member_id = json.loads(raw.decode())
            if not isinstance(key, str) or not isinstance(member_id, str):
                raise TypeError
            return cls(key, UUID(hex=member_id))
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise BadCursor("This cursor was not issued by this service (or was cut short).") from exc


@dataclass(frozen=True)
class Filters:
    q: str | None = None
    group_id: UUID | None = None
    organisation_id: UUID | None = None
    kind: str | None = None
    status: str | None = None


def terms(q: str | None) -> list[str]:
    return [fold_text(word) for word in (q or "").split()][:MAX_TERMS]


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matches(term: str, organisations: Sequence[UUID], dialect: str) -> ColumnElement[bool]:
    """The term in the member's own text, or the member in one of the organisations whose name holds it.
    The organisations come as ids looked up before (a small table): as values the planner can estimate how many
    members they have, where a subquery would leave it guessing and walking the name index. On PostgreSQL as one
    array parameter (`= ANY(…)`), not one parameter per organisation."""
    found = DOCUMENT.like(_like(term), escape="\\")
    if not organisations:
        return found
    if dialect == "postgresql":
        ids = bindparam(None, list(organisations), type_=postgresql.ARRAY(Uuid()))
        return or_(found, _m.c.organisation_id == any_(ids))
    return or_(found, _m.c.organisation_id.in_(organisations))


async def organisations_matching(conn: AsyncConnection, words: Sequence[str]) -> list[list[UUID]]:
    """For each word, the ids of the organisations whose folded name holds it (one query for all words)."""
    if not words:
        return []
    hits = [fold(_o.c.name).like(_like(w), escape="\\").label(f"w{i}") for i, w in enumerate(words)]
    rows = (await conn.execute(select(_o.c.id, *hits).where(or_(*(h.element for h in hits))))).all()
    return [[row.id for row in rows if row[i + 1]] for i in range(len(words))]


def has_status_column() -> bool:
    return "status" in _m.c


def page_statement(
    filters: Filters,
    after: Cursor | None,
    limit: int,
    organisations: Sequence[Sequence[UUID]] = (),
    dialect: str = "postgresql",
) -> Any:
    """The page's SELECT; `organisations`: for each word of the query, the organisations that match it.

    In two steps: which members are on the page (`keys`: their (sort_key, id) in order, from the members table
    alone), then their rows and organisations for those 51 only. Every filter of the first step is on a column of
    ix_members_sort ((sort_key, id) INCLUDE (search_text, organisation_id, status), migration 0005), so PostgreSQL
    can walk that index in page order and test each member on the index entry alone (an index-only scan: no heap
    visit for the members it passes over), and stop at the page's end. A common word whose matches come late in
    name order used to cost a heap visit for every member before them."""
    words = terms(filters.q)
    orgs = list(organisations) or [[] for _ in words]
    where: list[ColumnElement[bool]] = [_matches(w, o, dialect) for w, o in zip(words, orgs, strict=True)]
    if filters.group_id is not None:
        where.append(_m.c.id.in_(select(_ms.c.member_id).where(_ms.c.group_id == filters.group_id)))
    if filters.organisation_id is not None:
        where.append(_m.c.organisation_id == filters.organisation_id)
    if filters.kind is not None:
        where.append(_m.c.organisation_id.in_(select(_o.c.id).where(_o.c.kind == filters.kind)))
    if filters.status is not None and has_status_column():
        where.append(_m.c.status == filters.status)
    if after is not None:
        where.append(tuple_(SORT_KEY, _m.c.id) > tuple_(literal(after.key), literal(after.member_id, Uuid())))
    keys = (
        select(_m.c.id, SORT_KEY)
        .where(and_(True, *where))
        .order_by(SORT_KEY, _m.c.id)
        .limit(limit + 1)  # one more than asked: whether there is a next page, without a COUNT
        .subquery("page")
    )
    row, org = _ROW, _ORG
    columns = [*_PAGE_COLUMNS, keys.c.sort_key]
    return (
        select(*columns)
        .select_from(keys.join(row, row.c.id == keys.c.id).join(org, org.c.id == row.c.organisation_id))
        .order_by(keys.c.sort_key, keys.c.id)
    )


# The second step's tables and columns, built once: an alias makes a proxy of every column when it is created, which
# cost about as much per request as the rest of building the statement.
_ROW, _ORG = _m.alias("m"), _o.alias("o")
_PAGE_COLUMNS = [
    _ROW.c.id,
    _ROW.c.name,
    _ROW.c.email,
    _ROW.c.phone,
    _ROW.c.job_title,
    _ROW.c.locale,
    _ROW.c.registered_at,
    _ORG.c.id.label("organisation_id"),
    _ORG.c.name.label("organisation_name"),
    _ORG.c.kind.label("organisation_kind"),
    _ORG.c.cvr.label("organisation_cvr"),
    *([_ROW.c.status] if "status" in _m.c else []),
]


async def search_members(
    conn: AsyncConnection, filters: Filters, *, limit: int, after: Cursor | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of members and the cursor of the next page (None on the last)."""
    words = terms(filters.q)
    organisations = await organisations_matching(conn, words)
    if words and conn.dialect.name == "postgresql":
        # a plan for these very values, never a generic one: how selective the words are decides between the
        # trigram index and walking the name order (asyncpg prepares statements, and after five executions
        # PostgreSQL may otherwise settle on a plan made without looking at the parameters)
        await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    statement = page_statement(filters, after, limit, organisations, conn.dialect.name)
    rows = (await conn.execute(statement)).mappings().all()
    items = [_item(r) for r in rows[:limit]]
    following = None
    if len(rows) > limit:
        last = rows[limit - 1]
        following = Cursor(last["sort_key"], last["id"]).encode()
    return items, following


def _item(row: Any) -> dict[str, Any]:
    return {
        "member_id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "organisation": {
            "id": row["organisation_id"],
            "name": row["organisation_name"],
            "kind": row["organisation_kind"],
            "cvr": row["organisation_cvr"],
        },
        "job_title": row["job_title"],
        "locale": row["locale"],
        "status": row.get("status", "active"),
        "registered_at": row["registered_at"],
    }
