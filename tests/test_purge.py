"""`flask tokens purge` / `flask purge`: besides expired revocation entries,
idempotency keys after 24 hours and task tombstones after 30 days, each
affected user's sync horizon raised first (API.md, Version 1.1)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text

from todo_service.db.models import IdempotencyKey, SyncHorizon, TaskTombstone
from todo_service.extensions import db


def _tombstone(user_id: str, seq: int, age: timedelta) -> dict:
    return {
        "task_id": uuid.uuid4(),
        "user_id": uuid.UUID(user_id),
        "change_xid": 0,
        "change_seq": seq,
        "deleted_at": datetime.now(UTC) - age,
    }


@pytest.mark.parametrize("command", [["tokens", "purge"], ["purge"]])
def test_purge_drops_old_keys_and_tombstones_and_raises_horizons(app, runner, make_user, command):
    ada, bob, cy = (make_user() for _ in range(3))
    now = datetime.now(UTC)
    with app.app_context():
        db.session.execute(
            insert(TaskTombstone),
            [
                _tombstone(ada.id, 10, timedelta(days=40)),
                _tombstone(ada.id, 20, timedelta(days=31)),
                _tombstone(ada.id, 30, timedelta(days=29)),
                _tombstone(bob.id, 5, timedelta(days=35)),
                _tombstone(cy.id, 7, timedelta(days=1)),
            ],
        )
        # bob's horizon is already past what is purged now: it never goes back.
        db.session.execute(
            insert(SyncHorizon), [{"user_id": uuid.UUID(bob.id), "change_xid": 0, "change_seq": 9}]
        )
        db.session.execute(
            insert(IdempotencyKey),
            [
                {
                    "user_id": uuid.UUID(ada.id),
                    "key": key,
                    "request_hash": "0" * 64,
                    "status_code": 201,
                    "response_body": "{}",
                    "location": None,
                    "created_at": now - age,
                }
                for key, age in (("old", timedelta(hours=25)), ("new", timedelta(hours=23)))
            ],
        )
        db.session.commit()

    result = runner.invoke(args=command)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Purged 0 expired revocation entries.",
        "Purged 1 idempotency keys older than 24 hours.",
        "Purged 3 task tombstones older than 30 days (sync horizon raised for 1 users).",
    ]
    with app.app_context():
        left = db.session.execute(select(TaskTombstone.change_seq)).scalars()
        rows = db.session.execute(select(SyncHorizon.user_id, SyncHorizon.change_seq))
        horizons = {user_id: seq for user_id, seq in rows}
        keys = set(db.session.execute(select(IdempotencyKey.key)).scalars())
    assert sorted(left) == [7, 30]
    assert horizons == {uuid.UUID(ada.id): 20, uuid.UUID(bob.id): 9}
    assert keys == {"new"}


def test_purge_twice_purges_nothing_the_second_time(app, runner, make_user):
    user = make_user()
    with app.app_context():
        db.session.execute(insert(TaskTombstone), [_tombstone(user.id, 3, timedelta(days=31))])
        db.session.commit()
    assert "Purged 1 task tombstones" in runner.invoke(args=["purge"]).stdout
    second = runner.invoke(args=["purge"])
    assert "Purged 0 task tombstones older than 30 days (sync horizon raised for 0 users)." in (
        second.stdout
    )
    with app.app_context():
        count = db.session.execute(text("SELECT count(*) FROM sync_horizons")).scalar()
    assert count == 1
