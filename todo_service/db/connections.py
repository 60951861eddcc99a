"""One autocommit database connection per request, for the hot paths.

Every statement of the task endpoints and of the token check is a single
statement that is atomic on its own (an UPDATE ... RETURNING, an INSERT), run
in autocommit mode (the engine's setting): no BEGIN/ROLLBACK round trips
around reads, and no ORM session bookkeeping. The connection comes from the
SQLAlchemy pool and goes back at the end of the request. The ORM session
(`db.session`) remains for the account endpoints.
"""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy import Connection

from ..extensions import db

_KEY = "_todo_connection"


def connection() -> Connection:
    conn: Connection | None = g.get(_KEY)
    if conn is None:
        conn = db.engine.connect()  # autocommit: the engine's setting (config.py)
        setattr(g, _KEY, conn)
    return conn


def _release(exc: BaseException | None = None) -> None:
    conn: Connection | None = g.pop(_KEY, None)
    if conn is not None:
        conn.close()


def register_connection_teardown(app: Flask) -> None:
    app.teardown_appcontext(_release)
