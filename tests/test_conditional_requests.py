"""Conditional requests (API.md: Conditional requests (ETag), Details 1.1
Preconditions): ETags on tasks and lists, If-Match on writes, If-None-Match
on reads."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from .helpers import assert_error

TASKS = "/api/me/tasks"


def _create(client, headers, **fields):
    response = client.post(TASKS, json={"title": "a task", **fields}, headers=headers)
    assert response.status_code == 201
    return response


def _with(headers, **extra):
    return {**headers, **{name.replace("_", "-"): value for name, value in extra.items()}}


# ------------------------------------------------------------------ task ETags


def test_every_response_carrying_a_task_has_its_strong_etag(client, headers):
    created = _create(client, headers)
    etag = created.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    url = f"{TASKS}/{created.json['id']}"
    assert client.get(url, headers=headers).headers["ETag"] == etag
    changes = [
        lambda: client.put(url, json={"title": "replaced"}, headers=headers),
        lambda: client.patch(url, json={"title": "patched"}, headers=headers),
        lambda: client.patch(f"{url}/complete", headers=headers),
        lambda: client.patch(f"{url}/complete", json={"completed": False}, headers=headers),
        lambda: client.patch(url, json={"tags": ["x"]}, headers=headers),
    ]
    seen = [etag]
    for change in changes:
        response = change()
        assert response.status_code == 200
        assert response.headers["ETag"] not in seen  # a new one on each change
        seen.append(response.headers["ETag"])
        assert client.get(url, headers=headers).headers["ETag"] == seen[-1]


def test_a_write_that_changes_nothing_keeps_the_etag(client, headers):
    created = _create(client, headers, tags=["a"])
    url = f"{TASKS}/{created.json['id']}"
    etag = created.headers["ETag"]
    for response in (
        client.patch(url, json={"title": "a task"}, headers=headers),
        client.patch(url, json={"tags": ["a"]}, headers=headers),
        client.patch(url, headers=headers),
        client.patch(f"{url}/complete", json={"completed": False}, headers=headers),
    ):
        assert response.status_code == 200
        assert response.headers["ETag"] == etag


# ------------------------------------------------------------- If-None-Match


@pytest.mark.parametrize(
    "header",
    ["{etag}", "W/{etag}", '"other", {etag}', '"other" ,W/{etag}', "*"],
    ids=["exact", "weak", "list", "list-weak", "star"],
)
def test_get_with_if_none_match_naming_the_task_is_304_without_body(client, headers, header):
    created = _create(client, headers)
    etag = created.headers["ETag"]
    url = f"{TASKS}/{created.json['id']}"
    response = client.get(url, headers=_with(headers, If_None_Match=header.format(etag=etag)))
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag


@pytest.mark.parametrize("header", ['"stale"', "", "garbage", 'W/"1"', '"'])
def test_get_with_if_none_match_naming_another_etag_is_200(client, headers, header):
    created = _create(client, headers)
    url = f"{TASKS}/{created.json['id']}"
    response = client.get(url, headers=_with(headers, If_None_Match=header))
    assert response.status_code == 200
    assert response.json == created.json
    assert response.headers["ETag"] == created.headers["ETag"]


def test_an_old_etag_no_longer_gives_304(client, headers):
    created = _create(client, headers)
    url = f"{TASKS}/{created.json['id']}"
    client.patch(url, json={"title": "changed"}, headers=headers)
    response = client.get(url, headers=_with(headers, If_None_Match=created.headers["ETag"]))
    assert response.status_code == 200 and response.json["title"] == "changed"


def test_if_none_match_star_on_a_missing_task_is_404(client, headers):
    response = client.get(f"{TASKS}/{uuid.uuid4()}", headers=_with(headers, If_None_Match="*"))
    assert_error(response, 404)


# ------------------------------------------------------------------- If-Match


def _writes(url):
    """Each conditional write: (method, path, body)."""
    return [
        ("put", url, {"title": "replaced"}),
        ("patch", url, {"title": "patched"}),
        ("patch", url, {"tags": ["t"]}),
        ("patch", url, None),
        ("patch", f"{url}/complete", None),
        ("patch", f"{url}/complete", {"completed": True}),
        ("delete", url, None),
    ]


WRITE_IDS = ["put", "patch", "patch-tags", "patch-empty", "toggle", "set", "delete"]


def _send(client, method, path, body, headers):
    kwargs = {} if body is None else {"json": body}
    return getattr(client, method)(path, headers=headers, **kwargs)


@pytest.mark.parametrize("write", range(7), ids=WRITE_IDS)
@pytest.mark.parametrize(
    "header",
    ['"20000101000000000000"', "W/{etag}", "", "nonsense", '"x", W/{etag}', "{etag}x"],
    ids=["stale", "weak", "empty", "garbage", "list-without", "malformed"],
)
def test_a_write_whose_if_match_fails_is_412_and_changes_nothing(client, headers, write, header):
    created = _create(client, headers, tags=["keep"])
    url = f"{TASKS}/{created.json['id']}"
    etag = created.headers["ETag"]
    method, path, body = _writes(url)[write]
    response = _send(client, method, path, body, _with(headers, If_Match=header.format(etag=etag)))
    assert_error(response, 412)
    after = client.get(url, headers=headers)
    assert after.json == created.json and after.headers["ETag"] == etag


@pytest.mark.parametrize("write", range(7), ids=WRITE_IDS)
@pytest.mark.parametrize("header", ["{etag}", '"other", {etag}', "*", '"x",*'])
def test_a_write_whose_if_match_holds_proceeds(client, headers, write, header):
    created = _create(client, headers)
    url = f"{TASKS}/{created.json['id']}"
    etag = created.headers["ETag"]
    method, path, body = _writes(url)[write]
    response = _send(client, method, path, body, _with(headers, If_Match=header.format(etag=etag)))
    if method == "delete":
        assert response.status_code == 204
        assert client.get(url, headers=headers).status_code == 404
    else:
        assert response.status_code == 200
        assert response.headers["ETag"] == client.get(url, headers=headers).headers["ETag"]


def test_the_etag_of_a_write_is_the_precondition_of_the_next(client, headers):
    created = _create(client, headers)
    url = f"{TASKS}/{created.json['id']}"
    first = client.patch(
        url, json={"title": "one"}, headers=_with(headers, If_Match=created.headers["ETag"])
    )
    assert first.status_code == 200
    stale = client.patch(
        url, json={"title": "two"}, headers=_with(headers, If_Match=created.headers["ETag"])
    )
    assert_error(stale, 412)
    fresh = client.patch(
        url, json={"title": "two"}, headers=_with(headers, If_Match=first.headers["ETag"])
    )
    assert fresh.status_code == 200 and fresh.json["title"] == "two"


def test_without_if_match_writes_proceed_as_before(client, headers):
    created = _create(client, headers)
    url = f"{TASKS}/{created.json['id']}"
    assert client.put(url, json={"title": "x"}, headers=headers).status_code == 200
    assert client.delete(url, headers=headers).status_code == 204


@pytest.mark.parametrize("write", range(7), ids=WRITE_IDS)
def test_a_missing_or_foreign_task_is_404_before_412(
    client, headers, make_user, auth_headers, write
):
    other = auth_headers(make_user())
    foreign = _create(client, other).json["id"]
    for task_id in (foreign, str(uuid.uuid4())):
        method, path, body = _writes(f"{TASKS}/{task_id}")[write]
        response = _send(client, method, path, body, _with(headers, If_Match='"stale"'))
        assert_error(response, 404)
    assert client.get(f"{TASKS}/{foreign}", headers=other).status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("put", "", {"title": ""}),
        ("put", "", {"title": "x", "bogus": 1}),
        ("patch", "", {"priority": "urgent"}),
        ("patch", "", b"{not json"),
        ("patch", "/complete", {}),
        ("patch", "/complete", b"[1"),
    ],
    ids=["put-blank", "put-unknown", "patch-enum", "patch-malformed", "set-empty", "set-malformed"],
)
def test_a_failed_precondition_is_412_before_the_body(client, headers, method, suffix, body):
    created = _create(client, headers)
    url = f"{TASKS}/{created.json['id']}{suffix}"
    kwargs = (
        {"data": body, "content_type": "application/json"}
        if isinstance(body, bytes)
        else {"json": body}
    )
    stale = _with(headers, If_Match='"20000101000000000000"')
    assert_error(getattr(client, method)(url, headers=stale, **kwargs), 412)
    missing = url.replace(created.json["id"], str(uuid.uuid4()))
    assert_error(getattr(client, method)(missing, headers=stale, **kwargs), 404)
    # A precondition that holds: the body's own error, as without If-Match.
    good = _with(headers, If_Match=created.headers["ETag"])
    expected = getattr(client, method)(url, headers=headers, **kwargs).status_code
    assert expected in (400, 422)
    assert getattr(client, method)(url, headers=good, **kwargs).status_code == expected
    after = client.get(f"{TASKS}/{created.json['id']}", headers=headers)
    assert after.json == created.json


def test_without_if_match_the_body_is_checked_before_the_task(client, headers):
    response = client.put(f"{TASKS}/{uuid.uuid4()}", json={"title": ""}, headers=headers)
    assert_error(response, 422, error_fields={"json": {"title"}})


def test_a_revoked_token_is_401_before_412(client, headers):
    created = _create(client, headers)
    url = f"{TASKS}/{created.json['id']}"
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    stale = _with(headers, If_Match='"stale"')
    assert_error(client.patch(url, json={"title": "x"}, headers=stale), 401)
    assert_error(client.patch(url, json={"title": ""}, headers=stale), 401)
    assert_error(client.delete(url, headers=stale), 401)


# ------------------------------------------------------------------ list ETags


def _list(client, headers, query="", **extra):
    return client.get(f"{TASKS}{query}", headers=_with(headers, **extra))


def test_a_list_has_an_etag_and_answers_304_to_it(client, headers):
    _create(client, headers)
    first = _list(client, headers)
    etag = first.headers["ETag"]
    again = _list(client, headers, If_None_Match=etag)
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert _list(client, headers, If_None_Match=f'"x", {etag}').status_code == 304
    strong = etag.removeprefix("W/")
    assert _list(client, headers, If_None_Match=strong).status_code == 304  # weak comparison
    assert _list(client, headers, If_None_Match="*").status_code == 304
    assert _list(client, headers, If_None_Match='W/"nope"').status_code == 200


def test_an_empty_list_has_an_etag_too(client, headers):
    first = _list(client, headers)
    assert first.json == [] and first.headers["ETag"]
    assert _list(client, headers, If_None_Match=first.headers["ETag"]).status_code == 304
    _create(client, headers)
    assert _list(client, headers, If_None_Match=first.headers["ETag"]).status_code == 200


def test_the_list_etag_differs_between_query_strings_with_the_same_content(client, headers):
    _create(client, headers)
    etags = {
        _list(client, headers, query).headers["ETag"]
        for query in ("", "?page=1", "?page_size=100", "?sort=-created_at", "?status=pending")
    }
    assert len(etags) == 5


@pytest.mark.parametrize(
    "query",
    ["?page_size=1&sort=-updated_at", "?priority=high", "?tag=shown", "?q=shown", "?overdue=true"],
)
def test_the_list_etag_changes_with_any_task_even_outside_the_page_or_filter(
    client, headers, query
):
    shown = _create(
        client,
        headers,
        title="shown",
        priority="high",
        tags=["shown"],
        due_at="2000-01-01T00:00:00Z",
    ).json
    other = _create(client, headers, title="other", priority="low").json
    # `other` is newest: on the first page of one; move `shown` to be newest.
    client.patch(f"{TASKS}/{shown['id']}", json={"description": "newest"}, headers=headers)
    page = _list(client, headers, query)
    assert [task["id"] for task in page.json] == [shown["id"]]

    def changed(etag):
        response = _list(client, headers, query, If_None_Match=etag)
        assert response.status_code in (200, 304)
        return response.status_code == 200, response.headers["ETag"]

    etag = page.headers["ETag"]
    assert changed(etag) == (False, etag)
    steps = [
        lambda: client.patch(f"{TASKS}/{other['id']}", json={"title": "other!"}, headers=headers),
        lambda: client.patch(f"{TASKS}/{other['id']}/complete", headers=headers),
        lambda: _create(client, headers, title="new"),
        lambda: client.delete(f"{TASKS}/{other['id']}", headers=headers),
    ]
    for step in steps:
        assert step().status_code in (200, 201, 204)
        modified, new_etag = changed(etag)
        assert modified and new_etag != etag
        assert changed(new_etag) == (False, new_etag)
        etag = new_etag


def test_an_overdue_list_etag_changes_when_a_task_falls_due(client, headers):
    due = datetime.now(UTC) + timedelta(seconds=2)
    task = _create(client, headers, due_at=due.isoformat()).json
    first = _list(client, headers, "?overdue=true")
    assert first.json == []
    # Nothing is written while the clock passes the due date.
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.05)
    response = _list(client, headers, "?overdue=true", If_None_Match=first.headers["ETag"])
    assert response.status_code == 200 and [t["id"] for t in response.json] == [task["id"]]
