"""Listing, extended (API.md, Version 1.1: Listing, extended; Details (1.1):
Filters): priority, tag, due_before, due_after and overdue filters, the
due_at and priority sorts, with the paging guarantees of version 1."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from requests.utils import parse_header_links
from sqlalchemy import insert

from tests.helpers import TASK_KEYS, assert_error
from todo_service.db.models import Task
from todo_service.extensions import db

RANK = {"low": 0, "medium": 1, "high": 2}
PAST = "2001-02-03T04:05:06.000007Z"
FAR = "2099-06-01T00:00:00.000000Z"


def send_json(client, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    response = client.post(
        "/api/me/tasks",
        data=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json  # type: ignore[no-any-return]


@pytest.fixture
def create(client, headers):
    def do_create(title: str = "t", **body: Any) -> dict[str, Any]:
        return send_json(client, {"title": title, **body}, headers)

    return do_create


@pytest.fixture
def get(client, headers):
    """GET the listing with a raw query string; the response, whatever it is."""

    def do_get(query: str) -> Any:
        return client.get(f"/api/me/tasks?{query}", headers=headers)

    return do_get


@pytest.fixture
def listing(get):
    """GET the listing with these parameters (a list of pairs may repeat one); a 200."""

    def do_list(params: Any = (), **more: Any) -> Any:
        pairs = list(params.items() if isinstance(params, dict) else params) + list(more.items())
        response = get(urlencode(pairs))
        assert response.status_code == 200, response.get_data(as_text=True)
        for task in response.json:
            assert set(task) == TASK_KEYS, task
        return response

    return do_list


def ids(response: Any) -> list[str]:
    return [task["id"] for task in response.json]


def pagination(response: Any) -> dict[str, int]:
    return json.loads(response.headers["X-Pagination"])  # type: ignore[no-any-return]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def expected_order(tasks: list[dict[str, Any]], sort: str) -> list[str]:
    """API.md: due_at with tasks without one last in both directions;
    -priority high first; ties by id in the sort's direction."""
    key = sort.lstrip("-")
    descending = sort.startswith("-")
    if key == "priority":
        ordered = sorted(tasks, key=lambda t: (RANK[t["priority"]], t["id"]), reverse=descending)
    elif key == "due_at":
        dated = [t for t in tasks if t["due_at"] is not None]
        undated = [t for t in tasks if t["due_at"] is None]
        ordered = sorted(dated, key=lambda t: (instant(t["due_at"]), t["id"]), reverse=descending)
        ordered += sorted(undated, key=lambda t: t["id"], reverse=descending)
    else:
        ordered = sorted(tasks, key=lambda t: (t[key], t["id"]), reverse=descending)
    return [t["id"] for t in ordered]


def walk(listing, page_size: int, params: Any = ()) -> list[str]:
    seen: list[str] = []
    page = 1
    while True:
        response = listing([*params, ("page", page), ("page_size", page_size)])
        meta = pagination(response)
        assert len(response.json) <= page_size
        seen += ids(response)
        if "next_page" not in meta:
            assert page == meta["last_page"]
            return seen
        page += 1


# A data set that has every combination the filters tell apart: past and
# future due dates (some equal: ties), none; each priority; completed or not;
# tags shared in different orders and letter cases.
PLAN = [
    dict(title="a", priority="high", due_at=PAST, tags=["Work", "urgent"]),
    dict(title="b", priority="high", due_at=PAST, tags=["work"], completed=True),
    dict(title="c", priority="low", due_at=FAR, tags=["home", "work"]),
    dict(title="d", priority="low", due_at=None, tags=["home"]),
    dict(title="e", priority="medium", due_at=None, tags=[], completed=True),
    dict(title="f", priority="medium", due_at="2001-02-03T05:05:06.000007+01:00", tags=["urgent"]),
    dict(title="g", priority="high", due_at=FAR, tags=["urgent", "work", "home"]),
    dict(title="h", priority="medium", due_at="2050-01-01T00:00:00Z", tags=["Straße"]),
    dict(title="i", priority="low", due_at="2050-01-01T00:00:00.000001Z", tags=["İ"]),
    dict(title="j", priority="medium", due_at=None, tags=["work"], completed=True),
    dict(title="k", priority="high", due_at="1999-12-31T23:59:59.999999Z", completed=True),
]


@pytest.fixture
def planned(create) -> list[dict[str, Any]]:
    return [create(**task) for task in PLAN]


def now() -> datetime:
    return datetime.now(UTC)


