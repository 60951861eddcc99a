"""Concurrency guarantees (API.md: Tasks, Authentication, Details/Concurrency),
with real threads against a real 4-worker gunicorn on the test database.

Everything, the set-up included, goes over HTTP through gunicorn, so that the
requests really race in separate worker processes and database connections.
Each thread has its own `requests.Session`; a `threading.Barrier` releases
them together.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from todo_service.db.models import User
from todo_service.extensions import db

from .helpers import assert_error

pytestmark = pytest.mark.live

TIMEOUT = 60  # seconds, per request: generous, the requests queue up behind 4 workers
PASSWORD = "correct horse battery staple"

T = TypeVar("T")


def run_together(count: int, call: Callable[[requests.Session, int], T]) -> list[T]:
    """Run `call(session, i)` for i in range(count), each in its own thread
    with its own session, all released at once; the results in order of i."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)
    results: list[Any] = [None] * count
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with requests.Session() as session:
                barrier.wait()
                results[index] = call(session, index)
        except BaseException as exc:  # re-raised in the main thread below
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a request thread hung"
    if failures:
        raise failures[0]
    return results


def register(base: str, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = requests.post(
        f"{base}/api/auth/register", json={"email": email, "password": password}, timeout=TIMEOUT
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def login(base: str, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = requests.post(
        f"{base}/api/auth/login", json={"email": email, "password": password}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def new_account(base: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh user registered and logged in over HTTP: (user, token pair)."""
    email = f"racer-{uuid.uuid4().hex}@example.com"
    return register(base, email), login(base, email)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, value
    return parsed


def assert_no_server_errors(responses: list[requests.Response]) -> None:
    statuses = [response.status_code for response in responses]
    assert all(status < 500 for status in statuses), [
        (response.status_code, response.text[:200]) for response in responses
    ]


# ------------------------------------------------------------------- toggles


@pytest.mark.parametrize(
    ("toggles", "initially_completed"),
    [(50, False), (25, True)],
    ids=["50-toggles-from-pending", "25-toggles-from-completed"],
)
def test_concurrent_toggles_flip_the_task_exactly_once_each_in_commit_order(
    live_server: str, toggles: int, initially_completed: bool
) -> None:
    _, tokens = new_account(live_server)
    auth = bearer(tokens["access_token"])
    created = requests.post(
        f"{live_server}/api/me/tasks",
        json={"title": "Race me", "completed": initially_completed},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert created.status_code == 201, created.text
    task = created.json()
    url = f"{live_server}/api/me/tasks/{task['id']}/complete"

    responses = run_together(
        toggles, lambda session, _: session.patch(url, headers=auth, timeout=TIMEOUT)
    )

    assert_no_server_errors(responses)
    assert [r.status_code for r in responses] == [200] * toggles, [r.text for r in responses]
    bodies = [response.json() for response in responses]
    assert all(body["id"] == task["id"] for body in bodies)
    assert all(
        body["status"] == ("completed" if body["completed"] else "pending") for body in bodies
    )
    stamps = [timestamp(body["updated_at"]) for body in bodies]
    assert len(set(stamps)) == toggles, "two toggles reported the same updated_at"
    assert min(stamps) > timestamp(task["updated_at"])
    # In updated_at order the states strictly alternate, starting from the
    # first flip: each toggle saw its predecessor's result, and updated_at
    # grew strictly in commit order (API.md, Tasks).
    in_time_order = [body["completed"] for _, body in sorted(zip(stamps, bodies, strict=True))]
    expected = [initially_completed != (i % 2 == 0) for i in range(toggles)]
    assert in_time_order == expected

    final = requests.get(
        f"{live_server}/api/me/tasks/{task['id']}", headers=auth, timeout=TIMEOUT
    ).json()
    assert final["completed"] is (initially_completed != (toggles % 2 == 1))
    assert timestamp(final["updated_at"]) == max(stamps)
    assert final["created_at"] == task["created_at"]


# ------------------------------------------------------------- registrations


def test_concurrent_registrations_of_one_email_create_exactly_one_account(
    live_server: str, app: Flask
) -> None:
    racers = 20
    email = f"race-{uuid.uuid4().hex[:12]}@example.com"
    # The same address, differently cased and padded: unique case-insensitively.
    spellings = [email, email.upper(), f"  {email}", f"{email.title()}  ", f" {email.upper()} "]
    passwords = [f"password-{i:02d}-of-the-race" for i in range(racers)]

    def attempt(session: requests.Session, i: int) -> requests.Response:
        body = {"email": spellings[i % len(spellings)], "password": passwords[i]}
        return session.post(f"{live_server}/api/auth/register", json=body, timeout=TIMEOUT)

    responses = run_together(racers, attempt)

    assert_no_server_errors(responses)
    winners = [i for i, response in enumerate(responses) if response.status_code == 201]
    assert len(winners) == 1, [(r.status_code, r.text[:200]) for r in responses]
    (winner,) = winners
    for i, response in enumerate(responses):
        if i != winner:
            assert_error(response, 409)
    account = responses[winner].json()
    assert account["email"] == email

    with app.app_context():
        count = db.session.execute(
            select(func.count()).select_from(User).where(func.lower(User.email) == email)
        ).scalar_one()
        db.session.remove()
    assert count == 1

    tokens = login(live_server, email, passwords[winner])
    me = requests.get(
        f"{live_server}/api/auth/me", headers=bearer(tokens["access_token"]), timeout=TIMEOUT
    )
    assert me.status_code == 200
    assert me.json()["id"] == account["id"]
    loser = (winner + 1) % racers
    refused = requests.post(
        f"{live_server}/api/auth/login",
        json={"email": email, "password": passwords[loser]},
        timeout=TIMEOUT,
    )
    assert_error(refused, 401)


# ------------------------------------------------------------------ refreshes


def test_concurrent_refreshes_with_one_token_succeed_exactly_once(live_server: str) -> None:
    racers = 10
    _, tokens = new_account(live_server)
    url = f"{live_server}/api/auth/refresh"
    used = bearer(tokens["refresh_token"])

    responses = run_together(
        racers, lambda session, _: session.post(url, headers=used, timeout=TIMEOUT)
    )

    assert_no_server_errors(responses)
    winners = [response for response in responses if response.status_code == 200]
    assert len(winners) == 1, [(r.status_code, r.text[:200]) for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_error(response, 401)
            assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    pair = winners[0].json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}

    # The winner's new pair works; the used token stays spent.
    me = requests.get(
        f"{live_server}/api/auth/me", headers=bearer(pair["access_token"]), timeout=TIMEOUT
    )
    assert me.status_code == 200
    assert (
        requests.post(url, headers=bearer(pair["refresh_token"]), timeout=TIMEOUT).status_code
        == 200
    )
    assert_error(requests.post(url, headers=used, timeout=TIMEOUT), 401)


# ---------------------------------------------------- creates and logouts


def test_concurrent_creates_by_several_users_all_land_with_exact_totals(
    live_server: str,
) -> None:
    users, per_user = 4, 25
    accounts = [new_account(live_server) for _ in range(users)]

    def create(session: requests.Session, i: int) -> requests.Response:
        account, tokens = accounts[i % users]
        return session.post(
            f"{live_server}/api/{account['id']}/tasks",
            json={"title": f"task {i // users} of user {i % users}"},
            headers=bearer(tokens["access_token"]),
            timeout=TIMEOUT,
        )

    responses = run_together(users * per_user, create)

    assert_no_server_errors(responses)
    assert [r.status_code for r in responses] == [201] * (users * per_user)
    for i, response in enumerate(responses):
        assert response.json()["user_id"] == accounts[i % users][0]["id"]
        assert response.headers["Location"].endswith(f"/tasks/{response.json()['id']}")

    for number, (account, tokens) in enumerate(accounts):
        listing = requests.get(
            f"{live_server}/api/me/tasks",
            params={"page_size": 1000},
            headers=bearer(tokens["access_token"]),
            timeout=TIMEOUT,
        )
        assert listing.status_code == 200
        assert json.loads(listing.headers["X-Pagination"])["total"] == per_user
        tasks = listing.json()
        assert len({task["id"] for task in tasks}) == per_user
        assert {task["title"] for task in tasks} == {
            f"task {k} of user {number}" for k in range(per_user)
        }
        assert all(task["user_id"] == account["id"] for task in tasks)


def test_concurrent_logouts_with_one_access_token_never_fail_and_revoke_it(
    live_server: str,
) -> None:
    racers = 10
    _, tokens = new_account(live_server)
    auth = bearer(tokens["access_token"])

    responses = run_together(
        racers,
        lambda session, _: session.post(
            f"{live_server}/api/auth/logout",
            json={"refresh_token": tokens["refresh_token"]},
            headers=auth,
            timeout=TIMEOUT,
        ),
    )

    assert_no_server_errors(responses)
    statuses = [response.status_code for response in responses]
    # One logout wins; every other one is a second logout with that token: 401.
    assert statuses.count(204) == 1, statuses
    for response in responses:
        if response.status_code == 204:
            assert response.content == b""
        else:
            assert_error(response, 401)
    # Both tokens are revoked, on every worker.
    for _ in range(4):
        assert_error(requests.get(f"{live_server}/api/auth/me", headers=auth, timeout=TIMEOUT), 401)
    refresh = requests.post(
        f"{live_server}/api/auth/refresh",
        headers=bearer(tokens["refresh_token"]),
        timeout=TIMEOUT,
    )
    assert_error(refresh, 401)


# ---------------------------------------------------------- If-Match races


@pytest.mark.parametrize("field", ["title", "tags"])
def test_of_two_writes_with_the_same_if_match_exactly_one_succeeds(
    live_server: str, field: str
) -> None:
    _, tokens = new_account(live_server)
    auth = bearer(tokens["access_token"])
    created = requests.post(
        f"{live_server}/api/me/tasks", json={"title": "Race me"}, headers=auth, timeout=TIMEOUT
    )
    assert created.status_code == 201, created.text
    url = f"{live_server}/api/me/tasks/{created.json()['id']}"
    etag = created.headers["ETag"]
    for round_number in range(15):
        # Both change the task, each in its own way, from the same ETag.
        bodies = [
            {"title": f"{round_number}-{i}"}
            if field == "title"
            else {"tags": [f"{round_number}-{i}"]}
            for i in range(2)
        ]
        headers = {**auth, "If-Match": etag}
        responses = run_together(
            2,
            lambda session, i, bodies=bodies, headers=headers: session.patch(
                url, json=bodies[i], headers=headers, timeout=TIMEOUT
            ),
        )
        assert_no_server_errors(responses)
        assert sorted(r.status_code for r in responses) == [200, 412], [r.text for r in responses]
        winner = next(r for r in responses if r.status_code == 200)
        assert_error(next(r for r in responses if r.status_code == 412), 412)
        current = requests.get(url, headers=auth, timeout=TIMEOUT)
        assert current.json() == winner.json()  # the loser changed nothing
        assert current.headers["ETag"] == winner.headers["ETag"] != etag
        etag = winner.headers["ETag"]
