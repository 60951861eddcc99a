"""Migration 0003 (contract 1.1) on a populated 1.0 database, and its
triggers under plain SQL, on SQLite and on PostgreSQL.

The 1.0 data goes in as plain SQL, the way a database made by 1.0 holds it;
the API is then asked for it by an app of 1.1.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import flask_migrate
import pytest
from flask import Flask, current_app
from sqlalchemy import Connection, inspect, text

from todo_service import security
from todo_service.extensions import db

from .helpers import TASK_KEYS
from .test_migrations import fresh_app, fresh_database_url  # noqa: F401 (fixtures)

PASSWORD = "a 1.0 password"
TASK_COLUMNS_1_0 = {
    "id",
    "user_id",
    "title",
    "description",
    "completed",
    "created_at",
    "updated_at",
}
T0 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def sql_uuid(conn: Connection, value: uuid.UUID) -> str:
    """A UUID as the column stores it: 32 hex digits on SQLite."""
    return value.hex if conn.dialect.name == "sqlite" else str(value)


def hex_id(value: Any) -> str:
    """A UUID as read back by plain SQL (hex text on SQLite, a UUID on
    PostgreSQL), as 32 hex digits: both databases take it as a parameter."""
    return uuid.UUID(str(value)).hex


def sql_time(conn: Connection, value: datetime) -> str:
    """A timestamp as the column stores it: naive UTC text on SQLite."""
    if conn.dialect.name == "sqlite":
        return (
            value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )
    return value.isoformat()


def insert_user(conn: Connection, email: str, password_hash: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    conn.execute(
        text(
            "INSERT INTO users (id, email, name, password_hash, token_version, created_at,"
            " updated_at) VALUES (:id, :email, NULL, :hash, 0, :now, :now)"
        ),
        {
            "id": sql_uuid(conn, user_id),
            "email": email,
            "hash": password_hash,
            "now": sql_time(conn, T0),
        },
    )
    return user_id


def insert_tasks(conn: Connection, user_id: uuid.UUID, count: int, *, every_completed: int) -> None:
    """`count` tasks in one multi-row INSERT; every `every_completed`-th completed."""
    rows = []
    for number in range(count):
        created = T0 + timedelta(minutes=number, microseconds=number * 7)
        rows.append(
            {
                "id": sql_uuid(conn, uuid.uuid4()),
                "user_id": sql_uuid(conn, user_id),
                "title": f"1.0 task {number} ✓ «{user_id.hex[:4]}»",
                "description": None if number % 3 else f"notes {number}",
                "completed": number % every_completed == 0,
                "created_at": sql_time(conn, created),
                "updated_at": sql_time(conn, created + timedelta(seconds=number)),
            }
        )
    conn.execute(
        text(
            "INSERT INTO tasks (id, user_id, title, description, completed, created_at,"
            " updated_at) VALUES (:id, :user_id, :title, :description, :completed,"
            " :created_at, :updated_at)"
        ),
        rows,
    )


def tasks_1_0(conn: Connection) -> list[tuple]:
    """Every task's 1.0 columns, as the database returns them."""
    columns = ", ".join(sorted(TASK_COLUMNS_1_0))
    return [tuple(row) for row in conn.execute(text(f"SELECT {columns} FROM tasks ORDER BY id"))]  # noqa: S608


def kept_counts(conn: Connection) -> dict[str, tuple[int, int]]:
    rows = conn.execute(
        text(
            "SELECT user_id, sum(total), sum(completed) FROM task_counts GROUP BY user_id"
            " HAVING sum(total) <> 0"
        )
    )
    return {hex_id(user_id): (int(total), int(done)) for user_id, total, done in rows}


def real_counts(conn: Connection) -> dict[str, tuple[int, int]]:
    rows = conn.execute(
        text(
            "SELECT user_id, count(*), sum(CASE WHEN completed THEN 1 ELSE 0 END) FROM tasks"
            " GROUP BY user_id"
        )
    )
    return {hex_id(user_id): (int(total), int(done)) for user_id, total, done in rows}


def tasks_file_node(conn: Connection) -> int | None:
    """PostgreSQL: the file of `tasks`; it changes whenever the table is rewritten."""
    if conn.dialect.name != "postgresql":
        return None
    return int(
        conn.execute(
            text("SELECT relfilenode FROM pg_class WHERE oid = 'tasks'::regclass")
        ).scalar_one()
    )


def task_columns() -> set[str]:
    db.engine.dispose()  # no connection holding statements of the schema before
    return {column["name"] for column in inspect(db.engine).get_columns("tasks")}