def matching(tasks: list[dict[str, Any]], params: list[tuple[str, str]]) -> set[str]:
    """The ids API.md says a filter selects, worked out here on its own."""
    chosen = []
    for task in tasks:
        due = None if task["due_at"] is None else instant(task["due_at"])
        keep = True
        for name, value in params:
            if name == "priority":
                keep &= task["priority"] == value
            elif name == "tag":
                keep &= value.strip().lower() in task["tags"]
            elif name == "due_before":
                keep &= due is not None and due < instant(value)
            elif name == "due_after":
                keep &= due is not None and due >= instant(value)
            elif name == "overdue":
                late = not task["completed"] and due is not None and due < now()
                keep &= late == (value == "true")
            elif name == "status":
                keep &= task["status"] == value
        if keep:
            chosen.append(task["id"])
    return set(chosen)


FILTERS = [
    [("priority", "low")],
    [("priority", "medium")],
    [("priority", "high")],
    [("tag", "work")],
    [("tag", "WORK")],
    [("tag", " Work\t")],
    [("tag", "work"), ("tag", "home")],
    [("tag", "home"), ("tag", "work"), ("tag", "urgent")],
    [("tag", "work"), ("tag", "Work")],
    [("tag", "straße")],
    [("tag", "STRASSE")],
    [("tag", "i\u0307")],
    [("tag", "İ")],
    [("tag", "nothing")],
    [("tag", "work"), ("tag", "nothing")],
    [("due_before", "2001-02-03T04:05:06.000007Z")],  # strict: the two equal ones left out
    [("due_before", "2001-02-03T04:05:06.000008Z")],
    [("due_after", "2001-02-03T04:05:06.000007Z")],  # inclusive
    [("due_after", "2001-02-03T05:05:06.000007+01:00")],
    [("due_after", "2050-01-01T00:00:00.000001Z")],
    [("due_before", "2050-01-01T00:00:00.000001Z"), ("due_after", "2000-01-01T00:00:00Z")],
    [("due_before", "1000-01-01T00:00:00Z")],
    [("due_after", "0001-01-01T00:00:00Z")],
    [("due_before", "9999-12-31T23:59:59.999999Z")],
    [("due_before", "2050-01-01T01:00:00+01:00")],
    [("due_after", "2049-12-31T19:00:00.000001-05:00")],
    [("overdue", "true")],
    [("overdue", "false")],
    [("overdue", "true"), ("priority", "high")],
    [("overdue", "false"), ("tag", "work")],
    [("overdue", "true"), ("tag", "urgent"), ("tag", "work")],
    [("status", "completed"), ("tag", "work")],
    [("status", "pending"), ("due_after", "2000-01-01T00:00:00Z"), ("priority", "low")],
]


@pytest.mark.parametrize("params", FILTERS, ids=[urlencode(p) for p in FILTERS])
def test_filters_select_exactly_what_the_contract_says_with_an_exact_total(
    planned, listing, params
):
    response = listing([*params, ("page_size", 1000)])
    assert set(ids(response)) == matching(planned, params)
    assert len(ids(response)) == len(set(ids(response)))
    expected = len(matching(planned, params))
    # The total is exact on every page, past the last one too.
    for page in (1, 2, 50):
        meta = pagination(listing([*params, ("page_size", 1), ("page", page)]))
        assert meta["total"] == expected
        assert meta["total_pages"] == max(1, expected)


def test_overdue_true_and_false_partition_every_task(planned, create, listing):
    # More tasks at the edges: due a moment ago, completed late, just due.
    create(due_at=(now() - timedelta(seconds=1)).isoformat())
    create(due_at=(now() - timedelta(days=1)).isoformat(), completed=True)
    create(due_at=(now() + timedelta(days=1)).isoformat())
    everything = set(ids(listing(page_size=1000)))
    late = ids(listing(overdue="true", page_size=1000))
    rest = ids(listing(overdue="false", page_size=1000))
    assert set(late) | set(rest) == everything
    assert not set(late) & set(rest)
    assert len(late) + len(rest) == len(everything)
    tasks = {t["id"]: t for t in listing(page_size=1000).json}
    for task_id in late:
        task = tasks[task_id]
        assert not task["completed"] and instant(task["due_at"]) < now()
    # Without a due date, or completed: never overdue.
    for task in tasks.values():
        if task["due_at"] is None or task["completed"]:
            assert task["id"] in rest


def test_a_task_past_due_becomes_overdue_by_the_server_clock(create, listing):
    task = create(due_at=(now() + timedelta(milliseconds=1)).isoformat())
    # By the time the listing runs, its due date is behind the server's clock.
    while now() <= instant(task["due_at"]):
        pass
    assert ids(listing(overdue="true")) == [task["id"]]
    assert ids(listing(overdue="false")) == []


