"""Todo service: a multi-user todo-task REST API.

`create_app` is the only place that wires everything together. It never
touches the database, so the service starts (and answers /healthz) while the
database is unreachable.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Config, engine_options, normalize_database_url
from .db.connections import (
    ping_idle_connections,
    register_connection_teardown,
    serial_plans_only,
)
from .db.prebuilt import prepare_statements, prepares_statements
from .errors import register_error_handlers
from .extensions import db, jwt, migrate
from .openapi import api
from .web.cors import init_cors
from .web.metrics import init_metrics, record_request
from .web.observability import RequestObserver, WSGIApp, configure_logging
from .web.rate_limits import init_rate_limits
from .web.request_guards import BodyLimitMiddleware, register_request_guards

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_SECRET_FILE = "jwt-secret.key"  # noqa: S105 (a file name)


def create_app(
    config: type[Config] | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    instance_path: str | os.PathLike[str] | None = None,
) -> Flask:
    """Build the app. `config` is a config class (default `Config`) or a
    mapping of overrides; either way the environment applies on top of the
    class, and `overrides` on top of everything. `instance_path` (absolute)
    replaces Flask's default instance folder (its SQLite file and generated
    JWT key live there)."""
    app = Flask(
        __name__,
        instance_path=str(instance_path) if instance_path is not None else None,
        instance_relative_config=True,
        static_folder=None,
    )
    config_class = config if isinstance(config, type) else Config
    app.config.from_object(config_class)
    app.config.update(config_class.from_env())
    if isinstance(config, Mapping):
        app.config.update(config)
    if overrides:
        app.config.update(overrides)

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    configure_logging(app.config["LOG_LEVEL"])
    _configure_database(app)
    _configure_secret(app)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]

    db.init_app(app)
    with app.app_context():
        ping_idle_connections(db.engine, app.config["DATABASE_IDLE_PING_SECONDS"])
        prepare_statements(db.engine, app.config["DATABASE_PREPARED_STATEMENTS"])
        if prepares_statements(db.engine):  # a direct PostgreSQL connection
            serial_plans_only(db.engine)
    # Batch mode: SQLite can only alter tables by copying them.
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    jwt.init_app(app)
    api.init_app(app)

    from . import cli, security
    from .routes import register_routes

    register_routes(app)
    register_error_handlers(app)  # after api.init_app: ours replace flask-smorest's
    security.register_jwt_callbacks(app)
    register_request_guards(app)
    register_connection_teardown(app)
    cli.register_commands(app)
    init_cors(app)
    init_rate_limits(app)  # wraps the registered login and register views
    init_metrics(app)
    stack: WSGIApp = app.wsgi_app
    for layer in reversed(_middleware(app)):
        stack = layer(stack)
    app.wsgi_app = stack  # type: ignore[assignment,method-assign]
    return app


def _middleware(app: Flask) -> list[Callable[[WSGIApp], WSGIApp]]:
    """The WSGI stack around Flask, outermost first: each layer sees what the
    layers inside it answer, and nothing else wraps `app.wsgi_app`."""
    config = app.config
    layers: list[Callable[[WSGIApp], WSGIApp]] = [
        # Outermost, so that every response (a routing error, an error of a
        # layer below, an unhandled exception) gets its X-Request-ID, its log
        # line and its metrics sample, timed over everything below.
        partial(
            RequestObserver,
            record_metrics=record_request if config["METRICS_ENABLED"] else None,
        ),
    ]
    if config["PROXY_FIX_X_FOR"]:
        # Behind N trusted proxies the client address is the Nth from the
        # right in X-Forwarded-For: rewritten before the rate limits read it.
        # Opt-in, or any client could pick its own rate limit bucket.
        layers.append(partial(ProxyFix, x_for=config["PROXY_FIX_X_FOR"]))
    # Innermost, next to Flask: a body is buffered (at most the limit) before
    # anything reads it, and what the app left unread is discarded after it
    # answered, so that the connection can carry the next request.
    layers.append(partial(BodyLimitMiddleware, limit=config["MAX_BODY_BYTES"]))
    return layers


def _configure_database(app: Flask) -> None:
    url = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not url:
        url = f"sqlite:///{Path(app.instance_path) / 'todo.sqlite3'}"
    # Also for a URL given as an override, not only through DATABASE_URL:
    # a bare postgresql:// would otherwise load psycopg 3, which is not installed.
    url = normalize_database_url(url)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if not app.config.get("SQLALCHEMY_ENGINE_OPTIONS"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
            url, app.config.get("ENGINE_SETTINGS") or os.environ
        )


def _configure_secret(app: Flask) -> None:
    """Never a hard-coded default: without JWT_SECRET_KEY, a random key is
    made once and kept in the instance folder (shared by the workers of one
    machine; replicas need the variable)."""
    if app.config.get("JWT_SECRET_KEY"):
        return
    path = Path(app.instance_path) / _SECRET_FILE
    if not path.exists():
        _write_new_secret(path)
    app.config["JWT_SECRET_KEY"] = path.read_text().strip()
    log.warning(
        "JWT_SECRET_KEY is not set: using the generated key in %s; set JWT_SECRET_KEY "
        "in production so that every replica shares one key",
        path,
    )


def _write_new_secret(path: Path) -> None:
    # Write aside, then link into place: several workers starting at once
    # either create the file whole or find it there whole.
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink()
