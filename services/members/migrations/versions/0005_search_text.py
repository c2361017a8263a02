"""member search text: the folded forms the administration's search reads, stored in the members row

- members.sort_key: the folded name, the order of every page and the keyset it continues from
  (ix_members_sort: (sort_key, id), in place of 0004's index on the expression; it also carries search_text,
  organisation_id and status, so that a page's members are found from the index alone: adapters/search.py);
- members.search_text: the folded name, email and job title, what free text is matched against
  (on PostgreSQL with pg_trgm: ix_members_search_trgm, a trigram GIN index on it, in place of 0004's).

Both are generated columns, computed by the database from the row itself on every INSERT and UPDATE: a registration,
a profile change, the import and any other writer keep them right without knowing of them, and existing rows get
theirs when the column is added (the backfill). PostgreSQL stores them (`STORED`: a search reads them and
evaluates no expression per row); SQLite can add only `VIRTUAL` generated columns to an existing table (computed when
read; SQLite scans for free text in any case, and indexes ix_members_sort on the computed value). An organisation's
name is not in search_text: a generated column sees only its own row, and organisations are matched on their own
small table (0004's ix_organisations_search_trgm), as before.

The fold is the one of 0004 and members.adapters.search.fold_text (the Danish letters spelled out, then lower case).
Personal data: it goes with the member's row (the GDPR erasure deletes the row).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 11:00:00
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

# the same replacements, in the same order, as members.adapters.search.FOLDS and 0004 (a migration keeps its copy)
FOLDS: tuple[tuple[str, str], ...] = (("Æ", "ae"), ("æ", "ae"), ("Ä", "ae"), ("ä", "ae"), ("Ø", "oe"), ("ø", "oe"))
FOLDS += (("Ö", "oe"), ("ö", "oe"), ("Å", "aa"), ("å", "aa"))


def fold(sql: str) -> str:
    for letter, spelled in FOLDS:
        sql = f"replace({sql}, '{letter}', '{spelled}')"
    return f"lower({sql})"


SORT = fold("name")
DOCUMENT = fold("name || ' ' || email || ' ' || job_title")


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    kind = "STORED" if postgres else "VIRTUAL"
    trigrams = postgres and _trigrams(bind)
    op.execute("DROP INDEX IF EXISTS ix_members_search_trgm")
    op.execute("DROP INDEX IF EXISTS ix_members_sort")
    # text on PostgreSQL: its lower() and replace() return text, and a generated column of type varchar(n) would
    # take a cast per row; SQLite knows only TEXT anyway
    op.execute(f"ALTER TABLE members ADD COLUMN sort_key TEXT GENERATED ALWAYS AS ({SORT}) {kind}")
    op.execute(f"ALTER TABLE members ADD COLUMN search_text TEXT GENERATED ALWAYS AS ({DOCUMENT}) {kind}")
    # on PostgreSQL with what the search's first step filters on (adapters/search.py page_statement), for an
    # index-only scan; SQLite has no INCLUDE
    include = " INCLUDE (search_text, organisation_id, status)" if postgres else ""
    op.execute(f"CREATE INDEX ix_members_sort ON members (sort_key, id){include}")
    if trigrams:
        op.execute("CREATE INDEX ix_members_search_trgm ON members USING gin (search_text gin_trgm_ops)")


def _trigrams(bind: sa.Connection) -> bool:
    """pg_trgm in place (created now if need be, as 0004 tries); False, with a warning, where it cannot be."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first() is not None:
        return True
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
    """Back to 0004's indexes on the expressions."""
    bind = op.get_bind()
    op.execute("DROP INDEX IF EXISTS ix_members_search_trgm")
    op.execute("DROP INDEX ix_members_sort")
    op.execute("ALTER TABLE members DROP COLUMN search_text")
    op.execute("ALTER TABLE members DROP COLUMN sort_key")
    op.execute(f"CREATE INDEX ix_members_sort ON members ({SORT}, id)")
    if bind.dialect.name == "postgresql":
        present = bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first()
        if present is not None:
            op.execute(f"CREATE INDEX ix_members_search_trgm ON members USING gin (({DOCUMENT}) gin_trgm_ops)")
