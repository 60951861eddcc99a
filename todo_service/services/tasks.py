"""Tasks: every statement has the owner in its WHERE clause, so another user's
task is simply not found (404, never 403: ids cannot be probed).

Each operation is one statement, atomic on its own, run on the request's
autocommit connection (`db/connections.py`). The statements are built once with
bound parameters and compiled once (`db/prebuilt.py`), so a request spends no
time composing or compiling SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ..db.connections import connection
from ..db.dialects import code_point_order, in_subquery, next_timestamp, unicode_lower, utcnow
from ..db.models import Task, TaskCount
from ..db.prebuilt import Prebuilt
from ..errors import TaskNotFound, Unauthorized
from . import tokens
from .task_fields import SELECTED_COLUMNS, STORED_FIELDS, WRITABLE_FIELDS

_SORT_KEYS = {
    "created_at": Task.created_at,
    "updated_at": Task.updated_at,
    "title": code_point_order(Task.title),
}

# Every statement below also carries the caller's token check
# (`tokens.still_valid()`): one round trip answers both "is the token still
# good" and the request itself. When a statement finds nothing, a separate
# check tells a revoked token (401) from a missing task (404).
_OWNED_TASK = and_(
    Task.id == bindparam("task_id"),
    Task.user_id == bindparam("owner_id"),
    tokens.still_valid(),
)


@dataclass(frozen=True)
class ListQuery:
    """Filters (combined with AND), order and page of a listing."""

    completed: bool | None = None
    status: str | None = None  # "pending" or "completed"
    q: str | None = None
    sort: str = "-created_at"
    page: int = 1
    page_size: int = 100


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(*, completed: bool, status: bool, search: bool) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Task.user_id == bindparam("owner_id"),
        tokens.still_valid(),
    ]
    if completed:
        conditions.append(Task.completed == bindparam("completed"))
    if status:
        conditions.append(Task.completed == bindparam("status_completed"))
    if search:
        # Literal, case-insensitive substring (API.md, Search).
        # Folded by the same function as the columns (Python's and PostgreSQL's
        # lower() disagree on a few characters).
        pattern = unicode_lower(bindparam("pattern", type_=String()))
        conditions.append(
            or_(
                unicode_lower(Task.title).like(pattern, escape="\\"),
                unicode_lower(Task.description).like(pattern, escape="\\"),
            )
        )
    return conditions


_COUNTS_QUERY = select(
    func.coalesce(func.sum(TaskCount.total), 0).label("total"),
    func.coalesce(func.sum(TaskCount.completed), 0).label("completed"),
).where(TaskCount.user_id == bindparam("owner_id"))
_COUNTS = Prebuilt(_COUNTS_QUERY)


# Below this OFFSET a page is read directly; from it on through its ids.
_DEEP_OFFSET = 500


@lru_cache(maxsize=128)
def _page_statement(sort: str, completed: bool, status: bool, search: bool, deep: bool) -> Prebuilt:
    """The page's rows in order, the user's counts riding along.

    The page is found on ids alone, and only its rows are then fetched (a
    "deferred join"): OFFSET skips rows one by one, and skipping entries of
    the index on (user_id, created_at, id) is much cheaper than skipping whole
    rows and formatting their columns. Near the top a direct read is cheaper.
    """
    descending = sort.startswith("-")
    key = _SORT_KEYS[sort.lstrip("-")]
    # Ties broken by id in the same direction, so pages never overlap or skip.
    order = (key.desc(), Task.id.desc()) if descending else (key.asc(), Task.id.asc())
    conditions = _conditions(completed=completed, status=status, search=search)
    columns: list[Any] = list(SELECTED_COLUMNS)
    if not search:
        # The counts ride along with the page: one round trip instead of two.
        columns += [
            _COUNTS_QUERY.with_only_columns(_COUNTS_QUERY.selected_columns[0])
            .scalar_subquery()
            .label("_total"),
            _COUNTS_QUERY.with_only_columns(_COUNTS_QUERY.selected_columns[1])
            .scalar_subquery()
            .label("_completed"),
        ]
    if not deep:
        return Prebuilt(
            select(*columns)
            .where(*conditions)
            .order_by(*order)
            .limit(bindparam("limit", type_=Integer()))
            .offset(bindparam("offset", type_=Integer()))
        )
    page_ids = (
        select(Task.id)
        .where(*conditions)
        .order_by(*order)
        .limit(bindparam("limit", type_=Integer()))
        .offset(bindparam("offset", type_=Integer()))
        .scalar_subquery()
    )
    return Prebuilt(select(*columns).where(in_subquery(Task.id, page_ids)).order_by(*order))


@lru_cache(maxsize=8)
def _match_count_statement(completed: bool, status: bool) -> Prebuilt:
    conditions = _conditions(completed=completed, status=status, search=True)
    return Prebuilt(select(func.count().label("total")).select_from(Task).where(*conditions))


def list_tasks(
    *, owner_id: uuid.UUID, query: ListQuery, token: tokens.TokenCheck
) -> tuple[list[dict[str, Any]], int]:
    """One page of the owner's tasks and the exact total for the filter."""
    params: dict[str, Any] = {
        "owner_id": owner_id,
        "limit": query.page_size,
        "offset": (query.page - 1) * query.page_size,
        **token.params(),
    }
    if query.completed is not None:
        params["completed"] = query.completed
    if query.status is not None:
        params["status_completed"] = query.status == "completed"
    if query.q:
        params["pattern"] = f"%{_escape_like(query.q)}%"
    flags = (query.completed is not None, query.status is not None, bool(query.q))
    conn = connection()
    deep = params["offset"] >= _DEEP_OFFSET
    rows = _page_statement(query.sort, *flags, deep).execute(conn, params).rows
    if not rows:  # an empty page, or a token no longer good
        tokens.ensure_valid(token)
    if query.q:
        total = _match_count_statement(*flags[:2]).execute(conn, params).rows[0]["total"]
    elif rows:
        total = _total_from_counts(query, (rows[0]["_total"], rows[0]["_completed"]))
    else:  # an empty page carries no counts: ask for them
        counts = _COUNTS.execute(conn, params).rows[0]
        total = _total_from_counts(query, (counts["total"], counts["completed"]))
    return rows, int(total)


