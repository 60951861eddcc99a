"""Accounts and tokens (API.md: Authentication; Details: Email, Password change,
Logout): register, login, refresh, logout, me, and the 401 on every protected
route."""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_header,
    verify_jwt_in_request,
)
from sqlalchemy import func, select

from todo_service import create_app
from todo_service.config import TestConfig
from todo_service.db.models import Task
from todo_service.extensions import db
from todo_service.web.observability import JsonFormatter

from .helpers import TestUser, assert_error

PASSWORD = "correct horse battery staple"
USER_KEYS = {"id", "email", "name", "created_at", "updated_at"}
PAIR_KEYS = {"access_token", "refresh_token", "token_type", "expires_in"}
OTHER_KEY = "another-secret-key-that-is-also-long-enough-9876543210"
Login = Callable[[TestUser], dict[str, str]]
MakeUser = Callable[..., TestUser]
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# A valid address of exactly 254 characters (local part 64, labels at most 63).
EMAIL_254 = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
EMAIL_255 = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com"
EMAIL_500 = "a" * 488 + "@example.com"
assert (len(EMAIL_254), len(EMAIL_255), len(EMAIL_500)) == (254, 255, 500)


# ---------------------------------------------------------------- helpers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: Any) -> dict[str, Any]:
    body = assert_error(response, 401)
    assert re.match(r"^Bearer\b", response.headers.get("WWW-Authenticate", "")), response.headers
    return body


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, TestConfig.JWT_SECRET_KEY, algorithms=["HS256"])


def timestamp(value: str) -> datetime:
    assert RFC3339.match(value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


def assert_user(body: dict[str, Any], *, email: str, name: str | None = None) -> None:
    assert set(body) == USER_KEYS, body
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["email"] == email
    assert body["name"] == name
    assert timestamp(body["updated_at"]) >= timestamp(body["created_at"])


def assert_token_pair(body: dict[str, Any], user_id: str) -> None:
    assert set(body) == PAIR_KEYS, body
    assert body["token_type"] == "bearer"
    assert type(body["expires_in"]) is int and body["expires_in"] == 900
    access, renewal = claims_of(body["access_token"]), claims_of(body["refresh_token"])
    assert access["sub"] == renewal["sub"] == user_id  # a string, not a UUID object or int
    assert (access["type"], renewal["type"]) == ("access", "refresh")
    assert access["exp"] - access["iat"] == body["expires_in"]


def register(client: FlaskClient, **body: Any) -> Any:
    return client.post("/api/auth/register", json=body)


def log_in(client: FlaskClient, email: str, password: str) -> Any:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def refresh(client: FlaskClient, refresh_token: str) -> Any:
    return client.post("/api/auth/refresh", headers=bearer(refresh_token))


def me(client: FlaskClient, token: str) -> Any:
    return client.get("/api/auth/me", headers=bearer(token))


def change_password(client: FlaskClient, token: str, current: str, new: str) -> Any:
    body = {"password": new, "current_password": current}
    return client.patch("/api/auth/me", json=body, headers=bearer(token))


# ---------------------------------------------------------------- register


def test_register_returns_the_user(client: FlaskClient) -> None:
    response = register(client, email="ada@example.com", password=PASSWORD, name="Ada Lovelace")
    assert response.status_code == 201, response.json
    assert_user(response.json, email="ada@example.com", name="Ada Lovelace")


def test_register_trims_and_lowercases_the_email(client: FlaskClient) -> None:
    response = register(client, email="  Ada.Lovelace@Example.COM\t", password=PASSWORD)
    assert response.status_code == 201, response.json
    assert_user(response.json, email="ada.lovelace@example.com")
    tokens = log_in(client, "ada.lovelace@example.com", PASSWORD).json
    assert me(client, tokens["access_token"]).json["email"] == "ada.lovelace@example.com"


def test_register_accepts_an_email_of_254_characters(client: FlaskClient) -> None:
    response = register(client, email=EMAIL_254, password=PASSWORD)
    assert response.status_code == 201, response.json
    assert response.json["email"] == EMAIL_254


@pytest.mark.parametrize(
    "second",
    ["ada@example.com", "ADA@EXAMPLE.COM", "Ada@Example.com", "  ada@example.com  "],
    ids=["same", "upper", "mixed", "padded"],
)
def test_register_taken_email_is_409(client: FlaskClient, second: str) -> None:
    assert register(client, email="Ada@example.com", password=PASSWORD).status_code == 201
    assert_error(register(client, email=second, password="another password"), 409)
    # The first account keeps its password.
    assert log_in(client, "ada@example.com", PASSWORD).status_code == 200
    assert_unauthorized(log_in(client, "ada@example.com", "another password"))


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "not-an-email",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada lovelace@example.com",
        "ada@exa mple.com",
        "ada@example.com\x00",
        EMAIL_255,
        EMAIL_500,
        None,
        123,
        ["ada@example.com"],
    ],
    ids=[
        "empty",
        "blank",
        "no-at",
        "no-domain",
        "no-local-part",
        "two-ats",
        "space-in-local-part",
        "space-in-domain",
        "nul",
        "255-chars",
        "500-chars",
        "null",
        "number",
        "list",
    ],
)
def test_register_rejects_an_invalid_email(client: FlaskClient, email: Any) -> None:
    assert_error(
        register(client, email=email, password=PASSWORD), 422, error_fields={"json": {"email"}}
    )


