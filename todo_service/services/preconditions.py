"""`If-Match` on a task's writes (API.md, Conditional requests): the check
and the write are one atomic step.

A task's ETag is made of its `updated_at` (which moves on every change and
only then, strictly increasing), so a precondition is a list of `updated_at`
texts: the write's own statement carries `matches_current()` in its WHERE
(or the row lock of a transaction, for a write that sets tags), and a write
that matched nothing asks `fail()` once whether that was the token (401), no
such task (404) or a changed task (412).
"""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, and_, bindparam, exists, select

from ..db.connections import connection
from ..db.dialects import TextList, in_text_list, rfc3339_text
from ..db.models import Task
from ..db.prebuilt import Prebuilt
from ..errors import PreconditionFailed, TaskNotFound, Unauthorized
from . import tokens

# The `updated_at` texts (as the representation shows them) that If-Match
# names; None: no condition (no If-Match, or `*`: any existing task).
IfMatch = tuple[str, ...] | None


def matches_current() -> ColumnElement[bool]:
    """SQL: the task row's `updated_at` is one of the bound `if_match` texts."""
    return in_text_list(rfc3339_text(Task.updated_at), bindparam("if_match", type_=TextList()))


def params(if_match: IfMatch) -> dict[str, Any]:
    return {} if if_match is None else {"if_match": list(if_match)}


_OWNED = and_(Task.id == bindparam("task_id"), Task.user_id == bindparam("owner_id"))
_STATE = Prebuilt(
    select(
        tokens.still_valid().label("token_ok"),
        exists().where(_OWNED).label("found"),
        exists().where(_OWNED, matches_current()).label("matching"),
    )
)


def ensure(
    *, owner_id: uuid.UUID, task_id: uuid.UUID, if_match: IfMatch, token: tokens.TokenCheck
) -> None:
    """In one statement: 401 for a token no longer good, 404 for no such task
    of the owner's, 412 when `if_match` does not name the task's current
    state; nothing when the precondition holds."""
    values = {
        "task_id": task_id,
        "owner_id": owner_id,
        "if_match": list(if_match or ()),
        **token.params(),
    }
    state = _STATE.execute(connection(), values).rows[0]
    if not state["token_ok"]:
        raise Unauthorized("Token has been revoked.")
    if not state["found"]:
        raise TaskNotFound()
    if if_match is not None and not state["matching"]:
        raise PreconditionFailed()


def fail(
    *, owner_id: uuid.UUID, task_id: uuid.UUID, if_match: IfMatch, token: tokens.TokenCheck
) -> NoReturn:
    """A conditional write matched nothing: why (401, 404 or 412)."""
    ensure(owner_id=owner_id, task_id=task_id, if_match=if_match, token=token)
    # It matches now, yet did not when written: the task changed in between.
    raise PreconditionFailed()
