"""Hot statements, compiled once and run straight on the DB-API cursor.

The task endpoints run a handful of fixed statements (services/tasks.py),
each built once with SQLAlchemy Core. `Connection.execute` still spends more
CPU on every call than the database does on the query: it rebuilds the
statement's cache key by walking its tree, sets up an execution context, and
wraps the result, which costs more than the same SQL run on the connection's
cursor. A `Prebuilt` statement is compiled once per dialect by SQLAlchemy;
each call then converts the parameters with the types' own bind processors,
runs the SQL on the cursor of the request's SQLAlchemy connection, and
converts the rows with the types' result processors.

On PostgreSQL the statements are also prepared on the server, once per
connection (`PREPARE`, then `EXECUTE` on every call): parsing and planning
were most of the database's CPU for a get-one. Poolers in transaction
mode (PgBouncer, Neon's pooled endpoint) hand each statement to whichever
server connection is free, where the prepared statement may not exist: with
`DATABASE_PREPARED_STATEMENTS=auto` (the default) a host name with
`-pooler` turns them off from the start, and on any other pooler the first
"does not exist" turns them off for the engine and the statement runs again
as plain SQL. `false` turns them off, `true` keeps them on.

What SQLAlchemy still does, unchanged: the engine, the pool and its checks,
the connection's error handling (the same exception classes, disconnect
detection and pool invalidation as `Connection.execute`, via the method it
uses itself), and the cursor events (`before_cursor_execute` and
`after_cursor_execute` listeners see every statement, which is how the tests
count them).
"""

from __future__ import annotations

import hashlib
import logging
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Integer, literal_column
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.elements import ColumnClause

log = logging.getLogger(__name__)

Processor = Callable[[Any], Any]

# Engines whose statements are prepared on the server (PostgreSQL only).
_PREPARING: weakref.WeakSet[Engine] = weakref.WeakSet()
# Names prepared on a DB-API connection, kept in its pool entry's `info`
# (which SQLAlchemy empties when the connection is replaced).
_PREPARED_KEY = "todo.prepared_statements"
# A pyformat placeholder, or an escaped percent sign: matched in one pass so
# that "%%(x)s" stays the literal text "%(x)s".
_PLACEHOLDER_OR_PERCENT = re.compile(r"%%|%\(([^)]+)\)s")
# PostgreSQL: a prepared statement that does not exist / already exists.
_NOT_PREPARED = "26000"
_ALREADY_PREPARED = "42P05"
# "cached plan must not change result type": a table's columns changed
# (a migration) after the statement was prepared on this connection.
_PLAN_CHANGED = "0A000"


def written_limit(count: int) -> ColumnClause[int]:
    """A LIMIT (or OFFSET) written into the SQL instead of bound.

    PostgreSQL keeps one generic plan for a prepared statement only while
    that plan looks no dearer than one made for the values at hand. A bound
    LIMIT defeats this: without its value the generic plan assumes a tenth
    of the rows are wanted, looks far dearer, and every EXECUTE is planned
    again (for a first page, more time than running it). Written out, a
    LIMIT costs one prepared statement per value, so only small fixed sets
    of values are written."""
    return literal_column(str(int(count)), Integer())


def prepare_statements(engine: Engine, setting: str) -> None:
    """Turn server-side prepared statements on or off for `engine`;
    `setting` is auto, true or false (see the module's docstring)."""
    wanted = setting == "true" or (setting == "auto" and "-pooler" not in (engine.url.host or ""))
    if wanted and engine.dialect.name == "postgresql" and engine.dialect.paramstyle == "pyformat":
        _PREPARING.add(engine)
    else:
        _PREPARING.discard(engine)


def prepares_statements(engine: Engine) -> bool:
    return engine in _PREPARING


@dataclass(frozen=True)
class _Prepared:
    """PREPARE and EXECUTE forms of one statement (PostgreSQL)."""

    name: str
    prepare: str  # sent with no parameters
    execute: str  # sent with the statement's parameters


@dataclass(frozen=True)
class Outcome:
    """What a statement gave: its rows (as dicts keyed by column label) and
    the number of rows it matched."""

    rows: list[dict[str, Any]]
    rowcount: int

    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


