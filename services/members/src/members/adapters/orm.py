"""The members database: its own tables, plus the messaging tables every service keeps."""

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Integer, MetaData, String, Table, Text, Uuid

from netvaerk_shared.db import UtcDateTime
from netvaerk_shared.messaging import add_messaging_tables

metadata = MetaData()

organisations = Table(
    "organisations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("name_key", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("cvr", String(8), nullable=True),
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
)

memberships = Table(
    "memberships",
    metadata,
    Column("member_id", Uuid, ForeignKey("members.id"), primary_key=True),
    Column("group_id", Uuid, ForeignKey("groups.id"), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("joined_at", UtcDateTime(), nullable=False),
)

messaging = add_messaging_tables(metadata)
