"""Configuration read from the environment (a `.env` file works too).

Standard library only: this module is imported before anything else is set up.
A value that is set but wrong fails at start-up with one clear line
(`ConfigError`), rather than somewhere deep inside a request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any


class ConfigError(RuntimeError):
    """A setting from the environment is present but unusable."""


# What LOG_LEVEL accepts (the standard library's levels).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off, any letter case;
    unset or blank is `default`."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def _origins(env: Mapping[str, str], name: str) -> list[str]:
    """Comma-separated browser origins (`https://app.example.com`), or `*`."""
    origins = []
    for item in env.get(name, "").split(","):
        origin = item.strip().rstrip("/")
        if not origin:
            continue
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"{name}: {item.strip()!r} is not an origin such as https://app.example.com "
                "(scheme, host and optional port; no path)"
            )
        origins.append(origin)
    return origins


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    return raw or default


def normalize_database_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg2, the driver this service ships with.

    Neon and Heroku hand out `postgres://`, which SQLAlchemy does not accept,
    and SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3.
    """
    return re.sub(r"^postgres(?:ql)?://", "postgresql+psycopg2://", url.strip())


def engine_options(url: str, env: Mapping[str, str]) -> dict[str, Any]:
    """SQLAlchemy engine options for `url`, tuned by the DATABASE_* settings."""
    # Autocommit: every write of the service is one statement, atomic on its
    # own, so transactions would only add BEGIN/COMMIT round trips. (Switching
    # a psycopg2 connection in and out of autocommit costs a round trip too,
    # so it is the engine's setting, not a per-request one.) Migrations open
    # a real transaction for themselves (migrations/env.py).
    if url.startswith("sqlite"):
        # A file database: several gunicorn workers share it through WAL mode
        # (set per connection in `db/dialects.py`) and this busy timeout, the
        # seconds a writer waits for another's lock. The wait stays well under
        # gunicorn's worker timeout (30 s), so a long lock wait ends as a JSON
        # 503, not a killed worker.
        return {
            "isolation_level": "AUTOCOMMIT",
            "hide_parameters": True,
            "connect_args": {"timeout": 10},
        }
    return {
        "isolation_level": "AUTOCOMMIT",
        # Error messages (and so logs) never carry bound values: a title, a
        # password hash.
        "hide_parameters": True,
        # Serverless PostgreSQL closes idle connections and scales to zero:
        # recycle connections before the server drops them. Instead of
        # `pool_pre_ping` (a round trip on every request), a connection idle
        # for DATABASE_IDLE_PING_SECONDS is checked before use (db/connections.py).
        "pool_recycle": _int(env, "DATABASE_POOL_RECYCLE", 300, minimum=1),
        "pool_size": _int(env, "DATABASE_POOL_SIZE", 5, minimum=1),
        "max_overflow": _int(env, "DATABASE_MAX_OVERFLOW", 5, minimum=0),
        "pool_timeout": _int(env, "DATABASE_POOL_TIMEOUT", 5, minimum=1),
        # No libpq startup `options`: PgBouncer in transaction mode refuses them.
        # TCP keepalives and a user timeout: a server that vanishes without
        # closing the connection (a partition, a failover) is noticed within
        # about 10 s instead of hanging the worker. Connection parameters, not
        # startup options: PgBouncer accepts them.
        "connect_args": {
            "connect_timeout": _int(env, "DATABASE_CONNECT_TIMEOUT", 3, minimum=1),
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": 10_000,
        },
    }


