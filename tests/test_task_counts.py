"""The totals in X-Pagination come from trigger-maintained counts (migration
0002). They must stay exact however rows are written: through the API, or
with plain SQL as a bulk import or a database administrator would."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from todo_service.extensions import db


def _totals(client, headers) -> dict[str, int]:
    totals = {}
    for name, query in (("all", ""), ("pending", "?status=pending"), ("done", "?completed=true")):
        response = client.get(f"/api/me/tasks{query}", headers=headers)
        assert response.status_code == 200
        totals[name] = json.loads(response.headers["X-Pagination"])["total"]
    return totals


def _counted(app, user_id: str) -> dict[str, int]:
    """The truth, counted row by row."""
    with app.app_context():
        rows = db.session.execute(
            text("SELECT completed FROM tasks WHERE user_id = :uid"),
            {"uid": _db_uuid(app, user_id)},
        ).all()
        db.session.remove()
    done = sum(1 for (completed,) in rows if completed)
    return {"all": len(rows), "pending": len(rows) - done, "done": done}


def _db_uuid(app, user_id: str) -> str:
    # SQLite stores UUIDs as 32 hex digits; PostgreSQL has a uuid type.
    with app.app_context():
        return user_id.replace("-", "") if db.engine.dialect.name == "sqlite" else user_id


def _sql(app, statement: str, **params) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_counts_follow_api_writes(app, client, user, headers):
    ids = []
    for number in range(6):
        body = {"title": f"t{number}", "completed": number % 3 == 0}
        ids.append(client.post("/api/me/tasks", json=body, headers=headers).json["id"])
    client.patch(f"/api/me/tasks/{ids[1]}/complete", headers=headers)
    client.put(f"/api/me/tasks/{ids[0]}", json={"title": "back to pending"}, headers=headers)
    client.delete(f"/api/me/tasks/{ids[3]}", headers=headers)
    assert _totals(client, headers) == _counted(app, user.id) == {"all": 5, "pending": 4, "done": 1}


def test_counts_follow_bulk_sql_writes(app, client, user, make_user, auth_headers, headers):
    other = make_user()
    for number in range(4):
        client.post("/api/me/tasks", json={"title": f"seed {number}"}, headers=headers)
    # A bulk copy, the way the benchmark harness multiplies rows: x8.
    for _ in range(3):
        _sql(
            app,
            "INSERT INTO tasks (id, user_id, title, description, completed, created_at, updated_at)"
            " SELECT " + _new_id(app) + ", user_id, title, description, completed, created_at,"
            " updated_at FROM tasks WHERE user_id = :uid",
            uid=_db_uuid(app, user.id),
        )
    assert _totals(client, headers) == _counted(app, user.id)
    assert _counted(app, user.id)["all"] == 32

    _sql(app, "UPDATE tasks SET completed = NOT completed WHERE title IN ('seed 1', 'seed 2')")
    assert _totals(client, headers) == _counted(app, user.id)

    _sql(app, "DELETE FROM tasks WHERE title = 'seed 3'")
    assert _totals(client, headers) == _counted(app, user.id)

    # Tasks handed to another owner move their counts along.
    _sql(
        app,
        "UPDATE tasks SET user_id = :other WHERE title = 'seed 0'",
        other=_db_uuid(app, other.id),
    )
    assert _totals(client, headers) == _counted(app, user.id)
    assert _totals(client, auth_headers(other)) == _counted(app, other.id)
    assert _counted(app, other.id)["all"] == 8


def test_deleting_a_user_with_tasks_leaves_no_counts_behind(app, client, headers):
    for number in range(3):
        client.post("/api/me/tasks", json={"title": f"t{number}"}, headers=headers)
    assert client.delete("/api/auth/me", headers=headers).status_code == 204
    with app.app_context():
        left = db.session.execute(text("SELECT count(*) FROM task_counts")).scalar_one()
        db.session.remove()
    assert left == 0


@pytest.mark.parametrize("completed", [True, False])
def test_a_title_only_change_keeps_counts(app, client, user, headers, completed):
    task = client.post(
        "/api/me/tasks", json={"title": "x", "completed": completed}, headers=headers
    ).json
    client.patch(f"/api/me/tasks/{task['id']}", json={"title": "y"}, headers=headers)
    assert _totals(client, headers) == _counted(app, user.id)


def _new_id(app) -> str:
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            return "lower(hex(randomblob(16)))"
    return "gen_random_uuid()"
