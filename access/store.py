"""Access tables (SQLAlchemy Core on the shared metadata, portable to PostgreSQL): users, tokens, sessions, audit.

Secrets are never stored: passwords as argon2 hashes, session ids and API tokens as SHA-256 digests (they are long
random strings, so a fast hash is enough and lets a lookup use the index). Times are UTC epoch seconds.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Connection, Float, Index, Integer, String, Table, Text

from storage.migrations import register
from storage.schema import metadata

users = Table(
    "access_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("roles", Text, nullable=False),  # JSON list
    Column("regions", Text, nullable=False, default="[]"),  # JSON list; empty = every region
    Column("departments", Text, nullable=False, default="[]"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", Float),
    Column("created_ts", Float, nullable=False),
    Column("password_ts", Float, nullable=False),
)

tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("sources", Text, nullable=False, default="[]"),  # JSON list: sources an ingest token may push to
    Column("regions", Text, nullable=False, default="[]"),
    Column("created_by", String(100), nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("expires_ts", Float),
    Column("revoked_ts", Float),
    Column("last_used_ts", Float),
)

sessions = Table(
    "access_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("expires_ts", Float, nullable=False),
    Index("ix_access_sessions_user", "user_id"),
)

audit = Table(
    "access_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("actor", String(120), nullable=False),  # "user:NAME", "token:ID:NAME" or "anonymous"
    Column("action", String(60), nullable=False),  # login, login_failed, request, denied, pii_view, role_change ...
    Column("target", String(300), nullable=False, default=""),
    Column("outcome", String(20), nullable=False),  # ok, denied, failed
    Column("address", String(60), nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),
    Index("ix_access_audit_ts", "ts"),
    Index("ix_access_audit_action", "action", "ts"),
)

TABLES = [users, tokens, sessions, audit]


@register("access", 1, "users, API tokens, sessions, audit log")
def _access_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=TABLES)
