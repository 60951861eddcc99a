"""Tags (API.md, Version 1.1): a user's tags in `tags`, the tasks carrying
them in `task_tags`, with each tag's place in its task's list.

A task's tags are written inside the transaction that writes the task
(services/tasks.py); the per-tag counts that `GET /tags` reads are kept by
triggers on `task_tags` (migration 0003), however the links are written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from ..db.connections import connection
from ..db.dialects import code_point_order
from ..db.models import Tag, TaskTag
from ..db.prebuilt import Prebuilt
from . import tokens


def _insert_missing_tags(conn: Connection, owner_id: uuid.UUID, names: Sequence[str]) -> None:
    """The user's tags of these names, made where missing. DO NOTHING takes
    no lock on a tag that exists already. In name order: two transactions
    making the same new tags wait for each other in one order, never in a
    cycle."""
    rows = [{"user_id": owner_id, "name": name} for name in sorted(names)]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(Tag).values(rows).on_conflict_do_nothing(index_elements=["user_id", "name"])
    )
    conn.execute(statement)


def tags_of(conn: Connection, task_id: uuid.UUID) -> list[str]:
    """The task's tags in their order."""
    rows = conn.execute(
        select(Tag.name)
        .join(TaskTag, TaskTag.tag_id == Tag.id)
        .where(TaskTag.task_id == task_id)
        .order_by(TaskTag.position)
    )
    return list(rows.scalars())


def replace_task_tags(
    conn: Connection, *, owner_id: uuid.UUID, task_id: uuid.UUID, names: Sequence[str]
) -> None:
    """Make `names` (normalised, distinct, in order) the task's tags. Run in
    the transaction that also writes the task row (locked).

    The count triggers lock the tag rows whose counts change, in id order,
    but per statement: unlinking the old tags and linking the new ones would
    take two batches of locks, and two transactions taking them in opposite
    batches deadlock (under load, often enough to exhaust the retries). So
    every tag row the write touches, old and new, is locked first, in one
    statement, in id order; the triggers then find them locked already."""
    if not names:
        conn.execute(delete(TaskTag).where(TaskTag.task_id == task_id))  # one batch
        return
    _insert_missing_tags(conn, owner_id, names)
    old_tags = select(TaskTag.tag_id).where(TaskTag.task_id == task_id)
    ids = {
        name: tag_id
        for name, tag_id in conn.execute(
            select(Tag.name, Tag.id)
            .where(
                or_(Tag.id.in_(old_tags), and_(Tag.user_id == owner_id, Tag.name.in_(list(names))))
            )
            .order_by(Tag.id)
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE, as the triggers' UPDATE
        )
        if name in names
    }
    conn.execute(delete(TaskTag).where(TaskTag.task_id == task_id))
    conn.execute(
        insert(TaskTag),
        [
            {"task_id": task_id, "tag_id": ids[name], "position": position}
            for position, name in enumerate(names)
        ],
    )


_USER_TAGS = Prebuilt(
    select(Tag.name.label("tag"), Tag.task_count.label("count"))
    .where(Tag.user_id == bindparam("owner_id"), Tag.task_count > 0, tokens.still_valid())
    .order_by(code_point_order(Tag.name))
)


def list_tags(*, owner_id: uuid.UUID, token: tokens.TokenCheck) -> list[dict[str, Any]]:
    """Every tag the owner's tasks carry, with how many carry it, by code point."""
    rows = _USER_TAGS.execute(connection(), {"owner_id": owner_id, **token.params()}).rows
    if not rows:  # no tags, or a token no longer good
        tokens.ensure_valid(token)
    return rows
