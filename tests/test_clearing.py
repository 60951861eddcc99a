"""Clearing completed tasks (API.md, Clearing completed tasks; Details 1.1,
Clearing): `DELETE /api/{user_id}/tasks?status=completed`."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from todo_service.db.models import TaskTombstone
from todo_service.extensions import db

from .helpers import assert_error

CLEAR = "/api/me/tasks?status=completed"


def make_tasks(client, headers, count: int = 5) -> list[dict]:
    tasks = []
    for number in range(count):
        body = {
            "title": f"task {number}",
            "completed": number % 2 == 0,
            "tags": ["a", f"n{number}"],
        }
        response = client.post("/api/me/tasks", json=body, headers=headers)
        assert response.status_code == 201
        tasks.append(response.json)
    return tasks


def listing(client, headers) -> tuple[list[dict], int]:
    response = client.get("/api/me/tasks?sort=title", headers=headers)
    return response.json, json.loads(response.headers["X-Pagination"])["total"]


def test_clearing_deletes_every_completed_task_and_only_those(
    client, headers, make_user, auth_headers
):
    other = auth_headers(make_user())
    theirs = make_tasks(client, other, 2)
    tasks = make_tasks(client, headers)

    response = client.delete(CLEAR, headers=headers)

    assert response.status_code == 200
    assert response.json == {"deleted": 3}
    left, total = listing(client, headers)
    assert left == [task for task in tasks if not task["completed"]]
    assert total == 2  # the trigger-kept counts
    pending = client.get("/api/me/tasks?status=completed", headers=headers)
    assert pending.json == [] and json.loads(pending.headers["X-Pagination"])["total"] == 0
    # Per-tag counts, kept by trigger.
    tags = client.get("/api/me/tags", headers=headers).json
    assert tags == [{"tag": "a", "count": 2}, {"tag": "n1", "count": 1}, {"tag": "n3", "count": 1}]
    # Another user's tasks are untouched.
    assert len(client.get("/api/me/tasks", headers=other).json) == len(theirs)


def test_cleared_tasks_leave_tombstones_for_the_feed(app, client, headers):
    tasks = make_tasks(client, headers, 3)
    cursor = client.get("/api/me/tasks/changes", headers=headers).json["cursor"]
    client.delete(CLEAR, headers=headers)
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(TaskTombstone)).scalar() == 2
    from .test_sync import wait_until_settled

    wait_until_settled(app)
    feed = client.get("/api/me/tasks/changes", query_string={"since": cursor}, headers=headers)
    assert sorted(feed.json["deleted"]) == sorted(t["id"] for t in tasks if t["completed"])


def test_nothing_to_clear_is_zero(client, headers):
    assert client.delete(CLEAR, headers=headers).json == {"deleted": 0}


@pytest.mark.parametrize("query", ["", "?status=pending", "?status=", "?status=done"])
def test_without_status_completed_it_is_422_and_nothing_is_deleted(client, headers, query):
    tasks = make_tasks(client, headers, 2)
    response = client.delete(f"/api/me/tasks{query}", headers=headers)
    assert_error(response, 422, error_fields={"query": {"status"}})
    assert len(listing(client, headers)[0]) == len(tasks)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("completed", "true"),
        ("q", "task"),
        ("q", ""),
        ("priority", "high"),
        ("tag", "a"),
        ("due_before", "2030-01-01T00:00:00Z"),
        ("due_after", "2020-01-01T00:00:00Z"),
        ("overdue", "false"),
    ],
)
def test_any_other_listing_filter_is_422_naming_it(client, headers, name, value):
    make_tasks(client, headers, 2)
    response = client.delete(
        "/api/me/tasks", query_string={"status": "completed", name: value}, headers=headers
    )
    assert_error(response, 422, error_fields={"query": {name}})
    assert len(listing(client, headers)[0]) == 2


def test_sort_page_page_size_and_unknown_parameters_are_ignored(client, headers):
    make_tasks(client, headers, 3)
    response = client.delete(
        "/api/me/tasks",
        query_string={"status": "completed", "sort": "nope", "page": "0", "page_size": "x", "z": 1},
        headers=headers,
    )
    assert response.status_code == 200 and response.json == {"deleted": 2}


def test_clearing_needs_a_good_token_and_your_own_user_id(client, headers):
    make_tasks(client, headers, 2)
    assert_error(client.delete(CLEAR), 401)
    assert_error(client.delete(f"/api/{uuid.uuid4()}/tasks?status=completed", headers=headers), 403)
    client.post("/api/auth/logout", headers=headers)
    assert_error(client.delete(CLEAR, headers=headers), 401)
