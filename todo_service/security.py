"""Password hashing, tokens, and every flask-jwt-extended callback.

flask-jwt-extended answers a bad, expired or missing token with 401 or 422
`{"msg": ...}` and no `WWW-Authenticate` unless every loader is replaced: all
of them here give the contract's 401 (API.md, Authentication).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt
from werkzeug.exceptions import HTTPException

from . import request_keys
from .errors import BEARER_CHALLENGE, ApiError, Forbidden, error_response
from .extensions import jwt
from .services import tokens

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


def issue_token_pair(
    user_id: uuid.UUID, token_version: int, family: str | None = None
) -> dict[str, Any]:
    """An access and a refresh token of `family`; a new family (a login)
    when None. Both carry it, so a reuse revokes them all at once."""
    claims = {"ver": token_version, "fam": family or str(uuid.uuid4())}
    identity = str(user_id)  # PyJWT requires `sub` to be a string
    lifetime = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": create_access_token(identity=identity, additional_claims=claims),
        "refresh_token": create_refresh_token(identity=identity, additional_claims=claims),
        "token_type": "bearer",
        "expires_in": int(lifetime.total_seconds()),
    }


def rotate_refresh_token() -> dict[str, Any]:
    """Refresh: revoke the refresh token presented (once: of concurrent uses
    one wins, the others are 401) and issue the next pair of its family. A
    token from before families starts one."""
    claims = get_jwt()
    family = claims.get("fam") or str(uuid.uuid4())
    tokens.rotate(
        jti=claims["jti"], expires_at=token_expiry(claims), family=family, **_reuse_policy()
    )
    return issue_token_pair(current_user_id(), current_token_version(), family)


def _reuse_policy() -> dict[str, timedelta]:
    config = current_app.config
    return {
        "grace": timedelta(seconds=config["REFRESH_REUSE_GRACE_SECONDS"]),
        "family_lifetime": config["JWT_REFRESH_TOKEN_EXPIRES"],
    }


def current_user_id() -> uuid.UUID:
    """The authenticated caller; set when the request's token was accepted."""
    user_id: uuid.UUID = g.get(request_keys.CALLER_ID)
    return user_id


def current_token_version() -> int:
    version: int = g.get(request_keys.CALLER_TOKEN_VERSION)
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


def _token_check_from(claims: dict[str, Any]) -> tokens.TokenCheck | None:
    """The database check a signed token still needs, or None when its claims
    are not those of a token this service issues: flask-jwt-extended fills
    in a missing `jti` with None, the views need `exp`, and a revoked `jti`
    or family must fit its column (else a 500). A token without `fam` was
    issued before token families and is checked on its `jti` alone."""
    exp, jti, version = claims.get("exp"), claims.get("jti"), claims.get("ver")
    family = claims.get("fam")
    if not (
        isinstance(jti, str)
        and len(jti) <= 36
        and ("fam" not in claims or (isinstance(family, str) and 0 < len(family) <= 36))
        and isinstance(exp, int | float)
        and not isinstance(exp, bool)
        and claims.get("type") in {"access", "refresh"}
        and isinstance(version, int)
        and not isinstance(version, bool)
    ):
        return None
    try:
        return tokens.TokenCheck(uuid.UUID(claims["sub"]), jti, version, family)
    except (KeyError, TypeError, ValueError):
        return None


def _is_token_refused(jwt_header: dict[str, Any], claims: dict[str, Any]) -> bool:
    """flask-jwt-extended's blocklist loader: whether a signed, unexpired
    token is refused (401). One query answers whether its user still exists,
    its version is current (no password change since) and its id is not
    revoked; in a view marked `@checked_in_statement` that query is left to
    the view's own statement."""
    check = _token_check_from(claims)
    if check is None:
        return True
    if g.get(request_keys.TOKEN_CHECK_DEFERRED):
        setattr(g, request_keys.TOKEN_CHECK, check)
        setattr(g, request_keys.TOKEN_CHECK_OPEN, True)
    elif not tokens.is_valid(check):
        if claims["type"] == "refresh":
            _refuse_reuse(check)
        return True
    setattr(g, request_keys.CALLER_ID, check.user_id)
    setattr(g, request_keys.CALLER_TOKEN_VERSION, check.version)
    request.environ[request_keys.USER_ID] = check.user_id
    return False


def _refuse_reuse(check: tokens.TokenCheck) -> None:
    """A refused refresh token (refresh tokens reach here only on the
    refresh route): if it was rotated away the grace period or longer ago,
    its family is revoked (API.md, Refresh token reuse)."""
    if tokens.refuse_reuse(jti=check.jti, **_reuse_policy()):
        log.warning(
            "refresh token reused after rotation: its family revoked",
            extra={"user_id": str(check.user_id)},
        )


def checked_in_statement(view: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a view (put it outside `jwt_required()`) whose statements check
    the token's revocation themselves (`tokens.still_valid()` in their
    WHERE): one round trip answers both "is the token still good" and the
    request. The view hands the check to its statement: `defer_token_check()`.

    On every other outcome the check is done here, so that a token no longer
    good gets its 401 before any other answer (API.md: authentication comes
    before the body, 403 and 404): when the view fails with a client error
    before its statement ran (400, 403, 404, 422), and when it returns
    without having handed the check over. Its own 401s, server errors and
    database errors (503) pass unchanged.
    """

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        setattr(g, request_keys.TOKEN_CHECK_DEFERRED, True)
        try:
            answer = view(*args, **kwargs)
        except (ApiError, HTTPException) as exc:
            status = exc.code or 500
            if 400 <= status < 500 and status != 401:
                _run_deferred_check_if_open()
            raise
        _run_deferred_check_if_open()
        return answer

    return checked


def defer_token_check() -> tokens.TokenCheck:
    """The request's token check, for a statement that verifies it itself;
    from here on that is the service's job (a statement that finds nothing
    tells a refused token from a missing row: `tokens.ensure_valid`)."""
    check: tokens.TokenCheck = g.get(request_keys.TOKEN_CHECK)
    setattr(g, request_keys.TOKEN_CHECK_OPEN, False)
    return check


def _run_deferred_check_if_open() -> None:
    """Check a deferred token check that no statement took: the 401 when the
    token is no longer good."""
    if not g.get(request_keys.TOKEN_CHECK_OPEN):
        return
    setattr(g, request_keys.TOKEN_CHECK_OPEN, False)
    tokens.ensure_valid(g.get(request_keys.TOKEN_CHECK))


def _unauthorized(message: str) -> Response:
    return error_response(401, message, headers=BEARER_CHALLENGE)


def register_jwt_callbacks(app: Flask) -> None:
    jwt.token_in_blocklist_loader(_is_token_refused)
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
