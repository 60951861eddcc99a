"""Priority, due date and tags on a task (API.md, Version 1.1: More on a task;
Details (1.1): Fields), over the real app on the test database."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import TASK_KEYS, assert_error, send

EMOJI = "\U0001f600"


@pytest.fixture
def create(client, headers):
    def do_create(**body: Any) -> dict[str, Any]:
        response = send(client, "POST", "/api/me/tasks", {"title": "t", **body}, headers)
        assert response.status_code == 201, response.get_data(as_text=True)
        assert set(response.json) == TASK_KEYS
        return response.json  # type: ignore[no-any-return]

    return do_create


@pytest.fixture
def write(client, headers):
    """PUT or PATCH a task; a 200 expected; the task."""

    def do_write(method: str, task_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = send(client, method, f"/api/me/tasks/{task_id}", body, headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert set(response.json) == TASK_KEYS
        return response.json  # type: ignore[no-any-return]

    return do_write


def stored(client, headers, task_id: str) -> dict[str, Any]:
    response = client.get(f"/api/me/tasks/{task_id}", headers=headers)
    assert response.status_code == 200
    return response.json  # type: ignore[no-any-return]


def field_error(response: Any, field: str) -> list[str]:
    """A 422 with exactly one field in error, under `json`: its messages, a
    flat list of strings."""
    body = assert_error(response, 422, error_fields={"json": {field}})
    messages = body["errors"]["json"][field]
    assert isinstance(messages, list) and all(isinstance(m, str) for m in messages), body
    return messages  # type: ignore[no-any-return]


def url_for(method: str, task: dict[str, Any]) -> str:
    return "/api/me/tasks" if method == "POST" else f"/api/me/tasks/{task['id']}"


# -------------------------------------------------------------------- defaults


def test_a_new_task_has_the_defaults(create, client, headers):
    task = create()
    assert task["priority"] == "medium"
    assert task["due_at"] is None
    assert task["tags"] == []
    assert stored(client, headers, task["id"]) == task


def test_the_fields_round_trip_through_every_read(create, client, headers):
    task = create(priority="high", due_at="2026-12-24T18:00:00Z", tags=["Home", "errands"])
    assert (task["priority"], task["due_at"], task["tags"]) == (
        "high",
        "2026-12-24T18:00:00.000000Z",
        ["home", "errands"],
    )
    assert stored(client, headers, task["id"]) == task
    listed = client.get("/api/me/tasks", headers=headers).json
    assert listed == [task]


@pytest.mark.parametrize("priority", ["low", "medium", "high"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_each_priority_is_accepted(create, client, headers, method, priority):
    task = create(priority="low" if priority != "low" else "high")
    response = send(
        client, method, url_for(method, task), {"title": "t", "priority": priority}, headers
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    assert response.json["priority"] == priority
    assert stored(client, headers, response.json["id"])["priority"] == priority


# ------------------------------------------------------------- invalid bodies

INVALID = [
    ({"priority": None}, "priority"),
    ({"priority": "urgent"}, "priority"),
    ({"priority": "HIGH"}, "priority"),
    ({"priority": " high"}, "priority"),
    ({"priority": ""}, "priority"),
    ({"priority": 2}, "priority"),
    ({"priority": ["high"]}, "priority"),
    ({"tags": None}, "tags"),
    ({"tags": "work"}, "tags"),
    ({"tags": {"work": 1}}, "tags"),
    ({"tags": [1]}, "tags"),
    ({"tags": [None]}, "tags"),
    ({"tags": [["work"]]}, "tags"),
    ({"tags": [""]}, "tags"),
    ({"tags": ["   "]}, "tags"),
    ({"tags": ["\t\n"]}, "tags"),
    ({"tags": ["ok", ""]}, "tags"),
    ({"tags": ["x" * 51]}, "tags"),
    ({"tags": [" " + "x" * 51 + " "]}, "tags"),
    ({"tags": [EMOJI * 51]}, "tags"),
    ({"tags": ["a\x00b"]}, "tags"),
    ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ({"tags": [f"T{i}" for i in range(11)] + [f"t{i}" for i in range(11, 21)]}, "tags"),
    ({"due_at": "2026-12-24"}, "due_at"),
    ({"due_at": 1798135200}, "due_at"),
    ({"due_at": 1798135200.5}, "due_at"),
    ({"due_at": True}, "due_at"),
    ({"due_at": ["2026-12-24T18:00:00Z"]}, "due_at"),
    ({"due_at": {}}, "due_at"),
    ({"due_at": ""}, "due_at"),
    ({"due_at": "2026-12-24 18:00:00Z"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00.123456"}, "due_at"),
    ({"due_at": "2026-12-24T18:00Z"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00.Z"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00+0100"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00+01"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00+24:00"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00+01:60"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00 Z"}, "due_at"),
    ({"due_at": " 2026-12-24T18:00:00Z"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00Z "}, "due_at"),
    ({"due_at": "2026-12-24T18:00:00UTC"}, "due_at"),
    ({"due_at": "2026-W52-4T18:00:00Z"}, "due_at"),
    ({"due_at": "20261224T180000Z"}, "due_at"),
    ({"due_at": "2026-13-01T00:00:00Z"}, "due_at"),
    ({"due_at": "2026-02-29T00:00:00Z"}, "due_at"),
    ({"due_at": "2026-12-32T00:00:00Z"}, "due_at"),
    ({"due_at": "2026-12-24T24:00:00Z"}, "due_at"),
    ({"due_at": "2026-12-24T18:60:00Z"}, "due_at"),
    ({"due_at": "2026-12-24T18:00:61Z"}, "due_at"),
    ({"due_at": "\uff12\uff10\uff12\uff16-12-24T18:00:00Z"}, "due_at"),  # full-width digits
    ({"due_at": "2026-12-24T18:00:00Z\x00"}, "due_at"),
    ({"due_at": "0000-01-01T00:00:00Z"}, "due_at"),
    ({"due_at": "0001-01-01T00:30:00+01:00"}, "due_at"),  # year 0 in UTC
    ({"due_at": "9999-12-31T23:30:00-01:00"}, "due_at"),  # year 10000 in UTC
    ({"due_at": "10000-01-01T00:00:00Z"}, "due_at"),
    ({"due_at": "-0001-01-01T00:00:00Z"}, "due_at"),
]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(("fields", "field"), INVALID, ids=[repr(f)[:60] for f, _ in INVALID])
def test_an_invalid_field_is_a_flat_422_and_changes_nothing(
    create, client, headers, method, fields, field
):
    task = create(priority="high", due_at="2026-01-01T00:00:00Z", tags=["keep"])
    response = send(client, method, url_for(method, task), {"title": "t", **fields}, headers)
    field_error(response, field)
    assert stored(client, headers, task["id"]) == task
    assert client.get("/api/me/tasks", headers=headers).json == [task]


def test_a_tag_error_names_the_field_not_the_index(client, headers):
    response = send(
        client, "POST", "/api/me/tasks", {"title": "t", "tags": ["ok", "", "x" * 51]}, headers
    )
    messages = field_error(response, "tags")
    assert messages and all(isinstance(m, str) and m.strip() for m in messages)


# --------------------------------------------------------------------- tags

TAG_CASES = [
    (["work"], ["work"]),
    ([" Work ", "HOME"], ["work", "home"]),
    (["b", "a", "c"], ["b", "a", "c"]),  # the order first given, not sorted
    (["Work", "work", " WORK ", "home", "Home"], ["work", "home"]),  # first appearance
    (["Straße"], ["straße"]),  # lower case, not case folding ("strasse")
    (["STRASSE", "straße"], ["strasse", "straße"]),  # different tags
    (["İ"], ["i\u0307"]),  # U+0130 lower-cases to i + combining dot above
    (["ΣΑΣ"], ["σας"]),  # final sigma
    (["Ǆ"], ["ǆ"]),
    (["café", "cafe\u0301"], ["café", "cafe\u0301"]),  # no normalisation: two tags
    (["x" * 50], ["x" * 50]),
    (["  " + "X" * 50 + "\t"], ["x" * 50]),  # counted after trimming
    (["İ" * 50], ["i\u0307" * 50]),  # counted before lower-casing: 100 code points stored
    ([EMOJI * 50], [EMOJI * 50]),  # code points, not UTF-16 units or bytes
    (["e\u0301" * 25], ["e\u0301" * 25]),
    (
        ["<b>x</b>", "'; DROP TABLE tags; --", "%_\\"],
        ["<b>x</b>", "'; drop table tags; --", "%_\\"],
    ),
    (["two words"], ["two words"]),
    ([], []),
]


@pytest.mark.parametrize(("given", "expected"), TAG_CASES, ids=[repr(g)[:40] for g, _ in TAG_CASES])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_tags_are_trimmed_lower_cased_and_collapsed_in_order(
    create, client, headers, method, given, expected
):
    task = create(tags=["before"])
    response = send(client, method, url_for(method, task), {"title": "t", "tags": given}, headers)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    assert response.json["tags"] == expected
    assert stored(client, headers, response.json["id"])["tags"] == expected


def test_twenty_tags_are_accepted(create):
    tags = [f"t{i:02}" for i in range(20)]
    assert create(tags=tags)["tags"] == tags


def test_the_limit_counts_tags_after_duplicates_collapse(create, client, headers):
    given = [f"t{i:02}" for i in range(20)] + ["T05"]  # 21 given, one a duplicate
    task = create(tags=given)
    assert task["tags"] == given[:20]
    many = [f"x{i}" for i in range(19)] + ["Dup"] * 30  # 49 given, 20 distinct
    response = send(client, "PATCH", f"/api/me/tasks/{task['id']}", {"tags": many}, headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["tags"] == [f"x{i}" for i in range(19)] + ["dup"]


def test_patch_tags_replaces_the_whole_list(create, write):
    task = create(tags=["a", "b", "c"])
    assert write("PATCH", task["id"], {"tags": ["d", "b"]})["tags"] == ["d", "b"]
    assert write("PATCH", task["id"], {"title": "other"})["tags"] == ["d", "b"]
    assert write("PATCH", task["id"], {"tags": []})["tags"] == []


def test_tags_of_one_task_do_not_touch_another(create, write, client, headers):
    one = create(tags=["shared", "one"])
    two = create(tags=["shared", "two"])
    write("PATCH", one["id"], {"tags": ["other"]})
    assert stored(client, headers, two["id"])["tags"] == ["shared", "two"]
    response = client.delete(f"/api/me/tasks/{one['id']}", headers=headers)
    assert response.status_code == 204
    assert stored(client, headers, two["id"])["tags"] == ["shared", "two"]


# ------------------------------------------------------------------- due_at

DUE_CASES = [
    ("2026-12-24T18:00:00Z", "2026-12-24T18:00:00.000000Z"),
    ("2026-12-24t18:00:00z", "2026-12-24T18:00:00.000000Z"),
    ("2026-12-24T18:00:00+00:00", "2026-12-24T18:00:00.000000Z"),
    ("2026-12-24T18:00:00-00:00", "2026-12-24T18:00:00.000000Z"),
    ("2026-12-24T19:30:00+01:30", "2026-12-24T18:00:00.000000Z"),
    ("2026-12-24T13:00:00-05:00", "2026-12-24T18:00:00.000000Z"),
    ("2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000000Z"),  # the next year in UTC
    ("2026-12-24T18:00:00.5Z", "2026-12-24T18:00:00.500000Z"),
    ("2026-12-24T18:00:00.123456Z", "2026-12-24T18:00:00.123456Z"),
    ("2026-12-24T18:00:00.1234569Z", "2026-12-24T18:00:00.123456Z"),  # cut, not rounded
    ("2026-12-24T18:00:00.9999999999Z", "2026-12-24T18:00:00.999999Z"),
    ("2026-12-24T18:00:00.000000001+02:00", "2026-12-24T16:00:00.000000Z"),
    ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000000Z"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
    ("0001-01-01T01:30:00+01:00", "0001-01-01T00:30:00.000000Z"),
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
    ("9999-12-31T23:30:00+01:00", "9999-12-31T22:30:00.000000Z"),
    ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
]


@pytest.mark.parametrize(("given", "expected"), DUE_CASES)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_due_at_is_returned_in_utc_with_microseconds(
    create, client, headers, method, given, expected
):
    task = create()
    response = send(client, method, url_for(method, task), {"title": "t", "due_at": given}, headers)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    assert response.json["due_at"] == expected
    assert stored(client, headers, response.json["id"])["due_at"] == expected
    listed = client.get("/api/me/tasks?sort=due_at", headers=headers).json
    assert listed[0]["due_at"] == expected


def test_due_at_null_clears_it(create, write):
    task = create(due_at="2026-12-24T18:00:00Z")
    assert write("PATCH", task["id"], {"due_at": None})["due_at"] is None
    task = create(due_at="2026-12-24T18:00:00Z")
    assert write("PUT", task["id"], {"title": "t", "due_at": None})["due_at"] is None
    assert create(due_at=None)["due_at"] is None


# ------------------------------------------------------------ PUT and PATCH


def test_put_gives_a_key_left_out_its_default(create, write):
    task = create(priority="high", due_at="2026-12-24T18:00:00Z", tags=["a"])
    replaced = write("PUT", task["id"], {"title": "new"})
    assert (replaced["priority"], replaced["due_at"], replaced["tags"]) == ("medium", None, [])


def test_patch_keeps_a_key_left_out(create, write):
    task = create(priority="high", due_at="2026-12-24T18:00:00Z", tags=["a"])
    patched = write("PATCH", task["id"], {"title": "new"})
    assert {k: patched[k] for k in ("priority", "due_at", "tags")} == {
        "priority": "high",
        "due_at": "2026-12-24T18:00:00.000000Z",
        "tags": ["a"],
    }


# ---------------------------------------------------------------- updated_at

START = {"priority": "low", "due_at": "2026-12-24T18:00:00Z", "tags": ["a", "b"]}
CHANGES = [
    {"priority": "high"},
    {"due_at": "2026-12-24T18:00:00.000001Z"},
    {"due_at": None},
    {"tags": ["a"]},
    {"tags": ["a", "b", "c"]},
    {"tags": ["b", "a"]},  # the order is part of the value
    {"tags": []},
]
SAME = [
    {"priority": "low"},
    {"due_at": "2026-12-24T19:00:00+01:00"},  # the same instant
    {"due_at": "2026-12-24T18:00:00.0000001Z"},  # cut to the same microsecond
    {"tags": ["a", "b"]},
    {"tags": [" A ", "B", "a"]},  # the same after normalising
    START,
]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize("change", CHANGES)
def test_changing_a_field_moves_updated_at(create, write, method, change):
    task = create(**START)
    changed = write(method, task["id"], {"title": "t", **START, **change})
    assert changed["updated_at"] > task["updated_at"]
    assert changed["created_at"] == task["created_at"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize("same", SAME)
def test_setting_the_same_value_keeps_updated_at(create, write, client, headers, method, same):
    task = create(**START)
    unchanged = write(method, task["id"], {"title": "t", **START, **same})
    assert unchanged == task
    assert stored(client, headers, task["id"]) == task


def test_put_to_the_defaults_moves_updated_at_only_when_something_differs(create, write):
    plain = create()
    assert write("PUT", plain["id"], {"title": "t"}) == plain
    rich = create(tags=["a"])
    assert write("PUT", rich["id"], {"title": "t"})["updated_at"] > rich["updated_at"]


# ------------------------------------------------------------ two users


def test_the_same_tag_name_of_two_users_is_two_tags(
    create, client, headers, make_user, auth_headers
):
    mine = create(tags=["Work"])
    other_headers = auth_headers(make_user())
    response = send(
        client, "POST", "/api/me/tasks", {"title": "theirs", "tags": ["work"]}, other_headers
    )
    assert response.status_code == 201
    theirs = response.json

    # Each sees only their own task under the tag, and their own count.
    mine_listed = client.get("/api/me/tasks?tag=work", headers=headers).json
    theirs_listed = client.get("/api/me/tasks?tag=WORK", headers=other_headers).json
    assert [t["id"] for t in mine_listed] == [mine["id"]]
    assert [t["id"] for t in theirs_listed] == [theirs["id"]]
    assert client.get("/api/me/tags", headers=headers).json == [{"tag": "work", "count": 1}]

    # Emptying one user's tag leaves the other's as it was.
    response = send(client, "PATCH", f"/api/me/tasks/{mine['id']}", {"tags": []}, headers)
    assert response.status_code == 200
    assert client.get("/api/me/tags", headers=headers).json == []
    assert client.get("/api/me/tags", headers=other_headers).json == [{"tag": "work", "count": 1}]
    assert stored(client, other_headers, theirs["id"])["tags"] == ["work"]
