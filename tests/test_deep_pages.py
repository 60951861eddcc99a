"""Pages from OFFSET 500 on are read through their ids (services/tasks.py,
the "deferred join"): they must hold exactly what a direct read would."""

from __future__ import annotations

import json

import pytest

SORTS = ["-created_at", "created_at", "-updated_at", "title", "-title"]


@pytest.fixture
def many_tasks(client, headers) -> list[dict]:
    for number in range(640):
        body = {"title": f"task {number % 37:02d}", "completed": number % 3 == 0}
        assert client.post("/api/me/tasks", json=body, headers=headers).status_code == 201
    return client.get("/api/me/tasks?page_size=1000", headers=headers).json


def _expected(tasks: list[dict], sort: str) -> list[str]:
    key = sort.lstrip("-")
    ordered = sorted(tasks, key=lambda t: (t[key], t["id"]), reverse=sort.startswith("-"))
    return [t["id"] for t in ordered]


@pytest.mark.parametrize("sort", SORTS)
def test_deep_pages_match_a_direct_read(client, headers, many_tasks, sort):
    expected = _expected(many_tasks, sort)
    walked = []
    for page in range(1, 8):  # page_size 100: pages 6 and 7 start at OFFSET 500 and 600
        response = client.get(
            f"/api/me/tasks?page_size=100&page={page}&sort={sort}", headers=headers
        )
        assert response.status_code == 200
        assert json.loads(response.headers["X-Pagination"])["total"] == 640
        walked += [task["id"] for task in response.json]
    assert walked == expected


def test_a_deep_searched_page_is_exact(client, headers, many_tasks):
    matching = [t for t in many_tasks if "task 1" in t["title"]]  # task 1, task 10..19
    query = "q=TASK%201&sort=title&page_size=10&page=6"  # OFFSET 50: read directly
    response = client.get(f"/api/me/tasks?{query}", headers=headers)
    assert [t["id"] for t in response.json] == _expected(matching, "title")[50:60]
    assert json.loads(response.headers["X-Pagination"])["total"] == len(matching)
    query = "q=task&sort=-title&page_size=10&page=55"  # OFFSET 540: through the ids
    response = client.get(f"/api/me/tasks?{query}", headers=headers)
    assert [t["id"] for t in response.json] == _expected(many_tasks, "-title")[540:550]
    assert json.loads(response.headers["X-Pagination"])["total"] == 640
