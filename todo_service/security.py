"""Password hashing, tokens, and every flask-jwt-extended callback.

flask-jwt-extended answers a bad, expired or missing token with 401 or 422
`{"msg": ...}` and no `WWW-Authenticate` unless every loader is replaced: all
of them here give the contract's 401 (API.md, Authentication).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt

from .errors import BEARER_CHALLENGE, SETTLE_TOKEN_CHECK_KEY, Forbidden, error_response
from .extensions import jwt
from .services import tokens
from .web.observability import USER_ID_KEY

log = logging.getLogger(__name__)

_HASHER_KEY = "todo.password_hasher"
_DUMMY_HASH_KEY = "todo.dummy_hash"


def _hasher() -> PasswordHasher:
    hasher: PasswordHasher = current_app.extensions[_HASHER_KEY]
    return hasher


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_password_check(password: str) -> None:
    """Check against a dummy hash, so an unknown email costs what a wrong
    password does and the two cannot be told apart by timing."""
    verify_password(current_app.extensions[_DUMMY_HASH_KEY], password)


def issue_token_pair(user_id: uuid.UUID, token_version: int) -> dict[str, Any]:
    claims = {"ver": token_version}
    identity = str(user_id)  # PyJWT requires `sub` to be a string
    lifetime = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": create_access_token(identity=identity, additional_claims=claims),
        "refresh_token": create_refresh_token(identity=identity, additional_claims=claims),
        "token_type": "bearer",
        "expires_in": int(lifetime.total_seconds()),
    }


def current_user_id() -> uuid.UUID:
    """The authenticated caller; set by the revocation check of this request."""
    user_id: uuid.UUID = g.current_user_id
    return user_id


def current_token_version() -> int:
    version: int = g.current_token_version
    return version


def resolve_owner(user_ref: uuid.UUID | str) -> uuid.UUID:
    """`me` or the caller's own id (any letter case) name the caller; any other
    id is someone else's: 403 (API.md, Tasks)."""
    caller = current_user_id()
    if user_ref == "me" or user_ref == caller:
        return caller
    raise Forbidden()


def token_expiry(claims: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(claims["exp"], UTC)


def _has_issued_claims(claims: dict[str, Any]) -> bool:
    """Every token this service issues has these; flask-jwt-extended fills in
    a missing `jti` with None, the views need `exp`, and a revoked `jti` must
    fit its column (else a 500)."""
    exp = claims.get("exp")
    jti = claims.get("jti")
    return (
        isinstance(jti, str)
        and len(jti) <= 36
        and isinstance(exp, int | float)
        and not isinstance(exp, bool)
        and claims.get("type") in {"access", "refresh"}
    )


# Blueprints whose views check the token's revocation inside their own SQL
# statement (services/tasks.py), saving a round trip on the hot paths.
DEFERRED_CHECK_BLUEPRINTS = frozenset({"tasks"})
_CHECK_KEY = "_todo_token_check"  # the TokenCheck of this request, on `g`
_SETTLED_KEY = "_todo_token_settled"


def _is_token_revoked(jwt_header: dict[str, Any], claims: dict[str, Any]) -> bool:
    """One query answers: does the user still exist, is the token's version
    current (no password change since), and is its id not revoked. For the
    task endpoints that query is deferred into the endpoint's own statement
    (see `token_check`); whatever ends such a request first, the check is
    settled before any other answer goes out (`settle_token_check`)."""
    if not _has_issued_claims(claims):
        return True
    version = claims.get("ver")
    if not isinstance(version, int) or isinstance(version, bool):
        return True
    try:
        check = tokens.TokenCheck(uuid.UUID(claims["sub"]), claims["jti"], version)
    except (KeyError, TypeError, ValueError):
        return True
    setattr(g, _CHECK_KEY, check)
    if request.blueprint in DEFERRED_CHECK_BLUEPRINTS:
        setattr(g, _SETTLED_KEY, False)
    elif not tokens.is_valid(check):
        return True
    else:
        setattr(g, _SETTLED_KEY, True)
    g.current_user_id = check.user_id
    g.current_token_version = check.version
    request.environ[USER_ID_KEY] = check.user_id
    return False


def token_check() -> tokens.TokenCheck:
    """The request's token, for a service that verifies it inside its own
    statement (`tokens.still_valid()`); from here on that is the service's job."""
    check: tokens.TokenCheck = getattr(g, _CHECK_KEY)
    setattr(g, _SETTLED_KEY, True)
    return check


def settle_token_check() -> Response | None:
    """Before any answer other than the one the statement gave: a deferred
    check still open is done now, and a token no longer good gets its 401
    (API.md: authentication comes before the body, 403 and 404)."""
    if g.get(_SETTLED_KEY, True):
        return None
    setattr(g, _SETTLED_KEY, True)
    if tokens.is_valid(getattr(g, _CHECK_KEY)):
        return None
    return _unauthorized("Token has been revoked.")


def _settle_before_success(response: Response) -> Response:
    """Safety net: a view of a deferred blueprint that did not hand its token
    check to a statement still gets it checked before its answer goes out."""
    if response.status_code < 400 and not g.get(_SETTLED_KEY, True):
        log.error("deferred token check was not settled by %s", request.endpoint)
        try:
            refused = settle_token_check()
        except Exception:  # the database cannot say: refuse rather than answer
            log.warning("database unavailable while settling a token check")
            return error_response(503, "Database unavailable.")
        if refused is not None:
            return refused
    return response


def register_token_safety_net(app: Flask) -> None:
    """Call last: Flask runs after_request hooks in reverse order, so this one
    runs first and the others (CORS, metrics) see its answer."""
    app.after_request(_settle_before_success)


def _unauthorized(message: str) -> Response:
    return error_response(401, message, headers=BEARER_CHALLENGE)


def register_jwt_callbacks(app: Flask) -> None:
    jwt.token_in_blocklist_loader(_is_token_revoked)
    app.extensions[SETTLE_TOKEN_CHECK_KEY] = settle_token_check
    jwt.unauthorized_loader(lambda reason: _unauthorized("Missing bearer token."))
    jwt.invalid_token_loader(lambda reason: _unauthorized("Invalid token."))
    jwt.expired_token_loader(lambda header, claims: _unauthorized("Token has expired."))
    jwt.revoked_token_loader(lambda header, claims: _unauthorized("Token has been revoked."))
    jwt.needs_fresh_token_loader(lambda header, claims: _unauthorized("Fresh token required."))
    jwt.user_lookup_error_loader(lambda header, claims: _unauthorized("User no longer exists."))
    jwt.token_verification_failed_loader(lambda header, claims: _unauthorized("Invalid token."))

    hasher = PasswordHasher(
        time_cost=app.config["ARGON2_TIME_COST"],
        memory_cost=app.config["ARGON2_MEMORY_COST"],
        parallelism=app.config["ARGON2_PARALLELISM"],
    )
    app.extensions[_HASHER_KEY] = hasher
    app.extensions[_DUMMY_HASH_KEY] = hasher.hash(uuid.uuid4().hex)


def revoke_presented_token() -> None:
    """Logout: of two logouts with one token at once, the second is a 401 too."""
    claims = get_jwt()
    tokens.revoke_once(
        jti=claims["jti"], expires_at=token_expiry(claims), message="Token has been revoked."
    )
