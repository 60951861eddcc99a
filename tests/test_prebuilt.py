"""Prebuilt statements (db/prebuilt.py) behave as `Connection.execute` does:
types converted both ways, SQLAlchemy's exceptions, cursor events; on
PostgreSQL they are prepared once per connection, and survive a pooler that
loses them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy.exc
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    bindparam,
    column,
    create_engine,
    event,
    insert,
    literal_column,
    select,
    table,
)

from todo_service.db.models import RevokedToken
from todo_service.db.prebuilt import Prebuilt, prepare_statements, prepares_statements
from todo_service.extensions import db
from todo_service.services import tasks

from .helpers import TestUser, captured_records

_REVOKE = Prebuilt(insert(RevokedToken).values(jti=bindparam("jti"), expires_at=bindparam("at")))
_READ = Prebuilt(
    select(RevokedToken.jti, RevokedToken.expires_at).where(RevokedToken.jti == bindparam("jti"))
)
_WHEN = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_values_go_in_and_come_back_through_the_column_types(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as conn:
        assert _REVOKE.execute(conn, {"jti": "a", "at": _WHEN}).rowcount == 1
        outcome = _READ.execute(conn, {"jti": "a"})
        # UTCDateTime gives an aware UTC datetime on SQLite too.
        assert outcome.rows == [{"jti": "a", "expires_at": _WHEN}]
        assert outcome.first() == outcome.rows[0]
        assert _READ.execute(conn, {"jti": "b"}).first() is None


def test_a_database_error_is_sqlalchemys_and_the_connection_stays_usable(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as conn:
        _REVOKE.execute(conn, {"jti": "dup", "at": _WHEN})
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            _REVOKE.execute(conn, {"jti": "dup", "at": _WHEN})
        assert _READ.execute(conn, {"jti": "dup"}).rowcount in (1, -1)
        assert len(_READ.execute(conn, {"jti": "dup"}).rows) == 1


def test_cursor_event_listeners_see_each_statement(app: Flask) -> None:
    seen: list[tuple[str, str]] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(("before", statement))

    def after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(("after", statement))

    with app.app_context():
        engine = db.engine
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        try:
            with engine.connect() as conn:
                _READ.execute(conn, {"jti": "x"})
        finally:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
    assert [kind for kind, _ in seen] == ["before", "after"]
    # The SELECT itself, or on PostgreSQL the EXECUTE of its prepared form.
    assert seen[0][1].split()[0].upper() in {"SELECT", "EXECUTE"}


def test_a_missing_parameter_is_an_error_not_a_null(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as conn, pytest.raises(KeyError):
        _READ.execute(conn, {})


# ------------------------------------------------- prepared statements (PostgreSQL)

on_postgres = pytest.mark.skipif(
    "TEST_DATABASE_URL" not in os.environ, reason="PostgreSQL only (set TEST_DATABASE_URL)"
)
# Through a pooler in transaction mode (scripts/pgbouncer-test.sh sets the
# direct URL) each statement may land on another server connection.
on_postgres_direct = pytest.mark.skipif(
    "TEST_DATABASE_URL" not in os.environ or "TEST_DATABASE_DIRECT_URL" in os.environ,
    reason="PostgreSQL without a pooler only",
)


def _prepared_names(conn: Connection) -> set[str]:
    rows = conn.exec_driver_sql("SELECT name FROM pg_prepared_statements").all()
    return {name for (name,) in rows}


@pytest.fixture
def preparing_engine(app: Flask) -> Iterator[Engine]:
    """The app's engine with prepared statements on, as on a direct
    PostgreSQL connection; the setting is put back after the test."""
    with app.app_context():
        engine = db.engine
    was_on = prepares_statements(engine)
    prepare_statements(engine, "true")
    engine.dispose()  # fresh connections: nothing prepared yet
    try:
        yield engine
    finally:
        prepare_statements(engine, "true" if was_on else "false")


@on_postgres_direct
def test_a_statement_is_prepared_once_per_connection(preparing_engine: Engine) -> None:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    with preparing_engine.connect() as conn:
        _REVOKE.execute(conn, {"jti": "p", "at": _WHEN})
        before = _prepared_names(conn)
        event.listen(preparing_engine, "before_cursor_execute", record)
        try:
            for _ in range(3):
                assert _READ.execute(conn, {"jti": "p"}).rows == [{"jti": "p", "expires_at": _WHEN}]
        finally:
            event.remove(preparing_engine, "before_cursor_execute", record)
        added = _prepared_names(conn) - before
    assert len(added) == 1 and next(iter(added)).startswith("todo_")
    assert seen == [seen[0]] * 3 and seen[0].startswith("EXECUTE todo_")


@on_postgres
def test_a_lost_prepared_statement_falls_back_to_plain_sql(preparing_engine: Engine) -> None:
    """What a pooler in transaction mode does: the next statement lands on a
    server connection that never saw the PREPARE. The statement still runs,
    and the engine stops preparing."""
    with (
        captured_records("todo_service.db.prebuilt") as records,
        preparing_engine.connect() as conn,
    ):
        _REVOKE.execute(conn, {"jti": "lost", "at": _WHEN})
        assert _READ.execute(conn, {"jti": "lost"}).first() is not None
        conn.exec_driver_sql("DEALLOCATE ALL")
        assert _READ.execute(conn, {"jti": "lost"}).first() == {"jti": "lost", "expires_at": _WHEN}
        assert not prepares_statements(preparing_engine)
        assert _READ.execute(conn, {"jti": "lost"}).first() is not None
    assert [r.levelname for r in records] == ["WARNING"]
    assert "DATABASE_PREPARED_STATEMENTS=false" in records[0].getMessage()


@on_postgres
def test_a_statement_already_prepared_elsewhere_is_used(preparing_engine: Engine) -> None:
    """PREPARE of a name the server connection already has (another client
    of a pooler prepared it) is not an error."""
    with preparing_engine.connect() as conn:
        _READ.execute(conn, {"jti": "x"})
        conn.connection.info.clear()  # forget: the next call prepares again
        assert _READ.execute(conn, {"jti": "x"}).first() is None
        assert prepares_statements(preparing_engine)


@on_postgres_direct
def test_a_statement_prepared_before_a_column_type_change_still_runs(
    preparing_engine: Engine,
) -> None:
    """After a migration changes a column's type, PostgreSQL refuses the
    plan prepared before it ("cached plan must not change result type"):
    the statement runs as plain SQL and is prepared again on the next call."""
    scratch = table("prebuilt_scratch", column("v", Integer))
    read = Prebuilt(select(scratch.c.v).where(scratch.c.v == bindparam("v", type_=Integer)))
    with preparing_engine.connect() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS prebuilt_scratch")
        conn.exec_driver_sql("CREATE TABLE prebuilt_scratch (v integer)")
        try:
            conn.exec_driver_sql("INSERT INTO prebuilt_scratch VALUES (7)")
            assert read.execute(conn, {"v": 7}).rows == [{"v": 7}]
            conn.exec_driver_sql("ALTER TABLE prebuilt_scratch ALTER COLUMN v TYPE bigint")
            assert read.execute(conn, {"v": 7}).rows == [{"v": 7}]
            assert read.execute(conn, {"v": 7}).rows == [{"v": 7}]
            assert any(name.startswith("todo_") for name in _prepared_names(conn))
            assert prepares_statements(preparing_engine)
        finally:
            conn.exec_driver_sql("DROP TABLE prebuilt_scratch")


@on_postgres
def test_percent_signs_in_a_prepared_statement_stay_literal(preparing_engine: Engine) -> None:
    literal = Prebuilt(
        select(literal_column("'100%(x)s'").label("text")).where(bindparam("n", type_=Integer) == 1)
    )
    with preparing_engine.connect() as conn:
        assert literal.execute(conn, {"n": 1}).rows == [{"text": "100%(x)s"}]


@on_postgres
def test_nothing_is_prepared_inside_a_transaction(preparing_engine: Engine) -> None:
    """A failed EXECUTE would abort the transaction, so the fallbacks could
    not run: in a transaction the statement is sent as plain SQL."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(preparing_engine, "before_cursor_execute", record)
    try:
        with preparing_engine.connect() as conn:
            conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                _READ.execute(conn, {"jti": "t"})
    finally:
        event.remove(preparing_engine, "before_cursor_execute", record)
    assert seen[-1].split()[0] == "SELECT"


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        ("postgresql+psycopg2://u@db.example.com/todo", "auto", True),
        ("postgresql+psycopg2://u@ep-cool-1234-pooler.eu-central-1.aws.neon.tech/t", "auto", False),
        ("postgresql+psycopg2://u@ep-cool-1234-pooler.eu-central-1.aws.neon.tech/t", "true", True),
        ("postgresql+psycopg2://u@db.example.com/todo", "false", False),
        ("sqlite://", "true", False),
    ],
)
def test_when_statements_are_prepared(url: str, setting: str, expected: bool) -> None:
    engine = create_engine(url)  # nothing connects
    prepare_statements(engine, setting)
    assert prepares_statements(engine) is expected


