"""Tasks (API.md, Tasks; Details: Booleans and enums, Toggle, Bodies,
Representations): create, read, replace, patch, delete, toggle, and the
timestamps that come with them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import TASK_KEYS, assert_error, send

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)$")
EMOJI = "\U0001f600"  # one code point, four UTF-8 bytes, two UTF-16 units
SAFE_BODIES = {"POST": {"title": "t"}, "PUT": {"title": "t"}, "PATCH": {"title": "t"}}


def timestamp(value: str) -> datetime:
    assert RFC3339_UTC.match(value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    return parsed


def assert_task(task: dict[str, Any], **expected: Any) -> dict[str, Any]:
    """The task representation, exactly (API.md, Representations)."""
    assert set(task) == TASK_KEYS, task
    assert str(uuid.UUID(task["id"])) == task["id"]
    assert str(uuid.UUID(task["user_id"])) == task["user_id"]
    assert isinstance(task["title"], str) and task["title"]
    assert task["description"] is None or isinstance(task["description"], str)
    assert isinstance(task["completed"], bool)
    assert task["status"] == ("completed" if task["completed"] else "pending")
    assert timestamp(task["updated_at"]) >= timestamp(task["created_at"])
    for key, value in expected.items():
        assert task[key] == value, (key, task)
    return task


def assert_validation_error(response: Any, location: str, *fields: str) -> dict[str, Any]:
    """A 422 whose field errors under `location` include `fields`."""
    assert response.status_code == 422, response.get_data(as_text=True)
    got = {loc: set(names) for loc, names in response.json.get("errors", {}).items()}
    body = assert_error(response, 422, error_fields=got)
    assert location in got and set(fields) <= got[location], body
    return body


def assert_client_error(response: Any, *codes: int) -> None:
    """One of `codes`, in the error shape, never a 500."""
    assert response.status_code in codes, response.get_data(as_text=True)
    errors = response.json.get("errors")
    if errors is None:
        assert_error(response, response.status_code)
    else:
        assert_error(
            response,
            response.status_code,
            error_fields={loc: set(names) for loc, names in errors.items()},
        )


@pytest.fixture
def create(client, headers):
    def do_create(**body: Any) -> dict[str, Any]:
        body.setdefault("title", "Buy milk")
        response = send(client, "POST", "/api/me/tasks", body, headers)
        assert response.status_code == 201, response.get_data(as_text=True)
        return assert_task(response.json)

    return do_create


@pytest.fixture
def other_headers(make_user, auth_headers):
    return auth_headers(make_user())


def task_url(task_id: str, ref: str = "me") -> str:
    return f"/api/{ref}/tasks/{task_id}"


def stored(client, headers, task_id: str) -> dict[str, Any]:
    response = client.get(task_url(task_id), headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return assert_task(response.json)


def count_tasks(client, headers) -> int:
    response = client.get("/api/me/tasks", headers=headers)
    assert response.status_code == 200
    return len(response.json)


# ----------------------------------------------------------------------- create


def test_create_returns_the_task_with_a_location(client, user, headers):
    response = client.post("/api/me/tasks", json={"title": "Buy milk"}, headers=headers)

    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    task = assert_task(
        response.json,
        user_id=user.id,
        title="Buy milk",
        description=None,
        completed=False,
        status="pending",
    )
    assert task["created_at"] == task["updated_at"]
    location = urlsplit(response.headers["Location"])
    assert location.path == f"/api/{user.id}/tasks/{task['id']}"
    assert not location.query
    fetched = client.get(location.path, headers=headers)
    assert fetched.status_code == 200
    assert fetched.json == task


def test_create_trims_the_title(create):
    assert create(title="  \t Buy milk \n ")["title"] == "Buy milk"


@pytest.mark.parametrize(
    "title",
    [
        "x",
        "x" * 255,
        "  " + "x" * 255 + "\t\n",  # 255 after trimming
        EMOJI * 255,  # lengths count code points, not bytes or UTF-16 units
        "e\u0301" * 127 + "e",  # 255 code points of combining sequences
    ],
    ids=["one", "255", "255-after-trim", "255-emoji", "255-combining"],
)
def test_create_accepts_titles_up_to_255_code_points(create, title):
    assert create(title=title)["title"] == title.strip()


@pytest.mark.parametrize(
    "title",
    ["x" * 256, " " + "x" * 256 + " ", EMOJI * 256],
    ids=["256", "256-after-trim", "256-emoji"],
)
def test_create_rejects_titles_over_255_code_points(client, headers, title):
    response = send(client, "POST", "/api/me/tasks", {"title": title}, headers)
    assert_error(response, 422, error_fields={"json": {"title"}})
    assert count_tasks(client, headers) == 0


@pytest.mark.parametrize("title", ["", " ", "   \t\n  ", "\u3000"], ids=repr)
def test_blank_title_is_422(client, headers, title):
    response = client.post("/api/me/tasks", json={"title": title}, headers=headers)
    assert_error(response, 422, error_fields={"json": {"title"}})


@pytest.mark.parametrize(
    "body",
    [{}, {"title": None}, {"title": 42}, {"title": ["x"]}, {"description": "d"}],
    ids=["empty", "null", "number", "list", "missing"],
)
def test_create_needs_a_string_title(client, headers, body):
    response = client.post("/api/me/tasks", json=body, headers=headers)
    assert_error(response, 422, error_fields={"json": {"title"}})


@pytest.mark.parametrize("description", [None, "", "d", "x" * 10_000, EMOJI * 10_000], ids=repr)
def test_create_accepts_descriptions_up_to_10000_code_points(create, description):
    assert create(description=description)["description"] == description


@pytest.mark.parametrize("description", ["x" * 10_001, EMOJI * 10_001, 7, True], ids=repr)
def test_create_rejects_bad_descriptions(client, headers, description):
    body = {"title": "t", "description": description}
    response = send(client, "POST", "/api/me/tasks", body, headers)
    assert_error(response, 422, error_fields={"json": {"description"}})


@pytest.mark.parametrize(
    ("fields", "completed"),
    [
        ({}, False),
        ({"completed": False}, False),
        ({"completed": True}, True),
        ({"status": "pending"}, False),
        ({"status": "completed"}, True),
        ({"completed": True, "status": "completed"}, True),
        ({"completed": False, "status": "pending"}, False),
    ],
)
def test_create_takes_completed_or_status(client, headers, fields, completed):
    response = client.post("/api/me/tasks", json={"title": "t", **fields}, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    task = assert_task(response.json)
    assert task["completed"] is completed
    assert task["status"] == ("completed" if completed else "pending")
    assert stored(client, headers, task["id"]) == task


# Bodies that each of POST, PUT and PATCH must refuse, and the field blamed.
INVALID_BODIES = [
    ({"title": "t", "completed": True, "status": "pending"}, "_schema"),
    ({"title": "t", "completed": False, "status": "completed"}, "_schema"),
    ({"title": "t", "completed": "true"}, "completed"),
    ({"title": "t", "completed": "false"}, "completed"),
    ({"title": "t", "completed": 1}, "completed"),
    ({"title": "t", "completed": 0}, "completed"),
    ({"title": "t", "completed": None}, "completed"),
    ({"title": "t", "status": "done"}, "status"),
    ({"title": "t", "status": "Completed"}, "status"),
    ({"title": "t", "status": True}, "status"),
    ({"title": "t", "status": None}, "status"),
    ({"title": "t", "priority": 1}, "priority"),
    ({"title": "t", "id": str(uuid.uuid4())}, "id"),
    ({"title": "t", "user_id": str(uuid.uuid4())}, "user_id"),
    ({"title": "t", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 256}, "title"),
    ({"title": "t", "description": "x" * 10_001}, "description"),
]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
def test_invalid_body_is_422_and_changes_nothing(client, headers, create, method, body, field):
    task = create(title="keep", description="as is")
    url = "/api/me/tasks" if method == "POST" else task_url(task["id"])

    response = send(client, method, url, body, headers)

    assert_error(response, 422, error_fields={"json": {field}})
    assert stored(client, headers, task["id"]) == task
    assert count_tasks(client, headers) == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    "payload",
    [b"[]", b'[{"title": "t"}]', b'"t"', b"42", b"true", b"null"],
    ids=["empty-array", "array", "string", "number", "bool", "null"],
)
def test_json_that_is_not_an_object_is_400_or_422(client, headers, create, method, payload):
    task = create(title="keep")
    url = "/api/me/tasks" if method == "POST" else task_url(task["id"])

    response = client.open(
        url, method=method, data=payload, content_type="application/json", headers=headers
    )

    assert_client_error(response, 400, 422)
    assert stored(client, headers, task["id"]) == task
    assert count_tasks(client, headers) == 1


# ------------------------------------------------------------------ {user_id}


@pytest.mark.parametrize("ref", ["me", "own", "OWN"], ids=["me", "own-id", "own-id-upper"])
def test_user_id_is_me_or_own_id_in_any_case(client, user, headers, ref):
    ref = {"me": "me", "own": user.id.lower(), "OWN": user.id.upper()}[ref]

    created = client.post(f"/api/{ref}/tasks", json={"title": "t"}, headers=headers)
    assert created.status_code == 201
    task = assert_task(created.json, user_id=user.id)
    url = task_url(task["id"], ref)

    assert client.get(f"/api/{ref}/tasks", headers=headers).json == [task]
    assert client.get(url, headers=headers).json == task
    assert client.patch(url, json={"title": "u"}, headers=headers).json["title"] == "u"
    assert client.put(url, json={"title": "v"}, headers=headers).json["title"] == "v"
    assert client.patch(f"{url}/complete", headers=headers).json["completed"] is True
    assert client.delete(url, headers=headers).status_code == 204
    assert client.get(url, headers=headers).status_code == 404


ROUTES = [
    ("GET", ""),
    ("POST", ""),
    ("GET", "/{task}"),
    ("PUT", "/{task}"),
    ("PATCH", "/{task}"),
    ("DELETE", "/{task}"),
    ("PATCH", "/{task}/complete"),
]


@pytest.mark.parametrize(("method", "suffix"), ROUTES)
@pytest.mark.parametrize("case", [str.lower, str.upper], ids=["lower", "upper"])
def test_another_users_id_in_the_path_is_403(
    client, make_user, auth_headers, headers, create, method, suffix, case
):
    other = make_user()
    others_headers = auth_headers(other)
    theirs = client.post(f"/api/{other.id}/tasks", json={"title": "theirs"}, headers=others_headers)
    mine = create(title="mine")
    for task_id in (theirs.json["id"], mine["id"]):
        url = f"/api/{case(other.id)}/tasks" + suffix.format(task=task_id)
        body = None if suffix.endswith("/complete") else SAFE_BODIES.get(method)

        response = client.open(url, method=method, json=body, headers=headers)

        assert_error(response, 403)
    assert client.get("/api/me/tasks", headers=others_headers).json == [theirs.json]
    assert client.get("/api/me/tasks", headers=headers).json == [mine]


NOT_UUIDS = [
    "123",
    "not-a-uuid",
    "00000000-0000-0000-0000-00000000000g",
    "00000000-0000-0000-0000-0000000000000",
    "00000000-0000-0000-0000-00000000000",
    "%00",
    "..",
]
# A `..` segment leaves the documented paths: clients normalise it away.
_DOT_DOT = "a `..` path segment"


@pytest.mark.parametrize(("method", "suffix"), ROUTES)
@pytest.mark.parametrize("bad", NOT_UUIDS)
def test_user_id_that_is_not_a_uuid_is_404(client, headers, create, method, suffix, bad):
    task = create()
    url = f"/api/{bad}/tasks" + suffix.format(task=task["id"])
    response = client.open(
        url,
        method=method,
        json=SAFE_BODIES.get(method),
        headers=headers,
        off_document=_DOT_DOT if bad == ".." else None,
    )
    assert_error(response, 404)


@pytest.mark.parametrize(("method", "suffix"), ROUTES[2:])
@pytest.mark.parametrize("bad", NOT_UUIDS)
def test_task_id_that_is_not_a_uuid_is_404(client, headers, create, method, suffix, bad):
    create()
    url = "/api/me/tasks" + suffix.format(task=bad)
    response = client.open(
        url,
        method=method,
        json=SAFE_BODIES.get(method),
        headers=headers,
        off_document=_DOT_DOT if bad == ".." else None,
    )
    assert_error(response, 404)
    assert count_tasks(client, headers) == 1


@pytest.mark.parametrize(("method", "suffix"), ROUTES[2:])
@pytest.mark.parametrize("whose", ["someone-elses", "nobodys"])
@pytest.mark.parametrize("ref", ["me", "own"])
def test_a_foreign_or_missing_task_is_404_never_403(
    client, user, headers, other_headers, method, suffix, whose, ref
):
    theirs = client.post("/api/me/tasks", json={"title": "theirs"}, headers=other_headers).json
    task_id = theirs["id"] if whose == "someone-elses" else str(uuid.uuid4())
    url = f"/api/{'me' if ref == 'me' else user.id}/tasks" + suffix.format(task=task_id)
    body = {"title": "mine now"} if method in ("PUT", "PATCH") and suffix == "/{task}" else None

    response = client.open(url, method=method, json=body, headers=headers)

    assert_error(response, 404)
    assert client.get(f"/api/me/tasks/{theirs['id']}", headers=other_headers).json == theirs


# ----------------------------------------------------------------- read, write


def test_get_returns_the_task(client, headers, create):
    task = create(title="a", description="d", completed=True)
    response = client.get(task_url(task["id"]), headers=headers)
    assert response.status_code == 200
    assert response.json == task


def test_put_replaces_and_omitted_fields_take_their_defaults(client, headers, create):
    task = create(title="a", description="d", completed=True)

    response = client.put(task_url(task["id"]), json={"title": " b "}, headers=headers)

    assert response.status_code == 200
    replaced = assert_task(
        response.json,
        id=task["id"],
        title="b",
        description=None,
        completed=False,
        status="pending",
        created_at=task["created_at"],
    )
    assert stored(client, headers, task["id"]) == replaced


@pytest.mark.parametrize(
    ("fields", "completed"),
    [({"completed": True}, True), ({"status": "completed"}, True), ({"status": "pending"}, False)],
)
def test_put_takes_completed_or_status(client, headers, create, fields, completed):
    task = create(completed=not completed)
    body = {"title": "t", "description": "d", **fields}
    replaced = client.put(task_url(task["id"]), json=body, headers=headers).json
    assert_task(replaced, title="t", description="d", completed=completed)


def test_put_requires_a_title(client, headers, create):
    task = create()
    response = client.put(task_url(task["id"]), json={"description": "d"}, headers=headers)
    assert_error(response, 422, error_fields={"json": {"title"}})
    assert stored(client, headers, task["id"]) == task


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"title": "  b  "}, {"title": "b"}),
        ({"description": None}, {"description": None}),
        ({"description": "e"}, {"description": "e"}),
        ({"completed": False}, {"completed": False, "status": "pending"}),
        ({"status": "pending"}, {"completed": False, "status": "pending"}),
        (
            {"title": "b", "status": "pending"},
            {"title": "b", "completed": False, "status": "pending"},
        ),
    ],
)
def test_patch_changes_only_the_fields_given(client, headers, create, change, expected):
    task = create(title="a", description="d", completed=True)

    response = client.patch(task_url(task["id"]), json=change, headers=headers)

    assert response.status_code == 200
    unchanged = {k: v for k, v in task.items() if k not in expected and k != "updated_at"}
    patched = assert_task(response.json, **unchanged, **expected)
    assert stored(client, headers, task["id"]) == patched


def test_delete_is_204_with_no_body_then_the_task_is_gone(client, headers, create):
    task = create()
    kept = create(title="kept")

    response = client.delete(task_url(task["id"]), headers=headers)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert response.headers.get("X-Request-ID")
    assert_error(client.get(task_url(task["id"]), headers=headers), 404)
    assert_error(client.delete(task_url(task["id"]), headers=headers), 404)
    assert_error(client.patch(task_url(task["id"]) + "/complete", headers=headers), 404)
    assert client.get("/api/me/tasks", headers=headers).json == [kept]


# ----------------------------------------------------------------------- toggle


def toggle(client, headers, task_id: str, **kwargs: Any) -> dict[str, Any]:
    response = client.patch(task_url(task_id) + "/complete", headers=headers, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return assert_task(response.json)


@pytest.mark.parametrize(
    "empty",
    [{}, {"data": b""}, {"data": b"", "content_type": "application/json"}],
    ids=["no-body", "empty-body", "empty-json-body"],
)
def test_toggle_with_no_body_flips(client, headers, create, empty):
    task = create()
    flipped = toggle(client, headers, task["id"], **empty)
    assert flipped["completed"] is True and flipped["status"] == "completed"
    assert stored(client, headers, task["id"]) == flipped


def test_toggle_twice_returns_to_pending(client, headers, create):
    task = create()
    toggle(client, headers, task["id"])
    again = toggle(client, headers, task["id"])
    assert_task(again, completed=False, status="pending", title=task["title"])


def test_toggle_flips_a_completed_task_to_pending(client, headers, create):
    task = create(status="completed")
    assert_task(toggle(client, headers, task["id"]), completed=False, status="pending")


@pytest.mark.parametrize("start", [False, True])
@pytest.mark.parametrize("value", [False, True])
def test_toggle_with_a_value_sets_it(client, headers, create, start, value):
    task = create(completed=start)
    for _ in range(2):  # setting is idempotent, unlike flipping
        result = toggle(client, headers, task["id"], json={"completed": value})
        assert_task(result, completed=value, title=task["title"])


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"completed"}),
        ({"other": 1}, {"other"}),
        ({"completed": True, "other": 1}, {"other"}),
        ({"completed": "yes"}, {"completed"}),
        ({"completed": "true"}, {"completed"}),
        ({"completed": 1}, {"completed"}),
        ({"completed": None}, {"completed"}),
        ({"status": "completed"}, {"status"}),
    ],
)
def test_toggle_body_other_than_completed_bool_is_422(client, headers, create, body, fields):
    task = create()
    response = client.patch(task_url(task["id"]) + "/complete", json=body, headers=headers)
    assert_validation_error(response, "json", *fields)
    assert stored(client, headers, task["id"]) == task


@pytest.mark.parametrize("payload", [b"[]", b"true", b"null", b'"x"', b"{"])
def test_toggle_body_that_is_not_an_object_is_400_or_422(client, headers, create, payload):
    task = create()
    response = client.patch(
        task_url(task["id"]) + "/complete",
        data=payload,
        content_type="application/json",
        headers=headers,
    )
    assert_client_error(response, 400, 422)
    assert stored(client, headers, task["id"]) == task


# ------------------------------------------------------------------- timestamps


def test_created_at_never_changes_and_updated_at_moves_on_every_change(client, headers, create):
    task = create(title="a")
    url = task_url(task["id"])
    changes = [
        lambda: client.patch(url, json={"title": "b"}, headers=headers),
        lambda: client.patch(url, json={"description": "d"}, headers=headers),
        lambda: client.patch(url, json={"description": None}, headers=headers),
        lambda: client.patch(url, json={"status": "completed"}, headers=headers),
        lambda: client.put(url, json={"title": "b"}, headers=headers),  # completed -> false
        lambda: client.put(url, json={"title": "c", "completed": False}, headers=headers),
        lambda: client.patch(url + "/complete", headers=headers),
        lambda: client.patch(url + "/complete", headers=headers),
        lambda: client.patch(url + "/complete", json={"completed": True}, headers=headers),
        lambda: client.patch(url + "/complete", json={"completed": False}, headers=headers),
    ]
    previous = task
    for change in changes:
        response = change()
        assert response.status_code == 200, response.get_data(as_text=True)
        current = assert_task(response.json, created_at=task["created_at"])
        assert timestamp(current["updated_at"]) > timestamp(previous["updated_at"])
        previous = current
    assert stored(client, headers, task["id"]) == previous


def test_updated_at_does_not_move_without_a_change(client, headers, create):
    task = create(title="a", description="d", completed=True)
    url = task_url(task["id"])
    no_ops = [
        lambda: client.patch(url, json={}, headers=headers),
        lambda: client.patch(url, json={"title": "a"}, headers=headers),
        lambda: client.patch(url, json={"title": "  a  "}, headers=headers),  # same once trimmed
        lambda: client.patch(url, json={"description": "d", "completed": True}, headers=headers),
        lambda: client.patch(url, json={"status": "completed"}, headers=headers),
        lambda: client.put(
            url, json={"title": "a", "description": "d", "completed": True}, headers=headers
        ),
        lambda: client.put(
            url, json={"title": "a", "description": "d", "status": "completed"}, headers=headers
        ),
        lambda: client.patch(url + "/complete", json={"completed": True}, headers=headers),
    ]
    for no_op in no_ops:
        response = no_op()
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.json == task
    assert stored(client, headers, task["id"]) == task


def test_timestamps_are_rfc3339_utc_on_every_route(client, headers, create):
    task = create()
    url = task_url(task["id"])
    responses = [
        client.get(url, headers=headers),
        client.patch(url, json={"title": "b"}, headers=headers),
        client.put(url, json={"title": "c"}, headers=headers),
        client.patch(url + "/complete", headers=headers),
    ]
    for response in responses:
        assert response.status_code == 200
        assert_task(response.json)  # checks the format and the offset of both timestamps
    for listed in client.get("/api/me/tasks", headers=headers).json:
        assert_task(listed)
    created = timestamp(task["created_at"])
    now = datetime.now(UTC)
    assert abs((now - created).total_seconds()) < 300  # UTC, not local time labelled UTC


# --------------------------------------------------------------------- unicode


ODD_TEXT = [
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f389",  # ZWJ family
    "\u2764\ufe0f \U0001f44d\U0001f3fd",  # variation selector, skin tone
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eabc\u202c",  # RTL
    "e\u0301 n\u0303 A\u030a",  # combining marks, not to be normalized
    "\u00e9 vs e\u0301",
    "\U0001d518\U0001d52b\U0001d526",  # astral letters
    "\u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4",
    "tab\tinside and line\nbreak",
]


@pytest.mark.parametrize("text", ODD_TEXT, ids=range(len(ODD_TEXT)))
def test_unicode_round_trips_verbatim(client, headers, create, text):
    task = create(title=text, description=text)
    assert task["title"] == text and task["description"] == text
    assert stored(client, headers, task["id"]) == task
    assert client.get("/api/me/tasks", headers=headers).json == [task]
    patched = send(client, "PATCH", task_url(task["id"]), {"title": text[::-1]}, headers)
    assert patched.json["title"] == text[::-1].strip()


LITERALS = [
    "'; DROP TABLE tasks; --",
    "Robert'); DROP TABLE users;--",
    '" OR 1=1 --',
    "<script>alert(1)</script>",
    "<b>bold</b> &amp; &lt;",
    "{{7*7}} ${7*7} %s %(x)s",
    "100% _under_ back\\slash",
]


@pytest.mark.parametrize("text", LITERALS)
def test_sql_and_markup_are_stored_literally(client, headers, create, text):
    task = create(title=text, description=text)
    assert task["title"] == text and task["description"] == text
    assert stored(client, headers, task["id"]) == task
    body = {"title": text, "description": text + "!"}
    replaced = send(client, "PUT", task_url(task["id"]), body, headers)
    assert replaced.json["description"] == text + "!"
    assert client.get("/api/me/tasks", headers=headers).json == [replaced.json]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    "body",
    [
        {"title": "a\x00b"},
        {"title": "\x00"},
        {"title": "t", "description": "a\x00b"},
    ],
    ids=["title", "only-nul", "description"],
)
def test_null_byte_is_a_4xx_not_a_500(client, headers, create, method, body):
    task = create()
    url = "/api/me/tasks" if method == "POST" else task_url(task["id"])
    response = client.open(url, method=method, json=body, headers=headers)
    assert_client_error(response, 400, 422)
    assert stored(client, headers, task["id"]) == task


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    "payload",
    [b'{"title": "\\ud800"}', b'{"title": "t", "description": "x\\udfffy"}'],
    ids=["title", "description"],
)
def test_lone_surrogate_is_a_4xx_not_a_500(client, headers, create, method, payload):
    task = create()
    url = "/api/me/tasks" if method == "POST" else task_url(task["id"])
    response = client.open(
        url, method=method, data=payload, content_type="application/json", headers=headers
    )
    assert_client_error(response, 400, 422)
    assert stored(client, headers, task["id"]) == task


# ------------------------------------------------ one representation everywhere


def test_a_task_made_at_a_whole_second_reads_the_same_from_every_endpoint(
    client, headers, monkeypatch
):
    """The same instant is the same text on POST, GET, the list and PATCH: a
    client comparing `updated_at` strings sees no change that did not happen."""
    whole_second = datetime(2026, 1, 1, tzinfo=UTC)
    monkeypatch.setattr("todo_service.services.tasks.utcnow", lambda: whole_second)
    created = client.post("/api/me/tasks", json={"title": "t"}, headers=headers)
    assert created.status_code == 201
    assert created.json["created_at"].startswith("2026-01-01T00:00:00")
    url = f"/api/me/tasks/{created.json['id']}"

    fetched = client.get(url, headers=headers)
    listed = client.get("/api/me/tasks", headers=headers)
    unchanged = client.patch(url, json={"title": "t"}, headers=headers)
    empty_patch = client.patch(url, headers=headers)
    assert fetched.status_code == listed.status_code == 200
    assert unchanged.status_code == empty_patch.status_code == 200
    for answer in (fetched.json, listed.json[0], unchanged.json, empty_patch.json):
        assert answer == created.json


def test_the_schemas_write_exactly_the_writable_fields():
    """A field in a body schema but not in the task's field list (or the other
    way round) fails here, not as a 500 at run time."""
    from todo_service.schemas import TaskCreate, TaskOut, TaskPatch, TaskReplace
    from todo_service.services.task_fields import STORED_FIELDS, WRITABLE_FIELDS

    for schema in (TaskCreate(), TaskReplace(), TaskPatch()):
        loaded = set(schema.fields) - {"status"}  # `status` folds into `completed`
        assert loaded == set(WRITABLE_FIELDS), type(schema).__name__
    assert set(TaskOut().fields) == {*STORED_FIELDS, "status"} == TASK_KEYS