def assert_1_1_representation(app: Flask, email: str, expected: dict[str, tuple]) -> None:
    client = app.test_client()
    login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {login.json['access_token']}"}
    listing = client.get("/api/me/tasks?page_size=100", headers=headers)
    assert listing.status_code == 200
    assert json.loads(listing.headers["X-Pagination"])["total"] == len(expected)
    assert {
        task["id"]: (task["title"], task["description"], task["completed"]) for task in listing.json
    } == expected
    for task in listing.json:
        assert set(task) == TASK_KEYS
        assert (task["priority"], task["due_at"], task["tags"]) == ("medium", None, [])
    pending = client.get("/api/me/tasks?status=pending&page_size=100", headers=headers)
    pending_total = json.loads(pending.headers["X-Pagination"])["total"]
    assert pending_total == sum(not completed for _, _, completed in expected.values())
    high = client.get("/api/me/tasks?priority=high", headers=headers)
    assert high.status_code == 200 and high.json == []
    tags = client.get("/api/me/tags", headers=headers)
    assert tags.status_code == 200 and tags.json == []


@pytest.mark.usefixtures("fresh_app")  # an empty database; its app's context is on
def test_upgrade_of_a_populated_1_0_database_keeps_every_task():
    app = current_app._get_current_object()
    flask_migrate.upgrade(revision="0002")
    password_hash = security.hash_password(PASSWORD)
    with db.engine.begin() as conn:
        alice = insert_user(conn, "alice@example.com", password_hash)
        bob = insert_user(conn, "bob@example.com", password_hash)
        insert_user(conn, "carol@example.com", password_hash)  # no tasks
        insert_tasks(conn, alice, 40, every_completed=3)
        insert_tasks(conn, bob, 9, every_completed=2)
    with db.engine.connect() as conn:
        before = tasks_1_0(conn)
        counts = kept_counts(conn)
        file_node = tasks_file_node(conn)
        alice_tasks = {
            str(uuid.UUID(hex_id(task_id))): (title, description, bool(completed))
            for task_id, title, description, completed in conn.execute(
                text("SELECT id, title, description, completed FROM tasks WHERE user_id = :owner"),
                {"owner": sql_uuid(conn, alice)},
            )
        }
        assert counts == real_counts(conn) == {alice.hex: (40, 14), bob.hex: (9, 5)}
    assert len(before) == 49

    flask_migrate.upgrade()

    with db.engine.connect() as conn:
        assert tasks_1_0(conn) == before
        new_columns = conn.execute(
            text("SELECT priority, due_at, change_xid, change_seq FROM tasks")
        ).all()
        assert set(new_columns) == {("medium", None, 0, 0)}
        assert conn.execute(text("SELECT count(*) FROM task_tags")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM tags")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM task_tombstones")).scalar_one() == 0
        assert kept_counts(conn) == counts
        assert tasks_file_node(conn) == file_node  # PostgreSQL: not rewritten
    assert_1_1_representation(app, "alice@example.com", alice_tasks)

    flask_migrate.downgrade(revision="0002")

    assert task_columns() == TASK_COLUMNS_1_0
    with db.engine.connect() as conn:
        assert tasks_1_0(conn) == before
        assert kept_counts(conn) == counts == real_counts(conn)

    flask_migrate.upgrade()

    db.engine.dispose()
    with db.engine.connect() as conn:
        assert tasks_1_0(conn) == before
        assert kept_counts(conn) == counts
    assert_1_1_representation(app, "alice@example.com", alice_tasks)


# ---------------------------------------------------- the triggers, in plain SQL


def positions(conn: Connection, where: str = "", **params: Any) -> dict[str, tuple[int, int]]:
    rows = conn.execute(
        text(f"SELECT id, change_xid, change_seq FROM tasks {where}"),  # noqa: S608
        params,
    )
    return {hex_id(task_id): (int(xid), int(seq)) for task_id, xid, seq in rows}


def tombstones(conn: Connection) -> dict[str, tuple[str, tuple[int, int]]]:
    rows = conn.execute(
        text("SELECT task_id, user_id, change_xid, change_seq FROM task_tombstones")
    )
    return {
        hex_id(task_id): (hex_id(user_id), (int(xid), int(seq)))
        for task_id, user_id, xid, seq in rows
    }


