"""Tasks: every statement has the owner in its WHERE clause, so another user's
task is simply not found (404, never 403: ids cannot be probed).

Each operation is one statement, atomic on its own, run on the request's
autocommit connection (`db/connections.py`). The statements are built once with
bound parameters and compiled once (`db/prebuilt.py`), so a request spends no
time composing or compiling SQL. A write that sets tags is the exception: the
task row and its links are written in one transaction of their own
(`retried_transaction`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from ..db.connections import connection, retried_transaction
from ..db.dialects import (
    UTCDateTime,
    code_point_order,
    in_subquery,
    next_timestamp,
    task_tag_list,
    unicode_lower,
    utcnow,
)
from ..db.models import Tag, Task, TaskCount, TaskTag
from ..db.prebuilt import Prebuilt, written_limit
from ..errors import TaskNotFound, Unauthorized
from . import preconditions, tokens
from .list_versions import version_columns, version_of
from .preconditions import IfMatch
from .tags import replace_task_tags
from .task_fields import (
    COLUMN_FIELDS,
    INSERTED_COLUMNS,
    SELECTED_COLUMNS,
    WRITABLE_COLUMNS,
    task_payloads,
)

# Sort keys, each ascending; `-key` reverses it. Tasks without a due date
# come last in both directions of `due_at`; `-priority` is high first.
_PRIORITY_RANK = case({"low": 0, "medium": 1, "high": 2}, value=Task.priority)
_SORT_KEYS: dict[str, Any] = {
    "created_at": Task.created_at,
    "updated_at": Task.updated_at,
    "title": code_point_order(Task.title),
    "due_at": Task.due_at,
    "priority": _PRIORITY_RANK,
}


def _sort_order(sort: str) -> tuple[Any, ...]:
    """ORDER BY for `sort`; ties broken by id in the same direction, so pages
    never overlap or skip."""
    descending = sort.startswith("-")
    key = _SORT_KEYS[sort.lstrip("-")]
    if descending:
        order: tuple[Any, ...] = (key.desc(), Task.id.desc())
    else:
        order = (key.asc(), Task.id.asc())
    if sort.lstrip("-") == "due_at":
        order = (order[0].nulls_last(), order[1])
    return order


# Every statement below also carries the caller's token check
# (`tokens.still_valid()`): one round trip answers both "is the token still
# good" and the request itself. When a statement finds nothing, a separate
# check tells a revoked token (401) from a missing task (404).
_OWNED_TASK = and_(
    Task.id == bindparam("task_id"),
    Task.user_id == bindparam("owner_id"),
    tokens.still_valid(),
)
# The same, for a write with If-Match: the task is also in the state named.
_OWNED_TASK_IF_MATCH = and_(_OWNED_TASK, preconditions.matches_current())


@dataclass(frozen=True)
class ListQuery:
    """Filters (combined with AND), order and page of a listing."""

    completed: bool | None = None
    status: str | None = None  # "pending" or "completed"
    q: str | None = None
    priority: str | None = None
    tags: tuple[str, ...] = ()  # normalised, distinct
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool | None = None
    sort: str = "-created_at"
    page: int = 1
    page_size: int = 100

    def filters(self) -> _Filters:
        """Which conditions the statement has: its shape, not its values."""
        return _Filters(
            completed=self.completed is not None,
            status=self.status is not None,
            search=bool(self.q),
            priority=self.priority is not None,
            tags=len(self.tags),
            due_before=self.due_before is not None,
            due_after=self.due_after is not None,
            overdue=self.overdue,
        )

    def params(self) -> dict[str, Any]:
        """The values of those conditions, by bound parameter name."""
        params: dict[str, Any] = {}
        if self.completed is not None:
            params["completed"] = self.completed
        if self.status is not None:
            params["status_completed"] = self.status == "completed"
        if self.q:
            params["pattern"] = f"%{_escape_like(self.q)}%"
        if self.priority is not None:
            params["priority"] = self.priority
        for number, tag in enumerate(self.tags):
            params[f"tag_{number}"] = tag
        if self.due_before is not None:
            params["due_before"] = self.due_before
        if self.due_after is not None:
            params["due_after"] = self.due_after
        if self.overdue is not None:
            params["now"] = utcnow()  # "before now" is strict, by the server's clock
        return params


@dataclass(frozen=True)
class _Filters:
    completed: bool = False
    status: bool = False
    search: bool = False
    priority: bool = False
    tags: int = 0
    due_before: bool = False
    due_after: bool = False
    overdue: bool | None = None

    @property
    def counted(self) -> bool:
        """Whether the trigger-kept counts give the exact total: only
        `completed` and `status` filter, or none."""
        return not (
            self.search
            or self.priority
            or self.tags
            or self.due_before
            or self.due_after
            or self.overdue is not None
        )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _carries_tag(number: int) -> ColumnElement[bool]:
    """The task carries the owner's tag bound as `tag_{number}`."""
    return exists().where(
        TaskTag.task_id == Task.id,
        TaskTag.tag_id
        == select(Tag.id)
        .where(Tag.user_id == bindparam("owner_id"), Tag.name == bindparam(f"tag_{number}"))
        .scalar_subquery(),
    )


