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

from sqlalchemy import BigInteger

from .dialects import MAX_BIGINT, fixed_sql

settled_floor_xid = fixed_sql(
    "settled_floor_xid",
    BigInteger(),
    postgresql="(pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1)",
    sqlite="0",
    doc="The transaction part of the settled floor (the module's docstring).",
)

settled_floor_seq = fixed_sql(
    "settled_floor_seq",
    BigInteger(),
    postgresql=str(MAX_BIGINT),
    sqlite="(SELECT value FROM task_change_counter)",
    doc="The sequence part of the settled floor (the module's docstring).",
)
