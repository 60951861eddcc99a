"""The change feed for offline-first clients (API.md, Sync), and clearing
completed tasks (API.md, Clearing completed tasks).

Every task carries the position of its latest change and every deleted task
leaves a tombstone at a position of its own (triggers, migration 0003). A
pull reads, in one statement, the owner's tasks and tombstones whose key
(`change_xid`, `change_seq`, id) is past the cursor's and whose transaction is
settled (`change_xid < current_xmin()`), merged in key order: two index range
scans of at most `limit + 1` entries each, whatever the number of tasks. A
change that commits later gets a key above every settled one, so following
cursors never skips a change; a task changed again moves to a new key, so it
shows up once more, in its latest state, and only then.

The cursor is opaque to the client: the owner's id, the key of the last item
handed out, and a floor for deletions. A first sync (no `since`) sends every
current task and no deletions; the deletions it could not have seen are
those settled at its statement's snapshot (`db.change_feed`), so that floor
rides in every cursor of the sync, and the tombstones at or below it are
skipped (their tasks were never sent).

Purging old tombstones raises the owner's `sync_horizons` row to the greatest
purged position (services/purge.py): a cursor below the horizon may have
missed a deletion, which is a 410.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    bindparam,
    delete,
    literal_column,
    select,
    true,
    tuple_,
    union_all,
)

from ..db.change_feed import MAX_BIGINT, settled_floor_seq, settled_floor_xid
from ..db.connections import connection
from ..db.dialects import current_xmin, uuid_text
from ..db.models import SyncHorizon, Task, TaskTombstone
from ..db.prebuilt import Prebuilt
from ..errors import CursorExpired, Unauthorized, ValidationFailed
from . import tokens
from .task_fields import SELECTED_COLUMNS, task_payload

_NIL = uuid.UUID(int=0)

# ------------------------------------------------------------------ cursor

_CURSOR_VERSION = 1
# version, owner, key (xid, seq, task id), deletion floor (xid, seq)
_CURSOR_LAYOUT = struct.Struct(">B16sqq16sqq")


@dataclass(frozen=True)
class Cursor:
    user_id: uuid.UUID
    xid: int
    seq: int
    task_id: uuid.UUID
    floor_xid: int
    floor_seq: int

    def encode(self) -> str:
        raw = _CURSOR_LAYOUT.pack(
            _CURSOR_VERSION,
            self.user_id.bytes,
            self.xid,
            self.seq,
            self.task_id.bytes,
            self.floor_xid,
            self.floor_seq,
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @property
    def deletions_after(self) -> tuple[int, int]:
        """Tombstones at or below this position are not for this cursor:
        handed out already, or of tasks its first sync never sent."""
        return max((self.xid, self.seq), (self.floor_xid, self.floor_seq))


def _malformed(message: str = "Not a valid sync cursor.") -> ValidationFailed:
    return ValidationFailed(errors={"query": {"since": [message]}})


def decode_cursor(text: str, *, owner_id: uuid.UUID) -> Cursor:
    """The cursor a client sent back; 422 (under `errors.query.since`) when it
    is empty, malformed, or another user's."""
    try:
        data = text.encode("ascii")
        raw = base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True)
        fields = _CURSOR_LAYOUT.unpack(raw)
    except (UnicodeEncodeError, binascii.Error, ValueError, struct.error):
        raise _malformed() from None
    version, user, xid, seq, task_id, floor_xid, floor_seq = fields
    cursor = Cursor(uuid.UUID(bytes=user), xid, seq, uuid.UUID(bytes=task_id), floor_xid, floor_seq)
    if version != _CURSOR_VERSION or cursor.encode() != text:
        raise _malformed()
    if cursor.user_id != owner_id:
        raise _malformed("This sync cursor belongs to another user.")
    return cursor


# ------------------------------------------------------------------- pull