def _overdue() -> ColumnElement[bool]:
    return and_(Task.completed.is_(false()), Task.due_at < bindparam("now", type_=UTCDateTime()))


def _conditions(filters: _Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Task.user_id == bindparam("owner_id"),
        tokens.still_valid(),
    ]
    if filters.completed:
        conditions.append(Task.completed == bindparam("completed"))
    if filters.status:
        conditions.append(Task.completed == bindparam("status_completed"))
    if filters.priority:
        conditions.append(Task.priority == bindparam("priority"))
    conditions.extend(_carries_tag(number) for number in range(filters.tags))
    if filters.due_before:
        conditions.append(Task.due_at < bindparam("due_before", type_=UTCDateTime()))
    if filters.due_after:
        conditions.append(Task.due_at >= bindparam("due_after", type_=UTCDateTime()))
    if filters.overdue is True:
        conditions.append(_overdue())
    elif filters.overdue is False:
        # The exact complement, NULL due dates included (a NULL comparison is
        # neither true nor false).
        conditions.append(
            or_(
                Task.completed.is_(true()),
                Task.due_at.is_(None),
                Task.due_at >= bindparam("now", type_=UTCDateTime()),
            )
        )
    if filters.search:
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
# The counts as two columns that ride along in another statement.
_COUNT_COLUMNS = (
    _COUNTS_QUERY.with_only_columns(_COUNTS_QUERY.selected_columns[0])
    .scalar_subquery()
    .label("_total"),
    _COUNTS_QUERY.with_only_columns(_COUNTS_QUERY.selected_columns[1])
    .scalar_subquery()
    .label("_completed"),
)


# Below this OFFSET a page is read directly; from it on through its ids.
_DEEP_OFFSET = 500

# Orders read straight off the index on (user_id, created_at, id) or
# (user_id, due_at, id): a first page in one of them is the same plan (walk
# the index, stop after the page) for a user with ten tasks or a million.
_INDEX_ORDERS = frozenset({"-created_at", "created_at", "due_at"})


def _written_page_size(query: ListQuery, filters: _Filters) -> int | None:
    """The page size to write into the page's SQL, or None to bind it.

    Most requests are for a first page, and on PostgreSQL planning that
    statement again on every request (what a bound LIMIT leads to, see
    `written_limit`) cost as much as running it. Written out, it is planned
    once per connection and page size. Only where the best plan cannot
    depend on the user: a first page in an index order, filtered by nothing
    but completion. Every other page is planned for its values."""
    if query.page == 1 and query.sort in _INDEX_ORDERS and filters.counted:
        return query.page_size
    return None


@lru_cache(maxsize=256)
def _page_statement(
    sort: str, filters: _Filters, deep: bool, written_page_size: int | None = None
) -> Prebuilt:
    """The page's rows in order, the user's counts riding along.

    The page is found on ids alone, and only its rows are then fetched (a
    "deferred join"): OFFSET skips rows one by one, and skipping entries of
    the index on (user_id, created_at, id) is much cheaper than skipping whole
    rows and formatting their columns. Near the top a direct read is cheaper.
    A first page may have its size written out (`_written_page_size`).
    """
    order = _sort_order(sort)
    conditions = _conditions(filters)
    columns: list[Any] = list(SELECTED_COLUMNS)
    # The list's version (its ETag) rides along too, from the page's snapshot.
    columns += version_columns(clock=filters.overdue is not None)
    if filters.counted:
        # The counts ride along with the page: one round trip instead of two.
        columns += _COUNT_COLUMNS
    if written_page_size is not None:
        return Prebuilt(
            select(*columns)
            .where(*conditions)
            .order_by(*order)
            .limit(written_limit(written_page_size))
        )
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