def count_tasks(*, owner_id: uuid.UUID) -> int:
    """How many tasks the owner has (the trigger-maintained count)."""
    return int(_COUNTS.execute(connection(), {"owner_id": owner_id}).rows[0]["total"])


def _total_from_counts(query: ListQuery, counts: Any) -> int:
    """The exact total without counting rows: the trigger-maintained counts
    (migration 0002) hold every user's total and completed tasks."""
    total, completed = int(counts[0]), int(counts[1])
    wanted = {query.completed, None if query.status is None else query.status == "completed"}
    wanted.discard(None)
    if not wanted:
        return total
    if len(wanted) == 2:  # completed=true AND status=pending: nothing matches
        return 0
    return completed if wanted.pop() else total - completed


# The task is written and read back in one statement (RETURNING): the answer
# is the database's text, as every other operation's.
_CREATE = Prebuilt(
    insert(Task)
    .from_select(
        list(STORED_FIELDS),
        select(
            *(bindparam(f"new_{name}", type_=Task.__table__.c[name].type) for name in STORED_FIELDS)
        ).where(tokens.still_valid()),
    )
    .returning(*SELECTED_COLUMNS)
)


def create_task(
    *, owner_id: uuid.UUID, fields: Mapping[str, Any], token: tokens.TokenCheck
) -> dict[str, Any]:
    """Create a task of `fields` (every writable field, as the schema loads them)."""
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "user_id": owner_id,
        **{name: fields[name] for name in WRITABLE_FIELDS},
        "created_at": now,
        "updated_at": now,
    }
    params = {f"new_{name}": values[name] for name in STORED_FIELDS}
    try:
        row = _CREATE.execute(connection(), {**params, **token.params()}).first()
    except IntegrityError:
        # PostgreSQL: the account was deleted after this statement's snapshot
        # saw it; the foreign key refuses the row.
        tokens.ensure_valid(token)
        raise
    if row is None:  # the token was no longer good: nothing written
        raise Unauthorized("Token has been revoked.")
    return row


