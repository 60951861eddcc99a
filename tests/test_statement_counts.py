"""No N+1 and no hidden queries: the SQL statements each endpoint runs are
counted (SQLAlchemy's cursor events) and pinned."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import event

from todo_service.extensions import db


@contextmanager
def _engine_events(app: Flask, name: str) -> Iterator[list[tuple]]:
    """The arguments of every `name` event of the app's engine while the block runs."""
    seen: list[tuple] = []

    def record(*args):  # type: ignore[no-untyped-def]
        seen.append(args)

    with app.app_context():
        engine = db.engine
    event.listen(engine, name, record)
    try:
        yield seen
    finally:
        event.remove(engine, name, record)


@contextmanager
def counted_statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements run while the block runs."""
    statements: list[str] = []
    with _engine_events(app, "before_cursor_execute") as events:
        yield statements
    statements.extend(args[2] for args in events)


def _create_tasks(client, headers, count: int) -> list[str]:
    ids = []
    for number in range(count):
        response = client.post("/api/me/tasks", json={"title": f"task {number}"}, headers=headers)
        assert response.status_code == 201
        ids.append(response.json["id"])
    return ids


@pytest.mark.parametrize("size", [1, 20, 120])
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # One statement: the token check, the page and the counts together.
        ("", 1),
        ("?page_size=1000", 1),
        ("?status=pending", 1),
        ("?completed=false&sort=title", 1),
        # A search counts its matches: a second statement.
        ("?q=task", 2),
    ],
)
def test_a_list_page_runs_a_fixed_number_of_statements_whatever_its_size(
    app, client, headers, size, query, expected
):
    _create_tasks(client, headers, size)
    with counted_statements(app) as statements:
        response = client.get(f"/api/me/tasks{query}", headers=headers)
    assert response.status_code == 200 and response.json
    assert len(statements) == expected, statements


def test_a_page_past_the_end_runs_at_most_three_statements(app, client, headers):
    _create_tasks(client, headers, 3)
    with counted_statements(app) as statements:
        response = client.get("/api/me/tasks?page=50", headers=headers)
    assert response.status_code == 200 and response.json == []
    assert len(statements) <= 3, statements


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("patch", "", {"title": "renamed"}),
        ("patch", "", {"priority": "high", "due_at": "2026-12-24T18:00:00Z"}),
        ("delete", "", None),
        ("patch", "/complete", None),
        ("patch", "/complete", {"completed": True}),
    ],
)
def test_one_task_operations_run_one_statement(app, client, headers, method, suffix, body):
    (task_id,) = _create_tasks(client, headers, 1)
    kwargs = {"headers": headers} if body is None else {"headers": headers, "json": body}
    with counted_statements(app) as statements:
        response = getattr(client, method)(f"/api/me/tasks/{task_id}{suffix}", **kwargs)
    assert response.status_code in (200, 204)
    # The token check is part of the operation's own statement.
    assert len(statements) == 1, statements


def _transaction_statements(app, count: int) -> int:
    """`count` statements in a transaction: SQLite's BEGIN is a statement of
    its own (BEGIN IMMEDIATE, dialects.py); psycopg2 sends its BEGIN with the first."""
    with app.app_context():
        return count + (1 if db.engine.dialect.name == "sqlite" else 0)


def test_put_and_a_tag_change_run_one_transaction(app, client, headers):
    """PUT sets the tags too (a key left out is `[]`): the task's row is
    locked and its tags read in one statement, then written with the columns."""
    (task_id,) = _create_tasks(client, headers, 1)
    with counted_statements(app) as statements:
        response = client.put(f"/api/me/tasks/{task_id}", json={"title": "x"}, headers=headers)
    assert response.status_code == 200
    assert len(statements) == _transaction_statements(app, 2), statements

    with counted_statements(app) as statements:
        response = client.patch(
            f"/api/me/tasks/{task_id}", json={"tags": ["a", "b"]}, headers=headers
        )
    assert response.status_code == 200 and response.json["tags"] == ["a", "b"]
    # lock and read, unlink, add missing tags, find their ids, link, update
    assert len(statements) == _transaction_statements(app, 6), statements


def test_create_with_tags_runs_one_transaction(app, client, headers):
    with counted_statements(app) as statements:
        response = client.post(
            "/api/me/tasks", json={"title": "one", "tags": ["a"]}, headers=headers
        )
    assert response.status_code == 201
    # insert, unlink (nothing), add missing tags, find their ids, link
    assert len(statements) == _transaction_statements(app, 5), statements


def test_tags_run_one_statement(app, client, headers):
    client.post("/api/me/tasks", json={"title": "one", "tags": ["a"]}, headers=headers)
    with counted_statements(app) as statements:
        response = client.get("/api/me/tags", headers=headers)
    assert response.json == [{"tag": "a", "count": 1}]
    assert len(statements) == 1, statements


def test_a_filtered_page_runs_two_statements(app, client, headers):
    """A filter the trigger-kept counts cannot answer: the page, and the count."""
    task = {"title": "one", "tags": ["a"], "due_at": "2099-06-01T00:00:00Z"}
    client.post("/api/me/tasks", json=task, headers=headers)
    for query in ("tag=a", "priority=medium", "overdue=false", "due_after=2026-01-01T00:00:00Z"):
        with counted_statements(app) as statements:
            response = client.get(f"/api/me/tasks?{query}", headers=headers)
        assert response.status_code == 200, query
        assert len(statements) == 2, (query, statements)


def test_a_sync_pull_runs_one_statement(app, client, headers):
    """The token check, the sync horizon, both index scans (tasks and
    tombstones) and the page's task rows: one statement, first pull or not."""
    ids = _create_tasks(client, headers, 5)
    cursor = client.get("/api/me/tasks/changes", headers=headers).json["cursor"]
    client.delete(f"/api/me/tasks/{ids[0]}", headers=headers)
    client.patch(f"/api/me/tasks/{ids[1]}", json={"tags": ["a"]}, headers=headers)
    for query in ({}, {"since": cursor}, {"since": cursor, "limit": 1}):
        with counted_statements(app) as statements:
            response = client.get("/api/me/tasks/changes", query_string=query, headers=headers)
        assert response.status_code == 200
        assert len(statements) == 1, (query, statements)


