"""Token revocation, stored in the database so that it holds across every
gunicorn worker and every replica."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Insert, and_, bindparam, delete, exists, insert, select
from sqlalchemy.exc import IntegrityError

from ..db.connections import connection
from ..db.dialects import utcnow
from ..db.models import RevokedToken, User
from ..errors import Unauthorized


class TokenState(NamedTuple):
    token_version: int
    revoked: bool


@dataclass(frozen=True)
class TokenCheck:
    """A signed token's claims whose revocation is still to be checked in the
    database: by `still_valid()` inside the request's own statement, or on
    its own by `ensure_valid()`."""

    user_id: uuid.UUID
    jti: str
    version: int

    def params(self) -> dict[str, Any]:
        return {"auth_user_id": self.user_id, "auth_version": self.version, "auth_jti": self.jti}


def still_valid() -> ColumnElement[bool]:
    """SQL: the token (bound as `TokenCheck.params()`) is still good: its user
    exists, no password change since it was issued, and it is not revoked.
    Added to a statement's WHERE, it saves the separate round trip."""
    return and_(
        exists().where(
            User.id == bindparam("auth_user_id"),
            User.token_version == bindparam("auth_version"),
        ),
        ~exists().where(RevokedToken.jti == bindparam("auth_jti")),
    )


def is_valid(check: TokenCheck) -> bool:
    state = token_state(user_id=check.user_id, jti=check.jti)
    return state is not None and not state.revoked and state.token_version == check.version


def ensure_valid(check: TokenCheck) -> None:
    """Raise the 401 when the token is no longer good."""
    if not is_valid(check):
        raise Unauthorized("Token has been revoked.")


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


def revoke_once(*, jti: str, expires_at: datetime, message: str) -> None:
    """Revoke the token presented: a refresh token being used (rotation), an
    access token logging out. Atomic: of several concurrent uses exactly one
    inserts the id; the others hit the primary key -> 401 with `message`."""
    try:
        connection().execute(_REVOKE, {"jti": jti, "expires_at": expires_at})
    except IntegrityError:
        raise Unauthorized(message) from None


def purge_expired(*, now: datetime | None = None) -> int:
    """Drop revocation entries of tokens that have expired anyway."""
    result = connection().execute(
        delete(RevokedToken).where(RevokedToken.expires_at < (now or utcnow()))
    )
    return int(result.rowcount or 0)
