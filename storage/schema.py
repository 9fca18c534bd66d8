"""Relational tables (SQLAlchemy Core) so state can move from SQLite to PostgreSQL unchanged."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("component", String(50), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("applied_at", String(40), nullable=False),
)

# The feed's filters: each gets an index paired with the time sort and one paired with the risk sort, so a filtered
# page reads its rows in order from the index and stops at the page, whatever the number of items.
FEED_FILTERS = ("channel", "source", "topic", "risk_level", "emotion", "region", "event_id")
UNSCORED_RISK = -1.0  # risk_rank of an item without a risk score: below every score, so the risk sort puts it last


def _feed_indexes() -> list[Index]:
    indexes = [Index("ix_items_time", "published_ts", "id"), Index("ix_items_risk_rank", "risk_rank", "id")]
    for column in FEED_FILTERS:
        indexes.append(Index(f"ix_items_{column}_time", column, "published_ts", "id"))
        indexes.append(Index(f"ix_items_{column}_risk", column, "risk_rank", "id"))
    return indexes


# What the feed's pages read through and nothing that stores an item looks up: an import may go without them while it
# writes and build them after (SqliteStore.bulk_load). The unique key, ix_items_hash (dedup) and ix_items_event_stored
# (event reassignments) are not among them.
FEED_INDEXES = _feed_indexes()


# Short, often-read columns come first and the long text last: SQLite reads a row's columns in order, so a filter on
# topic must not step over the text (new databases; existing ones keep their order, which only costs speed).
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("published_ts", Float, nullable=False),
    Column("risk_rank", Float, nullable=False, default=UNSCORED_RISK),  # risk_score, or UNSCORED_RISK when none
    Column("source", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("topic", String(50)),
    Column("risk_level", String(10)),
    Column("emotion", String(20)),
    Column("region", String(100)),
    Column("event_id", String(64)),
    Column("risk_score", Float),
    Column("polarity", String(20)),
    Column("likes", Integer, nullable=False, default=0),
    Column("reposts", Integer, nullable=False, default=0),
    Column("comments", Integer, nullable=False, default=0),
    Column("has_reply", Integer, nullable=False, default=0),
    Column("source_id", String(300), nullable=False),
    Column("content_hash", String(40), nullable=False),
    Column("signature", String(40), nullable=False),
    Column("published_at", String(40), nullable=False),
    Column("fetched_at", String(40), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("author", String(200)),
    Column("url", Text),
    Column("title", Text, nullable=False, default=""),
    Column("content", Text, nullable=False, default=""),
    Column("doc", Text, nullable=False),
    UniqueConstraint("source", "source_id", name="uq_items_source_sid"),
    Index("ix_items_hash", "content_hash"),
    Index("ix_items_event_stored", "event_id"),  # an event's items in the order they were stored (subject_facts)
    *FEED_INDEXES,
)

item_schemes = Table(
    "item_schemes",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("scheme", String(100), primary_key=True),
    Index("ix_item_schemes_scheme", "scheme"),
)

item_duplicates = Table(
    "item_duplicates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(100), nullable=False),
    Column("source_id", String(300), nullable=False),
    Column("url", Text),
    Column("seen_at", String(40), nullable=False),
    Column("doc", Text),  # the copy as collected (its own author, time, engagement, official reply): nothing is lost
    UniqueConstraint("source", "source_id", name="uq_dups_source_sid"),
    Index("ix_dups_item", "item_id"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("stage", String(50), nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("payload_hash", String(40), nullable=False),
    Column("origin", Text, nullable=False, default=""),
    Column("created_at", String(40), nullable=False),
    Column("last_seen_at", String(40), nullable=False),
    Column("times_seen", Integer, nullable=False, default=1),
    Index("ix_quarantine_source", "source", "id"),
    Index("ix_quarantine_hash", "source", "payload_hash"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("origin", Text, nullable=False, default=""),
    Column("received_at", String(40), nullable=False),
    Column("status", String(10), nullable=False, default="pending"),
    Column("holder", String(64)),  # the instance ingesting a push from the records in hand (NULL: any drain takes it)
    Index("ix_inbox_status", "status", "id"),
)

CORE_TABLES = [schema_version, items, item_schemes, item_duplicates, quarantine, inbox]
