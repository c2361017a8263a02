"""member search: the indexes the administration's search and its keyset pages use (members.adapters.search)

- ix_members_sort: (folded name, id), the order of every page and the keyset it continues from;
- ix_members_organisation, ix_memberships_group: the organisation and group filters;
- on PostgreSQL with pg_trgm: trigram (GIN) indexes on the folded text, for free text (LIKE '%word%').

pg_trgm: `CREATE EXTENSION IF NOT EXISTS pg_trgm` needs the right to create it (a trusted extension since
PostgreSQL 13: the database owner may) and the contrib files on the server. When either is missing the migration
goes on without the trigram indexes (one warning): the search works the same, by scanning. Running this migration
again later (downgrade to 0003, upgrade) adds them.

The folded expressions must be written exactly as members.adapters.search.fold() renders them: PostgreSQL uses an
expression index only for the identical expression (tests/integration/test_member_search.py checks the plans).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

# the same replacements, in the same order, as members.adapters.search.FOLDS (a migration keeps its own copy)
FOLDS: tuple[tuple[str, str], ...] = (("Æ", "ae"), ("æ", "ae"), ("Ä", "ae"), ("ä", "ae"), ("Ø", "oe"), ("ø", "oe"))
FOLDS += (("Ö", "oe"), ("ö", "oe"), ("Å", "aa"), ("å", "aa"))


def fold(sql: str) -> str:
    for letter, spelled in FOLDS:
        sql = f"replace({sql}, '{letter}', '{spelled}')"
    return f"lower({sql})"


SORT = fold("name")
DOCUMENT = fold("name || ' ' || email || ' ' || job_title")
ORGANISATION = fold("name")


def upgrade() -> None:
    op.execute(f"CREATE INDEX ix_members_sort ON members ({SORT}, id)")
    op.create_index("ix_members_organisation", "members", ["organisation_id"])
    op.create_index("ix_memberships_group", "memberships", ["group_id"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _trigrams(bind):
        return
    op.execute(f"CREATE INDEX ix_members_search_trgm ON members USING gin (({DOCUMENT}) gin_trgm_ops)")
    op.execute(f"CREATE INDEX ix_organisations_search_trgm ON organisations USING gin (({ORGANISATION}) gin_trgm_ops)")


def _trigrams(bind: sa.Connection) -> bool:
    """pg_trgm in place (created now if need be); False, with a warning, where it cannot be."""
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first()
    if available is None:
        log.warning("pg_trgm is not installed on this server: member search goes without trigram indexes")
        return False
    try:
        with bind.begin_nested():  # a savepoint: a refusal must not abort the migration's transaction
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning("could not create extension pg_trgm (%s): member search goes without trigram indexes", exc.orig)
        return False
    return True


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_organisations_search_trgm")
    op.execute("DROP INDEX IF EXISTS ix_members_search_trgm")
    op.drop_index("ix_memberships_group", table_name="memberships")
    op.drop_index("ix_members_organisation", table_name="members")
    op.drop_index("ix_members_sort", table_name="members")