@lru_cache(maxsize=256)
def _match_count_statement(filters: _Filters) -> Prebuilt:
    """The exact total of a filter the per-user counts cannot answer. One tag
    and nothing else: the tag's own count, kept by triggers on `task_tags`
    (migration 0003), instead of counting a million rows."""
    if filters == _Filters(tags=1):
        tag_count = select(Tag.task_count).where(
            Tag.user_id == bindparam("owner_id"), Tag.name == bindparam("tag_0")
        )
        return Prebuilt(select(func.coalesce(tag_count.scalar_subquery(), 0).label("total")))
    conditions = _conditions(filters)
    return Prebuilt(select(func.count().label("total")).select_from(Task).where(*conditions))


@lru_cache(maxsize=64)
def _version_statement(filters: _Filters, page_check: bool) -> Prebuilt:
    """What a page carries besides its rows, on its own: whether the token is
    still good, the counts, the list's version and (`page_check`) whether the
    page is still empty."""
    columns: list[Any] = [
        tokens.still_valid().label("_token_ok"),
        *_COUNT_COLUMNS,
        *version_columns(clock=filters.overdue is not None),
    ]
    if page_check:
        first_of_page = (
            select(Task.id)
            .where(*_conditions(filters))
            .limit(written_limit(1))
            .offset(bindparam("offset", type_=Integer()))
        )
        columns.append((~first_of_page.exists()).label("_still_empty"))
    return Prebuilt(select(*columns))


@dataclass(frozen=True)
class ListVersion:
    """A list's version, read before its page: `version` for the ETag."""

    version: str
    counts: tuple[int, int]  # the owner's total and completed tasks


def _list_params(owner_id: uuid.UUID, query: ListQuery, token: tokens.TokenCheck) -> dict[str, Any]:
    return {
        "owner_id": owner_id,
        "limit": query.page_size,
        "offset": (query.page - 1) * query.page_size,
        **token.params(),
        **query.params(),
    }


def list_version(*, owner_id: uuid.UUID, query: ListQuery, token: tokens.TokenCheck) -> ListVersion:
    """The list's version in one statement, without reading the page: what a
    revalidation (If-None-Match) needs. 401 for a token no longer good."""
    params = _list_params(owner_id, query, token)
    row = _version_statement(query.filters(), False).execute(connection(), params).rows[0]
    if not row["_token_ok"]:
        raise Unauthorized("Token has been revoked.")
    return ListVersion(version_of(row), (int(row["_total"]), int(row["_completed"])))


def list_tasks(
    *,
    owner_id: uuid.UUID,
    query: ListQuery,
    token: tokens.TokenCheck,
    before: ListVersion | None = None,
) -> tuple[list[dict[str, Any]], int, str]:
    """One page of the owner's tasks (their payloads), the exact total for
    the filter, and the list's version: from the page's own snapshot, or
    `before` it (read by `list_version`, which checked the token), never
    after it: a version newer than the page would let a client keep a stale
    page."""
    params = _list_params(owner_id, query, token)
    filters = query.filters()
    conn = connection()
    deep = params["offset"] >= _DEEP_OFFSET
    page = _page_statement(query.sort, filters, deep, _written_page_size(query, filters))
    # Read as tuples: the page's version and counts ride along on every row,
    # and only the first row's are needed.
    result = page.execute_tuples(conn, params)
    first = dict(zip(result.columns, result.rows[0], strict=True)) if result.rows else None
    if first is not None:
        version = version_of(first)
        counts: Any = (first["_total"], first["_completed"]) if filters.counted else None
    elif before is not None:
        version, counts = before.version, before.counts
    else:
        # An empty page, or a token no longer good: the token, the counts and
        # the version in one statement, which also sees whether the page is
        # still empty (else a task arrived in between: read the page again,
        # this version now being from before it).
        meta = _version_statement(filters, True).execute(conn, params).rows[0]
        if not meta["_token_ok"]:
            raise Unauthorized("Token has been revoked.")
        version, counts = version_of(meta), (meta["_total"], meta["_completed"])
        if not meta["_still_empty"]:
            result = page.execute_tuples(conn, params)
            if result.rows:
                first = dict(zip(result.columns, result.rows[0], strict=True))
                version = version_of(first)
                if filters.counted:
                    counts = (first["_total"], first["_completed"])
    if not filters.counted:
        total = _match_count_statement(filters).execute(conn, params).rows[0]["total"]
    else:
        total = _total_from_counts(query, counts)
    return task_payloads(result.columns, result.rows), int(total), version


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
        list(COLUMN_FIELDS),
        select(
            *(bindparam(f"new_{name}", type_=Task.__table__.c[name].type) for name in COLUMN_FIELDS)
        ).where(tokens.still_valid()),
    )
    .returning(*INSERTED_COLUMNS)
)


