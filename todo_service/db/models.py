"""The tables. The schema itself belongs to the migrations; these must agree
with them (tests/test_migrations.py checks that they do)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .dialects import UTCDateTime, utcnow

EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 255
TITLE_MAX_LENGTH = 255
DESCRIPTION_MAX_LENGTH = 10_000


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
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    completed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


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