_GET = Prebuilt(select(*SELECTED_COLUMNS).where(_OWNED_TASK))


def get_task(
    *, owner_id: uuid.UUID, task_id: uuid.UUID, token: tokens.TokenCheck
) -> dict[str, Any]:
    params = {"task_id": task_id, "owner_id": owner_id, **token.params()}
    row = _GET.execute(connection(), params).first()
    if row is None:
        _not_found(token)
    return row


@lru_cache(maxsize=16)
def _update_statement(fields: tuple[str, ...]) -> Prebuilt:
    """UPDATE of `fields` in one statement. `updated_at` moves only when a
    value really changes, and then to a value strictly later than the one it
    replaces (`next_timestamp`), also when concurrent updates commit within
    one clock tick."""
    really_changed = or_(
        *(getattr(Task, name).is_distinct_from(bindparam(f"new_{name}")) for name in fields)
    )
    new_values: dict[str, Any] = {name: bindparam(f"new_{name}") for name in fields}
    new_values["updated_at"] = case(
        (really_changed, next_timestamp(Task.updated_at)), else_=Task.updated_at
    )
    return Prebuilt(update(Task).where(_OWNED_TASK).values(new_values).returning(*SELECTED_COLUMNS))


def update_task(
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    changes: dict[str, Any],
    token: tokens.TokenCheck,
) -> dict[str, Any]:
    """Apply `changes` (any of the writable fields)."""
    fields = tuple(name for name in WRITABLE_FIELDS if name in changes)
    if not fields:
        return get_task(owner_id=owner_id, task_id=task_id, token=token)
    params = {"task_id": task_id, "owner_id": owner_id, **token.params()}
    params.update({f"new_{name}": changes[name] for name in fields})
    return _returning_one(_update_statement(fields), params, token)


# The toggle is one atomic UPDATE: N concurrent toggles flip the task exactly N times.
_TOGGLE = Prebuilt(
    update(Task)
    .where(_OWNED_TASK)
    .values(completed=~Task.completed, updated_at=next_timestamp(Task.updated_at))
    .returning(*SELECTED_COLUMNS)
)


def set_completed(
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    value: bool | None,
    token: tokens.TokenCheck,
) -> dict[str, Any]:
    """Toggle (`value` None) or set completion."""
    if value is None:
        params = {"task_id": task_id, "owner_id": owner_id, **token.params()}
        return _returning_one(_TOGGLE, params, token)
    return update_task(
        owner_id=owner_id, task_id=task_id, changes={"completed": value}, token=token
    )


_DELETE = Prebuilt(delete(Task).where(_OWNED_TASK))


def delete_task(*, owner_id: uuid.UUID, task_id: uuid.UUID, token: tokens.TokenCheck) -> None:
    params = {"task_id": task_id, "owner_id": owner_id, **token.params()}
    if not _DELETE.execute(connection(), params).rowcount:
        _not_found(token)


def _returning_one(
    statement: Prebuilt, params: dict[str, Any], token: tokens.TokenCheck
) -> dict[str, Any]:
    row = statement.execute(connection(), params).first()
    if row is None:
        _not_found(token)
    return row


def _not_found(token: tokens.TokenCheck) -> NoReturn:
    """Nothing matched: a token no longer good (401) or no such task of the
    owner's (404)."""
    tokens.ensure_valid(token)
    raise TaskNotFound()
