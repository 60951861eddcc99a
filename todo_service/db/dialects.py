"""What makes SQLite and PostgreSQL behave alike for this service.

- `UTCDateTime`: timezone-aware UTC datetimes in and out on both databases
  (SQLite hands back naive values).
- `next_timestamp(col)`: a value strictly later than `col` and not earlier than
  now, computed inside the UPDATE so that concurrent changes of one row get
  strictly increasing `updated_at` values in commit order (API.md, Tasks).
- `unicode_lower(expr)`: Unicode lower-casing (SQLite's `lower()` is ASCII only).
- `code_point_order(expr)`: sort strings by code point whatever the locale.
- `in_text_list(expr, param)`: membership in a list of strings bound as one
  `TextList` parameter; `joined_text(expr)`: an aggregate joining strings.
- `task_tag_list(task_id)`: a task's tags, in their order, as a list;
  `no_tags()`: an empty one, of the same type.
- `fixed_sql(...)`: an expression whose SQL text is a constant per database
  (`no_tags`, `current_xmin`, the change feed's settled floor).
- `current_xmin()`: the change feed's horizon of settled transactions
  (migration 0003): PostgreSQL's snapshot xmin; on SQLite, where one writer
  at a time commits in order, every change is settled.
- SQLite connections: foreign keys on and WAL, so that readers never wait
  for a writer; the engine runs in autocommit (every write is one
  statement), and an explicit transaction takes the write lock at
  `BEGIN IMMEDIATE`. Several gunicorn workers writing at once wait for each
  other (the busy timeout, `connect_args` in `config.engine_options`)
  instead of failing with "database is locked".
"""

from __future__ import annotations

import functools
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import BigInteger, DateTime, Text, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType, String, TypeDecorator, TypeEngine

