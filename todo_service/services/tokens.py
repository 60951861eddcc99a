"""Token revocation, stored in the database so that it holds across every
gunicorn worker and every replica.

The tokens of one login form a family (their `fam` claim), kept through
every refresh. A refresh token rotated away and presented again after a
grace period is taken for stolen: its family is revoked, as one row keyed by
the family id (API.md, Refresh token reuse). Tokens issued before families
have no `fam` and are checked on their own `jti` alone.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    family: str | None = None  # None: issued before token families

    def params(self) -> dict[str, Any]:
        return {
            "auth_user_id": self.user_id,
            "auth_version": self.version,
            "auth_jti": self.jti,
            # Without a family the token's own id stands in: the same probe.
            "auth_fam": self.family or self.jti,
        }


def _revoked(jti: str, family: str) -> ColumnElement[bool]:
    """SQL: the token or its family (bound as `jti` and `family`) is revoked;
    both probes on the primary key. Typed parameters: a prepared statement
    declares the type of each (db/prebuilt.py)."""
    key = RevokedToken.jti.type
    return exists().where(
        RevokedToken.jti.in_([bindparam(jti, type_=key), bindparam(family, type_=key)])
    )


def still_valid() -> ColumnElement[bool]:
    """SQL: the token (bound as `TokenCheck.params()`) is still good: its user
    exists, no password change since it was issued, and neither it nor its
    family is revoked. Added to a statement's WHERE, it saves the separate
    round trip."""
    return and_(
        exists().where(
            User.id == bindparam("auth_user_id"),
            User.token_version == bindparam("auth_version"),
        ),
        ~_revoked("auth_jti", "auth_fam"),
    )


def is_valid(check: TokenCheck) -> bool:
    state = token_state(user_id=check.user_id, jti=check.jti, family=check.family)
    return state is not None and not state.revoked and state.token_version == check.version


def ensure_valid(check: TokenCheck) -> None:
    """Raise the 401 when the token is no longer good."""
    if not is_valid(check):
        raise Unauthorized("Token has been revoked.")


_TOKEN_STATE = select(
    User.token_version,
    _revoked("jti", "family").label("revoked"),
).where(User.id == bindparam("user_id"))

_REVOKE: Insert = insert(RevokedToken)

_ROTATION = select(RevokedToken.rotated_at, RevokedToken.family).where(
    RevokedToken.jti == bindparam("jti")
)


def token_state(*, user_id: uuid.UUID, jti: str, family: str | None = None) -> TokenState | None:
    """The user's current token version and whether `jti` or its family is
    revoked, in one round trip; None when the user no longer exists."""
    params = {"user_id": user_id, "jti": jti, "family": family or jti}
    row = connection().execute(_TOKEN_STATE, params).first()
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


def rotate(
    *,
    jti: str,
    expires_at: datetime,
    family: str,
    grace: timedelta,
    family_lifetime: timedelta,
) -> None:
    """Revoke the refresh token being used, remembering when and into which
    family. Atomic: of several concurrent uses exactly one inserts the id;
    the others hit the primary key and get a 401 (after `refuse_reuse`)."""
    now = utcnow()
    row = {"jti": jti, "expires_at": expires_at, "rotated_at": now, "family": family}
    try:
        connection().execute(_REVOKE, row)
    except IntegrityError:
        refuse_reuse(jti=jti, grace=grace, family_lifetime=family_lifetime)
        raise Unauthorized("Refresh token has already been used.") from None


def refuse_reuse(*, jti: str, grace: timedelta, family_lifetime: timedelta) -> bool:
    """A refresh token refused: if rotation revoked it `grace` or longer ago,
    it is being reused, and the family its rotation continued is revoked
    (until its newest token, issued before now, has expired). A reuse
    within `grace` is a client's retry race, and a token revoked by logout
    only revoked: nothing more. Whether the family was revoked."""
    row = connection().execute(_ROTATION, {"jti": jti}).first()
    if row is None or row.rotated_at is None or row.family is None:
        return False
    now = utcnow()
    # Grace 0: any reuse, even one stamped "later" by a clock running ahead.
    if grace > timedelta(0) and now - row.rotated_at < grace:
        return False
    revoke(jti=row.family, expires_at=now + family_lifetime)
    return True


def purge_expired(*, now: datetime | None = None) -> int:
    """Drop revocation entries of tokens that have expired anyway."""
    result = connection().execute(
        delete(RevokedToken).where(RevokedToken.expires_at < (now or utcnow()))
    )
    return int(result.rowcount or 0)
