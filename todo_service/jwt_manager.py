"""flask-jwt-extended's manager, remembering tokens it has verified.

Every request of a client carries the same access token, and flask-jwt-extended
parses it three times (claims, header, then the verified decode). The HS256
signature of one exact token string can only verify once and for all, so a
token verified before is not verified again: its claims are reused, and only
what changes with time (`exp`, `nbf`) is checked. Revocation is not cached:
it is checked in the database on every request (security.py).
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app
from flask_jwt_extended import JWTManager

_MAX_ENTRIES = 10_000


class CachingJWTManager(JWTManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verified: dict[tuple[str, str], dict[str, Any]] = {}

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        if csrf_value is not None or allow_expired:
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        # The key names the signing secret too: a token verified under one
        # secret must not pass under another (tests run several apps).
        key = (current_app.config["JWT_SECRET_KEY"], encoded_token)
        claims = self._verified.get(key)
        now = time.time()
        if claims is not None and claims["exp"] > now and claims.get("nbf", 0) <= now:
            return dict(claims)
        # Unknown, or expired (the full decode then raises the right error).
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        if "exp" in claims:
            if len(self._verified) >= _MAX_ENTRIES:
                self._verified.clear()
            self._verified[key] = dict(claims)
        return claims
