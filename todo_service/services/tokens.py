"""Token revocation, stored in the database so that it holds across every
gunicorn worker and every replica."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Insert, bindparam, delete, exists, insert, select
from sqlalchemy.exc import IntegrityError

from ..connections import connection
from ..database import utcnow
from ..errors import Unauthorized
from ..extensions import db
from ..models import RevokedToken, User


class TokenState(NamedTuple):
    token_version: int
    revoked: bool


_TOKEN_STATE = select(
    User.token_version,
    exists().where(RevokedToken.jti == bindparam("jti")).label("revoked"),
).where(User.id == bindparam("user_id"))

_REVOKE: Insert = insert(RevokedToken)


def token_state(*, user_id: uuid.UUID, jti: str) -> TokenState | None:
    """The user's current token version and whether `jti` is revoked, in one
    round trip; None when the user no longer exists."""
    row = connection().execute(_TOKEN_STATE, {"user_id": user_id, "jti": jti}).first()
    return None if row is None else TokenState(row[0], bool(row[1]))


def revoke(*, jti: str, expires_at: datetime) -> None:
    """Revoke a token; revoking one already revoked is not an error."""
    with contextlib.suppress(IntegrityError):
        connection().execute(_REVOKE, {"jti": jti, "expires_at": expires_at})


def consume_refresh_token(*, jti: str, expires_at: datetime) -> None:
    """Mark a refresh token used (rotation). Atomic: of several concurrent
    uses exactly one inserts the id; the others hit the primary key -> 401."""
    try:
        connection().execute(_REVOKE, {"jti": jti, "expires_at": expires_at})
    except IntegrityError:
        raise Unauthorized("Refresh token has already been used.") from None


def purge_expired(*, now: datetime | None = None) -> int:
    """Drop revocation entries of tokens that have expired anyway."""
    result = db.session.execute(
        delete(RevokedToken).where(RevokedToken.expires_at < (now or utcnow()))
    )
    db.session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