@pytest.mark.parametrize(
    "password",
    ["x" * 8, "x" * 128, "🔑" * 8, "🔑" * 128, "é" * 128, "  spaced out  ", "日本語のパスワード"],
    ids=["8", "128", "8-emoji", "128-emoji", "128-accented", "spaces", "cjk"],
)
def test_register_accepts_passwords_of_8_to_128_code_points(
    client: FlaskClient, password: str
) -> None:
    assert register(client, email="ada@example.com", password=password).status_code == 201
    response = log_in(client, "ada@example.com", password)
    assert response.status_code == 200, response.json


@pytest.mark.parametrize(
    "password",
    ["x" * 7, "x" * 129, "🔑" * 7, "🔑" * 129, "", None, 12345678, "pass\x00word"],
    ids=["7", "129", "7-emoji", "129-emoji", "empty", "null", "number", "nul"],
)
def test_register_rejects_a_password_outside_8_to_128_code_points(
    client: FlaskClient, password: Any
) -> None:
    response = register(client, email="ada@example.com", password=password)
    assert_error(response, 422, error_fields={"json": {"password"}})
    assert_unauthorized(log_in(client, "ada@example.com", "x" * 8))  # no account was made


@pytest.mark.parametrize(
    ("password", "attempt"),
    [
        ("p" * 127 + "1", "p" * 127 + "2"),  # bcrypt would stop reading at byte 72
        ("ü" * 127 + "a", "ü" * 127 + "b"),
        ("🔑" * 127 + "a", "🔑" * 127 + "b"),
        ("x" * 100 + "A" + "x" * 27, "x" * 100 + "a" + "x" * 27),
        ("Password123", "password123"),
        ("password123 ", "password123"),  # passwords are never trimmed
        (" password123", "password123"),
    ],
    ids=[
        "128-last-char",
        "accented",
        "emoji",
        "case-at-100",
        "case",
        "trailing-space",
        "leading-space",
    ],
)
def test_every_character_of_the_password_counts(
    client: FlaskClient, password: str, attempt: str
) -> None:
    assert register(client, email="ada@example.com", password=password).status_code == 201
    assert_unauthorized(log_in(client, "ada@example.com", attempt))
    assert log_in(client, "ada@example.com", password).status_code == 200


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, None),
        ({"name": None}, None),
        ({"name": "N" * 255}, "N" * 255),
        ({"name": "Ada 🚀 عربى"}, "Ada 🚀 عربى"),
    ],
    ids=["absent", "null", "255", "unicode"],
)
def test_register_name_is_optional(
    client: FlaskClient, extra: dict[str, Any], expected: str | None
) -> None:
    response = register(client, email="ada@example.com", password=PASSWORD, **extra)
    assert response.status_code == 201, response.json
    assert_user(response.json, email="ada@example.com", name=expected)
    tokens = log_in(client, "ada@example.com", PASSWORD).json
    assert me(client, tokens["access_token"]).json["name"] == expected