def _plans(conn: Connection, statement: Prebuilt) -> tuple[int, int]:
    """(generic, custom) plans the connection ran for `statement`."""
    prepared = statement._by_dialect[conn.dialect].prepared
    assert prepared is not None
    row = conn.exec_driver_sql(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %(name)s",
        {"name": prepared.name},
    ).one()
    return row.generic_plans, row.custom_plans


@on_postgres_direct
def test_a_first_page_and_its_revalidation_are_planned_once(
    preparing_engine: Engine, client: FlaskClient, user: TestUser, headers: dict[str, str]
) -> None:
    """Their LIMITs are written out (`written_limit`): with a bound one,
    PostgreSQL planned both again on every request, which cost a first page
    as much time as running it. (A user known to hold more tasks than a page:
    for a smaller one PostgreSQL's choice is a custom plan either way.)"""
    for number in range(60):  # one statement each: all on one pooled connection
        client.post(f"/api/{user.id}/tasks", json={"title": f"t{number}"}, headers=headers)
    with preparing_engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE tasks")
    url = f"/api/{user.id}/tasks?page_size=50"
    for _ in range(8):
        etag = client.get(url, headers=headers).headers["ETag"]
        assert client.get(url, headers={**headers, "If-None-Match": etag}).status_code == 304
    first_page = tasks._page_statement("-created_at", tasks._Filters(), False, 50)
    version = tasks._version_statement(tasks._Filters(), False)
    with preparing_engine.connect() as conn:  # the connection the requests used
        for statement in (first_page, version):
            generic, custom = _plans(conn, statement)
            assert (generic, custom) == (3, 5)  # PostgreSQL tries five custom plans first
