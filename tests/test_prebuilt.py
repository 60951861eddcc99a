"""Prebuilt statements (prebuilt.py) behave as `Connection.execute` does:
types converted both ways, SQLAlchemy's exceptions, cursor events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy.exc
from flask import Flask
from sqlalchemy import bindparam, event, insert, select

from todo_service.extensions import db
from todo_service.models import RevokedToken
from todo_service.prebuilt import Prebuilt

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
    assert seen[0][1].lstrip().upper().startswith("SELECT")


def test_a_missing_parameter_is_an_error_not_a_null(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as conn, pytest.raises(KeyError):
        _READ.execute(conn, {})
