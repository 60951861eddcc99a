"""flask-jwt-extended's manager, remembering tokens it has verified.

Every request of a client carries the same access token, and flask-jwt-extended
parses it four times (claims, header, the verified decode, then the header
again for its callbacks). The HS256 signature of one exact token string can
only verify once and for all, so a token verified before is not verified
again: its claims and header are reused, and only what changes with time
(`exp`, `nbf`) is checked. Revocation is not cached: it is checked in the
database on every request (security.py).
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app
from flask_jwt_extended import JWTManager, view_decorators
from flask_jwt_extended.utils import get_unverified_jwt_headers

_MAX_ENTRIES = 10_000


class CachingJWTManager(JWTManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (secret, token) -> (claims, header) of a token whose signature verified.
        self._verified: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        if csrf_value is not None or allow_expired:
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        # The key names the signing secret too: a token verified under one
        # secret must not pass under another (tests run several apps).
        key = (current_app.config["JWT_SECRET_KEY"], encoded_token)
        entry = self._verified.get(key)
        now = time.time()
        if entry is not None and entry[0]["exp"] > now and entry[0].get("nbf", 0) <= now:
            return dict(entry[0])
        # Unknown, or expired (the full decode then raises the right error).
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        if "exp" in claims:
            if len(self._verified) >= _MAX_ENTRIES:
                self._verified.clear()
            header = get_unverified_jwt_headers(encoded_token)
            self._verified[key] = (dict(claims), header)
        return claims

    def verified_header(self, encoded_token: str) -> dict[str, Any] | None:
        """The header of a token verified before, or None."""
        entry = self._verified.get((current_app.config["JWT_SECRET_KEY"], encoded_token))
        return None if entry is None else dict(entry[1])


def _header_of_verified_token(encoded_token: str) -> dict[str, Any]:
    manager = current_app.extensions["flask-jwt-extended"]
    if isinstance(manager, CachingJWTManager):
        header = manager.verified_header(encoded_token)
        if header is not None:
            return header
    return get_unverified_jwt_headers(encoded_token)


# flask-jwt-extended's request path reads the header right after the decode
# above, through this module-level name and with no hook of its own: parsing
# the token again costs more than the whole cached decode (PyJWT checks every
# character of every segment). tests/test_auth.py checks that this stays wired.
view_decorators.get_unverified_jwt_headers = _header_of_verified_token
