"""The tables. The schema itself belongs to the migrations; these must agree
with them (tests/test_migrations.py checks that they do)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .dialects import UTCDateTime, utcnow

EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 255
TITLE_MAX_LENGTH = 255
DESCRIPTION_MAX_LENGTH = 10_000
PRIORITIES = ("low", "medium", "high")
DEFAULT_PRIORITY = "medium"
TAG_MAX_LENGTH = 50  # code points, counted after trimming and before lower-casing
TAGS_PER_TASK = 20
# A tag id: BIGINT, but SQLite only auto-numbers a column declared INTEGER.
TAG_ID = BigInteger().with_variant(Integer(), "sqlite")


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Stored lower-case, so a plain unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    name: Mapped[str | None] = mapped_column(String(NAME_MAX_LENGTH))
    password_hash: Mapped[str] = mapped_column(String(255))
    # Copied into every token; a password change bumps it, revoking every
    # older token at once (a timestamp cannot: `iat` has whole seconds).
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Task(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tasks"
    __table_args__ = (
        # One user's tasks, newest first: listing and deep pages (index only).
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        # The change feed in order, and the newest change for list ETags.
        Index(
            "ix_tasks_user_id_change_xid_change_seq_id",
            "user_id",
            "change_xid",
            "change_seq",
            "id",
        ),
        # Due-date filters and sorts.
        Index("ix_tasks_user_id_due_at_id", "user_id", "due_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    completed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    priority: Mapped[str] = mapped_column(
        String(6),
        CheckConstraint("priority IN ('low', 'medium', 'high')", name="priority"),
        server_default=DEFAULT_PRIORITY,
    )
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The task's place in the change feed, set by a trigger on every insert
    # and real change (migration 0003); never written by the application.
    change_xid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    change_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")


class Tag(db.Model):  # type: ignore[name-defined]
    """One of a user's tags. `task_count` (how many of the user's tasks carry
    it) is kept by triggers on `task_tags`; never written by the application."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(TAG_ID, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Lower-cased: up to 50 code points before, a few more after.
    name: Mapped[str] = mapped_column(Text)
    task_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class TaskTag(db.Model):  # type: ignore[name-defined]
    """A task carries a tag; `position` keeps the order the tags were given in."""

    __tablename__ = "task_tags"
    __table_args__ = (
        # "Tasks of this user with every one of these tags": from a tag to its tasks.
        Index("ix_task_tags_tag_id_task_id", "tag_id", "task_id"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(
        TAG_ID, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(SmallInteger)


class TaskTombstone(db.Model):  # type: ignore[name-defined]
    """A deleted task, for the change feed: written by a trigger on `tasks`,
    removed by `flask purge` after 30 days."""

    __tablename__ = "task_tombstones"
    __table_args__ = (
        Index(
            "ix_task_tombstones_user_id_change_xid_change_seq",
            "user_id",
            "change_xid",
            "change_seq",
        ),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    change_xid: Mapped[int] = mapped_column(BigInteger)
    change_seq: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SyncHorizon(db.Model):  # type: ignore[name-defined]
    """The newest change position of a user whose tombstone has been purged:
    a sync cursor before it may have missed a deletion (410)."""

    __tablename__ = "sync_horizons"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    change_xid: Mapped[int] = mapped_column(BigInteger)
    change_seq: Mapped[int] = mapped_column(BigInteger)


class IdempotencyKey(db.Model):  # type: ignore[name-defined]
    """A POST made with an `Idempotency-Key`: the request's fingerprint and,
    once it succeeded, its answer (status NULL while the first is running)."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class RevokedToken(db.Model):  # type: ignore[name-defined]
    """A token that must no longer be accepted: logged out, or a refresh token
    already used (rotation). Or a whole family, the tokens of one login
    (their `fam` claim), keyed by the family id: a refresh token was reused
    (API.md, Refresh token reuse). Kept until the tokens would have expired
    anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(36), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # When a refresh token was rotated away, and the family its successor
    # belongs to: presented again within REFRESH_REUSE_GRACE_SECONDS it is a
    # client's retry, later a theft that revokes that family.
    # NULL: revoked by logout, or a family.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    family: Mapped[str | None] = mapped_column(String(36))


class TaskCount(db.Model):  # type: ignore[name-defined]
    """How many tasks a user has, and how many of them are completed.

    Kept true by database triggers on `tasks` (migration 0002), however rows are
    written: through the API, `flask seed`, or plain SQL. A user's count is
    spread over a few `slot` rows (one per database session, modulo 8) so that
    concurrent creates do not queue on one row; the total is their sum.
    Never written by the application.
    """

    __tablename__ = "task_counts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    completed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
