"""The version of a user's task list, for the list's ETag (API.md, Conditional
requests): it changes whenever any of the user's tasks changes, appears or
disappears, whatever the page or the filter, and costs a few index probes.

Every insert and real change of a task gets a change position
(`change_xid`, `change_seq`), and a deleted task leaves a tombstone with a
new one (migration 0003). Positions with `change_xid < current_xmin()` are
settled: their transactions have finished, and every change not yet visible
has a larger `change_xid`. So the version is

- the greatest settled position among the user's tasks, and among their
  tombstones (each one index probe, from the end);
- every unsettled position of the user's (`change_xid >= current_xmin()`:
  normally none, a handful while writes are in flight);
- for `overdue` queries, which also depend on the clock, how many of the
  user's tasks are overdue now (it only grows as time passes).

A change not visible when a version was read either raises a greatest
settled position or shows among the unsettled ones once it is visible; a
deletion adds a tombstone. The columns are scalar subqueries: they ride along
in the page's own statement, from the page's snapshot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    select,
)

from ..db.dialects import UTCDateTime, current_xmin, joined_text
from ..db.models import Task, TaskTombstone
from ..db.prebuilt import written_limit

# Aliases: a subquery on `tasks` inside a statement reading `tasks` would
# otherwise be correlated with the outer query's rows.
_TASKS: Any = Task.__table__.alias("version_tasks")
_TOMBSTONES: Table = TaskTombstone.__table__

_NAMES = ("_v_tasks", "_v_tombstones", "_v_unsettled_tasks", "_v_unsettled_tombstones")
_OVERDUE = "_v_overdue"


def _position(table: Any) -> ColumnElement[str]:
    return (
        cast(table.c.change_xid, String())
        + literal_column("'.'")
        + cast(table.c.change_seq, String())
    )


def _greatest_settled(table: Any) -> Any:
    return (
        select(_position(table))
        .where(table.c.user_id == bindparam("owner_id"), table.c.change_xid < current_xmin())
        .order_by(table.c.change_xid.desc(), table.c.change_seq.desc())
        .limit(written_limit(1))  # keeps a generic plan (db/prebuilt.py)
        .scalar_subquery()
    )


def _unsettled(table: Any) -> Any:
    return (
        select(joined_text(_position(table)))
        .where(table.c.user_id == bindparam("owner_id"), table.c.change_xid >= current_xmin())
        .scalar_subquery()
    )


def version_columns(*, clock: bool) -> list[Any]:
    """The version's inputs as labelled columns; `clock`: the query depends
    on the time (`overdue`, with the bound `now`)."""
    columns = [
        _greatest_settled(_TASKS).label(_NAMES[0]),
        _greatest_settled(_TOMBSTONES).label(_NAMES[1]),
        _unsettled(_TASKS).label(_NAMES[2]),
        _unsettled(_TOMBSTONES).label(_NAMES[3]),
    ]
    if clock:
        overdue = (
            select(func.count())
            .select_from(_TASKS)
            .where(
                _TASKS.c.user_id == bindparam("owner_id"),
                _TASKS.c.completed.is_(false()),
                _TASKS.c.due_at < bindparam("now", type_=UTCDateTime()),
            )
            .scalar_subquery()
        )
        columns.append(overdue.label(_OVERDUE))
    return columns


def version_of(row: dict[str, Any]) -> str:
    """The version a row carrying `version_columns()` names."""
    parts = [str(row[name]) for name in _NAMES]
    if _OVERDUE in row:
        parts.append(str(row[_OVERDUE]))
    return "/".join(parts)