@pytest.mark.parametrize("name", ["N" * 256, 42, "Ada\x00"], ids=["256", "number", "nul"])
def test_register_rejects_an_invalid_name(client: FlaskClient, name: Any) -> None:
    response = register(client, email="ada@example.com", password=PASSWORD, name=name)
    assert_error(response, 422, error_fields={"json": {"name"}})


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "ada@example.com", "password": PASSWORD, "role": "admin"}, {"role"}),
        ({"email": "ada@example.com", "password": PASSWORD, "id": str(uuid.uuid4())}, {"id"}),
        ({"password": PASSWORD}, {"email"}),
        ({"email": "ada@example.com"}, {"password"}),
        ({}, {"email", "password"}),
    ],
    ids=["unknown-field", "id", "missing-email", "missing-password", "empty"],
)
def test_register_rejects_unknown_and_missing_fields(
    client: FlaskClient, body: dict[str, Any], fields: set[str]
) -> None:
    response = client.post("/api/auth/register", json=body)
    assert_error(response, 422, error_fields={"json": fields})
    assert_unauthorized(log_in(client, "ada@example.com", PASSWORD))  # no account was made


# ---------------------------------------------------------------- login


def test_login_returns_a_token_pair(client: FlaskClient, user: TestUser) -> None:
    response = log_in(client, user.email, user.password)
    assert response.status_code == 200, response.json
    assert_token_pair(response.json, user.id)
    assert me(client, response.json["access_token"]).json["id"] == user.id


@pytest.mark.parametrize(
    "typed", ["ADA@EXAMPLE.COM", "Ada@Example.Com", "  ada@example.com  ", "\tAda@example.com\n"]
)
def test_login_email_is_trimmed_and_case_insensitive(client: FlaskClient, typed: str) -> None:
    register(client, email="Ada@Example.com", password=PASSWORD)
    response = log_in(client, typed, PASSWORD)
    assert response.status_code == 200, response.json


def test_unknown_email_and_wrong_password_give_the_same_401(
    client: FlaskClient, user: TestUser
) -> None:
    wrong_password = assert_unauthorized(log_in(client, user.email, "not the password"))
    unknown_email = assert_unauthorized(log_in(client, "nobody@example.com", user.password))
    assert wrong_password == unknown_email


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "ada@example.com"}, {"password"}),
        ({"password": PASSWORD}, {"email"}),
        ({"email": "ada@example.com", "password": PASSWORD, "remember": True}, {"remember"}),
        ({"email": 1, "password": PASSWORD}, {"email"}),
        ({"email": "ada@example.com", "password": None}, {"password"}),
    ],
    ids=["missing-password", "missing-email", "unknown-field", "email-number", "password-null"],
)
def test_login_rejects_an_invalid_body(
    client: FlaskClient, body: dict[str, Any], fields: set[str]
) -> None:
    register(client, email="ada@example.com", password=PASSWORD)
    assert_error(client.post("/api/auth/login", json=body), 422, error_fields={"json": fields})


def test_expires_in_follows_the_configured_access_token_lifetime(app: Flask) -> None:
    short = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=5),
        },
    )
    try:
        client = short.test_client()
        register(client, email="ada@example.com", password=PASSWORD)
        pair = log_in(client, "ada@example.com", PASSWORD).json
        assert pair["expires_in"] == 300
        access = claims_of(pair["access_token"])
        assert access["exp"] - access["iat"] == 300
    finally:
        with short.app_context():
            db.engine.dispose()


# ---------------------------------------------------------------- refresh


def test_refresh_returns_a_new_working_pair(
    client: FlaskClient, user: TestUser, login: Login
) -> None:
    old = login(user)
    response = refresh(client, old["refresh_token"])
    assert response.status_code == 200, response.json
    new = response.json
    assert_token_pair(new, user.id)
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert me(client, new["access_token"]).status_code == 200
    assert refresh(client, new["refresh_token"]).status_code == 200


def test_a_refresh_token_works_only_once(client: FlaskClient, user: TestUser, login: Login) -> None:
    tokens = login(user)
    assert refresh(client, tokens["refresh_token"]).status_code == 200
    assert_unauthorized(refresh(client, tokens["refresh_token"]))


# ---------------------------------------------------------------- logout


