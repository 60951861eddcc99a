"""The task endpoints check a token's revocation inside their own SQL
statement (one round trip instead of two). Whatever else is wrong with the
request, a token that is no longer good must still get its 401 first (API.md,
Order of checks), and must never write anything."""

from __future__ import annotations

import uuid

import pytest

from .helpers import assert_error

MISSING = str(uuid.uuid4())


def _revoked_by_logout(client, headers):
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    return headers


def _revoked_by_password_change(client, headers, user):
    response = client.patch(
        "/api/auth/me",
        json={"password": "a brand new password", "current_password": user.password},
        headers=headers,
    )
    assert response.status_code == 200
    return headers


def _revoked_by_deleting_the_user(client, headers):
    assert client.delete("/api/auth/me", headers=headers).status_code == 204
    return headers


@pytest.fixture(params=["logout", "password change", "deleted user"])
def revoked(request, client, user, headers):
    """Headers with a token that was good, and a task id of its user's."""
    task = client.post("/api/me/tasks", json={"title": "mine"}, headers=headers).json
    if request.param == "logout":
        _revoked_by_logout(client, headers)
    elif request.param == "password change":
        _revoked_by_password_change(client, headers, user)
    else:
        _revoked_by_deleting_the_user(client, headers)
    return headers, task["id"]


def _requests(task_id: str, other_user: str):
    base = "/api/me/tasks"
    return [
        # Each would be a 2xx with a good token...
        ("get", base, None),
        ("get", f"{base}?page=999", None),
        ("get", f"{base}?q=mine", None),
        ("post", base, {"title": "new"}),
        ("get", f"{base}/{task_id}", None),
        ("put", f"{base}/{task_id}", {"title": "changed"}),
        ("patch", f"{base}/{task_id}", {"title": "changed"}),
        ("patch", f"{base}/{task_id}/complete", None),
        ("patch", f"{base}/{task_id}/complete", {"completed": True}),
        ("delete", f"{base}/{task_id}", None),
        # ...or a 404, 403, 400 or 422 with one.
        ("get", f"{base}/{MISSING}", None),
        ("delete", f"{base}/{MISSING}", None),
        ("patch", f"{base}/{MISSING}/complete", None),
        ("get", f"/api/{other_user}/tasks", None),
        ("post", f"/api/{other_user}/tasks", {"title": "x"}),
        ("post", base, {"title": ""}),
        ("post", base, {"title": "x", "bogus": 1}),
        ("get", f"{base}?page=0", None),
        ("patch", f"{base}/{task_id}/complete", {}),
        ("put", f"{base}/{task_id}", {"completed": "yes"}),
    ]


def test_a_revoked_token_gets_401_before_anything_else(client, make_user, revoked):
    headers, task_id = revoked
    other = make_user()
    for method, path, body in _requests(task_id, other.id):
        kwargs = {"headers": headers} if body is None else {"headers": headers, "json": body}
        response = getattr(client, method)(path, **kwargs)
        assert_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)


def test_a_revoked_token_writes_nothing(client, login, user, headers):
    task = client.post("/api/me/tasks", json={"title": "keep me"}, headers=headers).json
    _revoked_by_logout(client, headers)
    base = "/api/me/tasks"
    attempts = [
        ("post", base, {"title": "sneaked in"}),
        ("put", f"{base}/{task['id']}", {"title": "changed", "completed": True}),
        ("patch", f"{base}/{task['id']}", {"description": "changed"}),
        ("patch", f"{base}/{task['id']}/complete", None),
        ("delete", f"{base}/{task['id']}", None),
    ]
    for method, path, body in attempts:
        kwargs = {"headers": headers} if body is None else {"headers": headers, "json": body}
        assert getattr(client, method)(path, **kwargs).status_code == 401

    fresh = {"Authorization": f"Bearer {login(user)['access_token']}"}
    listing = client.get(base, headers=fresh)
    assert [t["id"] for t in listing.json] == [task["id"]]
    assert listing.json[0] == task  # not renamed, not completed, not touched


def test_a_good_token_still_gets_the_other_errors(client, make_user, headers):
    other = make_user()
    assert_error(client.get(f"/api/me/tasks/{MISSING}", headers=headers), 404)
    assert_error(client.get(f"/api/{other.id}/tasks", headers=headers), 403)
    assert_error(
        client.post("/api/me/tasks", json={"title": ""}, headers=headers),
        422,
        error_fields={"json": {"title"}},
    )
    response = client.get("/api/me/tasks?page=5", headers=headers)
    assert response.status_code == 200 and response.json == []


# ------------------------------------- the decorator itself, on views of its own


@pytest.fixture
def probe_client(app, database_url):
    """An app with two views marked `checked_in_statement` that never hand
    their check to a statement: one answers 200, one refuses with a 403."""
    from flask import Blueprint, jsonify
    from flask_jwt_extended import jwt_required

    from todo_service import create_app
    from todo_service.config import TestConfig
    from todo_service.errors import Forbidden
    from todo_service.security import checked_in_statement

    probe = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url})
    blueprint = Blueprint("probe", __name__)

    @blueprint.get("/probe/ok")
    @checked_in_statement
    @jwt_required()
    def answers_without_a_statement():
        return jsonify(ok=True)

    @blueprint.get("/probe/forbidden")
    @checked_in_statement
    @jwt_required()
    def refuses_before_any_statement():
        raise Forbidden()

    probe.register_blueprint(blueprint)
    return probe.test_client()


@pytest.mark.parametrize(("path", "good_status"), [("/probe/ok", 200), ("/probe/forbidden", 403)])
def test_a_check_no_statement_took_is_done_on_the_way_out(
    probe_client, client, headers, path, good_status
):
    outside = "a view of the test's own"
    assert probe_client.get(path, headers=headers, off_document=outside).status_code == good_status
    _revoked_by_logout(client, headers)
    response = probe_client.get(path, headers=headers, off_document=outside)
    assert_error(response, 401)
