"""Listing: GET /api/{user_id}/tasks (API.md, Listing; Details: Paging,
Search, Booleans and enums)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from requests.utils import parse_header_links
from sqlalchemy import update

from tests.helpers import TASK_KEYS, assert_error
from todo_service.db.models import Task
from todo_service.extensions import db

SORTS = ["created_at", "-created_at", "updated_at", "-updated_at", "title", "-title"]  # v1


@pytest.fixture
def create(client, headers):
    def do_create(title: str, **body: Any) -> dict[str, Any]:
        response = client.post(
            "/api/me/tasks",
            data=json.dumps({"title": title, **body}, ensure_ascii=False).encode(),
            content_type="application/json",
            headers=headers,
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.json  # type: ignore[no-any-return]

    return do_create


@pytest.fixture
def listing(client, headers):
    """GET the caller's listing with these query parameters; a 200 expected."""

    def do_list(**params: Any) -> Any:
        response = client.get(f"/api/me/tasks?{urlencode(params)}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert isinstance(response.json, list)
        for task in response.json:
            assert set(task) == TASK_KEYS, task
        return response

    return do_list


def titles(response: Any) -> list[str]:
    return [task["title"] for task in response.json]


def pagination(response: Any) -> dict[str, int]:
    return json.loads(response.headers["X-Pagination"])  # type: ignore[no-any-return]


def links(response: Any) -> dict[str, dict[str, Any]]:
    """rel -> {"path", "params"} from the Link header."""
    parsed = parse_header_links(response.headers["Link"])
    result = {}
    for link in parsed:
        url = urlsplit(link["url"])
        assert link["rel"] not in result, parsed
        result[link["rel"]] = {"path": url.path, "params": parse_qs(url.query)}
    return result


def expected_order(tasks: list[dict[str, Any]], sort: str) -> list[str]:
    """Ids in the order API.md prescribes: the key (titles by code point), then
    id, both in the sort's direction."""
    field = sort.lstrip("-")

    def key(task: dict[str, Any]) -> tuple[Any, str]:
        value = task[field] if field == "title" else datetime.fromisoformat(task[field])
        return value, task["id"]

    return [task["id"] for task in sorted(tasks, key=key, reverse=sort.startswith("-"))]


def walk(listing, page_size: int, **params: Any) -> list[str]:
    """Every page in turn, following X-Pagination; the ids seen."""
    seen: list[str] = []
    page = 1
    while True:
        response = listing(page=page, page_size=page_size, **params)
        meta = pagination(response)
        assert len(response.json) <= page_size
        seen += [task["id"] for task in response.json]
        if "next_page" not in meta:
            assert page == meta["last_page"]
            return seen
        assert meta["next_page"] == page + 1
        page += 1


# ------------------------------------------------------------------- ordering


@pytest.fixture
def mixed_tasks(create, client, headers) -> list[dict[str, Any]]:
    """Seven tasks with duplicate titles (ties) and some later updates."""
    made = [
        create("b"),
        create("a", completed=True),
        create("b", description="twin"),
        create("C"),
        create("a"),
        create("\u00e9"),
        create("b", status="completed"),
    ]
    for task in (made[0], made[3]):  # updated_at order differs from created_at order
        response = client.patch(
            f"/api/me/tasks/{task['id']}", json={"description": "later"}, headers=headers
        )
        assert response.status_code == 200
    return client.get("/api/me/tasks", headers=headers).json  # type: ignore[no-any-return]


@pytest.mark.parametrize("sort", SORTS)
def test_sort_orders_by_key_then_id(listing, mixed_tasks, sort):
    assert [task["id"] for task in listing(sort=sort).json] == expected_order(mixed_tasks, sort)


@pytest.mark.parametrize("page_size", [1, 2, 3])
@pytest.mark.parametrize("sort", SORTS)
def test_walking_the_pages_returns_every_task_exactly_once(listing, mixed_tasks, sort, page_size):
    seen = walk(listing, page_size, sort=sort)
    assert seen == expected_order(mixed_tasks, sort)
    assert len(set(seen)) == len(mixed_tasks)


def test_default_sort_is_newest_first(listing, mixed_tasks):
    default = listing()
    assert [task["id"] for task in default.json] == expected_order(mixed_tasks, "-created_at")
    assert default.json == listing(sort="-created_at").json


@pytest.mark.parametrize("sort", SORTS)
def test_ties_are_broken_by_id_in_the_sort_direction(app, create, listing, sort):
    made = [create("same") for _ in range(5)]
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with app.app_context():  # identical timestamps cannot be had through the API
        db.session.execute(update(Task).values(created_at=moment, updated_at=moment))
        db.session.commit()
        db.session.remove()

    ids = sorted(task["id"] for task in made)
    expected = ids[::-1] if sort.startswith("-") else ids
    assert [task["id"] for task in listing(sort=sort).json] == expected
    assert walk(listing, 2, sort=sort) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("title", ["B", "Z", "a", "b", "\u00e9", "\u03c9", "\U0001f600"]),
        ("-title", ["\U0001f600", "\u03c9", "\u00e9", "b", "a", "Z", "B"]),
    ],
)
def test_titles_sort_by_code_point(create, listing, sort, expected):
    for title in ["a", "\u00e9", "B", "\U0001f600", "b", "\u03c9", "Z"]:
        create(title)
    assert titles(listing(sort=sort)) == expected