@dataclass(frozen=True)
class TupleOutcome:
    """The same as plain tuples, with the column labels once: for a page of
    rows, where a dict of every column of every row would be wasted work."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    rowcount: int


@dataclass
class _Compiled:
    sql: str
    positional: bool
    names: tuple[str, ...]  # bound parameters, in the order a positional style wants
    defaults: dict[str, Any]  # values the statement itself carries
    bind_processors: dict[str, Processor]
    result_types: tuple[Any, ...]  # column types, in order
    prepared: _Prepared | None = None  # PostgreSQL only
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
        result = self.execute_tuples(conn, params)
        columns = result.columns
        return Outcome(
            [dict(zip(columns, row, strict=True)) for row in result.rows], result.rowcount
        )

    def execute_tuples(self, conn: Connection, params: Mapping[str, Any]) -> TupleOutcome:
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
        prepared = compiled.prepared
        if prepared is not None and not self._may_prepare(conn):
            prepared = None
        sql = compiled.sql if prepared is None else self._prepared_on(conn, prepared)
        cursor = conn.connection.cursor()
        try:
            for listener in conn.dispatch.before_cursor_execute:
                sql, arguments = listener(conn, cursor, sql, arguments, None, False)
            try:
                cursor.execute(sql, arguments)
            except conn.dialect.loaded_dbapi.Error as error:
                if prepared is None or not _recover(conn, prepared, error):
                    raise
                sql = compiled.sql
                cursor.execute(sql, arguments)
            for listener in conn.dispatch.after_cursor_execute:
                listener(conn, cursor, sql, arguments, None, False)
            columns, rows = self._rows(compiled, conn.dialect, cursor)
            rowcount = cursor.rowcount
            cursor.close()
        except Exception as error:
            # Wraps the DB-API error in SQLAlchemy's class for it, invalidates
            # the connection (and the pool) on a disconnect, closes the cursor,
            # and raises: exactly what `Connection.execute` does on an error.
            conn._handle_dbapi_exception(error, sql, arguments, cursor, None)
        return TupleOutcome(columns, rows, rowcount)

    @staticmethod
    def _may_prepare(conn: Connection) -> bool:
        """Prepared on this engine, and the connection is in autocommit (as
        every request's is): a failed EXECUTE then aborts no transaction, so
        the statement can run again as plain SQL."""
        return conn.engine in _PREPARING and bool(
            getattr(conn.connection.dbapi_connection, "autocommit", False)
        )

    @staticmethod
    def _prepared_on(conn: Connection, prepared: _Prepared) -> str:
        """The EXECUTE form, after preparing the statement on this connection
        if it is new there (once per connection: not a statement of the
        request, so cursor listeners do not see it)."""
        names: set[str] = conn.connection.info.setdefault(_PREPARED_KEY, set())
        if prepared.name not in names:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(prepared.prepare)
            except conn.dialect.loaded_dbapi.Error as error:
                if getattr(error, "pgcode", None) != _ALREADY_PREPARED:
                    conn._handle_dbapi_exception(error, prepared.prepare, None, cursor, None)
            cursor.close()
            names.add(prepared.name)
        return prepared.execute

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
            prepared=_prepared_form(compiled, dialect) if dialect.name == "postgresql" else None,
        )
        self._by_dialect[dialect] = result
        return result

    @staticmethod
    def _rows(
        compiled: _Compiled, dialect: Dialect, cursor: Any
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        description = cursor.description
        if description is None:  # no result rows (an INSERT without RETURNING)
            return (), []
        processors = compiled.result_processors
        if processors is None:
            processors = tuple(
                type_.dialect_impl(dialect).result_processor(dialect, column[1])
                for type_, column in zip(compiled.result_types, description, strict=True)
            )
            compiled.result_processors = processors
        names = tuple(column[0] for column in description)
        if not any(processors):
            return names, cursor.fetchall()
        return names, [
            tuple(
                value if processor is None else processor(value)
                for processor, value in zip(processors, row, strict=True)
            )
            for row in cursor.fetchall()
        ]


def _prepared_form(compiled: Compiled, dialect: Dialect) -> _Prepared | None:
    """PREPARE/EXECUTE for a statement compiled in psycopg2's pyformat style;
    parameters numbered in order of first use, declared with their column
    types (inferring them fails where a parameter only feeds an INSERT's
    SELECT list)."""
    if dialect.paramstyle != "pyformat":
        return None
    binds = compiled.binds  # type: ignore[attr-defined]
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        if match[1] is None:  # "%%": a literal percent sign
            return "%"
        return f"${numbers.setdefault(match[1], len(numbers) + 1)}"

    body = _PLACEHOLDER_OR_PERCENT.sub(number, compiled.string)
    try:
        types = [dialect.type_compiler_instance.process(binds[name].type) for name in numbers]
    except Exception:  # a parameter without a type: let the server infer them all
        types = []
    declared = f" ({', '.join(types)})" if types else ""
    definition = f"{declared} AS {body}"
    # Named after everything that defines it, parameter types included.
    name = "todo_" + hashlib.sha1(definition.encode(), usedforsecurity=False).hexdigest()[:20]
    return _Prepared(
        name=name,
        prepare=f"PREPARE {name}{definition}",
        execute=f"EXECUTE {name} ({', '.join(f'%({n})s' for n in numbers)})"
        if numbers
        else f"EXECUTE {name}",
    )


def _recover(conn: Connection, prepared: _Prepared, error: Exception) -> bool:
    """After an EXECUTE failed: whether the statement can run again as plain
    SQL, having dealt with the cause."""
    code = getattr(error, "pgcode", None)
    if code == _NOT_PREPARED:
        # A pooler gave this statement to a server connection that never
        # saw the PREPARE: stop preparing on this engine.
        _stop_preparing(conn.engine)
        return True
    if code == _PLAN_CHANGED:
        # The table changed under the prepared plan: drop it here; the next
        # call prepares the statement again against the new columns.
        _forget(conn, prepared)
        return True
    return False


def _forget(conn: Connection, prepared: _Prepared) -> None:
    conn.connection.info.get(_PREPARED_KEY, set()).discard(prepared.name)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(f"DEALLOCATE {prepared.name}")
    except conn.dialect.loaded_dbapi.Error:
        pass  # already gone: nothing to drop
    finally:
        cursor.close()


def _stop_preparing(engine: Engine) -> None:
    if engine in _PREPARING:
        _PREPARING.discard(engine)
        log.warning(
            "prepared statements turned off: the database (a pooler in transaction "
            "mode?) lost one; set DATABASE_PREPARED_STATEMENTS=false to skip trying"
        )
