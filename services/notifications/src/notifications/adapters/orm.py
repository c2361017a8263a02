"""The notifications database: contact directory, its roster copy, meetings, the delivery log, messaging tables."""

from sqlalchemy import JSON, Boolean, Column, Index, Integer, MetaData, String, Table, Text, Uuid

from netvaerk_shared.db import UtcDateTime
from netvaerk_shared.messaging import add_messaging_tables

metadata = MetaData()

contacts = Table(
    "contacts",
    metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("locale", String(2), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

groups = Table(
    "groups",
    metadata,
    Column("group_id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("role", String(20), nullable=False),
)

meetings = Table(
    "meetings",
    metadata,
    Column("meeting_id", Uuid, primary_key=True),
    Column("group_id", Uuid, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("data", JSON, nullable=False),  # MeetingScheduled-shaped: the newest fields and agenda (domain Meeting)
    Column("status", String(16), nullable=False, server_default="scheduled"),  # scheduled | cancelled | held
    Column("fields_sequence", Integer, nullable=True),
    Column("agenda_sequence", Integer, nullable=True),
)

# When the last agenda notice of a meeting was owed to go (model.agenda_slot): at most one a window.
agenda_notices = Table(
    "agenda_notices",
    metadata,
    Column("meeting_id", Uuid, primary_key=True),
    Column("last_at", UtcDateTime(), nullable=False),
)

# A member's choices per category (announcements, reminders, agenda_updates); no row: email on, the profile's
# language. Personal data: in the GDPR export, deleted at erasure.
preferences = Table(
    "preferences",
    metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("email", Boolean, nullable=False),
    Column("language", String(2), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),  # = notification_id in NotificationSent
    Column("dedupe_key", String(255), nullable=False, unique=True),
    Column("member_id", Uuid, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("channel", String(16), nullable=False, default="email"),
    Column("cause_event_id", Uuid, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("to_email", String(320), nullable=True),
    Column("subject", String(300), nullable=True),
    Column("message_id", String(200), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
)
Index("ix_deliveries_due", deliveries.c.status, deliveries.c.next_attempt_at)
Index("ix_deliveries_member", deliveries.c.member_id)

# Members erased (GDPR): ids only. A MemberRegistered or MemberJoined that arrives after the member's erasure (on
# another durable) is not recorded, and nothing is owed to an erased member.
erased_members = Table(
    "erased_members",
    metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("erased_at", UtcDateTime(), nullable=False),
)

messaging = add_messaging_tables(metadata)
