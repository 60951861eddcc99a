"""The change feed's positions, database by database (migration 0003).

A change position is (`change_xid`, `change_seq`); a feed key adds the task
id, which only tells apart the tasks of before the upgrade, all at (0, 0).
Every statement here reads a position *settled* in its own snapshot: no
transaction still running can write a change at or below it.

- `settled_floor_xid()`, `settled_floor_seq()`: the greatest position at or
  below which every change is settled and visible to the statement. A
  deletion the statement does not see is written later, above it. On
  PostgreSQL (xmin - 1, the largest bigint): every transaction with a smaller
  id than the snapshot's xmin has finished. On SQLite, one writer at a time:
  (0, the change counter), read in the same statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

MAX_BIGINT = 9223372036854775807


class settled_floor_xid(FunctionElement[int]):  # noqa: N801 (SQL function style)
    type = BigInteger()
    inherit_cache = True


@compiles(settled_floor_xid, "postgresql")
def _floor_xid_pg(element: settled_floor_xid, compiler: SQLCompiler, **kw: Any) -> str:
    return "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1)"


@compiles(settled_floor_xid, "sqlite")
def _floor_xid_sqlite(element: settled_floor_xid, compiler: SQLCompiler, **kw: Any) -> str:
    return "0"


class settled_floor_seq(FunctionElement[int]):  # noqa: N801
    type = BigInteger()
    inherit_cache = True


@compiles(settled_floor_seq, "postgresql")
def _floor_seq_pg(element: settled_floor_seq, compiler: SQLCompiler, **kw: Any) -> str:
    return str(MAX_BIGINT)


@compiles(settled_floor_seq, "sqlite")
def _floor_seq_sqlite(element: settled_floor_seq, compiler: SQLCompiler, **kw: Any) -> str:
    return "(SELECT value FROM task_change_counter)"
