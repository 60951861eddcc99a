"""Safe retries of `POST /api/{user_id}/tasks` (API.md, "Safe retries
(Idempotency-Key)" and Details 1.1).

The key is claimed, the task created and the answer kept in one transaction:

1. INSERT the key's row (the request's fingerprint, no answer yet); on a
   conflict with a row younger than `KEY_LIFETIME` nothing is inserted, an
   older one is taken over as if it were absent.
2. Claimed: create the task on the same connection, keep the answer
   (status, body, Location) in the row, commit. Anything that fails rolls
   the claim back with the task: a failed first request leaves the key
   unused.
3. Not claimed: the kept answer is replayed when the fingerprint matches,
   a different body is a 422.

Concurrent requests with one key queue on the key's row: on PostgreSQL the
second INSERT waits on the primary key until the first transaction ends,
then sees its committed row (or, if it rolled back, claims the key itself);
on SQLite the write lock taken at BEGIN orders them. So at most one task is
created, and the others replay its answer. A row without an answer is never
committed; should one be seen all the same, the answer is 409.

A request without the header never comes here (routes/tasks.py).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from ..db.connections import retried_transaction
from ..db.dialects import UTCDateTime, utcnow
from ..db.models import IdempotencyKey
from ..db.prebuilt import Prebuilt
from ..errors import IdempotencyKeyInProgress, Unauthorized, ValidationFailed
from . import tokens
from .task_fields import task_payload
from .tasks import create_task_on

# API.md: an answer is kept "for at least 24 hours"; an older key is new again.
KEY_LIFETIME = timedelta(hours=24)

HEADER = "Idempotency-Key"
_CREATED = 201


@dataclass(frozen=True)
class KeptAnswer:
    """The first request's answer, as sent then and on every replay."""

    status: int
    body: bytes
    location: str
    replayed: bool


def request_fingerprint(body: bytes) -> str:
    """The body as parsed JSON, compared literally (API.md, Details 1.1):
    white space between tokens, the order of an object's keys and escapes
    do not matter; values do, to the character (an explicit default or a
    space inside a string is another body)."""
    canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


_KEY_MATCHES = (
    IdempotencyKey.user_id == bindparam("owner_id"),
    IdempotencyKey.key == bindparam("key"),
)


@lru_cache(maxsize=2)
def _claim(dialect_name: str) -> Prebuilt:
    """The key's row, new or taking over an expired one; RETURNING a row
    only then. The token check rides in the same statement."""
    table = IdempotencyKey.__table__
    dialect: Any = postgresql if dialect_name == "postgresql" else sqlite
    new_row = select(
        bindparam("owner_id", type_=table.c.user_id.type),
        bindparam("key", type_=table.c.key.type),
        bindparam("request_hash", type_=table.c.request_hash.type),
        bindparam("now", type_=UTCDateTime()),
    ).where(tokens.still_valid())
    statement = dialect.insert(IdempotencyKey).from_select(
        ["user_id", "key", "request_hash", "created_at"], new_row
    )
    statement = statement.on_conflict_do_update(
        index_elements=["user_id", "key"],
        set_={
            "request_hash": statement.excluded.request_hash,
            "status_code": None,
            "response_body": None,
            "location": None,
            "created_at": statement.excluded.created_at,
        },
        where=IdempotencyKey.created_at < bindparam("expired_before", type_=UTCDateTime()),
    ).returning(IdempotencyKey.key)
    return Prebuilt(statement)


_KEPT = Prebuilt(
    select(
        IdempotencyKey.request_hash,
        IdempotencyKey.status_code,
        IdempotencyKey.response_body,
        IdempotencyKey.location,
        tokens.still_valid().label("token_valid"),
    ).where(*_KEY_MATCHES)
)

_KEEP = Prebuilt(
    update(IdempotencyKey)
    .where(*_KEY_MATCHES)
    .values(
        status_code=bindparam("status_code"),
        response_body=bindparam("response_body"),
        location=bindparam("location"),
    )
)


def create_task_once(
    *,
    owner_id: uuid.UUID,
    key: str,
    fingerprint: str,
    fields: Mapping[str, Any],
    token: tokens.TokenCheck,
    location_of: Callable[[Any], str],
) -> KeptAnswer:
    """Create the task of `fields` unless `key` was used already: then the
    answer kept for it (see the module's docstring)."""
    now = utcnow()
    params = {
        "owner_id": owner_id,
        "key": key,
        "request_hash": fingerprint,
        "now": now,
        "expired_before": now - KEY_LIFETIME,
        **token.params(),
    }

    def work(conn: Connection) -> KeptAnswer | None:
        if _claim(conn.dialect.name).execute(conn, params).first() is not None:
            return _create(conn, owner_id, fields, token, params, location_of)
        kept = _KEPT.execute(conn, params).first()
        if kept is None:
            return None  # a refused token, or a row deleted in between
        if not kept["token_valid"]:
            raise Unauthorized("Token has been revoked.")
        if kept["request_hash"] != fingerprint:
            raise ValidationFailed(
                errors={
                    "headers": {
                        HEADER: ["This key was already used with a different request body."]
                    }
                }
            )
        if kept["status_code"] is None:
            raise IdempotencyKeyInProgress()
        return KeptAnswer(
            status=kept["status_code"],
            body=kept["response_body"].encode(),
            location=kept["location"],
            replayed=True,
        )

    try:
        answer = retried_transaction(work)
        if answer is None:
            tokens.ensure_valid(token)
            # The key's row went away between the two statements (purged at
            # its expiry, say): the key is free again.
            answer = retried_transaction(work)
    except IntegrityError:
        # PostgreSQL: the account was deleted after the statement's snapshot
        # saw it; the foreign key refuses the row.
        tokens.ensure_valid(token)
        raise
    if answer is None:
        raise IdempotencyKeyInProgress()
    return answer


def _create(
    conn: Connection,
    owner_id: uuid.UUID,
    fields: Mapping[str, Any],
    token: tokens.TokenCheck,
    params: Mapping[str, Any],
    location_of: Callable[[Any], str],
) -> KeptAnswer:
    row = create_task_on(conn, owner_id=owner_id, fields=fields, token=token)
    if row is None:  # the token went bad in between: roll the claim back
        raise Unauthorized("Token has been revoked.")
    body = orjson.dumps(task_payload(row), option=orjson.OPT_UTC_Z)
    location = location_of(row["id"])
    answer = {"status_code": _CREATED, "response_body": body.decode(), "location": location}
    _KEEP.execute(conn, {**params, **answer})
    return KeptAnswer(status=_CREATED, body=body, location=location, replayed=False)


def purge_expired(conn: Connection, now: datetime | None = None) -> int:
    """Forget the keys older than `KEY_LIFETIME` (for `flask tokens purge`);
    how many were deleted."""
    cutoff = (now or utcnow()) - KEY_LIFETIME
    result = conn.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(result.rowcount or 0)
