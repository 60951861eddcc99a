"""GET /api/{user_id}/tags (API.md, Version 1.1: Listing, extended; Details
(1.1): Filters): every tag of the user's tasks with its count, by code point;
the counts kept true by triggers however the rows are written."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections import Counter
from typing import Any

import pytest
import requests
from sqlalchemy import text

from tests.helpers import assert_error
from tests.test_concurrency import TIMEOUT, run_together
from todo_service.extensions import db


def post(client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(
        "/api/me/tasks",
        data=json.dumps({"title": "t", **body}, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json  # type: ignore[no-any-return]


def tags(client, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/api/me/tags", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert isinstance(response.json, list)
    for entry in response.json:
        assert set(entry) == {"tag", "count"}
        assert isinstance(entry["count"], int) and entry["count"] >= 1
    return response.json  # type: ignore[no-any-return]


def expected_tags(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts = Counter(tag for task in tasks for tag in task["tags"])
    return [{"tag": tag, "count": counts[tag]} for tag in sorted(counts)]  # code point order


def truth(app, user_id: str) -> list[dict[str, Any]]:
    """The counts as the links say, counted now, by code point."""
    with app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tags.name, count(*) FROM task_tags JOIN tags ON tags.id = task_tags.tag_id"
                " WHERE tags.user_id = :user GROUP BY tags.name"
            ),
            {"user": _uuid_param(conn, user_id)},
        ).all()
    return [{"tag": name, "count": count} for name, count in sorted(rows)]


def _uuid_param(conn, user_id: str) -> Any:
    # SQLAlchemy's Uuid stores 32 hex digits on SQLite.
    value = uuid.UUID(user_id)
    return value if conn.dialect.name == "postgresql" else value.hex


def admin_sql(app, statement: str, **params: Any) -> None:
    """What an administrator runs by hand: plain SQL, committed."""
    with app.app_context(), db.engine.begin() as conn:
        converted = {
            key: _uuid_param(conn, value) if key.endswith("user") else value
            for key, value in params.items()
        }
        conn.execute(text(statement), converted)


# ------------------------------------------------------------------ the answer


def test_no_tasks_no_tags(client, headers):
    assert tags(client, headers) == []
    post(client, headers)
    assert tags(client, headers) == []


def test_every_tag_with_its_count_completed_tasks_included(client, headers):
    made = [
        post(client, headers, tags=["work", "home"]),
        post(client, headers, tags=["Work"], completed=True),
        post(client, headers, tags=["home", "urgent", "WORK"], status="completed"),
        post(client, headers, tags=[]),
    ]
    assert tags(client, headers) == [
        {"tag": "home", "count": 2},
        {"tag": "urgent", "count": 1},
        {"tag": "work", "count": 3},
    ]
    assert tags(client, headers) == expected_tags(made)


def test_tags_are_ordered_by_code_point(client, headers):
    names = [
        "b",
        "a",
        "Z",
        "_x",
        "10",
        "9",
        "é",
        "e\u0301",
        "ä",
        "ω",
        "\U0001f600",
        "~",
        "ab",
        "a b",
    ]
    for name in names:
        post(client, headers, tags=[name])
    expected = sorted({name.lower() for name in names})  # Python compares code points
    assert [entry["tag"] for entry in tags(client, headers)] == expected


def test_a_tag_no_task_carries_any_more_is_not_shown(client, headers):
    one = post(client, headers, tags=["gone", "kept"])
    two = post(client, headers, tags=["kept", "moved"])
    response = client.patch(f"/api/me/tasks/{one['id']}", json={"tags": ["kept"]}, headers=headers)
    assert response.status_code == 200
    assert tags(client, headers) == [{"tag": "kept", "count": 2}, {"tag": "moved", "count": 1}]
    assert client.delete(f"/api/me/tasks/{two['id']}", headers=headers).status_code == 204
    assert tags(client, headers) == [{"tag": "kept", "count": 1}]
    response = client.put(f"/api/me/tasks/{one['id']}", json={"title": "t"}, headers=headers)
    assert response.status_code == 200
    assert tags(client, headers) == []
    # ...and a tag used again is back.
    post(client, headers, tags=["GONE"])
    assert tags(client, headers) == [{"tag": "gone", "count": 1}]


def test_another_users_tags_are_never_shown(client, headers, make_user, auth_headers):
    post(client, headers, tags=["mine", "shared"])
    other = auth_headers(make_user())
    post(client, other, tags=["theirs", "shared"])
    post(client, other, tags=["shared"])
    assert tags(client, headers) == [{"tag": "mine", "count": 1}, {"tag": "shared", "count": 1}]
    assert tags(client, other) == [{"tag": "shared", "count": 2}, {"tag": "theirs", "count": 1}]


def test_another_users_id_is_403(client, headers, make_user):
    other = make_user()
    assert_error(client.get(f"/api/{other.id}/tags", headers=headers), 403)


def test_my_own_id_in_any_letter_case_works(client, headers, user):
    post(client, headers, tags=["x"])
    response = client.get(f"/api/{user.id.upper()}/tags", headers=headers)
    assert response.status_code == 200
    assert response.json == [{"tag": "x", "count": 1}]


@pytest.mark.parametrize(
    "authorization", [None, "Bearer nonsense", "Basic dXNlcjpwYXNz"], ids=["none", "bad", "basic"]
)
def test_without_a_valid_token_is_401(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/api/me/tags", headers=headers)
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_refresh_token_is_refused(client, user, login):
    refresh = login(user)["refresh_token"]
    response = client.get("/api/me/tags", headers={"Authorization": f"Bearer {refresh}"})
    assert_error(response, 401)


def test_a_revoked_token_is_refused_even_with_tags(client, headers):
    post(client, headers, tags=["x"])
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert_error(client.get("/api/me/tags", headers=headers), 401)


def test_not_a_uuid_is_404_and_other_methods_405(client, headers):
    assert_error(client.get("/api/not-a-uuid/tags", headers=headers), 404)
    response = client.post("/api/me/tags", json={}, headers=headers)
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"]


# ------------------------------------------------- counts under plain SQL


def test_counts_stay_true_under_administrators_sql(
    app, client, headers, user, make_user, auth_headers
):
    made = [post(client, headers, tags=["a", "b"]) for _ in range(3)]
    made.append(post(client, headers, tags=["c"], completed=True))
    other_user = make_user()
    other = auth_headers(other_user)
    post(client, other, tags=["a", "b", "c"])
    assert tags(client, headers) == truth(app, user.id)

    # INSERT ... SELECT: give every task of the user tag "c" it lacks, many rows at once.
    admin_sql(
        app,
        "INSERT INTO task_tags (task_id, tag_id, position)"
        " SELECT tasks.id, tags.id, 99 FROM tasks JOIN tags ON tags.user_id = tasks.user_id"
        " WHERE tasks.user_id = :user AND tags.name = 'c' AND NOT EXISTS"
        " (SELECT 1 FROM task_tags t WHERE t.task_id = tasks.id AND t.tag_id = tags.id)",
        user=user.id,
    )
    assert tags(client, headers) == truth(app, user.id)
    assert {"tag": "c", "count": 4} in tags(client, headers)

    # UPDATE of the links: every "b" becomes a brand-new tag "z".
    admin_sql(app, "INSERT INTO tags (user_id, name) VALUES (:user, 'z')", user=user.id)
    admin_sql(
        app,
        "UPDATE task_tags SET tag_id = (SELECT id FROM tags WHERE user_id = :user AND name = 'z')"
        " WHERE tag_id = (SELECT id FROM tags WHERE user_id = :user AND name = 'b')",
        user=user.id,
    )
    assert tags(client, headers) == truth(app, user.id)
    assert [entry["tag"] for entry in tags(client, headers)] == ["a", "c", "z"]

    # DELETE of some links, several rows in one statement.
    admin_sql(
        app,
        "DELETE FROM task_tags WHERE tag_id IN"
        " (SELECT id FROM tags WHERE user_id = :user AND name IN ('a', 'c'))"
        " AND task_id IN (SELECT id FROM tasks WHERE user_id = :user AND completed = :done)",
        user=user.id,
        done=False,
    )
    assert tags(client, headers) == truth(app, user.id)

    # DELETE of tasks: their links go by cascade.
    admin_sql(
        app,
        "DELETE FROM tasks WHERE user_id = :user AND id IN"
        " (SELECT task_id FROM task_tags JOIN tags ON tags.id = task_tags.tag_id"
        "  WHERE tags.name = 'z')",
        user=user.id,
    )
    assert tags(client, headers) == truth(app, user.id)

    # The other user's counts were never touched; deleting that user leaves ours.
    assert tags(client, other) == [
        {"tag": "a", "count": 1},
        {"tag": "b", "count": 1},
        {"tag": "c", "count": 1},
    ]
    mine_before = tags(client, headers)
    admin_sql(app, "DELETE FROM users WHERE id = :user", user=other_user.id)
    assert tags(client, headers) == mine_before == truth(app, user.id)

    # And the API keeps counting from there.
    post(client, headers, tags=["a", "c"])
    assert tags(client, headers) == truth(app, user.id)


def test_deleting_every_task_of_a_user_empties_the_tags(app, client, headers, user):
    for _ in range(5):
        post(client, headers, tags=["a", "b"])
    admin_sql(app, "DELETE FROM tasks WHERE user_id = :user", user=user.id)
    assert tags(client, headers) == [] == truth(app, user.id)


# ------------------------------------------------------------- concurrency


@pytest.mark.live
def test_concurrent_tag_writes_keep_the_counts_exact(app, live_server):
    email = f"tagger-{uuid.uuid4().hex}@example.com"
    password = "correct horse battery staple"
    account = requests.post(
        f"{live_server}/api/auth/register",
        json={"email": email, "password": password},
        timeout=TIMEOUT,
    )
    assert account.status_code == 201
    login = requests.post(
        f"{live_server}/api/auth/login",
        json={"email": email, "password": password},
        timeout=TIMEOUT,
    )
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    shared = ["a", "b", "c", "d", "e", "f"]
    task_ids = []
    for number in range(6):
        response = requests.post(
            f"{live_server}/api/me/tasks",
            json={"title": f"t{number}", "tags": shared[number % 3 :]},
            headers=auth,
            timeout=TIMEOUT,
        )
        assert response.status_code == 201, response.text
        task_ids.append(response.json()["id"])

    # Each request gives one of the tasks the shared tags (and a new one of
    # its own) in a different order: the links and the counts of the same
    # tag rows are written by many transactions at once, in different orders.
    orders = list(itertools.permutations(shared))
    chooser = random.Random(1234)
    plans = []
    for index in range(48):
        order = list(chooser.choice(orders))[: chooser.randint(1, len(shared))]
        if index % 4 == 0:
            order.append(f"only-{index}")
        plans.append((task_ids[index % len(task_ids)], order))

    def write(session: requests.Session, index: int) -> requests.Response:
        task_id, order = plans[index]
        method = session.put if index % 5 == 0 else session.patch
        body: dict[str, Any] = {"tags": [name.upper() if index % 2 else name for name in order]}
        if method == session.put:
            body["title"] = "replaced"
        return method(
            f"{live_server}/api/me/tasks/{task_id}", json=body, headers=auth, timeout=TIMEOUT
        )

    responses = run_together(len(plans), write)

    statuses = [(r.status_code, r.text[:200]) for r in responses]
    assert all(status == 200 for status, _ in statuses), statuses
    for response, (_, order) in zip(responses, plans, strict=True):
        assert response.json()["tags"] == order
    final = []
    for task_id in task_ids:
        response = requests.get(
            f"{live_server}/api/me/tasks/{task_id}", headers=auth, timeout=TIMEOUT
        )
        assert response.status_code == 200
        final.append(response.json())
    listed = requests.get(f"{live_server}/api/me/tags", headers=auth, timeout=TIMEOUT)
    assert listed.status_code == 200
    assert listed.json() == expected_tags(final)
    assert listed.json() == truth(app, account.json()["id"])