def test_updated_at_sort_follows_the_latest_change(client, headers, create, listing):
    first = create("first")
    create("second")
    create("third")
    response = client.patch(f"/api/me/tasks/{first['id']}/complete", headers=headers)
    assert response.status_code == 200
    current = listing().json

    ascending = listing(sort="updated_at")
    assert [t["id"] for t in ascending.json] == expected_order(current, "updated_at")
    assert titles(ascending)[-1] == "first"
    assert titles(listing(sort="-updated_at"))[0] == "first"
    assert titles(listing(sort="created_at"))[0] == "first"


# -------------------------------------------------------------------- filters


@pytest.fixture
def by_status(create) -> None:
    create("open")
    create("done", completed=True)
    create("also done", status="completed")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"open", "done", "also done"}),
        ({"status": "pending"}, {"open"}),
        ({"status": "completed"}, {"done", "also done"}),
        ({"completed": "false"}, {"open"}),
        ({"completed": "true"}, {"done", "also done"}),
        ({"status": "completed", "completed": "true"}, {"done", "also done"}),
        ({"status": "pending", "completed": "false"}, {"open"}),
        ({"status": "completed", "completed": "false"}, set()),
        ({"status": "pending", "completed": "true"}, set()),
        ({"status": "completed", "q": "ALSO"}, {"also done"}),
        ({"status": "pending", "q": "done"}, set()),
        ({"foo": "bar", "per_page": "1", "Status": "pending"}, {"open", "done", "also done"}),
        ({"q": ""}, {"open", "done", "also done"}),
    ],
)
def test_filters_combine_with_and(listing, by_status, params, expected):
    response = listing(**params)
    assert set(titles(response)) == expected
    assert len(response.json) == len(expected)
    assert pagination(response)["total"] == len(expected)
    for task in response.json:
        assert task["completed"] is (task["status"] == "completed")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("completed", "1"),
        ("completed", "0"),
        ("completed", "yes"),
        ("completed", "True"),
        ("completed", "TRUE"),
        ("completed", "on"),
        ("completed", ""),
        ("status", "done"),
        ("status", "Pending"),
        ("status", ""),
        ("sort", "name"),
        ("sort", "+title"),
        ("sort", "id"),
        ("sort", "Title"),
        ("sort", "-"),
        ("sort", ""),
    ],
)
def test_unknown_filter_or_sort_value_is_422(client, headers, by_status, name, value):
    response = client.get(f"/api/me/tasks?{urlencode({name: value})}", headers=headers)
    assert_error(response, 422, error_fields={"query": {name}})


# --------------------------------------------------------------------- search


@pytest.fixture
def searchable(create) -> None:
    create("\u00e9cole primaire")
    create("\u03a9MEGA")  # capital omega
    create("Buy MILK", description="from the Corner shop")
    create("plain", description="na\u00efve caf\u00e9")
    create("100% done")
    create("100 percent")
    create("snake_case")
    create("snakeXcase")
    create("back\\slash")
    create("backslash")
    create("'; DROP TABLE tasks; --")
    create("<script>alert(1)</script>")


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("\u00c9COLE", {"\u00e9cole primaire"}),
        ("\u00e9cole", {"\u00e9cole primaire"}),
        ("\u03c9", {"\u03a9MEGA"}),
        ("\u03c9mega", {"\u03a9MEGA"}),
        ("milk", {"Buy MILK"}),
        ("buy milk", {"Buy MILK"}),
        ("corner", {"Buy MILK"}),  # description
        ("CAF\u00c9", {"plain"}),
        ("NA\u00cfVE", {"plain"}),
        ("%", {"100% done"}),
        ("0%", {"100% done"}),
        ("100%", {"100% done"}),
        ("_", {"snake_case"}),
        ("e_c", {"snake_case"}),
        ("\\", {"back\\slash"}),
        ("k\\s", {"back\\slash"}),
        ("'; DROP TABLE tasks; --", {"'; DROP TABLE tasks; --"}),
        ("drop table", {"'; DROP TABLE tasks; --"}),
        ("<SCRIPT>", {"<script>alert(1)</script>"}),
        ("'", {"'; DROP TABLE tasks; --"}),
        ("nothing like this", set()),
        ("%%", set()),
        ("__________________", set()),
    ],
)
def test_q_is_a_literal_case_insensitive_substring(listing, searchable, q, expected):
    response = listing(q=q)
    assert set(titles(response)) == expected
    assert pagination(response)["total"] == len(expected)


