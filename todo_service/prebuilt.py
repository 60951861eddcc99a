"""Hot statements, compiled once and run straight on the DB-API cursor.

The task endpoints run a handful of fixed statements (services/tasks.py),
each built once with SQLAlchemy Core. `Connection.execute` still spends more
CPU on every call than the database does on the query: it rebuilds the
statement's cache key by walking its tree, sets up an execution context, and
wraps the result (measured on a get-one against PostgreSQL: 145 µs against
55 µs for the same SQL on the same connection's cursor, about a sixth of the
request). A `Prebuilt` statement is compiled once per dialect by SQLAlchemy;
each call then converts the parameters with the types' own bind processors,
runs the SQL on the cursor of the request's SQLAlchemy connection, and
converts the rows with the types' result processors.

What SQLAlchemy still does, unchanged: the engine, the pool and its checks,
the connection's error handling (the same exception classes, disconnect
detection and pool invalidation as `Connection.execute`, via the method it
uses itself), and the cursor events (`before_cursor_execute` and
`after_cursor_execute` listeners see every statement, which is how the tests
count them).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import Compiled

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class Outcome:
    """What a statement gave: its rows (as dicts keyed by column label) and
    the number of rows it matched."""

    rows: list[dict[str, Any]]
    rowcount: int

    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


@dataclass
class _Compiled:
    sql: str
    positional: bool
    names: tuple[str, ...]  # bound parameters, in the order a positional style wants
    defaults: dict[str, Any]  # values the statement itself carries
    bind_processors: dict[str, Processor]
    result_types: tuple[Any, ...]  # column types, in order
    # Made from the first cursor description (the DB-API's type codes).
    result_processors: tuple[Processor | None, ...] | None = None


class Prebuilt:
    """A Core statement (select, insert, update or delete, with or without
    RETURNING) with named bound parameters."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: weakref.WeakKeyDictionary[Dialect, _Compiled] = (
            weakref.WeakKeyDictionary()
        )

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Outcome:
        compiled = self._by_dialect.get(conn.dialect)
        if compiled is None:
            compiled = self._compile(conn.dialect)
        values = {**compiled.defaults, **params}
        processors = compiled.bind_processors
        converted = {
            name: processors[name](values[name]) if name in processors else values[name]
            for name in compiled.names
        }
        arguments: Any = (
            tuple(converted[name] for name in compiled.names) if compiled.positional else converted
        )
        sql = compiled.sql
        cursor = conn.connection.cursor()
        try:
            for listener in conn.dispatch.before_cursor_execute:
                sql, arguments = listener(conn, cursor, sql, arguments, None, False)
            cursor.execute(sql, arguments)
            for listener in conn.dispatch.after_cursor_execute:
                listener(conn, cursor, sql, arguments, None, False)
            rows = self._rows(compiled, conn.dialect, cursor)
            rowcount = cursor.rowcount
            cursor.close()
        except Exception as error:
            # Wraps the DB-API error in SQLAlchemy's class for it, invalidates
            # the connection (and the pool) on a disconnect, closes the cursor,
            # and raises: exactly what `Connection.execute` does on an error.
            conn._handle_dbapi_exception(error, sql, arguments, cursor, None)
        return Outcome(rows, rowcount)

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled: Compiled = self.statement.compile(dialect=dialect)
        if getattr(compiled, "literal_execute_params", None) or getattr(
            compiled, "post_compile_params", None
        ):
            raise TypeError("a prebuilt statement cannot have render-time parameters")
        binds = compiled.binds  # type: ignore[attr-defined]
        positional = bool(dialect.positional)
        names = tuple(compiled.positiontup if positional else binds)  # type: ignore[attr-defined]
        bind_processors = {}
        for name in set(names):
            type_ = binds[name].type
            processor = type_.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                bind_processors[name] = processor
        defaults = {
            name: bind.value
            for name, bind in binds.items()
            if not bind.required and bind.callable is None
        }
        columns = getattr(self.statement, "exported_columns", ())
        result = _Compiled(
            sql=compiled.string,
            positional=positional,
            names=names,
            defaults=defaults,
            bind_processors=bind_processors,
            result_types=tuple(column.type for column in columns),
        )
        self._by_dialect[dialect] = result
        return result

    @staticmethod
    def _rows(compiled: _Compiled, dialect: Dialect, cursor: Any) -> list[dict[str, Any]]:
        description = cursor.description
        if description is None:  # no result rows (an INSERT without RETURNING)
            return []
        processors = compiled.result_processors
        if processors is None:
            processors = tuple(
                type_.dialect_impl(dialect).result_processor(dialect, column[1])
                for type_, column in zip(compiled.result_types, description, strict=True)
            )
            compiled.result_processors = processors
        names = [column[0] for column in description]
        if not any(processors):
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return [
            {
                name: value if processor is None else processor(value)
                for name, processor, value in zip(names, processors, row, strict=True)
            }
            for row in cursor.fetchall()
        ]