def new_id_sql(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        return "lower(hex(randomblob(16)))"
    return "gen_random_uuid()"


@pytest.fixture
def two_users(app: Flask) -> tuple[uuid.UUID, uuid.UUID]:
    with app.app_context(), db.engine.begin() as conn:
        first = insert_user(conn, "first@example.com", "x")
        second = insert_user(conn, "second@example.com", "x")
        insert_tasks(conn, first, 6, every_completed=2)
    return first, second


def test_insert_select_gives_each_new_task_its_own_change_position(app, two_users):
    first, second = two_users
    with app.app_context():
        with db.engine.begin() as conn:
            earlier = positions(conn)
            conn.execute(
                text(
                    f"INSERT INTO tasks (id, user_id, title, description, completed, created_at,"  # noqa: S608
                    f" updated_at) SELECT {new_id_sql(conn)}, :second, title, description,"
                    " completed, created_at, updated_at FROM tasks WHERE user_id = :first"
                ),
                {"first": sql_uuid(conn, first), "second": sql_uuid(conn, second)},
            )
        with db.engine.connect() as conn:
            copied = positions(conn, "WHERE user_id = :owner", owner=sql_uuid(conn, second))
            counts = kept_counts(conn)
            assert counts == real_counts(conn)
            postgres = conn.dialect.name == "postgresql"

    assert len(set(earlier.values())) == len(earlier) == 6
    assert len(set(copied.values())) == len(copied) == 6  # distinct positions
    assert min(copied.values()) > max(earlier.values())  # and after the earlier ones
    assert all(seq > 0 for _, seq in copied.values())
    if postgres:
        assert len({xid for xid, _ in copied.values()}) == 1  # one transaction
    assert counts[second.hex] == (6, 3)


def test_plain_update_that_changes_nothing_keeps_the_position(app, two_users):
    first, _ = two_users
    with app.app_context():
        with db.engine.connect() as conn:
            before = positions(conn)
            one = min(before)
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE tasks SET title = title, completed = completed"))
        with db.engine.connect() as conn:
            assert positions(conn) == before
        with db.engine.begin() as conn:
            # One statement: one task really changes, the others are written unchanged.
            conn.execute(
                text("UPDATE tasks SET title = CASE WHEN id = :one THEN 'changed' ELSE title END"),
                {"one": one},
            )
        with db.engine.connect() as conn:
            after = positions(conn)

    assert {key: value for key, value in after.items() if key != one} == {
        key: value for key, value in before.items() if key != one
    }
    assert after[one] > max(before.values())


def test_plain_delete_leaves_tombstones_with_new_positions(app, two_users):
    first, _ = two_users
    with app.app_context():
        with db.engine.connect() as conn:
            before = positions(conn)
        doomed = sorted(before)[:4]
        with db.engine.begin() as conn:
            conn.execute(
                text("DELETE FROM tasks WHERE id IN (:a, :b, :c)"),
                dict(zip("abc", doomed[:3], strict=True)),
            )
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM tasks WHERE id = :d"), {"d": doomed[3]})
        with db.engine.connect() as conn:
            left = positions(conn)
            dead = tombstones(conn)
            assert kept_counts(conn) == real_counts(conn)

    assert set(left) == set(before) - set(doomed)
    assert set(dead) == set(doomed)
    owner = {user_id for user_id, _ in dead.values()}
    assert owner == {first.hex}
    dead_positions = [position for _, position in dead.values()]
    assert len(set(dead_positions)) == 4
    assert min(dead_positions) > max(before.values())
    assert dead[doomed[3]][1] == max(dead_positions)  # the later statement, the later position


def test_deleting_a_user_in_sql_leaves_no_tombstones_of_theirs(app, two_users):
    first, second = two_users
    with app.app_context():
        with db.engine.begin() as conn:
            insert_tasks(conn, second, 3, every_completed=2)
            kept_task = sorted(positions(conn, "WHERE user_id = :o", o=sql_uuid(conn, second)))[0]
            conn.execute(text("DELETE FROM tasks WHERE id = :id"), {"id": kept_task})
        with db.engine.connect() as conn:
            assert len(tombstones(conn)) == 1  # the second user's own deletion
        with db.engine.begin() as conn:
            one_of_first = sorted(positions(conn, "WHERE user_id = :o", o=sql_uuid(conn, first)))[0]
            conn.execute(text("DELETE FROM tasks WHERE id = :id"), {"id": one_of_first})
            conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": sql_uuid(conn, first)})
        with db.engine.connect() as conn:
            dead = tombstones(conn)
            owners = {hex_id(row[0]) for row in conn.execute(text("SELECT user_id FROM tasks"))}
            counts = kept_counts(conn)
            assert counts == real_counts(conn)

    assert [user_id for user_id, _ in dead.values()] == [second.hex]
    assert owners == {second.hex}
    assert len(counts) == 1