def create_task(
    *, owner_id: uuid.UUID, fields: Mapping[str, Any], token: tokens.TokenCheck
) -> dict[str, Any]:
    """Create a task of `fields` (every writable field, as the schema loads them)."""

    def create(conn: Connection) -> dict[str, Any] | None:
        return create_task_on(conn, owner_id=owner_id, fields=fields, token=token)

    try:
        # Tags: several statements, one transaction; else one statement.
        row = retried_transaction(create) if fields["tags"] else create(connection())
    except IntegrityError:
        # PostgreSQL: the account was deleted after this statement's snapshot
        # saw it; the foreign key refuses the row.
        tokens.ensure_valid(token)
        raise
    if row is None:  # the token was no longer good: nothing written
        raise Unauthorized("Token has been revoked.")
    return row


def create_task_on(
    conn: Connection,
    *,
    owner_id: uuid.UUID,
    fields: Mapping[str, Any],
    token: tokens.TokenCheck,
) -> dict[str, Any] | None:
    """The task of `fields` written on `conn`: one statement, and the tags'
    when there are any (then `conn` must be in a transaction). None when the
    token was no longer good: nothing written."""
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "user_id": owner_id,
        **{name: fields[name] for name in WRITABLE_COLUMNS},
        "created_at": now,
        "updated_at": now,
    }
    params = {f"new_{name}": values[name] for name in COLUMN_FIELDS}
    params.update(token.params())
    tags: list[str] = fields["tags"]
    row = _CREATE.execute(conn, params).first()
    if row is not None and tags:
        replace_task_tags(conn, owner_id=owner_id, task_id=values["id"], names=tags)
        row["tags"] = list(tags)
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


@lru_cache(maxsize=64)
def _update_statement(
    fields: tuple[str, ...], with_tags: bool = False, if_match: bool = False
) -> Prebuilt:
    """UPDATE of `fields` in one statement. `updated_at` moves only when a
    value really changes (or, `with_tags`, when the bound `tags_changed` says
    the tags did), and then to a value strictly later than the one it
    replaces (`next_timestamp`), also when concurrent updates commit within
    one clock tick."""
    changes = [getattr(Task, name).is_distinct_from(bindparam(f"new_{name}")) for name in fields]
    if with_tags:
        changes.append(bindparam("tags_changed", type_=Boolean()))
    really_changed = or_(*changes)
    new_values: dict[str, Any] = {name: bindparam(f"new_{name}") for name in fields}
    new_values["updated_at"] = case(
        (really_changed, next_timestamp(Task.updated_at)), else_=Task.updated_at
    )
    owned = _OWNED_TASK_IF_MATCH if if_match else _OWNED_TASK
    return Prebuilt(update(Task).where(owned).values(new_values).returning(*SELECTED_COLUMNS))