def _pull_statement() -> Prebuilt:
    limit = bindparam("limit", type_=Integer())
    owner = bindparam("owner_id", type_=Task.id.type)
    after_key = tuple_(
        bindparam("k_xid", type_=BigInteger()),
        bindparam("k_seq", type_=BigInteger()),
        bindparam("k_id", type_=Task.id.type),
    )
    after_deletion = tuple_(
        bindparam("d_xid", type_=BigInteger()), bindparam("d_seq", type_=BigInteger())
    )
    # The two index range scans: tasks(user_id, change_xid, change_seq, id)
    # and task_tombstones(user_id, change_xid, change_seq). A tombstone's
    # position is its own (never shared), so (xid, seq) orders it fully.
    changed = (
        select(
            literal_column("0", Integer()).label("gone"),
            Task.change_xid.label("p_xid"),
            Task.change_seq.label("p_seq"),
            Task.id.label("p_id"),
        )
        .where(
            Task.user_id == owner,
            tuple_(Task.change_xid, Task.change_seq, Task.id) > after_key,
            Task.change_xid < current_xmin(),
        )
        .order_by(Task.change_xid, Task.change_seq, Task.id)
        .limit(limit)
        .subquery("changed")
    )
    gone = (
        select(
            literal_column("1", Integer()).label("gone"),
            TaskTombstone.change_xid.label("p_xid"),
            TaskTombstone.change_seq.label("p_seq"),
            TaskTombstone.task_id.label("p_id"),
        )
        .where(
            TaskTombstone.user_id == owner,
            tuple_(TaskTombstone.change_xid, TaskTombstone.change_seq) > after_deletion,
            TaskTombstone.change_xid < current_xmin(),
        )
        .order_by(TaskTombstone.change_xid, TaskTombstone.change_seq)
        .limit(limit)
        .subquery("gone")
    )
    merged = union_all(select(changed), select(gone)).subquery("merged")
    page = (
        select(merged)
        .order_by(merged.c.p_xid, merged.c.p_seq, merged.c.p_id)
        .limit(limit)
        .subquery("page")
    )
    # One row whatever the page holds: the token check (a token no longer
    # good gets its 401 from this same statement), the owner's horizon, and
    # the deletion floor of this statement's snapshot.
    horizon = select(SyncHorizon).where(SyncHorizon.user_id == owner)
    head = select(
        tokens.still_valid().label("token_ok"),
        horizon.with_only_columns(SyncHorizon.change_xid).scalar_subquery().label("h_xid"),
        horizon.with_only_columns(SyncHorizon.change_seq).scalar_subquery().label("h_seq"),
        settled_floor_xid().label("f_xid"),
        settled_floor_seq().label("f_seq"),
    ).subquery("head")
    # The page's tasks are read by id once the page is known (at most
    # `limit` of them, their tags included).
    statement = (
        select(
            head,
            page.c.gone,
            page.c.p_xid,
            page.c.p_seq,
            uuid_text(page.c.p_id).label("p_id"),
            *SELECTED_COLUMNS,
        )
        .select_from(
            head.outerjoin(page, true()).outerjoin(
                Task, and_(Task.id == page.c.p_id, page.c.gone == literal_column("0"))
            )
        )
        .order_by(page.c.p_xid, page.c.p_seq, page.c.p_id)
    )
    return Prebuilt(statement)


_PULL = _pull_statement()


@dataclass(frozen=True)
class ChangeFeed:
    changes: list[dict[str, Any]]
    deleted: list[str]
    cursor: str
    has_more: bool

    def payload(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "deleted": self.deleted,
            "cursor": self.cursor,
            "has_more": self.has_more,
        }


def pull_changes(
    *,
    owner_id: uuid.UUID,
    since: str | None,
    limit: int,
    token: tokens.TokenCheck,
) -> ChangeFeed:
    """Every change of the owner's tasks after `since` (everything, without
    it), at most `limit` items, in the order they happened."""
    cursor = None if since is None else decode_cursor(since, owner_id=owner_id)
    if cursor is None:
        key: tuple[int, int, uuid.UUID] = (-1, 0, _NIL)  # before every task
        deletions = (MAX_BIGINT, MAX_BIGINT)  # a first sync names no deletion
    else:
        key = (cursor.xid, cursor.seq, cursor.task_id)
        deletions = cursor.deletions_after
    params = {
        "owner_id": owner_id,
        "k_xid": key[0],
        "k_seq": key[1],
        "k_id": key[2],
        "d_xid": deletions[0],
        "d_seq": deletions[1],
        "limit": limit + 1,
        **token.params(),
    }
    rows = _PULL.execute(connection(), params).rows
    head = rows[0]
    if not head["token_ok"]:
        raise Unauthorized("Token has been revoked.")
    horizon = (head["h_xid"], head["h_seq"])
    if cursor is not None and horizon[0] is not None and horizon > deletions:
        raise CursorExpired()
    items = [row for row in rows if row["p_xid"] is not None]
    has_more = len(items) > limit
    items = items[:limit]
    if cursor is None:
        cursor = Cursor(owner_id, key[0], key[1], key[2], head["f_xid"], head["f_seq"])
    if items:
        last = items[-1]
        cursor = Cursor(
            owner_id,
            last["p_xid"],
            last["p_seq"],
            uuid.UUID(last["p_id"]),
            cursor.floor_xid,
            cursor.floor_seq,
        )
    return ChangeFeed(
        changes=[task_payload(row) for row in items if not row["gone"]],
        deleted=[row["p_id"] for row in items if row["gone"]],
        cursor=cursor.encode(),
        has_more=has_more,
    )


# ----------------------------------------------------------------- clear

# One statement: the tombstones, the per-user and per-tag counts follow by
# trigger (migrations 0002, 0003).
_CLEAR_COMPLETED = Prebuilt(
    delete(Task).where(
        Task.user_id == bindparam("owner_id"),
        Task.completed.is_(true()),
        tokens.still_valid(),
    )
)


def clear_completed(*, owner_id: uuid.UUID, token: tokens.TokenCheck) -> int:
    """Delete every completed task of the owner; how many there were."""
    deleted = _CLEAR_COMPLETED.execute(connection(), {"owner_id": owner_id, **token.params()})
    if not deleted.rowcount:  # nothing to clear, or a token no longer good
        tokens.ensure_valid(token)
    return int(deleted.rowcount)
