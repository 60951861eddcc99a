"""What `flask purge` removes besides expired revocation entries: the kept
answers of idempotent requests after 24 hours, and the tombstones of the
change feed after 30 days (API.md, Version 1.1).

Purging tombstones first raises each affected user's `sync_horizons` row to
the greatest purged position, in the same transaction: a sync cursor below
it may have missed one of those deletions, and is answered with 410.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from ..db.connections import transaction
from ..db.dialects import UTCDateTime, utcnow
from ..db.models import SyncHorizon, TaskTombstone
from ..extensions import db
from . import idempotency

TOMBSTONE_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class Purged:
    tombstones: int
    horizons: int  # users whose sync horizon moved
    idempotency_keys: int


def _raise_horizons(conn: Connection, cutoff: datetime) -> int:
    """Each user's horizon becomes the greatest position among their
    tombstones older than `cutoff`, never lower than it was."""
    old = TaskTombstone.deleted_at < bindparam("cutoff", cutoff, type_=UTCDateTime())
    ranked = (
        select(
            TaskTombstone.user_id,
            TaskTombstone.change_xid,
            TaskTombstone.change_seq,
            func.row_number()
            .over(
                partition_by=TaskTombstone.user_id,
                order_by=(TaskTombstone.change_xid.desc(), TaskTombstone.change_seq.desc()),
            )
            .label("newest"),
        )
        .where(old)
        .subquery()
    )
    newest = select(ranked.c.user_id, ranked.c.change_xid, ranked.c.change_seq).where(
        ranked.c.newest == 1
    )
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(SyncHorizon).from_select(
        ["user_id", "change_xid", "change_seq"], newest
    )
    upsert = insert.on_conflict_do_update(
        index_elements=[SyncHorizon.user_id],
        set_={
            "change_xid": insert.excluded.change_xid,
            "change_seq": insert.excluded.change_seq,
        },
        where=tuple_(SyncHorizon.change_xid, SyncHorizon.change_seq)
        < tuple_(insert.excluded.change_xid, insert.excluded.change_seq),
    )
    return int(conn.execute(upsert).rowcount or 0)


def purge_expired(*, now: datetime | None = None) -> Purged:
    now = now or utcnow()
    tombstone_cutoff = now - TOMBSTONE_RETENTION
    with transaction(db.engine) as conn:
        horizons = _raise_horizons(conn, tombstone_cutoff)
        tombstones = conn.execute(
            delete(TaskTombstone).where(TaskTombstone.deleted_at < tombstone_cutoff)
        ).rowcount
        keys = idempotency.purge_expired(conn, now)
    return Purged(tombstones=int(tombstones or 0), horizons=horizons, idempotency_keys=keys)