def test_completing_an_overdue_task_takes_it_out(client, headers, create, listing):
    task = create(due_at=PAST)
    assert ids(listing(overdue="true")) == [task["id"]]
    response = client.patch(f"/api/me/tasks/{task['id']}/complete", headers=headers)
    assert response.status_code == 200
    assert ids(listing(overdue="true")) == []
    assert ids(listing(overdue="false")) == [task["id"]]


def test_a_plus_sent_percent_encoded_is_an_offset(planned, get):
    response = get("due_before=2050-01-01T01:00:00.000001%2B01:00&page_size=1000")
    assert response.status_code == 200
    expected = matching(planned, [("due_before", "2050-01-01T00:00:00.000001Z")])
    assert {t["id"] for t in response.json} == expected


@pytest.mark.parametrize("name", ["due_before", "due_after"])
def test_an_unencoded_plus_arrives_as_a_space_and_is_422(get, name):
    response = get(f"{name}=2050-01-01T01:00:00+01:00")
    assert_error(response, 422, errors=None, error_fields={"query": {name}})


# ------------------------------------------------------------------ bad values

BAD_QUERIES = [
    ("priority", ""),
    ("priority", "HIGH"),
    ("priority", "urgent"),
    ("priority", " high"),
    ("overdue", ""),
    ("overdue", "True"),
    ("overdue", "1"),
    ("overdue", "yes"),
    ("overdue", "no"),
    ("tag", ""),
    ("tag", "   "),
    ("tag", "\t"),
    ("tag", "x" * 51),
    ("tag", " " + "X" * 51 + " "),
    ("tag", "\U0001f600" * 51),
    ("tag", "a\x00b"),
    ("due_before", ""),
    ("due_before", "2026-12-24"),
    ("due_before", "1798135200"),
    ("due_before", "2026-12-24 18:00:00Z"),
    ("due_before", "2026-12-24T18:00:00"),
    ("due_before", "2026-12-24T18:00:00+0100"),
    ("due_before", "2026-13-01T00:00:00Z"),
    ("due_before", "0001-01-01T00:30:00+01:00"),
    ("due_after", "9999-12-31T23:30:00-01:00"),
    ("due_after", "tomorrow"),
    ("due_after", "2026-12-24T18:00:00Z\x00"),
    ("sort", "due"),
    ("sort", "+priority"),
    ("sort", "-Priority"),
    ("sort", "tags"),
]


@pytest.mark.parametrize(
    ("name", "value"), BAD_QUERIES, ids=[f"{n}={v!r}"[:40] for n, v in BAD_QUERIES]
)
def test_an_unknown_value_is_a_422_under_its_parameter(create, get, name, value):
    create(tags=["work"], due_at=PAST)
    response = get(urlencode({name: value}))
    assert_error(response, 422, error_fields={"query": {name}})


@pytest.mark.parametrize("bad", ["", "  ", "x" * 51])
def test_one_bad_tag_among_good_ones_is_a_422(get, bad):
    response = get(urlencode([("tag", "work"), ("tag", bad), ("tag", "home")]))
    body = assert_error(response, 422, error_fields={"query": {"tag"}})
    assert all(isinstance(m, str) for m in body["errors"]["query"]["tag"])


def test_a_tag_of_fifty_code_points_is_accepted(create, listing, get):
    task = create(tags=["İ" * 50])
    assert ids(listing(tag=" " + "İ" * 50 + " ")) == [task["id"]]
    # The value is counted as given (API.md: an over-50 `tag` is a 422), even
    # when it is the stored, lower-cased form of a tag of 50 code points.
    response = get(urlencode({"tag": "i\u0307" * 50}))
    assert_error(response, 422, error_fields={"query": {"tag"}})


# ---------------------------------------------------------------------- sorts

NEW_SORTS = ["due_at", "-due_at", "priority", "-priority"]


@pytest.mark.parametrize("sort", NEW_SORTS)
def test_sort_orders_by_key_then_id(planned, listing, sort):
    current = listing(page_size=1000).json
    assert ids(listing(sort=sort)) == expected_order(current, sort)


@pytest.mark.parametrize("sort", ["due_at", "-due_at"])
def test_tasks_without_due_at_come_last_in_both_directions(planned, listing, sort):
    dues = [t["due_at"] for t in listing(sort=sort).json]
    undated = dues.index(None)
    assert all(due is None for due in dues[undated:])
    assert all(due is not None for due in dues[:undated])
    instants = [instant(due) for due in dues[:undated]]
    assert instants == sorted(instants, reverse=sort.startswith("-"))


