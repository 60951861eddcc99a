"""Abuse limits on login and registration, with flask-limiter.

An argon2 hash costs about 0.1 s, so a few clients posting logins could keep
every worker busy. Each of the two operations is limited per client address
and per account (the email in the body, trimmed and lower-cased, as the
services compare it). Over a limit: 429 in the JSON error shape with
`Retry-After`.

One `Limiter` per app (not a module-level one): flask-limiter keeps its
storage and its on/off switch on the instance, and the tests build apps with
different settings side by side. The limits wrap the registered view
functions, so they are checked after routing and the 413/415 guards and
before the body is validated or a password hashed.

Storage: `RATELIMIT_STORAGE_URI`, `memory://` (per process) by default,
`redis://...` to share the counts across workers and replicas. If Redis stops
answering, the limiter falls back to in-process counting rather than failing
logins.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import orjson
from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

from .. import request_keys
from ..config import ConfigError
from ..errors import error_response

LIMITER_KEY = "todo.limiter"  # app.extensions
MAX_EMAIL_LENGTH = 254  # API.md; a longer one fails validation before any hash

# endpoint -> (setting for the per-address limit, setting for the per-account limit)
LIMITED_ENDPOINTS = {
    "auth.Login": ("RATELIMIT_LOGIN", "RATELIMIT_LOGIN_ACCOUNT"),
    "auth.Register": ("RATELIMIT_REGISTER", "RATELIMIT_REGISTER_ACCOUNT"),
}


def init_rate_limits(app: Flask) -> None:
    """Call after the routes are registered."""
    if not app.config["RATELIMIT_ENABLED"]:
        return
    for per_address, per_account in LIMITED_ENDPOINTS.values():
        for name in (per_address, per_account):
            _check_limit_setting(name, app.config[name])
    uri = app.config["RATELIMIT_STORAGE_URI"]
    limiter = Limiter(
        key_func=client_address,
        storage_uri=uri,
        # A Redis that hangs must not hang logins: fail fast, then count in-process.
        storage_options=_storage_options(uri),
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        key_prefix=app.config["RATELIMIT_KEY_PREFIX"],
        headers_enabled=False,  # only the 429 carries Retry-After (see below)
    )
    try:
        limiter.init_app(app)
    except Exception as exc:  # an unknown scheme, a missing driver
        raise ConfigError(f"RATELIMIT_STORAGE_URI {uri!r} is unusable: {exc}") from None
    app.extensions[LIMITER_KEY] = limiter
    for endpoint, (per_address, per_account) in LIMITED_ENDPOINTS.items():
        view: Any = app.view_functions[endpoint]
        view = limiter.limit(
            app.config[per_account], key_func=account_key, exempt_when=_no_account
        )(view)
        view = limiter.limit(app.config[per_address], key_func=client_address)(view)
        app.view_functions[endpoint] = view
    app.register_error_handler(RateLimitExceeded, _too_many_requests)


def _check_limit_setting(name: str, value: str) -> None:
    try:
        if parse_many(value):
            return
    except ValueError:
        pass
    raise ConfigError(
        f"{name} must be a rate limit such as '10 per minute' or "
        f"'5 per minute; 50 per hour', got {value!r}"
    )


def _storage_options(uri: str) -> dict[str, Any]:
    if uri.startswith(("redis://", "rediss://", "redis+unix://")):
        return {"socket_connect_timeout": 1, "socket_timeout": 1}
    return {}


def client_address() -> str:
    """The peer address gunicorn reports (ProxyFix rewrites it when configured)."""
    return request.remote_addr or "unknown"


def account_key() -> str:
    email = _account()
    # Hashed: keys in Redis and flask-limiter's log lines carry no email.
    return "account:" + hashlib.sha256((email or "").encode()).hexdigest()[:32]


def _no_account() -> bool:
    return _account() is None


def _account() -> str | None:
    """The normalised email of the body, None when the body has none (such a
    request fails validation, without hashing anything). Never raises: a body
    that is not JSON gets its 400 from the view."""
    if request_keys.RATE_LIMIT_ACCOUNT not in g:
        setattr(g, request_keys.RATE_LIMIT_ACCOUNT, _email_from_body())
    email: str | None = g.get(request_keys.RATE_LIMIT_ACCOUNT)
    return email


def _email_from_body() -> str | None:
    try:
        body = orjson.loads(request.get_data(cache=True))
    except orjson.JSONDecodeError:
        return None
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str):
        return None
    email = email.strip().lower()
    if not email or len(email) > MAX_EMAIL_LENGTH:
        return None
    return email


def _too_many_requests(exc: RateLimitExceeded) -> Response:
    return error_response(
        429,
        "Too many requests: try again later.",
        headers={"Retry-After": str(_retry_after())},
    )


def _retry_after() -> int:
    """Whole seconds until the breached limit's window frees a request."""
    limiter: Limiter | None = current_app.extensions.get(LIMITER_KEY)
    limit = limiter.current_limit if limiter else None
    if limit is None:
        return 1
    try:
        reset_time = limit.window[0]  # a float; `limit.reset_at` adds a second
    except Exception:  # the storage went away between the check and now
        return 1
    return max(1, math.ceil(reset_time - time.time()))