def logout(client: FlaskClient, access_token: str, body: Any = None) -> Any:
    if body is None:
        return client.post("/api/auth/logout", headers=bearer(access_token))
    return client.post("/api/auth/logout", json=body, headers=bearer(access_token))


def test_logout_revokes_the_access_token_only(
    client: FlaskClient, user: TestUser, login: Login
) -> None:
    tokens, other_session = login(user), login(user)
    response = logout(client, tokens["access_token"])
    assert response.status_code == 204
    assert response.get_data() == b""
    assert response.headers.get("X-Request-ID")
    assert_unauthorized(me(client, tokens["access_token"]))
    assert_unauthorized(client.get("/api/me/tasks", headers=bearer(tokens["access_token"])))
    # Neither the refresh token it did not name nor another session is touched.
    assert me(client, other_session["access_token"]).status_code == 200
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_logging_out_twice_with_one_access_token_is_401_the_second_time(
    client: FlaskClient, user: TestUser, login: Login
) -> None:
    tokens = login(user)
    assert logout(client, tokens["access_token"]).status_code == 204
    assert_unauthorized(logout(client, tokens["access_token"]))


def test_logout_with_own_refresh_token_revokes_it_too(
    client: FlaskClient, user: TestUser, login: Login
) -> None:
    tokens = login(user)
    body = {"refresh_token": tokens["refresh_token"]}
    assert logout(client, tokens["access_token"], body).status_code == 204
    assert_unauthorized(refresh(client, tokens["refresh_token"]))
    assert_unauthorized(me(client, tokens["access_token"]))


def test_logout_ignores_a_refresh_token_of_another_user(
    client: FlaskClient,
    make_user: MakeUser,
    login: Login,
) -> None:
    mine, theirs = login(make_user()), login(make_user())
    body = {"refresh_token": theirs["refresh_token"]}
    assert logout(client, mine["access_token"], body).status_code == 204
    assert_unauthorized(me(client, mine["access_token"]))
    response = refresh(client, theirs["refresh_token"])  # still usable by its owner
    assert response.status_code == 200, response.json


def _expired_refresh_token(app: Flask, user: TestUser) -> str:
    with app.app_context():
        return create_refresh_token(
            identity=user.id, additional_claims={"ver": 0}, expires_delta=timedelta(seconds=-1)
        )


@pytest.mark.parametrize(
    "make_value",
    [
        lambda app, user, tokens: "garbage",
        lambda app, user, tokens: "",
        lambda app, user, tokens: None,
        lambda app, user, tokens: "a.b.c",
        lambda app, user, tokens: jwt.encode(
            claims_of(tokens["refresh_token"]), OTHER_KEY, algorithm="HS256"
        ),
        lambda app, user, tokens: _expired_refresh_token(app, user),
        lambda app, user, tokens: tokens["access_token"],  # not a refresh token
    ],
    ids=["garbage", "empty", "null", "dotted-garbage", "foreign-key", "expired", "access-token"],
)
def test_logout_ignores_anything_but_an_own_refresh_token(
    client: FlaskClient,
    app: Flask,
    user: TestUser,
    login: Login,
    make_value: Callable[[Flask, TestUser, dict[str, str]], Any],
) -> None:
    presented, other = login(user), login(user)
    body = {"refresh_token": make_value(app, user, other)}
    assert logout(client, presented["access_token"], body).status_code == 204
    assert_unauthorized(me(client, presented["access_token"]))
    assert me(client, other["access_token"]).status_code == 200
    assert refresh(client, other["refresh_token"]).status_code == 200


@pytest.mark.parametrize("body", [{}, None], ids=["empty-object", "no-body"])
def test_logout_body_is_optional(client: FlaskClient, headers: dict[str, str], body: Any) -> None:
    if body is None:
        response = client.post("/api/auth/logout", headers=headers)
    else:
        response = client.post("/api/auth/logout", json=body, headers=headers)
    assert response.status_code == 204


