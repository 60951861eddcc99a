"""The change feed (API.md, Sync for offline-first clients; Details 1.1, Sync):
`GET /api/{user_id}/tasks/changes`, through the API and against plain SQL
writes, and a client following cursors while other threads write through a
live multi-worker gunicorn."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import text

from todo_service.extensions import db

from .helpers import TASK_KEYS, assert_error

FEED = "/api/me/tasks/changes"


def wait_until_settled(app) -> None:
    """On PostgreSQL the feed shows a change once every transaction older
    than it has ended, in the whole cluster (xids are cluster-wide: another
    database's long transaction delays it too). Wait for the transactions
    under way now to end, so that a pull sees every write made before it."""
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            return
        mark = conn.execute(text("SELECT pg_snapshot_xmax(pg_current_snapshot())")).scalar()
        conn.commit()
        deadline = time.monotonic() + 300
        while conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())")).scalar() < mark:
            conn.commit()
            assert time.monotonic() < deadline, "a transaction in the cluster did not end"
            time.sleep(0.01)


def pull(client, headers, since: str | None = None, **query: Any) -> dict[str, Any]:
    wait_until_settled(client.application)
    params: dict[str, Any] = dict(query)
    if since is not None:
        params["since"] = since
    response = client.get(FEED, query_string=params, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"changes", "deleted", "cursor", "has_more"}
    assert all(set(task) == TASK_KEYS for task in body["changes"])
    return body  # type: ignore[no-any-return]


def pull_all(client, headers, since: str | None = None, limit: int = 500) -> dict[str, Any]:
    """Follow the cursors until `has_more` is false: every page's items in
    order, and the last cursor."""
    changes: list[dict[str, Any]] = []
    deleted: list[str] = []
    while True:
        body = pull(client, headers, since, limit=limit)
        assert len(body["changes"]) + len(body["deleted"]) <= limit
        changes += body["changes"]
        deleted += body["deleted"]
        since = body["cursor"]
        if not body["has_more"]:
            return {"changes": changes, "deleted": deleted, "cursor": since}


def create(client, headers, title: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/me/tasks", json={"title": title, **fields}, headers=headers)
    assert response.status_code == 201
    return response.json  # type: ignore[no-any-return]


def patch(client, headers, task_id: str, **fields: Any) -> dict[str, Any]:
    response = client.patch(f"/api/me/tasks/{task_id}", json=fields, headers=headers)
    assert response.status_code == 200
    return response.json  # type: ignore[no-any-return]


def delete(client, headers, task_id: str) -> None:
    assert client.delete(f"/api/me/tasks/{task_id}", headers=headers).status_code == 204


def sql(app, statement: str, **params: Any) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(statement), params)


# ---------------------------------------------------------------- first sync


def test_without_since_every_current_task_and_no_deletion(client, headers):
    tasks = [create(client, headers, f"task {n}", tags=["x"] if n % 2 else []) for n in range(3)]
    delete(client, headers, tasks[0]["id"])

    body = pull(client, headers)

    assert body["changes"] == tasks[1:]  # the usual representation, in change order
    assert body["deleted"] == []
    assert body["has_more"] is False


def test_an_empty_account_syncs_to_nothing_and_its_cursor_sees_the_first_task(client, headers):
    body = pull(client, headers)
    assert body == {"changes": [], "deleted": [], "cursor": body["cursor"], "has_more": False}
    task = create(client, headers, "first")
    assert pull(client, headers, body["cursor"])["changes"] == [task]


def test_pages_of_limit_cover_every_task_once(client, headers):
    tasks = [create(client, headers, f"task {n}") for n in range(7)]
    pages = []
    since = None
    while True:
        body = pull(client, headers, since, limit=3)
        pages.append(body)
        since = body["cursor"]
        if not body["has_more"]:
            break
    assert [len(page["changes"]) for page in pages] == [3, 3, 1]
    assert [task for page in pages for task in page["changes"]] == tasks
    assert pull(client, headers, since) == {
        "changes": [],
        "deleted": [],
        "cursor": since,  # nothing new: the same cursor back
        "has_more": False,
    }


def test_exactly_limit_items_left_says_no_more(client, headers):
    for n in range(2):
        create(client, headers, f"task {n}")
    body = pull(client, headers, limit=2)
    assert len(body["changes"]) == 2 and body["has_more"] is False


# -------------------------------------------------------------- incremental


def test_since_gives_creations_latest_changes_and_deletions_in_change_order(client, headers):
    kept, changed, doomed = (
        create(client, headers, name) for name in ("kept", "changed", "doomed")
    )
    cursor = pull(client, headers)["cursor"]

    patch(client, headers, changed["id"], title="once")
    new = create(client, headers, "new")
    delete(client, headers, doomed["id"])
    latest = patch(client, headers, changed["id"], title="twice", tags=["a"])
    passing = create(client, headers, "passing")
    delete(client, headers, passing["id"])

    body = pull(client, headers, cursor)
    # Each task once, at the place of its latest change; a task created and
    # deleted in between only in `deleted`.
    assert body["changes"] == [new, latest]
    assert body["deleted"] == [doomed["id"], passing["id"]]
    assert kept["id"] not in {task["id"] for task in body["changes"]}

    # Nothing is shown twice unless it changed again.
    again = pull(client, headers, body["cursor"])
    assert again["changes"] == [] and again["deleted"] == []
    toggled = client.patch(f"/api/me/tasks/{kept['id']}/complete", headers=headers).json
    assert pull(client, headers, again["cursor"])["changes"] == [toggled]


def test_limit_bounds_changes_and_deletions_together(client, headers):
    tasks = [create(client, headers, f"task {n}") for n in range(4)]
    cursor = pull(client, headers)["cursor"]
    delete(client, headers, tasks[0]["id"])
    renamed = patch(client, headers, tasks[1]["id"], title="renamed")
    delete(client, headers, tasks[2]["id"])

    first = pull(client, headers, cursor, limit=2)
    assert (first["changes"], first["deleted"], first["has_more"]) == (
        [renamed],
        [tasks[0]["id"]],
        True,
    )
    second = pull(client, headers, first["cursor"], limit=2)
    assert (second["changes"], second["deleted"], second["has_more"]) == (
        [],
        [tasks[2]["id"]],
        False,
    )


def test_a_write_that_changes_nothing_is_not_a_change(client, headers):
    task = create(client, headers, "same", tags=["a"], priority="high")
    cursor = pull(client, headers)["cursor"]
    patch(client, headers, task["id"], title="same", tags=["a"], priority="high")
    client.patch(f"/api/me/tasks/{task['id']}/complete", json={"completed": False}, headers=headers)
    body = pull(client, headers, cursor)
    assert body["changes"] == [] and body["deleted"] == []


def test_deleted_may_name_tasks_the_client_never_saw(client, headers):
    cursor = pull(client, headers)["cursor"]
    task = create(client, headers, "unseen")
    delete(client, headers, task["id"])
    assert pull(client, headers, cursor)["deleted"] == [task["id"]]


def test_the_feed_is_the_owners_only(client, headers, make_user, auth_headers):
    other = auth_headers(make_user())
    create(client, other, "not yours")
    mine = create(client, headers, "mine")
    assert pull(client, headers)["changes"] == [mine]
    response = client.get(f"/api/{uuid.uuid4()}/tasks/changes", headers=headers)
    assert_error(response, 403)


# ----------------------------------------------------- tasks from before 1.1


def test_tasks_of_before_the_upgrade_all_at_one_position_page_by_id(app, client, headers):
    tasks = {create(client, headers, f"old {n}")["id"] for n in range(5)}
    # As migration 0003 leaves them: position (0, 0). The triggers would
    # give the UPDATE a position of its own, so they stand aside for it.
    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE tasks DISABLE TRIGGER tasks_mark_change"))
        conn.execute(text("UPDATE tasks SET change_xid = 0, change_seq = 0"))
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE tasks ENABLE TRIGGER tasks_mark_change"))

    synced = pull_all(client, headers, limit=2)
    ids = [task["id"] for task in synced["changes"]]
    assert sorted(ids, key=uuid.UUID) == ids  # the id breaks the tie
    assert set(ids) == tasks and len(ids) == 5


def app_is_sqlite(app) -> bool:
    with app.app_context():
        return bool(db.engine.dialect.name == "sqlite")


# ----------------------------------------------------- writes in plain SQL


def test_plain_sql_deletes_and_inserts_show_in_the_feed(app, client, headers, user):
    tasks = [create(client, headers, f"task {n}", completed=n == 0) for n in range(3)]
    cursor = pull(client, headers)["cursor"]

    sql(app, "DELETE FROM tasks WHERE title = 'task 0'")
    sql(
        app,
        "INSERT INTO tasks (id, user_id, title, completed, priority, created_at, updated_at) "
        "SELECT :new_id, user_id, 'copy', completed, priority, created_at, updated_at "
        "FROM tasks WHERE title = 'task 1'",
        new_id=uuid.uuid4().hex if app_is_sqlite(app) else str(uuid.uuid4()),
    )

    body = pull(client, headers, cursor)
    assert body["deleted"] == [tasks[0]["id"]]
    assert [task["title"] for task in body["changes"]] == ["copy"]
    listing = client.get("/api/me/tasks", headers=headers)
    assert {task["title"] for task in listing.json} == {"task 1", "task 2", "copy"}
    assert json.loads(listing.headers["X-Pagination"])["total"] == 3  # counts by trigger


# ------------------------------------------------------------------ cursors


@pytest.mark.parametrize("since", ["", "abc", "!!!!", "A" * 88, "é"])
def test_an_empty_or_malformed_cursor_is_422(client, headers, since):
    response = client.get(FEED, query_string={"since": since}, headers=headers)
    assert_error(response, 422, error_fields={"query": {"since"}})


def test_a_tampered_cursor_is_422(client, headers):
    cursor = pull(client, headers)["cursor"]
    for bad in (
        cursor + "A",
        cursor[:-1],
        cursor.replace(cursor[5], "-" if cursor[5] != "-" else "_"),
    ):
        response = client.get(FEED, query_string={"since": bad}, headers=headers)
        assert_error(response, 422, error_fields={"query": {"since"}})


def test_another_users_cursor_is_422(client, headers, make_user, auth_headers):
    other = auth_headers(make_user())
    foreign = pull(client, other)["cursor"]
    response = client.get(FEED, query_string={"since": foreign}, headers=headers)
    assert_error(response, 422, error_fields={"query": {"since"}})


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "x", ""])
def test_limit_outside_1_to_1000_is_422(client, headers, limit):
    response = client.get(FEED, query_string={"limit": limit}, headers=headers)
    assert_error(response, 422, error_fields={"query": {"limit"}})


def test_limit_at_the_bounds_and_unknown_parameters(client, headers):
    create(client, headers, "one")
    assert len(pull(client, headers, limit=1)["changes"]) == 1
    assert len(pull(client, headers, limit=1000, sort="title")["changes"]) == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_on_changes_are_405_with_allow_get(client, headers, method):
    # The document's template /tasks/{task_id} has PUT, PATCH and DELETE, and
    # the per-response check matches paths by template alone; the 405's
    # shape and Allow are asserted here.
    response = client.open(
        FEED, method=method, headers=headers, off_document="`changes` is not a {task_id}"
    )
    assert_error(response, 405)
    allow = {m.strip() for m in response.headers["Allow"].split(",")}
    assert "GET" in allow and allow - {"GET", "HEAD", "OPTIONS"} == set()


def test_a_revoked_token_is_401(client, headers):
    client.post("/api/auth/logout", headers=headers)
    response = client.get(FEED, headers=headers)
    assert_error(response, 401)


# ---------------------------------------------------- expiry (horizon, 410)


def _age_tombstones(app, days: int) -> None:
    sql(app, "UPDATE task_tombstones SET deleted_at = :at", at=_sql_time(app, days))


def _sql_time(app, days: int) -> Any:
    at = datetime.now(UTC) - timedelta(days=days)
    return at.replace(tzinfo=None).isoformat(" ") if app_is_sqlite(app) else at


def test_a_cursor_from_before_a_purged_deletion_is_410(app, client, headers, runner):
    tasks = [create(client, headers, f"task {n}") for n in range(3)]
    old_cursor = pull(client, headers)["cursor"]
    delete(client, headers, tasks[0]["id"])
    caught_up = pull(client, headers, old_cursor)
    assert caught_up["deleted"] == [tasks[0]["id"]]
    _age_tombstones(app, 31)
    delete(client, headers, tasks[1]["id"])  # a recent deletion stays

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "Purged 1 task tombstones older than 30 days" in result.stdout

    response = client.get(FEED, query_string={"since": old_cursor}, headers=headers)
    body = assert_error(response, 410)
    assert "without" in body["message"]
    # A cursor issued after the purged deletion still works.
    assert pull(client, headers, caught_up["cursor"])["deleted"] == [tasks[1]["id"]]
    # And a first sync, in pages, is not refused for the old deletions.
    synced = pull_all(client, headers, limit=1)
    assert [task["id"] for task in synced["changes"]] == [tasks[2]["id"]]


def test_tombstones_younger_than_30_days_are_kept(app, client, headers, runner):
    task = create(client, headers, "gone")
    cursor = pull(client, headers)["cursor"]
    delete(client, headers, task["id"])
    _age_tombstones(app, 29)
    assert runner.invoke(args=["purge"]).exit_code == 0
    assert pull(client, headers, cursor)["deleted"] == [task["id"]]


def test_a_first_sync_under_way_survives_a_purge_of_older_deletions(app, client, headers, runner):
    tasks = [create(client, headers, f"task {n}") for n in range(4)]
    delete(client, headers, tasks[0]["id"])
    first = pull(client, headers, limit=1)
    _age_tombstones(app, 31)
    assert runner.invoke(args=["purge"]).exit_code == 0
    rest = pull_all(client, headers, first["cursor"], limit=1)
    assert first["changes"] + rest["changes"] == tasks[1:]
    assert rest["deleted"] == []


# ------------------------------------------------------- concurrency (live)

LIVE_TIMEOUT = 60


@pytest.mark.live
def test_a_client_following_cursors_during_concurrent_writes_ends_with_the_servers_state(
    app, live_server: str
) -> None:
    """Writers create, change and delete tasks through several gunicorn
    workers while a client pulls; it never sees a task go back to an older
    state, never gets an unchanged task twice, and after the writers stop it
    holds exactly what a fresh listing shows."""
    email = f"sync-{uuid.uuid4().hex}@example.com"
    password = "correct horse battery staple"
    body = {"email": email, "password": password}
    assert requests.post(f"{live_server}/api/auth/register", json=body, timeout=60).ok
    token = requests.post(f"{live_server}/api/auth/login", json=body, timeout=60).json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    base = f"{live_server}/api/me/tasks"

    writers, rounds = 6, 25
    failures: list[BaseException] = []

    def write(number: int) -> None:
        try:
            with requests.Session() as session:
                mine: list[str] = []
                for step in range(rounds):
                    created = session.post(
                        base, json={"title": f"w{number}-{step}"}, headers=auth, timeout=60
                    )
                    assert created.status_code == 201, created.text
                    mine.append(created.json()["id"])
                    if step % 3 == 0:  # change one of the older ones
                        response = session.patch(
                            f"{base}/{mine[len(mine) // 2]}",
                            json={"title": f"w{number}-{step}-edited", "tags": [f"t{step % 4}"]},
                            headers=auth,
                            timeout=60,
                        )
                    elif step % 3 == 1:
                        response = session.patch(
                            f"{base}/{mine[-1]}/complete", headers=auth, timeout=60
                        )
                    else:
                        response = session.delete(f"{base}/{mine.pop(0)}", headers=auth, timeout=60)
                    assert response.status_code in (200, 204), response.text
        except BaseException as exc:
            failures.append(exc)

    state: dict[str, dict[str, Any]] = {}
    seen_updated_at: dict[str, str] = {}
    deleted_seen: set[str] = set()
    cursor: str | None = None

    def follow(session: requests.Session) -> bool:
        """One pull, applied; whether it brought anything."""
        nonlocal cursor
        params = {"limit": 7} if cursor is None else {"limit": 7, "since": cursor}
        response = session.get(f"{base}/changes", params=params, headers=auth, timeout=60)
        assert response.status_code == 200, response.text
        page = response.json()
        for task in page["changes"]:
            previous = seen_updated_at.get(task["id"])
            # Shown again only when it changed again, never back in time.
            assert previous is None or task["updated_at"] > previous, (previous, task)
            seen_updated_at[task["id"]] = task["updated_at"]
            state[task["id"]] = task
        for task_id in page["deleted"]:
            assert task_id not in deleted_seen, task_id
            deleted_seen.add(task_id)
            state.pop(task_id, None)
        cursor = page["cursor"]
        return bool(page["changes"] or page["deleted"] or page["has_more"])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    with requests.Session() as session:
        for thread in threads:
            thread.start()
        pulls = 0
        while any(thread.is_alive() for thread in threads):
            follow(session)
            pulls += 1
        for thread in threads:
            thread.join(timeout=2 * LIVE_TIMEOUT)
        assert not failures, failures[0]
        # Writers stopped: once every write is settled, pull until nothing is
        # left, and then nothing new arrives.
        wait_until_settled(app)
        while follow(session):
            pass
        assert not follow(session)
        listing = session.get(base, params={"page_size": 1000}, headers=auth, timeout=60)
    assert listing.status_code == 200
    server = {task["id"]: task for task in listing.json()}
    assert pulls > 1
    assert len(server) == writers * (rounds - rounds // 3)
    assert state == server