def test_clearing_completed_tasks_runs_one_statement(app, client, headers):
    for number in range(5):
        body = {"title": f"task {number}", "completed": number % 2 == 0, "tags": ["a"]}
        client.post("/api/me/tasks", json=body, headers=headers)
    with counted_statements(app) as statements:
        response = client.delete("/api/me/tasks?status=completed", headers=headers)
    assert response.json == {"deleted": 3}
    assert len(statements) == 1, statements


def test_create_runs_one_statement(app, client, headers):
    with counted_statements(app) as statements:
        response = client.post("/api/me/tasks", json={"title": "one"}, headers=headers)
    assert response.status_code == 201
    assert len(statements) == 1, statements


def test_create_with_an_idempotency_key_runs_one_transaction(app, client, headers):
    keyed = {**headers, "Idempotency-Key": "k"}
    with counted_statements(app) as statements:
        response = client.post("/api/me/tasks", json={"title": "one"}, headers=keyed)
    assert response.status_code == 201
    # claim the key (with the token check), insert the task, keep the answer
    assert len(statements) == _transaction_statements(app, 3), statements

    with counted_statements(app) as statements:
        response = client.post("/api/me/tasks", json={"title": "one"}, headers=keyed)
    assert response.headers["Idempotent-Replayed"] == "true"
    # the claim finds the key taken, then its kept answer (with the token check)
    assert len(statements) == _transaction_statements(app, 2), statements


def test_a_missing_task_costs_a_second_statement_to_tell_401_from_404(app, client, headers):
    with counted_statements(app) as statements:
        response = client.get(f"/api/me/tasks/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 404
    assert len(statements) == 2, statements


def test_an_unauthenticated_request_runs_no_statement(app, client):
    with counted_statements(app) as statements:
        response = client.get("/api/me/tasks")
    assert response.status_code == 401
    assert statements == []


@contextmanager
def counted_checkouts(app: Flask) -> Iterator[list[object]]:
    """The pooled connections taken while the block runs."""
    checkouts: list[object] = []
    with _engine_events(app, "checkout") as events:
        yield checkouts
    checkouts.extend(args[0] for args in events)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "expected"),
    [
        # The token check, then the account.
        ("get", "/api/auth/me", None, 200, 2),
        # The token check, the account, the UPDATE (with the token's version).
        ("patch", "/api/auth/me", {"name": "Renamed"}, 200, 3),
        # The token check, the DELETE.
        ("delete", "/api/auth/me", None, 204, 2),
    ],
)
def test_account_operations_run_their_statements_on_one_connection(
    app, client, headers, method, path, body, status, expected
):
    kwargs = {"headers": headers} if body is None else {"headers": headers, "json": body}
    with counted_checkouts(app) as checkouts, counted_statements(app) as statements:
        response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    assert len(statements) == expected, statements
    assert len(checkouts) == 1


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("get", "", None), ("patch", "", {"title": "renamed"}), ("delete", "", None)],
)
def test_a_task_operation_takes_one_connection(app, client, headers, method, suffix, body):
    (task_id,) = _create_tasks(client, headers, 1)
    kwargs = {"headers": headers} if body is None else {"headers": headers, "json": body}
    with counted_checkouts(app) as checkouts:
        response = getattr(client, method)(f"/api/me/tasks/{task_id}{suffix}", **kwargs)
    assert response.status_code in (200, 204)
    assert len(checkouts) == 1


def test_a_list_revalidation_answered_304_runs_one_statement(app, client, headers):
    _create_tasks(client, headers, 30)
    for query in ("", "?status=pending", "?q=task", "?overdue=false&page=3"):
        etag = client.get(f"/api/me/tasks{query}", headers=headers).headers["ETag"]
        with counted_statements(app) as statements:
            response = client.get(
                f"/api/me/tasks{query}", headers={**headers, "If-None-Match": etag}
            )
        assert response.status_code == 304
        # The token check and the list's version; no page rows are read.
        assert len(statements) == 1, statements
        assert "title" not in statements[0], statements[0]


def test_a_task_revalidation_answered_304_runs_one_statement(app, client, headers):
    (task_id,) = _create_tasks(client, headers, 1)
    etag = client.get(f"/api/me/tasks/{task_id}", headers=headers).headers["ETag"]
    with counted_statements(app) as statements:
        response = client.get(
            f"/api/me/tasks/{task_id}", headers={**headers, "If-None-Match": etag}
        )
    assert response.status_code == 304
    assert len(statements) == 1, statements


def test_a_conditional_write_runs_one_statement_and_its_412_two(app, client, headers):
    (task_id,) = _create_tasks(client, headers, 1)
    etag = client.get(f"/api/me/tasks/{task_id}", headers=headers).headers["ETag"]
    url = f"/api/me/tasks/{task_id}"
    with counted_statements(app) as statements:
        response = client.patch(url, json={"title": "x"}, headers={**headers, "If-Match": etag})
    assert response.status_code == 200
    assert len(statements) == 1, statements
    with counted_statements(app) as statements:
        response = client.patch(url, json={"title": "y"}, headers={**headers, "If-Match": etag})
    assert response.status_code == 412
    assert len(statements) == 2, statements