def test_logout_rejects_an_unknown_field(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post("/api/auth/logout", json={"everywhere": True}, headers=headers)
    assert_error(response, 422, error_fields={"json": {"everywhere"}})


# ---------------------------------------------------------------- me


def test_me_returns_the_caller(client: FlaskClient, make_user: MakeUser, login: Login) -> None:
    user = make_user(email="Ada@Example.com", name="Ada")
    response = me(client, login(user)["access_token"])
    assert response.status_code == 200
    assert_user(response.json, email="ada@example.com", name="Ada")
    assert response.json["id"] == user.id


@pytest.mark.parametrize("name", ["Countess of Lovelace", None, "N" * 255, ""])
def test_patch_me_changes_the_name(
    client: FlaskClient, make_user: MakeUser, login: Login, name: str | None
) -> None:
    user = make_user(name="Ada")
    token = login(user)["access_token"]
    before = me(client, token).json
    response = client.patch("/api/auth/me", json={"name": name}, headers=bearer(token))
    assert response.status_code == 200, response.json
    assert_user(response.json, email=user.email, name=name)
    assert response.json["created_at"] == before["created_at"]
    assert timestamp(response.json["updated_at"]) > timestamp(before["updated_at"])
    assert me(client, token).json == response.json


@pytest.mark.parametrize("body", [{}, {"name": "Ada"}], ids=["empty", "same-name"])
def test_patch_me_without_a_real_change_keeps_updated_at(
    client: FlaskClient, make_user: MakeUser, login: Login, body: dict[str, Any]
) -> None:
    user = make_user(name="Ada")
    token = login(user)["access_token"]
    before = me(client, token).json
    response = client.patch("/api/auth/me", json=body, headers=bearer(token))
    assert response.status_code == 200, response.json
    assert response.json == before


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "N" * 256}, {"name"}),
        ({"name": 42}, {"name"}),
        ({"email": "new@example.com"}, {"email"}),
        ({"role": "admin"}, {"role"}),
        ({"password": "x" * 7, "current_password": PASSWORD}, {"password"}),
        ({"password": "x" * 129, "current_password": PASSWORD}, {"password"}),
        ({"password": None, "current_password": PASSWORD}, {"password"}),
    ],
    ids=[
        "name-256",
        "name-number",
        "email",
        "unknown",
        "password-7",
        "password-129",
        "password-null",
    ],
)
def test_patch_me_rejects_an_invalid_body(
    client: FlaskClient, user: TestUser, headers: dict[str, str], body, fields
) -> None:
    response = client.patch("/api/auth/me", json=body, headers=headers)
    assert_error(response, 422, error_fields={"json": fields})
    assert log_in(client, user.email, user.password).status_code == 200  # password unchanged


@pytest.mark.parametrize(
    "current",
    [
        {},
        {"current_password": "wrong password"},
        {"current_password": PASSWORD.upper()},
        {"current_password": ""},
    ],
    ids=["missing", "wrong", "wrong-case", "empty"],
)
def test_password_change_needs_the_right_current_password(
    client: FlaskClient, user: TestUser, headers: dict[str, str], current: dict[str, str]
) -> None:
    body = {"password": "a brand new password", "name": "Changed", **current}
    assert_error(client.patch("/api/auth/me", json=body, headers=headers), 403)
    # Nothing changed: not the password, not the name, and the token still works.
    assert_unauthorized(log_in(client, user.email, "a brand new password"))
    assert log_in(client, user.email, user.password).status_code == 200
    assert me(client, headers["Authorization"].split()[1]).json["name"] is None


def test_password_change_revokes_every_older_token_even_from_the_same_second(
    client: FlaskClient, user: TestUser, login: Login
) -> None:
    earlier = login(user)
    rotated = refresh(client, login(user)["refresh_token"]).json
    password = user.password
    # Retry until the last login before the change, the change and the first
    # login after it share one clock second: `iat` alone cannot order them.
    for attempt in range(5):
        before = log_in(client, user.email, password).json
        new_password = f"new password number {attempt}"
        response = change_password(client, before["access_token"], password, new_password)
        assert response.status_code == 200, response.json
        assert set(response.json) == USER_KEYS  # the user, no new tokens
        password = new_password
        after = log_in(client, user.email, password).json
        changed_at = int(timestamp(response.json["updated_at"]).timestamp())
        if (
            claims_of(before["access_token"])["iat"]
            == changed_at
            == claims_of(after["access_token"])["iat"]
        ):
            break
    else:
        pytest.fail("could not get a login, a password change and a login into one second")

    for old in (earlier, rotated, before):
        assert_unauthorized(me(client, old["access_token"]))
        assert_unauthorized(client.get("/api/me/tasks", headers=bearer(old["access_token"])))
        assert_unauthorized(refresh(client, old["refresh_token"]))
    assert_unauthorized(log_in(client, user.email, user.password))
    assert me(client, after["access_token"]).status_code == 200
    assert refresh(client, after["refresh_token"]).status_code == 200


