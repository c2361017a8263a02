"""The meetings database: meetings and agendas, this service's copy of the group rosters, and the messaging tables.

The roster tables are filled from MEMBERS events on separate durables, so rows may arrive in any order: a membership
row never requires its group row (no foreign key from group_members to groups).
"""

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text, Uuid

from netvaerk_shared.db import UtcDateTime
from netvaerk_shared.messaging import add_messaging_tables

metadata = MetaData()

groups = Table(
    "groups",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("slug", String(100), nullable=False),
    Column("region", String(100), nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("role", String(20), nullable=False),
    Column("joined_at", UtcDateTime(), nullable=False),
)
Index("ix_group_members_member_id", group_members.c.member_id)

meetings = Table(
    "meetings",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("group_id", Uuid, ForeignKey("groups.id"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("venue_name", String(200), nullable=True),
    Column("venue_address", String(500), nullable=True),
    Column("venue_host_organisation", String(200), nullable=True),
    Column("online_url", Text, nullable=True),
    Column("capacity", Integer, nullable=True),
    Column("sequence", Integer, nullable=False),
    Column("scheduled_at", UtcDateTime(), nullable=False),
)

agenda_items = Table(
    "agenda_items",
    metadata,
    Column("meeting_id", Uuid, ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("title", String(200), nullable=False),
    Column("speaker", String(200), nullable=True),
    Column("speaker_organisation", String(200), nullable=True),
    Column("minutes", Integer, nullable=False),
    Column("tags", JSON, nullable=False),
)

messaging = add_messaging_tables(metadata)
