"""Tasks: every statement has the owner in its WHERE clause, so another user's
task is simply not found (404, never 403: ids cannot be probed)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from ..database import code_point_order, next_timestamp, unicode_lower, utcnow
from ..errors import TaskNotFound
from ..extensions import db
from ..models import Task, TaskCount

# The representation's columns, in one place (RETURNING and SELECT).
TASK_COLUMNS = (
    Task.id,
    Task.user_id,
    Task.title,
    Task.description,
    Task.completed,
    Task.created_at,
    Task.updated_at,
)

_SORT_KEYS = {
    "created_at": Task.created_at,
    "updated_at": Task.updated_at,
    "title": code_point_order(Task.title),
}


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


def _filters(owner_id: uuid.UUID, query: ListQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Task.user_id == owner_id]
    if query.completed is not None:
        conditions.append(Task.completed == query.completed)
    if query.status is not None:
        conditions.append(Task.completed == (query.status == "completed"))
    if query.q:
        # Literal, case-insensitive substring (API.md, Search).
        pattern = f"%{_escape_like(query.q.lower())}%"
        conditions.append(
            or_(
                unicode_lower(Task.title).like(pattern, escape="\\"),
                unicode_lower(Task.description).like(pattern, escape="\\"),
            )
        )
    return conditions


def list_tasks(*, owner_id: uuid.UUID, query: ListQuery) -> tuple[list[RowMapping], int]:
    """One page of the owner's tasks and the exact total for the filter."""
    conditions = _filters(owner_id, query)
    descending = query.sort.startswith("-")
    key = _SORT_KEYS[query.sort.lstrip("-")]
    # Ties broken by id in the same direction, so pages never overlap or skip.
    order = (key.desc(), Task.id.desc()) if descending else (key.asc(), Task.id.asc())
    rows = db.session.execute(
        select(*TASK_COLUMNS)
        .where(*conditions)
        .order_by(*order)
        .limit(query.page_size)
        .offset((query.page - 1) * query.page_size)
    ).mappings()
    return list(rows), _total(owner_id, query, conditions)


def _total(owner_id: uuid.UUID, query: ListQuery, conditions: list[ColumnElement[bool]]) -> int:
    """Exact total. Without a search it comes from the trigger-maintained
    counts (constant time at any size); a search has to count its matches."""
    if query.q:
        return int(
            db.session.execute(
                select(func.count()).select_from(Task).where(*conditions)
            ).scalar_one()
        )
    total, completed = db.session.execute(
        select(
            func.coalesce(func.sum(TaskCount.total), 0),
            func.coalesce(func.sum(TaskCount.completed), 0),
        ).where(TaskCount.user_id == owner_id)
    ).one()
    wanted = {query.completed, None if query.status is None else query.status == "completed"}
    wanted.discard(None)
    if not wanted:
        return int(total)
    if len(wanted) == 2:  # completed=true AND status=pending: nothing matches
        return 0
    return int(completed) if wanted.pop() else int(total - completed)


def create_task(
    *, owner_id: uuid.UUID, title: str, description: str | None, completed: bool
) -> dict[str, Any]:
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "user_id": owner_id,
        "title": title,
        "description": description,
        "completed": completed,
        "created_at": now,
        "updated_at": now,
    }
    db.session.execute(insert(Task).values(**values))
    db.session.commit()
    return values


def get_task(*, owner_id: uuid.UUID, task_id: uuid.UUID) -> RowMapping:
    row = (
        db.session.execute(
            select(*TASK_COLUMNS).where(Task.id == task_id, Task.user_id == owner_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise TaskNotFound()
    return row


def update_task(*, owner_id: uuid.UUID, task_id: uuid.UUID, changes: dict[str, Any]) -> RowMapping:
    """Apply `changes` (any of title, description, completed) in one statement.

    `updated_at` moves only when a value really changes, and then to a value
    strictly later than the one it replaces (`next_timestamp`), also when
    concurrent updates commit within one clock tick.
    """
    if not changes:
        return get_task(owner_id=owner_id, task_id=task_id)
    columns = {name: getattr(Task, name) for name in changes}
    really_changed = or_(
        *(columns[name].is_distinct_from(value) for name, value in changes.items())
    )
    return _update_returning(
        owner_id,
        task_id,
        {
            **changes,
            "updated_at": case(
                (really_changed, next_timestamp(Task.updated_at)), else_=Task.updated_at
            ),
        },
    )


def set_completed(*, owner_id: uuid.UUID, task_id: uuid.UUID, value: bool | None) -> RowMapping:
    """Toggle (`value` None) or set completion. The toggle is one atomic
    UPDATE: N concurrent toggles flip the task exactly N times."""
    if value is None:
        return _update_returning(
            owner_id,
            task_id,
            {"completed": ~Task.completed, "updated_at": next_timestamp(Task.updated_at)},
        )
    return update_task(owner_id=owner_id, task_id=task_id, changes={"completed": value})


def delete_task(*, owner_id: uuid.UUID, task_id: uuid.UUID) -> None:
    result = db.session.execute(delete(Task).where(Task.id == task_id, Task.user_id == owner_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        db.session.rollback()
        raise TaskNotFound()
    db.session.commit()


def _update_returning(
    owner_id: uuid.UUID, task_id: uuid.UUID, values: dict[str, Any]
) -> RowMapping:
    row = (
        db.session.execute(
            update(Task)
            .where(and_(Task.id == task_id, Task.user_id == owner_id))
            .values(**values)
            .returning(*TASK_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        .mappings()
        .first()
    )
    if row is None:
        db.session.rollback()
        raise TaskNotFound()
    db.session.commit()
    return row