def update_task(
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    changes: dict[str, Any],
    token: tokens.TokenCheck,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    """Apply `changes` (any of the writable fields); with `if_match`, only to
    the task in one of those states (else 412), in the same statement."""
    fields = tuple(name for name in WRITABLE_COLUMNS if name in changes)
    params = {"task_id": task_id, "owner_id": owner_id, **token.params()}
    params.update(preconditions.params(if_match))
    params.update({f"new_{name}": changes[name] for name in fields})
    if "tags" in changes:
        return _update_with_tags(fields, params, changes["tags"], token, if_match)
    if not fields:
        if if_match is not None:
            return _returning_one(_GET_IF_MATCH, params, token, if_match)
        return get_task(owner_id=owner_id, task_id=task_id, token=token)
    statement = _update_statement(fields, if_match=if_match is not None)
    return _returning_one(statement, params, token, if_match)


# The task's current tags, its row locked for the rest of the transaction.
_LOCK_OWNED = Prebuilt(
    select(task_tag_list().label("tags")).where(_OWNED_TASK).with_for_update(of=Task)
)
# The same, only while the task is in a state If-Match names: the check
# holds until the transaction ends.
_LOCK_OWNED_IF_MATCH = Prebuilt(
    select(task_tag_list().label("tags")).where(_OWNED_TASK_IF_MATCH).with_for_update(of=Task)
)


def _update_with_tags(
    fields: tuple[str, ...],
    params: dict[str, Any],
    tags: list[str],
    token: tokens.TokenCheck,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    """The columns and the tags in one transaction; the task row is locked
    first, so concurrent tag writes of one task take turns."""
    lock = _LOCK_OWNED if if_match is None else _LOCK_OWNED_IF_MATCH

    def update(conn: Connection) -> dict[str, Any] | None:
        locked = lock.execute(conn, params).first()
        if locked is None:
            return None
        changed = locked["tags"] != tags
        if changed:
            replace_task_tags(
                conn, owner_id=params["owner_id"], task_id=params["task_id"], names=tags
            )
        statement = _update_statement(fields, with_tags=True)
        return statement.execute(conn, {**params, "tags_changed": changed}).first()

    row = retried_transaction(update)
    if row is None:
        _not_found(token, params, if_match)
    return row


# The toggle is one atomic UPDATE: N concurrent toggles flip the task exactly N times.
_TOGGLE = Prebuilt(
    update(Task)
    .where(_OWNED_TASK)
    .values(completed=~Task.completed, updated_at=next_timestamp(Task.updated_at))
    .returning(*SELECTED_COLUMNS)
)
_TOGGLE_IF_MATCH = Prebuilt(
    update(Task)
    .where(_OWNED_TASK_IF_MATCH)
    .values(completed=~Task.completed, updated_at=next_timestamp(Task.updated_at))
    .returning(*SELECTED_COLUMNS)
)
_GET_IF_MATCH = Prebuilt(select(*SELECTED_COLUMNS).where(_OWNED_TASK_IF_MATCH))


def set_completed(
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    value: bool | None,
    token: tokens.TokenCheck,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    """Toggle (`value` None) or set completion."""
    if value is None:
        params = {"task_id": task_id, "owner_id": owner_id, **token.params()}
        params.update(preconditions.params(if_match))
        toggle = _TOGGLE if if_match is None else _TOGGLE_IF_MATCH
        return _returning_one(toggle, params, token, if_match)
    return update_task(
        owner_id=owner_id,
        task_id=task_id,
        changes={"completed": value},
        token=token,
        if_match=if_match,
    )


_DELETE = Prebuilt(delete(Task).where(_OWNED_TASK))
_DELETE_IF_MATCH = Prebuilt(delete(Task).where(_OWNED_TASK_IF_MATCH))


def delete_task(
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    token: tokens.TokenCheck,
    if_match: IfMatch = None,
) -> None:
    params = {"task_id": task_id, "owner_id": owner_id, **token.params()}
    params.update(preconditions.params(if_match))
    statement = _DELETE if if_match is None else _DELETE_IF_MATCH
    if not statement.execute(connection(), params).rowcount:
        _not_found(token, params, if_match)


def _returning_one(
    statement: Prebuilt,
    params: dict[str, Any],
    token: tokens.TokenCheck,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    row = statement.execute(connection(), params).first()
    if row is None:
        _not_found(token, params, if_match)
    return row


def _not_found(
    token: tokens.TokenCheck, params: dict[str, Any] | None = None, if_match: IfMatch = None
) -> NoReturn:
    """Nothing matched: a token no longer good (401) or no such task of the
    owner's (404); with If-Match, also a task in another state (412)."""
    if params is not None and if_match is not None:
        preconditions.fail(
            owner_id=params["owner_id"], task_id=params["task_id"], if_match=if_match, token=token
        )
    tokens.ensure_valid(token)
    raise TaskNotFound()