class Config:
    """Production defaults; `from_env` fills in what the environment says."""

    # Contract numbers (API.md); paging bounds live in schemas.TaskListArgs.
    MAX_BODY_BYTES = 64 * 1024

    # flask-smorest / OpenAPI.
    API_TITLE = "Todo service"
    API_VERSION = "1.0.0"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    # Swagger UI's assets come from the service itself (routes/docs.py), so the
    # page works offline; no call to the online validator either.
    OPENAPI_SWAGGER_UI_URL = "/api/docs/swagger-ui/"
    OPENAPI_SWAGGER_UI_CONFIG: dict[str, Any] = {"validatorUrl": None}
    API_SPEC_OPTIONS: dict[str, Any] = {
        "info": {
            "description": "A multi-user todo-task REST API. Authenticate with "
            "`POST /api/auth/login` and send the access token as "
            "`Authorization: Bearer <token>`."
        },
        # Relative: the document describes the server that serves it.
        "servers": [{"url": "/", "description": "This service"}],
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
    }

    # flask-jwt-extended.
    JWT_TOKEN_LOCATION = ["headers"]
    JWT_ALGORITHM = "HS256"
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=15)
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=30)
    # A rotated-away refresh token presented again within this many seconds of
    # its rotation is a plain 401 (a client's retry race); later, it revokes
    # its whole family (API.md, Refresh token reuse). 0: any reuse does.
    REFRESH_REUSE_GRACE_SECONDS = 10

    # argon2id cost; about 0.1 s a hash on a 2-core machine (README: login cost).
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST = 65536
    ARGON2_PARALLELISM = 1

    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SQLALCHEMY_DATABASE_URI: str | None = None  # None: a SQLite file in the instance folder
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {}
    ENGINE_SETTINGS: dict[str, str] = {}  # the DATABASE_* environment, for engine options
    JWT_SECRET_KEY: str | None = None  # None: generated once, kept in the instance folder

    LOG_LEVEL = "INFO"
    # Check a pooled connection before use only after it sat idle this long.
    DATABASE_IDLE_PING_SECONDS = 2
    # Server-side prepared statements on PostgreSQL: auto, true or false (db/prebuilt.py).
    DATABASE_PREPARED_STATEMENTS = "auto"
    TESTING = False

    # CORS: browser origins allowed to call /api/*; none by default.
    CORS_ORIGINS: list[str] = []

    # Abuse limits, flask-limiter syntax ("10 per minute; 100 per hour").
    # RATELIMIT_ENABLED and RATELIMIT_STORAGE_URI are also flask-limiter's own keys.
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"  # in-process; redis://host:6379 to share
    RATELIMIT_KEY_PREFIX = "todo"  # one Redis shared by several deployments: one each
    RATELIMIT_LOGIN = "10 per minute"  # per client address
    RATELIMIT_LOGIN_ACCOUNT = "5 per minute"  # per email
    RATELIMIT_REGISTER = "5 per minute"  # per client address
    RATELIMIT_REGISTER_ACCOUNT = "5 per minute"  # per email
    # Trusted reverse proxies in front of the service that append to
    # X-Forwarded-For (werkzeug's ProxyFix); 0: the peer address is the client.
    PROXY_FIX_X_FOR = 0

    # Prometheus metrics at GET /metrics.
    METRICS_ENABLED = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The settings the environment overrides, as a mapping for `app.config`."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        url = env.get("DATABASE_URL", "").strip()
        if url:
            values["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(url)
        secret = env.get("JWT_SECRET_KEY", "").strip()
        if secret:
            if len(secret) < 32:
                raise ConfigError("JWT_SECRET_KEY must be at least 32 characters long")
            values["JWT_SECRET_KEY"] = secret
        default_access = int(cls.JWT_ACCESS_TOKEN_EXPIRES.total_seconds() // 60)
        access = _int(env, "JWT_ACCESS_TOKEN_MINUTES", default_access, minimum=1)
        if access > 24 * 60:
            raise ConfigError("JWT_ACCESS_TOKEN_MINUTES must be at most 1440 (a day)")
        values["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=access)
        values["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(
            days=_int(env, "JWT_REFRESH_TOKEN_DAYS", cls.JWT_REFRESH_TOKEN_EXPIRES.days, minimum=1)
        )
        values["REFRESH_REUSE_GRACE_SECONDS"] = _int(
            env, "REFRESH_REUSE_GRACE_SECONDS", cls.REFRESH_REUSE_GRACE_SECONDS, minimum=0
        )
        values["ARGON2_TIME_COST"] = _int(env, "ARGON2_TIME_COST", cls.ARGON2_TIME_COST, minimum=1)
        values["ARGON2_MEMORY_COST"] = _int(
            env, "ARGON2_MEMORY_COST", cls.ARGON2_MEMORY_COST, minimum=8
        )
        level = env.get("LOG_LEVEL", cls.LOG_LEVEL).strip().upper()
        if level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        values["LOG_LEVEL"] = level
        values["DATABASE_IDLE_PING_SECONDS"] = _int(
            env, "DATABASE_IDLE_PING_SECONDS", int(cls.DATABASE_IDLE_PING_SECONDS), minimum=0
        )
        prepared = env.get("DATABASE_PREPARED_STATEMENTS", "").strip().lower()
        prepared = prepared or cls.DATABASE_PREPARED_STATEMENTS
        if prepared not in {"auto", "true", "false"}:
            raise ConfigError(
                f"DATABASE_PREPARED_STATEMENTS must be auto, true or false, got {prepared!r}"
            )
        values["DATABASE_PREPARED_STATEMENTS"] = prepared
        values["ENGINE_SETTINGS"] = {
            key: value for key, value in env.items() if key.startswith("DATABASE_")
        }
        values.update(cls._ops_settings(env))
        return values

    @classmethod
    def _ops_settings(cls, env: Mapping[str, str]) -> dict[str, Any]:
        """CORS, rate limits, proxy and metrics settings. Rate limit
        strings are checked when the limiter is set up (`web/rate_limits.py`)."""
        values: dict[str, Any] = {
            "CORS_ORIGINS": _origins(env, "CORS_ORIGINS"),
            "RATELIMIT_ENABLED": parse_bool(env, "RATELIMIT_ENABLED", cls.RATELIMIT_ENABLED),
            "RATELIMIT_STORAGE_URI": _text(env, "RATELIMIT_STORAGE_URI", cls.RATELIMIT_STORAGE_URI),
            "PROXY_FIX_X_FOR": _int(env, "PROXY_FIX_X_FOR", cls.PROXY_FIX_X_FOR, minimum=0),
            "METRICS_ENABLED": parse_bool(env, "METRICS_ENABLED", cls.METRICS_ENABLED),
        }
        if "://" not in values["RATELIMIT_STORAGE_URI"]:
            raise ConfigError(
                "RATELIMIT_STORAGE_URI must be a URI such as memory:// or "
                f"redis://127.0.0.1:6379, got {values['RATELIMIT_STORAGE_URI']!r}"
            )
        for name in (
            "RATELIMIT_KEY_PREFIX",
            "RATELIMIT_LOGIN",
            "RATELIMIT_LOGIN_ACCOUNT",
            "RATELIMIT_REGISTER",
            "RATELIMIT_REGISTER_ACCOUNT",
        ):
            values[name] = _text(env, name, getattr(cls, name))
        multiproc_dir = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
        if multiproc_dir and not os.path.isdir(multiproc_dir):
            raise ConfigError(
                f"PROMETHEUS_MULTIPROC_DIR must be an existing directory, got {multiproc_dir!r}"
            )
        return values


class TestConfig(Config):
    """Fast and deterministic: cheap password hashes, a fixed secret."""

    TESTING = True
    RATELIMIT_ENABLED = False  # contract tests; tests of the limits turn them on
    JWT_SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"  # noqa: S105
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 1024
