"""Safe retries of a create (API.md, Version 1.1: "Safe retries
(Idempotency-Key)" and the Idempotency bullet of "Details (1.1)")."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from todo_service.db.dialects import utcnow
from todo_service.db.models import IdempotencyKey
from todo_service.extensions import db
from todo_service.services import idempotency

from .helpers import TASK_KEYS, assert_error
from .test_concurrency import TIMEOUT, assert_no_server_errors, bearer, new_account, run_together

KEY_ERROR = {"headers": {"Idempotency-Key"}}


def _post(client, headers, key=None, *, body=None, raw=None, path="/api/me/tasks"):
    """POST a create; `raw` sends those exact bytes as the JSON body."""
    sent = dict(headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    if raw is None:
        raw = json.dumps({"title": "Buy milk"} if body is None else body)
    return client.post(path, data=raw, content_type="application/json", headers=sent)


def _task_count(client, headers) -> int:
    response = client.get("/api/me/tasks", headers=headers)
    assert response.status_code == 200
    return json.loads(response.headers["X-Pagination"])["total"]


def _assert_replay_of(replay, first) -> None:
    assert replay.status_code == first.status_code == 201
    assert replay.get_data() == first.get_data()
    assert replay.headers["Location"] == first.headers["Location"]
    assert replay.headers["Idempotent-Replayed"] == "true"


# ----------------------------------------------------------------- replays


def test_a_repeat_creates_nothing_and_replays_the_first_answer(client, headers):
    first = _post(client, headers, "order-42", body={"title": "Buy milk", "tags": ["Home"]})
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    task = first.json
    assert set(task) == TASK_KEYS and task["tags"] == ["home"]
    assert first.headers["Location"] == f"/api/{task['user_id']}/tasks/{task['id']}"

    for _ in range(2):
        replay = _post(client, headers, "order-42", body={"title": "Buy milk", "tags": ["Home"]})
        _assert_replay_of(replay, first)
    assert _task_count(client, headers) == 1


def test_the_user_id_and_me_name_the_same_keys(client, user, headers):
    first = _post(client, headers, "k1")
    replay = _post(client, headers, "k1", path=f"/api/{user.id.upper()}/tasks")
    _assert_replay_of(replay, first)
    assert _task_count(client, headers) == 1


@pytest.mark.parametrize(
    "same",
    [
        b'{ "title" :\n"Buy milk" ,\t"priority":"high" }',  # white space between tokens
        b'{"priority": "high", "title": "Buy milk"}',  # the order of the keys
        b'{"title": "Buy \\u006dilk", "priority": "high"}',  # an escape for the same text
    ],
    ids=["white-space-between-tokens", "key-order", "escape"],
)
def test_the_same_parsed_json_is_the_same_body(client, headers, same):
    first = _post(client, headers, "k", raw=b'{"title": "Buy milk", "priority": "high"}')
    assert first.status_code == 201
    _assert_replay_of(_post(client, headers, "k", raw=same), first)
    assert _task_count(client, headers) == 1


@pytest.mark.parametrize(
    "other",
    [
        {"title": "Buy bread", "priority": "high"},
        {"title": "Buy milk ", "priority": "high"},  # trimmed alike, yet another body
        {"title": "Buy milk", "priority": "high", "completed": False},  # an explicit default
        {"title": "Buy milk", "priority": "high", "tags": []},
        {"title": "Buy milk", "priority": "high", "status": "pending"},
        {"title": "Buy milk"},
    ],
    ids=["other-title", "inner-space", "explicit-completed", "explicit-tags", "status", "fewer"],
)
def test_the_same_key_with_another_body_is_422_and_creates_nothing(client, headers, other):
    first = _post(client, headers, "k", body={"title": "Buy milk", "priority": "high"})
    assert first.status_code == 201

    refused = _post(client, headers, "k", body=other)
    assert_error(refused, 422, error_fields=KEY_ERROR)
    assert "Idempotent-Replayed" not in refused.headers
    assert _task_count(client, headers) == 1
    # The key still answers its own body.
    _assert_replay_of(
        _post(client, headers, "k", body={"title": "Buy milk", "priority": "high"}), first
    )


def test_keys_belong_to_their_user(client, make_user, auth_headers):
    alice, bob = make_user(), make_user()
    for person in (alice, bob):
        response = _post(client, auth_headers(person), "shared-key")
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers
        assert response.json["user_id"] == person.id
        assert _task_count(client, auth_headers(person)) == 1


def test_the_replay_is_the_first_answer_after_the_task_changed(client, headers):
    first = _post(client, headers, "k")
    url = first.headers["Location"]
    changed = client.patch(url, json={"title": "Buy oat milk", "tags": ["x"]}, headers=headers)
    assert changed.status_code == 200
    _assert_replay_of(_post(client, headers, "k"), first)
    assert client.get(url, headers=headers).json["title"] == "Buy oat milk"


def test_the_replay_is_the_first_answer_after_the_task_was_deleted(client, headers):
    first = _post(client, headers, "k")
    assert client.delete(first.headers["Location"], headers=headers).status_code == 204
    _assert_replay_of(_post(client, headers, "k"), first)
    assert _task_count(client, headers) == 0


# ------------------------------------------------- failures leave the key unused


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"title": "  "}', 422),
        (b'{"title": "x", "priority": "urgent"}', 422),
        (b'{"title": ', 400),
        (b"", 422),
    ],
    ids=["blank-title", "bad-priority", "malformed-json", "no-body"],
)
def test_a_failed_first_request_leaves_the_key_unused(client, headers, raw, status):
    response = _post(client, headers, "k", raw=raw)
    assert response.status_code == status
    created = _post(client, headers, "k", body={"title": "Now right"})
    assert created.status_code == 201
    assert "Idempotent-Replayed" not in created.headers
    assert created.json["title"] == "Now right"


def test_a_request_for_another_users_id_leaves_the_key_unused(client, make_user, headers):
    other = make_user()
    assert_error(_post(client, headers, "k", path=f"/api/{other.id}/tasks"), 403)
    created = _post(client, headers, "k")
    assert created.status_code == 201 and "Idempotent-Replayed" not in created.headers


def test_a_revoked_token_gets_401_not_the_replay(client, user, login):
    tokens = login(user)
    auth = bearer(tokens["access_token"])
    assert _post(client, auth, "k").status_code == 201
    assert client.post("/api/auth/logout", headers=auth).status_code == 204
    assert_error(_post(client, auth, "k"), 401)
    assert_error(_post(client, auth, "fresh-key"), 401)
    assert_error(_post(client, auth, "not a key"), 401)


# ------------------------------------------------------------ malformed keys


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "two words", " k", "clé", "ключ".encode().decode("latin-1"), "a/b", "k\t"],
    ids=["empty", "256-chars", "space", "leading-space", "latin-1", "utf-8", "slash", "tab"],
)
@pytest.mark.parametrize(
    "raw",
    [b'{"title": "fine"}', b'{"title": ""}', b'{"title": ', b'{"nope": 1}'],
    ids=["valid-body", "blank-title", "malformed-json", "unknown-field"],
)
def test_a_malformed_key_is_400_under_errors_headers_before_the_body(client, headers, key, raw):
    response = _post(client, headers, key, raw=raw)
    assert_error(response, 400, error_fields=KEY_ERROR)
    assert _task_count(client, headers) == 0


def test_two_key_headers_are_400(client, headers):
    sent = [*headers.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = client.post("/api/me/tasks", json={"title": "x"}, headers=sent)
    assert_error(response, 400, error_fields=KEY_ERROR)


def test_a_missing_token_is_401_before_a_malformed_key(client):
    assert_error(_post(client, {}, "not a key"), 401)


@pytest.mark.parametrize("key", ["k", "K" * 255, "Az09._:-", "2026-12-07T10:00:00.1Z"])
def test_keys_of_the_allowed_characters_up_to_255_work(client, headers, key):
    first = _post(client, headers, key)
    assert first.status_code == 201
    _assert_replay_of(_post(client, headers, key), first)


# ------------------------------------------------ without the header, elsewhere


def test_without_the_header_every_post_creates(app, client, headers):
    for _ in range(2):
        response = _post(client, headers)
        assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert _task_count(client, headers) == 2
    with app.app_context():
        stored = db.session.execute(select(func.count()).select_from(IdempotencyKey)).scalar()
        db.session.remove()
    assert stored == 0


def test_other_methods_ignore_the_header(client, headers):
    url = _post(client, headers).headers["Location"]
    for key in ("k", "not a key"):
        sent = {**headers, "Idempotency-Key": key}
        assert client.get("/api/me/tasks", headers=sent).status_code == 200
        assert client.get(url, headers=sent).status_code == 200
        renamed = client.patch(url, json={"title": f"renamed {key}"}, headers=sent)
        assert renamed.status_code == 200 and "Idempotent-Replayed" not in renamed.headers
        assert client.put(url, json={"title": key}, headers=sent).json["title"] == key
        assert client.patch(f"{url}/complete", headers=sent).status_code == 200
    assert client.delete(url, headers={**headers, "Idempotency-Key": "k"}).status_code == 204


# -------------------------------------------------------------------- expiry


def _age_keys(app, hours: float) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=hours)))


def test_a_key_is_kept_for_24_hours(app, client, headers):
    first = _post(client, headers, "k")
    _age_keys(app, 23.9)
    _assert_replay_of(_post(client, headers, "k"), first)


def test_a_key_older_than_24_hours_is_new_again(app, client, headers):
    first = _post(client, headers, "k", body={"title": "first"})
    _age_keys(app, 24.1)
    again = _post(client, headers, "k", body={"title": "second"})
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert again.json["id"] != first.json["id"]
    _assert_replay_of(_post(client, headers, "k", body={"title": "second"}), again)
    assert _task_count(client, headers) == 2


def test_purge_expired_forgets_only_keys_older_than_24_hours(app, client, headers):
    _post(client, headers, "old")
    _age_keys(app, 25)
    kept = _post(client, headers, "new")
    with app.app_context(), db.engine.begin() as conn:
        assert idempotency.purge_expired(conn, utcnow()) == 1
        assert idempotency.purge_expired(conn) == 0
        keys = conn.execute(select(IdempotencyKey.key)).scalars().all()
    assert keys == ["new"]
    _assert_replay_of(_post(client, headers, "new"), kept)


# --------------------------------------------------------------- concurrency


@pytest.mark.live
def test_concurrent_requests_with_one_key_create_exactly_one_task(live_server: str) -> None:
    racers = 16
    _, tokens = new_account(live_server)
    auth = {**bearer(tokens["access_token"]), "Idempotency-Key": f"race-{uuid.uuid4()}"}
    url = f"{live_server}/api/me/tasks"
    body = {"title": "Only once", "tags": ["race"]}

    responses = run_together(
        racers, lambda session, _: session.post(url, json=body, headers=auth, timeout=TIMEOUT)
    )

    assert_no_server_errors(responses)
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {201, 409}, [(r.status_code, r.text[:200]) for r in responses]
    created = [r for r in responses if r.status_code == 201]
    originals = [r for r in created if "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1, statuses
    (original,) = originals
    for response in created:
        assert response.content == original.content
        assert response.headers["Location"] == original.headers["Location"]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409)

    listing = requests.get(url, headers=bearer(tokens["access_token"]), timeout=TIMEOUT)
    assert [task["id"] for task in listing.json()] == [original.json()["id"]]
    assert json.loads(listing.headers["X-Pagination"])["total"] == 1
    tags = requests.get(
        f"{live_server}/api/me/tags", headers=bearer(tokens["access_token"]), timeout=TIMEOUT
    )
    assert tags.json() == [{"tag": "race", "count": 1}]
