"""The notifications database: contact directory, its roster copy, meetings, the delivery log, messaging tables."""

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

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
    # 0006: the member's organisation (webhooks filtered by organisation), when the profile was current
    # (registered_at / updated_at: an older profile arriving later on another durable does not overwrite a newer one)
    # and the address's deliverability: a permanent SMTP refusal marks it, a member.updated with another address or
    # the administration clears it
    Column("organisation_id", Uuid, nullable=True),
    Column("profile_at", UtcDateTime(), nullable=True),
    Column("undeliverable_at", UtcDateTime(), nullable=True),
    Column("undeliverable_reason", String(200), nullable=True),
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
    # The newest join and the leaving after it (MemberLeft): a row with `left_at` is no member any more, and a later
    # but older MemberJoined (another durable) does not bring them back. NULL for rows from before 0005.
    Column("joined_at", UtcDateTime(), nullable=True),
    Column("left_at", UtcDateTime(), nullable=True),
    # When the role was last changed (MemberRoleChanged): an older join arriving later does not undo it.
    Column("role_at", UtcDateTime(), nullable=True),
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

# Each member's latest answer per meeting (RsvpRecorded, newest `answered_at` wins): whom a reminder goes to, and
# who is nudged for not having answered. Personal data: in the GDPR export, deleted at erasure.
rsvps = Table(
    "rsvps",
    metadata,
    Column("meeting_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("group_id", Uuid, nullable=False),
    Column("response", String(16), nullable=False),  # attending | tentative | declined
    Column("status", String(16), nullable=False),  # confirmed | waitlisted | noted | withdrawn
    Column("waitlist_position", Integer, nullable=True),
    Column("answered_at", UtcDateTime(), nullable=False),
)
Index("ix_rsvps_member", rsvps.c.member_id)

# A group's reminder timings (GET/PUT /groups/{id}/reminder-settings); no row: the defaults (model.ReminderSettings).
reminder_settings = Table(
    "reminder_settings",
    metadata,
    Column("group_id", Uuid, primary_key=True),
    Column("reminder_days", JSON, nullable=False),
    Column("nudge_days", Integer, nullable=True),
    Column("local_hour", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Reminders and nudges planned per meeting (not per member: who gets one is decided when it is due), durable across
# restarts; re-planned when the meeting moves, dropped when it is cancelled. Names no member.
reminders = Table(
    "reminders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("meeting_id", Uuid, nullable=False),
    Column("kind", String(16), nullable=False),  # reminder | nudge
    Column("days_before", Integer, nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),  # the start it reminds of: a move plans anew
    Column("due_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),  # planned | done | skipped
    Column("reason", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("done_at", UtcDateTime(), nullable=True),
    UniqueConstraint("meeting_id", "kind", "days_before", "starts_at", name="uq_reminders_once"),
)
Index("ix_reminders_due", reminders.c.status, reminders.c.due_at)

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
    # 0007: what the message carries that must not outlive it (a sign-in link): set only while the delivery may still
    # go, blanked (NULL) when it is sent, fails for good or is skipped; never in the delivery log, an export or an event
    Column("secret", Text, nullable=True),
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

# Signed webhooks (domain/webhooks.py): the administration's subscribers. The secret is kept as it is, because the
# service signs with it; it is never logged nor answered after it was shown once.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("kinds", JSON, nullable=True),  # a list of notification kinds; NULL: every kind
    Column("organisation_id", Uuid, nullable=True),  # NULL: every member's notifications
    Column("secret", String(200), nullable=False),
    Column("previous_secret", String(200), nullable=True),  # still signs until previous_until (a rotation's grace)
    Column("previous_until", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

# One NotificationSent/NotificationFailed owed to one subscriber, written in the transaction that wrote the event
# to the outbox; at most once per (subscriber, event). `body` is the event's CloudEvent (structured mode).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),  # Netvaerk-Webhook-Id: the receiver dedupes on it
    Column("webhook_id", Uuid, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("member_id", Uuid, nullable=True),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("last_status", Integer, nullable=True),  # the subscriber's last HTTP status; NULL: no answer
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime(), nullable=True),
    UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_once"),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)
Index("ix_webhook_deliveries_webhook", webhook_deliveries.c.webhook_id, webhook_deliveries.c.status)
Index("ix_webhook_deliveries_member", webhook_deliveries.c.member_id)

messaging = add_messaging_tables(metadata)