def test_empty_q_is_no_filter(listing, searchable):
    assert listing(q="").json == listing().json
    assert pagination(listing(q=""))["total"] == 12


@pytest.mark.parametrize("q", ["a\x00b", "\x00"], ids=["inside", "alone"])
def test_null_byte_in_q_is_a_4xx(client, headers, searchable, q):
    response = client.get(f"/api/me/tasks?{urlencode({'q': q})}", headers=headers)
    if response.status_code == 422:
        assert_error(response, 422, error_fields={"query": {"q"}})
    else:
        assert_error(response, 400)


# ------------------------------------------------------------- paging bounds


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("page", "0"),
        ("page", "-1"),
        ("page", "1000001"),
        ("page", str(10**23)),
        ("page", "abc"),
        ("page", "1.5"),
        ("page", ""),
        ("page", "1e3"),
        ("page_size", "0"),
        ("page_size", "-5"),
        ("page_size", "1001"),
        ("page_size", str(10**23)),
        ("page_size", "ten"),
        ("page_size", "2.0"),
        ("page_size", ""),
    ],
)
def test_page_or_page_size_out_of_range_is_422(client, headers, create, name, value):
    create("t")
    response = client.get(f"/api/me/tasks?{urlencode({name: value})}", headers=headers)
    assert_error(response, 422, error_fields={"query": {name}})


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"page": 1_000_000}, 0),
        ({"page_size": 1000}, 3),
        ({"page_size": 1}, 1),
        ({"page": 1, "page_size": 1}, 1),
    ],
)
def test_page_and_page_size_bounds_are_accepted(listing, create, params, count):
    for title in "abc":
        create(title)
    response = listing(**params)
    assert len(response.json) == count
    assert pagination(response)["total"] == 3


def test_default_page_size_is_100(client, headers, listing):
    body = {"title": "t"}
    for _ in range(101):
        assert client.post("/api/me/tasks", json=body, headers=headers).status_code == 201

    first = listing()
    assert len(first.json) == 100
    assert pagination(first) == {
        "total": 101,
        "total_pages": 2,
        "first_page": 1,
        "last_page": 2,
        "page": 1,
        "next_page": 2,
    }
    second = listing(page=2)
    assert len(second.json) == 1
    assert {t["id"] for t in first.json}.isdisjoint({t["id"] for t in second.json})


# ------------------------------------------------------------- X-Pagination


def test_empty_listing_reports_one_empty_page(listing):
    response = listing()
    assert response.json == []
    assert pagination(response) == {
        "total": 0,
        "total_pages": 1,
        "first_page": 1,
        "last_page": 1,
        "page": 1,
    }
    assert set(links(response)) == {"first", "last"}


@pytest.fixture
def five(create) -> list[dict[str, Any]]:
    return [create(f"task {n}") for n in range(5)]


@pytest.mark.parametrize(
    ("page", "count", "meta", "rels"),
    [
        (1, 2, {"next_page": 2}, {"first": 1, "last": 3, "next": 2}),
        (2, 2, {"previous_page": 1, "next_page": 3}, {"first": 1, "last": 3, "prev": 1, "next": 3}),
        (3, 1, {"previous_page": 2}, {"first": 1, "last": 3, "prev": 2}),
        (4, 0, {"previous_page": 3}, {"first": 1, "last": 3, "prev": 3}),
        (9, 0, {"previous_page": 3}, {"first": 1, "last": 3, "prev": 3}),
        (1_000_000, 0, {"previous_page": 3}, {"first": 1, "last": 3, "prev": 3}),
    ],
    ids=["first", "middle", "last", "just-past-the-end", "past-the-end", "page-1000000"],
)
def test_pagination_headers(listing, five, page, count, meta, rels):
    response = listing(page=page, page_size=2)

    assert len(response.json) == count
    assert pagination(response) == {
        "total": 5,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": page,
        **meta,
    }
    got = links(response)
    assert {rel: int(link["params"]["page"][0]) for rel, link in got.items()} == rels
    for link in got.values():
        assert link["path"] == "/api/me/tasks"
        assert link["params"]["page_size"] == ["2"]


