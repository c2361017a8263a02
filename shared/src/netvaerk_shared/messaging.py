"""The tables every service keeps for messaging: outbox (to publish), inbox (processed event ids), dead letters."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text, and_

from .db import UtcDateTime

BIGINT = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table
    dead_letters: Table


def add_messaging_tables(metadata: MetaData) -> MessagingTables:
    outbox = Table(
        "outbox",
        metadata,
        Column("position", BIGINT, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("type", String(128), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("published_at", UtcDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
        # set when the relay gave up on the row because it can never be published as it is (too large, a subject
        # this service may not publish to): the relay goes on without it; POST /admin/outbox/{id}/retry clears it
        Column("parked_at", UtcDateTime(), nullable=True),
    )
    pending = and_(outbox.c.published_at.is_(None), outbox.c.parked_at.is_(None))
    # what the relay takes, in order (the where clause must match Relay._select's for the index to be used)
    Index("ix_outbox_pending", outbox.c.position, postgresql_where=pending, sqlite_where=pending)
    # parked rows, few or none: listed by GET /admin/outbox and counted for the outbox_parked gauge
    parked = outbox.c.parked_at.is_not(None)
    Index("ix_outbox_parked", outbox.c.position, postgresql_where=parked, sqlite_where=parked)
    Index("ix_outbox_published_at", outbox.c.published_at)
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("type", String(128), nullable=False),
        Column("processed_at", UtcDateTime(), nullable=False),
    )
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("consumer", String(100), nullable=False),
        Column("stream", String(64), nullable=False),
        Column("stream_seq", BIGINT, nullable=True),
        Column("subject", String(255), nullable=False),
        Column("event_id", String(64), nullable=True),
        Column("type", String(128), nullable=True),
        Column("body", LargeBinary, nullable=False),
        Column("headers", JSON, nullable=True),
        Column("reason", Text, nullable=False),
        Column("deliveries", Integer, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("replayed_at", UtcDateTime(), nullable=True),
        Column("replay_error", Text, nullable=True),
    )
    Index("ix_dead_letters_open", dead_letters.c.consumer, dead_letters.c.replayed_at)
    return MessagingTables(outbox=outbox, inbox=inbox, dead_letters=dead_letters)
