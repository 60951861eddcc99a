"""Logs as a collector reads them from a real gunicorn's stdout (API.md:
Conventions, Authentication): one JSON line per request with its request id,
and never a token, a password or a password hash."""

from __future__ import annotations

import json
import re
import signal
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from todo_service.db.models import User
from todo_service.extensions import db

from .conftest import start_gunicorn

pytestmark = pytest.mark.live

TIMEOUT = 30
REQUEST_LINE_KEYS = {
    "ts",
    "level",
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "user_id",
}


def serve_and_capture(
    env: dict[str, str], tmp_path: Path, exercise: Any
) -> tuple[Any, list[dict[str, Any]], str]:
    """Start gunicorn as ops do, run `exercise(base_url)`, stop gunicorn;
    what `exercise` returned, every stdout line parsed, and the raw text."""
    log_path = tmp_path / "stdout.log"
    with log_path.open("wb") as log:
        process, url = start_gunicorn(env, workers=2, config=True, stdout=log)
    try:
        result = exercise(url)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
    text = log_path.read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(entry, dict) for entry in entries)
    return result, entries, text


def account_lifecycle(url: str, secrets: dict[str, str]) -> dict[str, Any]:
    """Register, fail a login, log in, refresh, change the password, log in
    again and log out; each request tagged with its own X-Request-ID. The
    expectation for each request's log line."""
    email = f"logged-{uuid.uuid4().hex[:8]}@example.com"
    expected: dict[str, dict[str, Any]] = {}
    user_id: str | None = None
    issued: list[str] = []

    def call(
        tag: str, method: str, path: str, status: int, *, token: str | None = None, **kw: Any
    ) -> requests.Response:
        request_id = f"log-{tag}-{uuid.uuid4().hex[:8]}"
        headers = {"X-Request-ID": request_id}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.request(method, url + path, headers=headers, timeout=TIMEOUT, **kw)
        assert response.status_code == status, (tag, response.text)
        assert response.headers["X-Request-ID"] == request_id
        expected[request_id] = {
            "method": method,
            "path": path,
            "status": status,
            "user_id": user_id if token else None,
        }
        return response

    def pair(response: requests.Response) -> tuple[str, str]:
        body = response.json()
        issued.extend([body["access_token"], body["refresh_token"]])
        return body["access_token"], body["refresh_token"]

    first, second, wrong = secrets["first"], secrets["second"], secrets["wrong"]
    user_id = call(
        "register",
        "POST",
        "/api/auth/register",
        201,
        json={"email": email, "password": first, "name": "Logged"},
    ).json()["id"]
    call("taken", "POST", "/api/auth/register", 409, json={"email": email, "password": first})
    call("bad-login", "POST", "/api/auth/login", 401, json={"email": email, "password": wrong})
    access, refresh = pair(
        call("login", "POST", "/api/auth/login", 200, json={"email": email, "password": first})
    )
    call("me", "GET", "/api/auth/me", 200, token=access)
    access, refresh = pair(call("refresh", "POST", "/api/auth/refresh", 200, token=refresh))
    call(
        "bad-change",
        "PATCH",
        "/api/auth/me",
        403,
        token=access,
        json={"password": second, "current_password": wrong},
    )
    call(
        "change",
        "PATCH",
        "/api/auth/me",
        200,
        token=access,
        json={"password": second, "current_password": first},
    )
    access, refresh = pair(
        call("relogin", "POST", "/api/auth/login", 200, json={"email": email, "password": second})
    )
    call(
        "logout",
        "POST",
        "/api/auth/logout",
        204,
        token=access,
        json={"refresh_token": refresh},
    )
    return {"email": email, "user_id": user_id, "tokens": issued, "expected": expected}


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_request_lines_of_an_account_lifecycle_carry_no_secret(
    app: Flask, server_env: dict[str, str], tmp_path: Path, level: str
) -> None:
    secrets = {
        "first": "first-Secret-Passw0rd-" + uuid.uuid4().hex[:6],
        "second": "second-Secret-Passw0rd-" + uuid.uuid4().hex[:6],
        "wrong": "wrong-Secret-Passw0rd-" + uuid.uuid4().hex[:6],
    }
    # DEBUG too: every logger gunicorn and the libraries have, at its most talkative.
    flow, entries, text = serve_and_capture(
        dict(server_env, LOG_LEVEL=level), tmp_path, lambda url: account_lifecycle(url, secrets)
    )
    with app.app_context():
        stored_hash = db.session.execute(
            select(User.password_hash).where(User.email == flow["email"])
        ).scalar_one()
        db.session.remove()

    # Nothing secret in any line, whatever logger wrote it.
    forbidden = [*secrets.values(), stored_hash, *flow["tokens"]]
    forbidden += [token.rsplit(".", 1)[1] for token in flow["tokens"]]  # JWT signatures
    for secret in forbidden:
        assert secret not in text
    assert "$argon2" not in text
    assert "eyJ" not in text  # no fragment of a JWT (base64 of '{"')
    assert not re.search(r"(?i)bearer\s", text)

    # One line per request, found by the request id it echoed.
    requests_logged = [e for e in entries if e.get("logger") == "todo_service.request"]
    logged_ids = [e["request_id"] for e in requests_logged]
    assert sorted(i for i in logged_ids if i.startswith("log-")) == sorted(flow["expected"])
    by_id = {entry["request_id"]: entry for entry in requests_logged}
    for entry in requests_logged:  # the start-up /healthz polls too
        assert set(entry) >= REQUEST_LINE_KEYS, entry
    for request_id, expected in flow["expected"].items():
        entry = by_id[request_id]
        assert {key: entry[key] for key in expected} == expected, entry
        assert entry["level"] == "INFO"
        assert datetime.fromisoformat(entry["ts"]).utcoffset() is not None
        assert isinstance(entry["duration_ms"], int | float) and entry["duration_ms"] >= 0
    assert {e["user_id"] for e in requests_logged} == {None, flow["user_id"]}


def test_log_level_warning_suppresses_the_request_lines(
    app: Flask, server_env: dict[str, str], tmp_path: Path
) -> None:
    def exercise(url: str) -> None:
        assert requests.get(f"{url}/readyz", timeout=TIMEOUT).status_code == 200
        assert requests.get(f"{url}/nope", timeout=TIMEOUT).status_code == 404
        login = requests.post(
            f"{url}/api/auth/login",
            json={"email": "nobody@example.com", "password": "not-the-password"},
            timeout=TIMEOUT,
        )
        assert login.status_code == 401

    _, entries, _ = serve_and_capture(dict(server_env, LOG_LEVEL="WARNING"), tmp_path, exercise)

    assert not [e for e in entries if e.get("logger") == "todo_service.request"]
    assert not [e for e in entries if e["level"] in {"DEBUG", "INFO"}], entries