def test_page_past_the_end_of_an_empty_listing(listing):
    response = listing(page=3)
    assert response.json == []
    assert pagination(response) == {
        "total": 0,
        "total_pages": 1,
        "first_page": 1,
        "last_page": 1,
        "page": 3,
        "previous_page": 1,
    }
    assert {rel: link["params"]["page"] for rel, link in links(response).items()} == {
        "first": ["1"],
        "last": ["1"],
        "prev": ["1"],
    }


def test_a_single_full_page_has_no_next(listing, five):
    response = listing(page_size=5)
    assert len(response.json) == 5
    assert pagination(response) == {
        "total": 5,
        "total_pages": 1,
        "first_page": 1,
        "last_page": 1,
        "page": 1,
    }


def test_link_urls_keep_every_other_query_parameter(client, headers, create):
    for n in range(7):
        create(f"\u00e9cole {n}", completed=n % 2 == 0)
    params = {
        "q": "\u00c9COLE",
        "status": "completed",
        "sort": "-title",
        "page_size": "1",
        "page": "2",
        "foo": "bar & baz",
    }
    response = client.get(f"/api/me/tasks?{urlencode(params)}", headers=headers)
    assert response.status_code == 200
    assert pagination(response)["total"] == 4

    got = links(response)
    assert set(got) == {"first", "last", "prev", "next"}
    expected_pages = {"first": "1", "last": "4", "prev": "1", "next": "3"}
    for rel, link in got.items():
        assert link["params"] == {
            **{k: [v] for k, v in params.items()},
            "page": [expected_pages[rel]],
        }
    # Following a link gives that page of the same filtered, sorted listing.
    nxt = urlsplit(parse_link(response, "next"))
    followed = client.get(f"{nxt.path}?{nxt.query}", headers=headers)
    assert followed.status_code == 200
    assert [t["title"] for t in followed.json] == ["\u00e9cole 2"]
    assert pagination(followed)["page"] == 3


def parse_link(response: Any, rel: str) -> str:
    for link in parse_header_links(response.headers["Link"]):
        if link["rel"] == rel:
            return str(link["url"])
    raise AssertionError(f"no {rel} link")


# ------------------------------------------------------------------ ownership


def test_listing_shows_only_the_callers_tasks(client, make_user, auth_headers, user, headers):
    other = make_user()
    other_headers = auth_headers(other)
    for title in ("mine 1", "mine 2"):
        created = client.post("/api/me/tasks", json={"title": title}, headers=headers)
        assert created.status_code == 201
    created = client.post("/api/me/tasks", json={"title": "theirs"}, headers=other_headers)
    assert created.status_code == 201

    mine = client.get(f"/api/{user.id}/tasks", headers=headers)
    assert sorted(titles(mine)) == ["mine 1", "mine 2"]
    assert {task["user_id"] for task in mine.json} == {user.id}
    assert pagination(mine)["total"] == 2

    theirs = client.get("/api/me/tasks", headers=other_headers)
    assert titles(theirs) == ["theirs"]
    assert pagination(theirs)["total"] == 1

    searched = client.get("/api/me/tasks?q=theirs", headers=headers)
    assert searched.json == []
    assert pagination(searched)["total"] == 0


def test_another_users_listing_is_403(client, make_user, auth_headers, headers):
    other = make_user()
    created = client.post("/api/me/tasks", json={"title": "theirs"}, headers=auth_headers(other))
    assert created.status_code == 201
    for ref in (other.id, other.id.upper(), str(uuid.uuid4())):
        assert_error(client.get(f"/api/{ref}/tasks", headers=headers), 403)


def test_a_query_string_answers_the_same_every_time(client, headers, create, listing) -> None:
    """Parsed query strings are remembered (routes/common.py): a repeat gets
    the same arguments, an invalid one its 422 every time, and a long one
    (not remembered) is parsed as usual."""
    for number in range(3):
        create(f"task {number}", completed=number == 0)
    for _ in range(3):
        assert titles(listing(page_size=2, sort="title")) == ["task 0", "task 1"]
        assert titles(listing(completed="true")) == ["task 0"]
        response = client.get("/api/me/tasks?page_size=0", headers=headers)
        assert_error(response, 422, error_fields={"query": {"page_size"}})
    long_query = {"page_size": 2, "sort": "title", "unknown": "x" * 400}
    assert titles(listing(**long_query)) == ["task 0", "task 1"]
    assert titles(listing(**long_query)) == ["task 0", "task 1"]