def test_minus_priority_is_high_first(planned, listing):
    assert [t["priority"] for t in listing(sort="-priority").json][:1] == ["high"]
    priorities = [t["priority"] for t in listing(sort="priority").json]
    assert priorities == sorted(priorities, key=RANK.__getitem__)
    assert priorities[0] == "low" and priorities[-1] == "high"


@pytest.mark.parametrize("page_size", [1, 2, 3])
@pytest.mark.parametrize("sort", NEW_SORTS)
def test_walking_the_pages_never_overlaps_or_skips(planned, listing, sort, page_size):
    current = listing(page_size=1000).json
    assert walk(listing, page_size, [("sort", sort)]) == expected_order(current, sort)


@pytest.mark.parametrize("sort", NEW_SORTS)
def test_walking_a_filtered_listing(planned, listing, sort):
    params = [("tag", "work"), ("sort", sort)]
    current = listing([("tag", "work"), ("page_size", 1000)]).json
    assert walk(listing, 2, params) == expected_order(current, sort)


@pytest.mark.parametrize("sort", NEW_SORTS)
def test_ties_are_broken_by_id_in_the_sort_direction(create, listing, sort):
    for _ in range(3):
        create(priority="high", due_at=PAST)
    for _ in range(3):
        create(priority="high", due_at=None)
    current = listing(page_size=1000).json
    expected = expected_order(current, sort)
    assert ids(listing(sort=sort)) == expected
    assert walk(listing, 2, [("sort", sort)]) == expected


def test_deep_pages_keep_the_order(app, client, headers, user):
    """From OFFSET 500 on a page is read through its ids: the same order.
    The rows are written with SQL: 530 requests would only slow the test."""
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": uuid.UUID(user.id),
            "title": "t",
            "priority": ["low", "medium", "high"][number % 3],
            "due_at": moment + timedelta(days=number % 7) if number % 4 else None,
            "created_at": moment,
            "updated_at": moment,
        }
        for number in range(530)
    ]
    with app.app_context():
        db.session.execute(insert(Task), rows)
        db.session.commit()
        db.session.remove()
    everything = [
        {
            "id": str(row["id"]),
            "priority": row["priority"],
            "due_at": None if row["due_at"] is None else row["due_at"].isoformat(),
        }
        for row in rows
    ]
    for sort in NEW_SORTS:
        expected = expected_order(everything, sort)
        walked = []
        for page in (10, 11):  # OFFSET 450, read directly; OFFSET 500, through the ids
            response = client.get(
                f"/api/me/tasks?page_size=50&page={page}&sort={sort}", headers=headers
            )
            assert response.status_code == 200
            walked += [task["id"] for task in response.json]
        assert walked == expected[450:], sort


# ------------------------------------------------------------------ Link header


def test_link_headers_keep_the_repeated_tags(planned, listing):
    params = [("tag", "work"), ("tag", "Home"), ("priority", "high"), ("sort", "-due_at")]
    params += [("due_after", "2000-01-01T00:00:00+01:00"), ("page_size", 1)]
    response = listing(params)
    assert pagination(response)["total"] == len(matching(planned, params[:-1]))
    links = {
        link["rel"]: urlsplit(link["url"]) for link in parse_header_links(response.headers["Link"])
    }
    assert {"first", "last"} <= set(links)
    for url in links.values():
        query = parse_qs(url.query, keep_blank_values=True)
        assert query["tag"] == ["work", "Home"]
        assert query["priority"] == ["high"]
        assert query["sort"] == ["-due_at"]
        assert query["due_after"] == ["2000-01-01T00:00:00+01:00"]


def test_following_next_links_walks_a_tag_filtered_listing(planned, client, headers):
    seen = []
    url = "/api/me/tasks?tag=work&tag=WORK&sort=priority&page_size=1"
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        seen += [task["id"] for task in response.json]
        links = {link["rel"]: link["url"] for link in parse_header_links(response.headers["Link"])}
        url = links.get("next")
    expected = [t for t in planned if "work" in t["tags"]]
    assert seen == expected_order(expected, "priority")


def test_another_users_tasks_never_match(planned, client, make_user, auth_headers):
    other = auth_headers(make_user())
    for params in (
        "tag=work",
        "priority=high",
        "overdue=true",
        "overdue=false",
        "due_after=0001-01-01T00:00:00Z",
    ):
        response = client.get(f"/api/me/tasks?{params}", headers=other)
        assert response.status_code == 200
        assert response.json == []
        assert pagination(response)["total"] == 0
