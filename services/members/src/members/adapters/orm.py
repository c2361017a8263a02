"""The members database: its own tables, plus the messaging tables every service keeps."""

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Computed,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

from netvaerk_shared.db import UtcDateTime
from netvaerk_shared.messaging import add_messaging_tables

metadata = MetaData()

# The folding of the administration's search (adapters/search.py): the Danish letters spelled out, then lower case.
# Written here for the generated columns below, as migration 0005 writes them (the database computes them).
FOLDS: tuple[tuple[str, str], ...] = (("Æ", "ae"), ("æ", "ae"), ("Ä", "ae"), ("ä", "ae"), ("Ø", "oe"), ("ø", "oe"))
FOLDS += (("Ö", "oe"), ("ö", "oe"), ("Å", "aa"), ("å", "aa"))


def fold_sql(sql: str) -> str:
    for letter, spelled in FOLDS:
        sql = f"replace({sql}, '{letter}', '{spelled}')"
    return f"lower({sql})"


organisations = Table(
    "organisations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("name_key", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("cvr", String(8), nullable=True),
    # the association membership the organisation holds for its staff: active / lapsed / ended, or none
    Column("membership_status", String(10), nullable=True),
    Column("membership_valid_until", Date, nullable=True),
)

groups = Table(
    "groups",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("slug", String(100), nullable=False, unique=True),
    Column("region", String(100), nullable=False),
    Column("description", Text, nullable=False),
    Column("topics", JSON, nullable=False),
    Column("capacity", Integer, nullable=True),
    Column("requires_approval", Boolean, nullable=False),
    Column("status", String(10), nullable=False, server_default="open"),  # open / closed / archived
)

members = Table(
    "members",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("phone", String(40), nullable=True),
    Column("organisation_id", Uuid, ForeignKey("organisations.id"), nullable=False),
    Column("job_title", String(200), nullable=False),
    Column("locale", String(2), nullable=False),
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("status", String(10), nullable=False, server_default="active"),  # own membership: active/lapsed/ended
    # what the administration's search sorts by and matches free text in (migration 0005): computed by the database
    # from the row on every write, so no writer has to keep them; never written, never shown
    Column("sort_key", Text, Computed(fold_sql("name")), nullable=False),
    Column("search_text", Text, Computed(fold_sql("name || ' ' || email || ' ' || job_title")), nullable=False),
)

# What a member agreed to (receive meeting invitations, reminders, news; show email, phone in the group
# directory) and when; a withdrawn consent is deleted. Personal data: erased with the member.
consents = Table(
    "consents",
    metadata,
    Column("member_id", Uuid, ForeignKey("members.id"), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("given_at", UtcDateTime(), nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("member_id", Uuid, ForeignKey("members.id"), primary_key=True),
    Column("group_id", Uuid, ForeignKey("groups.id"), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("joined_at", UtcDateTime(), nullable=False),
)
# (memberships by group: index ix_memberships_group, migration 0004)

# Requests to join a group that wait: for a coordinator's approval (pending) or for a seat (waitlisted), in
# `position` order within the group (first come, first served). Personal data: erased with the member.
join_requests = Table(
    "join_requests",
    metadata,
    Column("group_id", Uuid, ForeignKey("groups.id"), primary_key=True),
    Column("member_id", Uuid, ForeignKey("members.id"), primary_key=True),
    Column("status", String(12), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("position", Integer, nullable=False),
)
Index("ix_join_requests_member_id", join_requests.c.member_id)

# The members erased here (GDPR Art. 17): their id and when, nothing else — no name, no email, nothing of the
# person. It is the proof of the erasure, and what makes a repeated erasure request answer with the original time
# instead of a 404. Not personal data of the kind the erasure deletes, so adapters/gdpr.py leaves it out of the
# erasure and of the export (migration 0006).
erased_members = Table(
    "erased_members",
    metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("erased_at", UtcDateTime(), nullable=False),
)

messaging = add_messaging_tables(metadata)
