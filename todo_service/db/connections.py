"""How the service reaches its database: two idioms, one per kind of work.

- A request: `connection()`, one autocommit connection for the whole request,
  taken from the pool on first use and given back at its end. Every statement
  a request runs (tasks, accounts, the token check) is a single statement
  that is atomic on its own (an UPDATE ... RETURNING, an INSERT ... SELECT), so
  there are no BEGIN/COMMIT round trips around it and no ORM session
  bookkeeping. The hot ones are `Prebuilt` (prebuilt.py).
- A batch job of several statements (seeding, purging, migrations):
  `transaction(engine)`, all or nothing.
- The few request writes of several statements (a task with its tags, an
  idempotent create): `retried_transaction(work)`, all or nothing, retried
  when PostgreSQL broke a deadlock by aborting it.

And the pool's health: `ping_idle_connections` finds dead pooled connections
before a request does.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Flask, g
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError

from .. import request_keys
from ..extensions import db


def connection() -> Connection:
    conn: Connection | None = g.get(request_keys.CONNECTION)
    if conn is None:
        conn = db.engine.connect()  # autocommit: the engine's setting (config.py)
        setattr(g, request_keys.CONNECTION, conn)
    return conn


def _release(exc: BaseException | None = None) -> None:
    conn: Connection | None = g.pop(request_keys.CONNECTION, None)
    if conn is not None:
        conn.close()


def register_connection_teardown(app: Flask) -> None:
    app.teardown_appcontext(_release)


def ping_database() -> None:
    """A trivial query on the request's connection: raises SQLAlchemy's error
    when the database does not answer (readiness)."""
    connection().exec_driver_sql("SELECT 1")


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a real transaction, for the rare multi-statement work
    (seeding, migrations); the engine itself runs in autocommit (config.py).
    Committed at the end of the block, rolled back on an exception."""
    with engine.connect() as conn:
        level = "READ COMMITTED" if conn.dialect.name == "postgresql" else "SERIALIZABLE"
        conn = conn.execution_options(isolation_level=level)
        with conn.begin():
            yield conn


T = TypeVar("T")

# PostgreSQL aborted the transaction to break a deadlock, or to keep a
# serializable order: running it again is the documented answer.
_RETRYABLE_SQLSTATES = {"40P01", "40001"}
_TRANSACTION_ATTEMPTS = 3


def retried_transaction(work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction of its own (all or nothing), again from
    the start when the database aborted it for a deadlock."""
    for attempt in range(1, _TRANSACTION_ATTEMPTS + 1):
        try:
            with transaction(db.engine) as conn:
                return work(conn)
        except DBAPIError as exc:
            state = getattr(exc.orig, "pgcode", None)
            if state not in _RETRYABLE_SQLSTATES or attempt == _TRANSACTION_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def serial_plans_only(engine: Engine) -> None:
    """No parallel query plans on this engine's PostgreSQL connections.

    Every request reads one user's rows through an index. When the planner
    overestimates a page (a tag filter: one task in a hundred, it guesses),
    it starts parallel workers, whose start-up alone took 5 to 7 ms of a
    12 ms tag-filtered first page that runs in 2.6 ms serially. Set once per
    connection; only on direct connections (behind a transaction-mode
    pooler nothing may live in the server session: see `create_app`)."""

    @event.listens_for(engine, "connect")
    def _serial(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET max_parallel_workers_per_gather = 0")
        cursor.close()
        dbapi_connection.commit()


def _hung_up(dbapi_connection: Any) -> bool:
    """An idle connection has nothing to read: a readable socket means the
    server closed it (restart, failover, idle timeout), or is saying why it
    is about to. One `poll()` call, no round trip."""
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:  # sqlite3: no server to hang up
        return False
    try:
        poller = select.poll()
        poller.register(fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # closed already, or no socket: check it the slow way
        return True


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use when it sat idle for a while, or
    when the server has hung up on it (its socket is readable).

    After a database restart or a serverless suspend, pooled connections are
    dead; this finds them before a request does (the pool then opens a new
    one), also when the restart came between two requests a moment apart. A
    connection in steady use skips the round trip that `pool_pre_ping` would
    spend on every checkout. A connection that dies while in use still fails
    that request with a 503, and SQLAlchemy then replaces the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _remember_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None:
            return
        if time.monotonic() - checked_in_at < idle_seconds and not _hung_up(dbapi_connection):
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:
            raise DisconnectionError("stale pooled connection") from exc
