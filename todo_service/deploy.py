"""Start-up chores for gunicorn's master process (see gunicorn.conf.py)."""

from __future__ import annotations

import logging
import os

from .config import parse_bool

log = logging.getLogger(__name__)


def auto_migrate_enabled(env: dict[str, str] | None = None) -> bool:
    """AUTO_MIGRATE, by default on only for the SQLite quick start (no
    DATABASE_URL): against a real database, `flask db upgrade` is a release step."""
    env = dict(os.environ) if env is None else env
    quick_start = not env.get("DATABASE_URL", "").strip()
    return parse_bool(env, "AUTO_MIGRATE", quick_start)


def auto_migrate_if_enabled() -> None:
    if not auto_migrate_enabled():
        return
    import flask_migrate

    from . import create_app
    from .extensions import db

    app = create_app()
    with app.app_context():
        log.info("AUTO_MIGRATE: upgrading the database schema")
        # migrations/env.py serialises concurrent upgrades (advisory lock).
        flask_migrate.upgrade()
        db.engine.dispose()  # the master keeps no connection for workers to inherit


def forget_inherited_connections() -> None:
    """In a freshly forked worker: drop every pool inherited from the master
    without closing its sockets, which the master still owns."""
    from .extensions import db

    for engines in list(db._app_engines.values()):
        for engine in engines.values():
            engine.dispose(close=False)
