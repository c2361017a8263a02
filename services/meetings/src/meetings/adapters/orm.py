"""The meetings database: meetings and agendas, this service's copy of the group rosters, and the messaging tables.

The roster tables are filled from MEMBERS events on separate durables, so rows may arrive in any order: a membership
row never requires its group row (no foreign key from group_members to groups).
"""

from sqlalchemy import JSON, Boolean, Column, Date, ForeignKey, Index, Integer, MetaData, String, Table, Text, Uuid

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
    # open / closed / archived, from group.updated (migration 0007); an archived group takes no new meetings
    Column("status", String(20), nullable=False, server_default="open"),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("role", String(20), nullable=False),
    Column("joined_at", UtcDateTime(), nullable=False),
    # Set when the member left (MemberLeft): the row stays, so a MemberJoined older than the leaving, arriving late on
    # its own durable, does not put them back. A newer join clears it. Only rows without it are the roster.
    Column("left_at", UtcDateTime(), nullable=True),
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
    # the meeting's life and the year's plan (migration 0004)
    Column("status", String(20), nullable=False, server_default="scheduled"),
    Column("rsvp_deadline", UtcDateTime(), nullable=True),
    Column("series_id", Uuid, nullable=True, index=True),
    Column("cancel_reason", String(500), nullable=True),
    Column("minutes", Text, nullable=True),
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
    Column("materials", JSON, nullable=True),  # links; NULL in rows written before migration 0004
)

# Members erased (GDPR): ids only. A MemberJoined that arrives after the member's erasure (another durable) is not
# recorded; the erased member's roster rows were deleted (their answers and attendance stay, under random ids).
erased_members = Table(
    "erased_members",
    metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("erased_at", UtcDateTime(), nullable=False),
)

messaging = add_messaging_tables(metadata)

# -- topic proposals and calendar feeds (issue 9: proposals + calendar) ---------------------------------------------
proposals = Table(
    "proposals",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("group_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False, index=True),  # the proposer; a random id once erased (GDPR)
    Column("kind", String(10), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("for_meeting_id", Uuid, nullable=True),
    Column("speaker", String(200), nullable=True),
    Column("speaker_organisation", String(200), nullable=True),
    Column("status", String(10), nullable=False),
    Column("submitted_at", UtcDateTime(), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("meeting_id", Uuid, nullable=True),
    Column("agenda_position", Integer, nullable=True),
    Column("reason", Text, nullable=True),
)

proposal_backers = Table(
    "proposal_backers",
    metadata,
    Column("proposal_id", Uuid, ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Uuid, primary_key=True),  # a random id once erased: the count stays right
    Column("backed_at", UtcDateTime(), nullable=False),
)
Index("ix_proposal_backers_member_id", proposal_backers.c.member_id)

# A feed's token is shown once, when it is made; only its SHA-256 is kept, so a copy of the database opens no feed.
calendar_feeds = Table(
    "calendar_feeds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("group_id", Uuid, nullable=True),  # a group's feed ...
    Column("member_id", Uuid, nullable=True, index=True),  # ... or a member's (every group they are in)
    Column("created_by", Uuid, nullable=True, index=True),  # the member who made it; None: the administration
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

# -- RSVP, waiting lists, attendance, the roster's organisations (issue 9: seats) ------------------------------------
# The organisation a member works for, from MemberRegistered / MemberUpdated: the id only (no name, no contact data),
# to know who is a colleague of whom when a member sends someone in their place.
member_organisations = Table(
    "member_organisations",
    metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False, index=True),
    Column("updated_at", UtcDateTime(), nullable=False),  # the profile's time: an older event does not win
)

# One answer per member and meeting. `arrival` orders the waiting list: the n-th answer decided for the meeting
# (decided one at a time, under a lock on the meeting's row). A random member id once the member is erased.
rsvps = Table(
    "rsvps",
    metadata,
    Column("meeting_id", Uuid, ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("response", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("arrival", Integer, nullable=False),
    Column("answered_at", UtcDateTime(), nullable=False),
    Column("on_behalf_of", Uuid, nullable=True),
)
Index("ix_rsvps_member_id", rsvps.c.member_id)

attendance = Table(
    "attendance",
    metadata,
    Column("meeting_id", Uuid, ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("attended", Boolean, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)
Index("ix_attendance_member_id", attendance.c.member_id)

# -- the year's plan (issue 9: plan); its meetings carry series_id ---------------------------------------------------
series = Table(
    "series",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("group_id", Uuid, ForeignKey("groups.id"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("rule", JSON, nullable=False),  # {months, weekday, week, starts, ends} as planned
    Column("first_day", Date, nullable=False),
    Column("count", Integer, nullable=False),
    Column("planned_at", UtcDateTime(), nullable=False),
)