MAX_BIGINT = 9223372036854775807
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_ONE_MICROSECOND = timedelta(microseconds=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A `DateTime(timezone=True)` that always returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite, from a raw SQL expression
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class next_timestamp(FunctionElement[datetime]):  # noqa: N801 (SQL function style)
    type = UTCDateTime()
    inherit_cache = True


@compiles(next_timestamp, "postgresql")
def _next_timestamp_pg(element: next_timestamp, compiler: SQLCompiler, **kw: Any) -> str:
    # clock_timestamp(), not now(): now() is the transaction's start and can go
    # backwards in commit order.
    (column,) = element.clauses
    col = compiler.process(column, **kw)
    return f"GREATEST(clock_timestamp(), {col} + interval '1 microsecond')"


@compiles(next_timestamp, "sqlite")
def _next_timestamp_sqlite(element: next_timestamp, compiler: SQLCompiler, **kw: Any) -> str:
    return f"todo_next_ts({compiler.process(element.clauses, **kw)})"


class unicode_lower(FunctionElement[str]):  # noqa: N801
    type = String()
    inherit_cache = True


@compiles(unicode_lower)
def _unicode_lower_default(element: unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(unicode_lower, "sqlite")
def _unicode_lower_sqlite(element: unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"todo_lower({compiler.process(element.clauses, **kw)})"


class rfc3339_text(FunctionElement[str]):  # noqa: N801
    """A UTC timestamp column as RFC 3339 text (`2026-11-22T22:05:07.123456Z`),
    formatted by the database: a page of tasks is only ever serialised, and
    parsing 100 timestamps into datetimes to format them again is the
    largest share of a list request's CPU."""

    type = String()
    inherit_cache = True


@compiles(rfc3339_text, "postgresql")
def _rfc3339_text_pg(element: rfc3339_text, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"""to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


@compiles(rfc3339_text, "sqlite")
def _rfc3339_text_sqlite(element: rfc3339_text, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as UTC 'YYYY-MM-DD HH:MM:SS.ffffff' (UTCDateTime).
    return f"(replace({compiler.process(element.clauses, **kw)}, ' ', 'T') || 'Z')"


class uuid_text(FunctionElement[str]):  # noqa: N801
    """A UUID column as its canonical text (`0193...-...`), for the same
    reason: psycopg2 would make a UUID object of it, only to be printed."""

    type = String()
    inherit_cache = True


@compiles(uuid_text, "postgresql")
def _uuid_text_pg(element: uuid_text, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


@compiles(uuid_text, "sqlite")
def _uuid_text_sqlite(element: uuid_text, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as 32 hex digits (SQLAlchemy's Uuid on a database without one).
    h = compiler.process(element.clauses, **kw)
    parts = ("1, 8", "9, 4", "13, 4", "17, 4", "21, 12")
    return "lower(" + " || '-' || ".join(f"substr({h}, {p})" for p in parts) + ")"


class in_subquery(FunctionElement[Any]):  # noqa: N801
    """`column IN (subquery)`. On PostgreSQL as `column = ANY(ARRAY(subquery))`,
    which makes the subquery run once, first, and its few ids be fetched by
    primary key (a plain IN may be planned as a hash join over the table)."""

    # No Boolean type: SQLite would compare the whole condition with 1.
    type = NullType()
    inherit_cache = True


@compiles(in_subquery)
def _in_subquery_default(element: in_subquery, compiler: SQLCompiler, **kw: Any) -> str:
    column, subquery = element.clauses
    # The scalar subquery renders its own parentheses; another pair would make
    # it a one-element list holding only the subquery's first row.
    return f"{compiler.process(column, **kw)} IN {compiler.process(subquery, **kw)}"


@compiles(in_subquery, "postgresql")
def _in_subquery_pg(element: in_subquery, compiler: SQLCompiler, **kw: Any) -> str:
    column, subquery = element.clauses
    return f"{compiler.process(column, **kw)} = ANY(ARRAY({compiler.process(subquery, **kw)}))"


class TagList(TypeDecorator[list[str]]):
    """A list of tag names: a PostgreSQL text array (a list already, from
    psycopg2), or SQLite's JSON array text."""

    impl = String()
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        # None on PostgreSQL: a column without a processor keeps a statement's
        # rows on the fast path of `Prebuilt` (a list page has 50 of them).
        return None if dialect.name == "postgresql" else _tags_from_json

    def process_result_value(self, value: Any, dialect: Dialect) -> list[str]:
        return list(value) if dialect.name == "postgresql" else _tags_from_json(value)


def _tags_from_json(value: str | None) -> list[str]:
    names: list[str] = orjson.loads(value) if value else []
    return names


class task_tag_list(FunctionElement[list[str]]):  # noqa: N801
    """The tags of the task of the statement's row (`tasks.id`), in the order
    given. The id is written out qualified: SQLite renders RETURNING columns
    unqualified, and a bare `id` inside the subquery would name `tags.id`."""

    type = TagList()
    inherit_cache = True


_TAGS_OF_TASK = (
    "SELECT tags.name FROM task_tags JOIN tags ON tags.id = task_tags.tag_id "
    "WHERE task_tags.task_id = tasks.id ORDER BY task_tags.position"
)


_TAG_ARRAY_SQLITE = "(SELECT json_group_array(name) FROM (" + _TAGS_OF_TASK + "))"  # noqa: S608 (constant)


@compiles(task_tag_list, "postgresql")
def _task_tag_list_pg(element: task_tag_list, compiler: SQLCompiler, **kw: Any) -> str:
    return f"ARRAY({_TAGS_OF_TASK})"


@compiles(task_tag_list, "sqlite")
def _task_tag_list_sqlite(element: task_tag_list, compiler: SQLCompiler, **kw: Any) -> str:
    return _TAG_ARRAY_SQLITE


def fixed_sql(
    name: str, type_: TypeEngine[Any], *, postgresql: str, sqlite: str, doc: str
) -> type[FunctionElement[Any]]:
    """An SQL expression whose text is fixed for each database: `name()` in a
    statement renders as `postgresql` or as `sqlite`, read as `type_`."""
    element: type[FunctionElement[Any]] = type(
        name, (FunctionElement,), {"type": type_, "inherit_cache": True, "__doc__": doc}
    )
    for dialect, text in (("postgresql", postgresql), ("sqlite", sqlite)):
        compiles(element, dialect)(functools.partial(_fixed_text, text))
    return element


def _fixed_text(text: str, element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    return text


no_tags = fixed_sql(
    "no_tags",
    TagList(),
    postgresql="'{}'::text[]",
    sqlite="'[]'",
    doc="An empty tag list, read as `task_tag_list` reads one.",
)

current_xmin = fixed_sql(
    "current_xmin",
    BigInteger(),
    postgresql="pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
    sqlite=str(MAX_BIGINT),
    doc="Every change of a transaction with a smaller id is settled: committed "
    "or rolled back, never to appear later (see migration 0003).",
)


class code_point_order(FunctionElement[str]):  # noqa: N801
    type = String()
    inherit_cache = True


@compiles(code_point_order)
def _code_point_order_default(element: code_point_order, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)  # SQLite's BINARY is code point order


@compiles(code_point_order, "postgresql")
def _code_point_order_pg(element: code_point_order, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


def _sqlite_next_ts(previous: str | None) -> str:
    now = datetime.now(UTC).replace(tzinfo=None)
    if previous is not None:
        now = max(now, datetime.fromisoformat(previous) + _ONE_MICROSECOND)
    return now.strftime(_SQLITE_FORMAT)


def _sqlite_lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else value


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()
    dbapi_connection.create_function("todo_next_ts", 1, _sqlite_next_ts, deterministic=False)
    dbapi_connection.create_function("todo_lower", 1, _sqlite_lower, deterministic=True)


@event.listens_for(Engine, "begin")
def _on_begin(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    # pysqlite: isolation_level None is autocommit (the engine's default);
    # a connection switched to a real transaction (migrations) gets here.
    dbapi_connection: Any = connection.connection.dbapi_connection
    if dbapi_connection.isolation_level is not None:
        # Take the write lock up front: a transaction that reads and then writes
        # would otherwise fail at once with SQLITE_BUSY when another worker
        # committed in between, whatever the busy timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class TextList(TypeDecorator[list[str]]):
    """A list of strings bound as one parameter: a PostgreSQL text array, or
    a JSON array on SQLite (read there with `json_each`)."""

    impl = String()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(Text()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        names = list(value or ())
        return names if dialect.name == "postgresql" else orjson.dumps(names).decode()


class in_text_list(FunctionElement[Any]):  # noqa: N801
    """`expr IN (the strings of a TextList parameter)`: any number of values
    in one statement compiled once."""

    type = NullType()  # as `in_subquery`: SQLite would compare the condition with 1
    inherit_cache = True


@compiles(in_text_list, "postgresql")
def _in_text_list_pg(element: in_text_list, compiler: SQLCompiler, **kw: Any) -> str:
    expr, values = element.clauses
    return f"{compiler.process(expr, **kw)} = ANY({compiler.process(values, **kw)})"


@compiles(in_text_list, "sqlite")
def _in_text_list_sqlite(element: in_text_list, compiler: SQLCompiler, **kw: Any) -> str:
    expr, values = element.clauses
    listed = f"(SELECT value FROM json_each({compiler.process(values, **kw)}))"  # noqa: S608
    return f"{compiler.process(expr, **kw)} IN {listed}"


class joined_text(FunctionElement[str]):  # noqa: N801
    """An aggregate: the group's strings joined with commas, in order."""

    type = String()
    inherit_cache = True


@compiles(joined_text, "postgresql")
def _joined_text_pg(element: joined_text, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    return f"string_agg({text}, ',' ORDER BY {text})"


@compiles(joined_text, "sqlite")
def _joined_text_sqlite(element: joined_text, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ',')"