def test_password_change_moves_updated_at_and_keeps_the_rest(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    user = make_user(name="Ada")
    token = login(user)["access_token"]
    before = me(client, token).json
    response = change_password(client, token, user.password, "a brand new password")
    assert response.status_code == 200, response.json
    assert_user(response.json, email=user.email, name="Ada")
    assert response.json["created_at"] == before["created_at"]
    assert timestamp(response.json["updated_at"]) > timestamp(before["updated_at"])


def test_delete_me_removes_the_account_and_all_its_tasks(
    client: FlaskClient,
    app: Flask,
    make_user: MakeUser,
    login: Login,
) -> None:
    user, bystander = make_user(), make_user()
    tokens, bystander_headers = login(user), bearer(login(bystander)["access_token"])
    for title in ("one", "two"):
        created = client.post(
            "/api/me/tasks", json={"title": title}, headers=bearer(tokens["access_token"])
        )
        assert created.status_code == 201
    kept = client.post("/api/me/tasks", json={"title": "kept"}, headers=bystander_headers)

    response = client.delete("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    assert response.get_data() == b""

    with app.app_context():
        count = select(func.count()).select_from(Task).where(Task.user_id == uuid.UUID(user.id))
        assert db.session.scalar(count) == 0
    assert_unauthorized(me(client, tokens["access_token"]))
    assert_unauthorized(client.get("/api/me/tasks", headers=bearer(tokens["access_token"])))
    assert_unauthorized(refresh(client, tokens["refresh_token"]))
    assert assert_unauthorized(log_in(client, user.email, user.password)) == assert_unauthorized(
        log_in(client, "nobody@example.com", user.password)
    )
    listing = client.get("/api/me/tasks", headers=bystander_headers)
    assert [task["id"] for task in listing.json] == [kept.json["id"]]
    # The address is free again.
    assert register(client, email=user.email, password=PASSWORD).status_code == 201


# ------------------------------------------------ secrets stay out of sight


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_password_or_hash_in_any_response_or_log_line(client: FlaskClient) -> None:
    first, wrong, second, too_long = (
        "first secret pw",
        "wrong secret pw",
        "second secret pw",
        "S" * 129,
    )
    collector = _Collect()
    logger = logging.getLogger("todo_service")
    logger.addHandler(collector)
    try:
        responses = [
            register(client, email="ada@example.com", password=first, name="Ada"),
            register(client, email="ada@example.com", password=first),  # 409
            register(client, email="bob@example.com", password=too_long),  # 422
            log_in(client, "ada@example.com", wrong),
            log_in(client, "ada@example.com", first),
        ]
        tokens = responses[-1].json
        responses += [
            me(client, tokens["access_token"]),
            change_password(client, tokens["access_token"], wrong, second),  # 403
            change_password(client, tokens["access_token"], first, second),
        ]
        tokens = log_in(client, "ada@example.com", second).json
        responses += [me(client, tokens["access_token"]), refresh(client, tokens["refresh_token"])]
    finally:
        logger.removeHandler(collector)

    assert [r.status_code for r in responses] == [201, 409, 422, 401, 200, 200, 403, 200, 200, 200]
    assert collector.lines  # the requests were logged
    texts = [r.get_data(as_text=True) + str(dict(r.headers)) for r in responses] + collector.lines
    for text in texts:
        for secret in (first, wrong, second, too_long, "$argon2", "password_hash"):
            assert secret not in text, text


def test_tokens_carry_the_subject_as_a_string(
    client: FlaskClient, user: TestUser, login: Login
) -> None:
    tokens = login(user)
    rotated = refresh(client, tokens["refresh_token"]).json
    for pair in (tokens, rotated):
        for name in ("access_token", "refresh_token"):
            subject = claims_of(pair[name])["sub"]
            assert isinstance(subject, str) and subject == user.id


def test_a_token_seen_before_is_not_parsed_again(
    app: Flask, client: FlaskClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verified-token cache (jwt_manager.py) covers the header too, and its
    answer is the token's own header."""
    token = headers["Authorization"].removeprefix("Bearer ")
    assert client.get("/api/me/tasks", headers=headers).status_code == 200
    expected_header, expected_subject = jwt.get_unverified_header(token), claims_of(token)["sub"]
    parses: list[str] = []
    original = jwt.api_jws.PyJWS.get_unverified_header

    def counted(self: Any, encoded: Any) -> dict[str, Any]:
        parses.append(encoded)
        return original(self, encoded)  # type: ignore[no-any-return]

    monkeypatch.setattr(jwt.api_jws.PyJWS, "get_unverified_header", counted)
    monkeypatch.setattr(jwt.api_jws.PyJWS, "_load", lambda *a: pytest.fail("token parsed"))
    assert client.get("/api/me/tasks", headers=headers).status_code == 200
    assert parses == []
    with app.test_request_context(headers=headers):
        verify_jwt_in_request()
        assert get_jwt_header() == expected_header
        assert get_jwt()["sub"] == expected_subject


# ------------------------------------------------------- the 401 matrix


@dataclass
class Victim:
    """A user with a task and a fresh token pair, ready to be attacked."""

    client: FlaskClient
    app: Flask
    user: TestUser
    tokens: dict[str, str]
    task_id: str
    login: Login
    make_user: MakeUser

    def token(self, kind: str) -> str:
        return self.tokens[f"{kind}_token"]


@pytest.fixture
def victim(
    client: FlaskClient,
    app: Flask,
    make_user: MakeUser,
    login: Login,
) -> Victim:
    user = make_user()
    tokens = login(user)
    task = client.post("/api/me/tasks", json={"title": "t"}, headers=bearer(tokens["access_token"]))
    assert task.status_code == 201
    return Victim(client, app, user, tokens, task.json["id"], login, make_user)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _minted(v: Victim, kind: str, expires_delta: timedelta) -> str:
    create = create_access_token if kind == "access" else create_refresh_token
    with v.app.app_context():
        return create(identity=v.user.id, additional_claims={"ver": 0}, expires_delta=expires_delta)


def _expired(v: Victim, kind: str) -> dict[str, str]:
    return bearer(_minted(v, kind, timedelta(seconds=-1)))


def _foreign_key(v: Victim, kind: str) -> dict[str, str]:
    return bearer(jwt.encode(claims_of(v.token(kind)), OTHER_KEY, algorithm="HS256"))


def _unsigned(v: Victim, kind: str) -> dict[str, str]:
    header = {"alg": "none", "typ": "JWT"}
    return bearer(f"{_b64(header)}.{_b64(claims_of(v.token(kind)))}.")


def _tampered(v: Victim, kind: str) -> dict[str, str]:
    """The victim's token, its subject swapped for another user, signature kept."""
    header, _, signature = v.token(kind).split(".")
    claims = {**claims_of(v.token(kind)), "sub": v.make_user().id}
    return bearer(f"{header}.{_b64(claims)}.{signature}")


def _deleted_user(v: Victim, kind: str) -> dict[str, str]:
    other_session = v.login(v.user)["access_token"]
    assert v.client.delete("/api/auth/me", headers=bearer(other_session)).status_code == 204
    return bearer(v.token(kind))


def _revoked(v: Victim, kind: str) -> dict[str, str]:
    if kind == "access":
        response = logout(v.client, v.token("access"))
    else:
        response = refresh(v.client, v.token("refresh"))  # rotation revokes it
    assert response.status_code in (200, 204)
    return bearer(v.token(kind))


def _revoked_at_logout(v: Victim, kind: str) -> dict[str, str]:
    """Revoked as the refresh token named at logout (for an access token: the
    one presented at that logout)."""
    body = {"refresh_token": v.token("refresh")}
    assert logout(v.client, v.token("access"), body).status_code == 204
    return bearer(v.token(kind))


def _superseded(v: Victim, kind: str) -> dict[str, str]:
    other_session = v.login(v.user)["access_token"]
    response = change_password(v.client, other_session, v.user.password, "a brand new password")
    assert response.status_code == 200
    return bearer(v.token(kind))


def _wrong_type(v: Victim, kind: str) -> dict[str, str]:
    return bearer(v.token("refresh" if kind == "access" else "access"))


BAD_CREDENTIALS: dict[str, Callable[[Victim, str], dict[str, str]]] = {
    "missing": lambda v, kind: {},
    "empty-header": lambda v, kind: {"Authorization": ""},
    "bearer-without-token": lambda v, kind: {"Authorization": "Bearer"},
    "bearer-garbage": lambda v, kind: {"Authorization": "Bearer garbage"},
    "bearer-dotted-garbage": lambda v, kind: {"Authorization": "Bearer a.b.c"},
    "token-scheme": lambda v, kind: {"Authorization": "Token abc"},
    "basic-scheme": lambda v, kind: {"Authorization": "Basic YWRhOnB3"},
    "token-without-scheme": lambda v, kind: {"Authorization": v.token(kind)},
    "expired": _expired,
    "signed-with-another-key": _foreign_key,
    "unsigned-alg-none": _unsigned,
    "tampered-subject": _tampered,
    "deleted-user": _deleted_user,
    "revoked": _revoked,
    "revoked-at-logout": _revoked_at_logout,
    "older-than-password-change": _superseded,
    "wrong-token-type": _wrong_type,
}

TASK = "/api/{user_id}/tasks/{task_id}"
PROTECTED_ROUTES = [
    # (method, path, body, the token type the route takes)
    ("POST", "/api/auth/refresh", None, "refresh"),
    ("POST", "/api/auth/logout", None, "access"),
    ("GET", "/api/auth/me", None, "access"),
    ("PATCH", "/api/auth/me", {"name": "Mallory"}, "access"),
    ("DELETE", "/api/auth/me", None, "access"),
    ("GET", "/api/me/tasks", None, "access"),
    ("POST", "/api/{user_id}/tasks", {"title": "x"}, "access"),
    ("GET", TASK, None, "access"),
    ("PUT", TASK, {"title": "x"}, "access"),
    ("PATCH", "/api/me/tasks/{task_id}", {"completed": True}, "access"),
    ("DELETE", TASK, None, "access"),
    ("PATCH", TASK + "/complete", None, "access"),
]


@pytest.mark.parametrize("credential", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
@pytest.mark.parametrize(
    ("method", "path", "body", "kind"),
    PROTECTED_ROUTES,
    ids=[f"{method} {path}" for method, path, _, _ in PROTECTED_ROUTES],
)
def test_protected_route_refuses_a_bad_token_with_401(
    victim: Victim,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    kind: str,
    credential: Callable[[Victim, str], dict[str, str]],
) -> None:
    headers = credential(victim, kind)
    url = path.format(user_id=victim.user.id, task_id=victim.task_id)
    extra = {} if body is None else {"json": body}
    assert_unauthorized(victim.client.open(url, method=method, headers=headers, **extra))


@pytest.mark.parametrize("kind", ["access", "refresh"])
def test_a_minted_token_with_the_right_claims_and_key_is_accepted(
    victim: Victim, kind: str
) -> None:
    """The control for the matrix: the expired and foreign-key tokens fail for
    that one reason, not because they were built wrong."""
    fresh = _minted(victim, kind, timedelta(minutes=5))
    resigned = jwt.encode(
        claims_of(victim.token(kind)), TestConfig.JWT_SECRET_KEY, algorithm="HS256"
    )
    for token in (fresh, resigned):
        if kind == "access":
            assert me(victim.client, token).status_code == 200
        else:
            assert refresh(victim.client, token).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/{other}/tasks", {}),
        ("PATCH", "/api/{other}/tasks/{random}", {"title": ""}),
        ("PATCH", "/api/auth/me", {"name": 42}),
        ("POST", "/api/auth/logout", {"bogus": True}),
    ],
)
def test_authentication_is_checked_before_the_body_and_ownership(
    client: FlaskClient, method: str, path: str, body: dict[str, Any]
) -> None:
    url = path.format(other=uuid.uuid4(), random=uuid.uuid4())
    assert_unauthorized(client.open(url, method=method, json=body))
