"""Refresh token reuse (API.md: Refresh token reuse; Details (1.1), Reuse).

The tokens of one login form a family. A refresh token rotated away and
presented again within REFRESH_REUSE_GRACE_SECONDS is a plain 401 (a
client's retry race); later, it revokes every token of its family, access
and refresh, on every worker. Other logins are untouched, and a refresh token
revoked by logout is only revoked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from sqlalchemy import select

from todo_service import create_app
from todo_service.config import TestConfig
from todo_service.db.models import RevokedToken
from todo_service.errors import Unauthorized
from todo_service.extensions import db
from todo_service.services import tokens

from .conftest import DEFAULT_PASSWORD, start_gunicorn
from .helpers import TestUser, assert_error
from .test_concurrency import TIMEOUT, run_together

PAIR_KEYS = {"access_token", "refresh_token", "token_type", "expires_in"}

# ---------------------------------------------------------------- helpers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: Any) -> None:
    assert_error(response, 401)
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers


def register(client: FlaskClient) -> TestUser:
    email = f"reuse-{uuid.uuid4().hex}@example.com"
    response = client.post(
        "/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return TestUser(id=response.json["id"], email=email, password=DEFAULT_PASSWORD)


def log_in(client: FlaskClient, user: TestUser) -> dict[str, Any]:
    response = client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json  # type: ignore[no-any-return]


def refresh(client: FlaskClient, refresh_token: str) -> Any:
    return client.post("/api/auth/refresh", headers=bearer(refresh_token))


def rotated(client: FlaskClient, pair: dict[str, Any]) -> dict[str, Any]:
    """The pair `pair`'s refresh token is exchanged for."""
    response = refresh(client, pair["refresh_token"])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert set(response.json) == PAIR_KEYS
    return response.json  # type: ignore[no-any-return]


def claims_of(app: Flask, token: str) -> dict[str, Any]:
    with app.app_context():
        return decode_token(token, allow_expired=True)


def family_of(app: Flask, token: str) -> str:
    family: str = claims_of(app, token)["fam"]
    return family


def access_statuses(client: FlaskClient, access_token: str) -> dict[str, int]:
    """What the access token gets on /api/auth/me and on the task routes
    (each of them checks the token inside its own statement)."""
    auth = bearer(access_token)
    created = client.post("/api/me/tasks", json={"title": "probe"}, headers=auth)
    task = created.json["id"] if created.status_code == 201 else str(uuid.uuid4())
    return {
        "me": client.get("/api/auth/me", headers=auth).status_code,
        "create": created.status_code,
        "list": client.get("/api/me/tasks", headers=auth).status_code,
        "get": client.get(f"/api/me/tasks/{task}", headers=auth).status_code,
        "toggle": client.patch(f"/api/me/tasks/{task}/complete", headers=auth).status_code,
        "delete": client.delete(f"/api/me/tasks/{task}", headers=auth).status_code,
    }


WORKING = {"me": 200, "create": 201, "list": 200, "get": 200, "toggle": 200, "delete": 204}
REFUSED = dict.fromkeys(WORKING, 401)


def assert_refused_everywhere(client: FlaskClient, access_token: str) -> None:
    assert access_statuses(client, access_token) == REFUSED
    assert_unauthorized(client.get("/api/auth/me", headers=bearer(access_token)))


@pytest.fixture
def strict_app(app: Flask) -> Iterator[Flask]:
    """The test app on the same database with REFRESH_REUSE_GRACE_SECONDS=0:
    any reuse revokes the family."""
    application = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REFRESH_REUSE_GRACE_SECONDS": 0,
        },
    )
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def strict_client(strict_app: Flask) -> FlaskClient:
    return strict_app.test_client()


def family_rows(app: Flask) -> list[str]:
    """The revoked families: rows keyed by a family some rotation continued."""
    families = select(RevokedToken.family).where(RevokedToken.family.is_not(None))
    query = select(RevokedToken.jti).where(RevokedToken.jti.in_(families))
    with app.app_context(), db.engine.connect() as conn:
        return sorted(conn.execute(query).scalars())


# ---------------------------------------------------------------- families


def test_the_tokens_of_one_login_share_a_family_that_refresh_keeps(
    app: Flask, client: FlaskClient
) -> None:
    user = register(client)
    first, other_login = log_in(client, user), log_in(client, user)
    family = family_of(app, first["access_token"])
    assert str(uuid.UUID(family)) == family
    assert family_of(app, first["refresh_token"]) == family
    second = rotated(client, first)
    assert {family_of(app, second[kind]) for kind in ("access_token", "refresh_token")} == {family}
    assert family_of(app, other_login["access_token"]) != family


# ---------------------------------------------------------------- within the window


def test_reuse_within_the_grace_window_is_a_plain_401_and_the_new_pair_works(
    app: Flask, client: FlaskClient
) -> None:
    assert app.config["REFRESH_REUSE_GRACE_SECONDS"] == 10  # the default
    user = register(client)
    old = log_in(client, user)
    new = rotated(client, old)

    for _ in range(3):  # a client retrying
        assert_unauthorized(refresh(client, old["refresh_token"]))

    assert access_statuses(client, new["access_token"]) == WORKING
    assert access_statuses(client, old["access_token"]) == WORKING  # not rotated itself
    assert family_rows(app) == []
    newer = rotated(client, new)
    assert access_statuses(client, newer["access_token"]) == WORKING


def _shift_clock(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    real = tokens.utcnow
    monkeypatch.setattr(tokens, "utcnow", lambda: real() + by)


@pytest.mark.parametrize(
    ("later", "revoked"),
    [(timedelta(seconds=9), False), (timedelta(seconds=10), True), (timedelta(hours=1), True)],
    ids=["9s-later", "10s-later", "an-hour-later"],
)
def test_the_grace_window_is_counted_from_the_rotation(
    app: Flask,
    client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    later: timedelta,
    revoked: bool,
) -> None:
    user = register(client)
    old = log_in(client, user)
    new = rotated(client, old)

    _shift_clock(monkeypatch, later)
    assert_unauthorized(refresh(client, old["refresh_token"]))

    if revoked:
        assert_refused_everywhere(client, new["access_token"])
        assert_unauthorized(refresh(client, new["refresh_token"]))
    else:
        assert access_statuses(client, new["access_token"]) == WORKING
        rotated(client, new)


# ---------------------------------------------------------------- after the window


@pytest.mark.parametrize("reused", [0, 1], ids=["the-login-token", "a-rotated-to-token"])
def test_reuse_after_the_window_revokes_the_whole_family(
    strict_app: Flask, strict_client: FlaskClient, reused: int
) -> None:
    client = strict_client
    user = register(client)
    bystander = log_in(client, user)  # another login of the same user
    chain = [log_in(client, user)]
    for _ in range(3):
        chain.append(rotated(client, chain[-1]))

    assert_unauthorized(refresh(client, chain[reused]["refresh_token"]))

    # Every token of the family, access and refresh, newest included.
    for pair in chain:
        assert_refused_everywhere(client, pair["access_token"])
    assert_unauthorized(refresh(client, chain[-1]["refresh_token"]))
    assert family_rows(strict_app) == [family_of(strict_app, chain[0]["access_token"])]

    # Other logins of the same user are not affected, nor a later one.
    assert access_statuses(client, bystander["access_token"]) == WORKING
    assert access_statuses(client, rotated(client, bystander)["access_token"]) == WORKING
    assert access_statuses(client, log_in(client, user)["access_token"]) == WORKING


def test_a_revoked_family_stays_revoked_when_reused_again(
    strict_app: Flask, strict_client: FlaskClient
) -> None:
    client = strict_client
    user = register(client)
    old = log_in(client, user)
    new = rotated(client, old)
    for _ in range(2):
        assert_unauthorized(refresh(client, old["refresh_token"]))
    assert_unauthorized(refresh(client, new["refresh_token"]))
    assert len(family_rows(strict_app)) == 1


def test_the_family_is_revoked_until_its_newest_token_expires(
    strict_app: Flask, strict_client: FlaskClient
) -> None:
    user = register(strict_client)
    old = log_in(strict_client, user)
    new = rotated(strict_client, old)
    assert_unauthorized(refresh(strict_client, old["refresh_token"]))

    family = family_of(strict_app, new["refresh_token"])
    newest_exp = claims_of(strict_app, new["refresh_token"])["exp"]
    with strict_app.app_context(), db.engine.connect() as conn:
        row = conn.execute(select(RevokedToken).where(RevokedToken.jti == family)).one()
    assert row.rotated_at is None and row.family is None
    assert row.expires_at.timestamp() >= newest_exp


# ---------------------------------------------------------------- logout


def test_a_refresh_token_revoked_by_logout_is_only_revoked(
    strict_app: Flask, strict_client: FlaskClient
) -> None:
    client = strict_client
    user = register(client)
    first = log_in(client, user)
    second = rotated(client, first)
    # Log out with the first access token (rotation does not revoke it),
    # naming the second refresh token: the second access token stays good.
    response = client.post(
        "/api/auth/logout",
        json={"refresh_token": second["refresh_token"]},
        headers=bearer(first["access_token"]),
    )
    assert response.status_code == 204

    for _ in range(2):
        assert_unauthorized(refresh(client, second["refresh_token"]))

    assert access_statuses(client, second["access_token"]) == WORKING
    assert family_rows(strict_app) == []


# ---------------------------------------------------------------- the race, in one process


def test_a_lost_rotation_race_revokes_the_family_only_after_the_window(
    app: Flask, client: FlaskClient
) -> None:
    """The loser of a race passed the revocation check and then hit the
    primary key: the same rule as a later reuse decides."""
    user = register(client)
    pair = log_in(client, user)
    family = family_of(app, pair["refresh_token"])
    jti = str(uuid.uuid4())
    expires_at = datetime.now().astimezone() + timedelta(days=1)
    rotation = {"jti": jti, "expires_at": expires_at, "family": family}
    lifetime = {"family_lifetime": timedelta(days=30)}

    with app.test_request_context():
        tokens.rotate(**rotation, grace=timedelta(seconds=10), **lifetime)
        with pytest.raises(Unauthorized):  # inside the window
            tokens.rotate(**rotation, grace=timedelta(seconds=10), **lifetime)
    assert family_rows(app) == []
    assert access_statuses(client, pair["access_token"]) == WORKING

    with app.test_request_context(), pytest.raises(Unauthorized):  # grace 0: any reuse
        tokens.rotate(**rotation, grace=timedelta(0), **lifetime)
    assert family_rows(app) == [family]
    assert_refused_everywhere(client, pair["access_token"])


# ---------------------------------------------------------------- tokens from before families


def _minted(app: Flask, user: TestUser, kind: str, claims: dict[str, Any]) -> str:
    create = create_access_token if kind == "access" else create_refresh_token
    with app.app_context():
        return create(identity=user.id, additional_claims={"ver": 0, **claims})


def test_tokens_from_before_families_keep_working_and_refresh_into_one(
    strict_app: Flask, strict_client: FlaskClient
) -> None:
    client = strict_client
    user = register(client)
    legacy_access = _minted(strict_app, user, "access", {})
    legacy_refresh = _minted(strict_app, user, "refresh", {})

    assert access_statuses(client, legacy_access) == WORKING
    new = rotated(client, {"refresh_token": legacy_refresh})
    assert access_statuses(client, new["access_token"]) == WORKING

    # Its reuse revokes the family its rotation started.
    assert_unauthorized(refresh(client, legacy_refresh))
    assert_refused_everywhere(client, new["access_token"])
    assert_unauthorized(refresh(client, new["refresh_token"]))
    assert access_statuses(client, legacy_access) == WORKING  # in no family


@pytest.mark.parametrize(
    "family", [7, "", "x" * 37, ["a"], None], ids=["number", "empty", "too-long", "list", "null"]
)
@pytest.mark.parametrize("kind", ["access", "refresh"])
def test_a_token_with_a_malformed_family_is_refused(
    app: Flask, client: FlaskClient, kind: str, family: Any
) -> None:
    user = register(client)
    token = _minted(app, user, kind, {"fam": family})
    if kind == "access":
        assert_unauthorized(client.get("/api/auth/me", headers=bearer(token)))
        assert_unauthorized(client.get("/api/me/tasks", headers=bearer(token)))
    else:
        assert_unauthorized(refresh(client, token))


# ---------------------------------------------------------------- live, multi-worker


Racer = Callable[[requests.Session, int], requests.Response]


def _http_account(base: str) -> dict[str, Any]:
    email = f"reuse-{uuid.uuid4().hex}@example.com"
    body = {"email": email, "password": DEFAULT_PASSWORD}
    registered = requests.post(f"{base}/api/auth/register", json=body, timeout=TIMEOUT)
    assert registered.status_code == 201, registered.text
    return body


def _http_login(base: str, account: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{base}/api/auth/login", json=account, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _http_statuses(base: str, access_token: str, rounds: int) -> list[int]:
    """/api/auth/me and a task listing, `rounds` times each, every request on
    a new connection (so that they spread over the workers), all at once."""

    def probe(session: requests.Session, i: int) -> requests.Response:
        path = "/api/auth/me" if i % 2 else "/api/me/tasks"
        return requests.get(f"{base}{path}", headers=bearer(access_token), timeout=TIMEOUT)

    return [response.status_code for response in run_together(2 * rounds, probe)]


@pytest.mark.live
def test_concurrent_refreshes_in_the_window_leave_one_working_pair(live_server: str) -> None:
    racers = 12
    account = _http_account(live_server)
    used = _http_login(live_server, account)["refresh_token"]

    responses = run_together(
        racers,
        lambda session, _: session.post(
            f"{live_server}/api/auth/refresh", headers=bearer(used), timeout=TIMEOUT
        ),
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [401] * (racers - 1), statuses
    for response in responses:
        if response.status_code == 401:
            assert_error(response, 401)
    (pair,) = (response.json() for response in responses if response.status_code == 200)
    # No loser revoked the family: the winner's pair keeps working everywhere.
    assert _http_statuses(live_server, pair["access_token"], rounds=8) == [200] * 16
    again = requests.post(
        f"{live_server}/api/auth/refresh", headers=bearer(pair["refresh_token"]), timeout=TIMEOUT
    )
    assert again.status_code == 200, again.text
    assert _http_statuses(live_server, again.json()["access_token"], rounds=4) == [200] * 8


@pytest.fixture(scope="module")
def strict_server(app: Flask, server_env: dict[str, str]) -> Iterator[str]:
    """A 4-worker gunicorn on the test database with REFRESH_REUSE_GRACE_SECONDS=0."""
    process, url = start_gunicorn({**server_env, "REFRESH_REUSE_GRACE_SECONDS": "0"}, workers=4)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.live
def test_reuse_after_the_window_revokes_the_family_on_every_worker(strict_server: str) -> None:
    account = _http_account(strict_server)
    bystander = _http_login(strict_server, account)
    old = _http_login(strict_server, account)
    rotation = requests.post(
        f"{strict_server}/api/auth/refresh", headers=bearer(old["refresh_token"]), timeout=TIMEOUT
    )
    assert rotation.status_code == 200, rotation.text
    new = rotation.json()
    assert _http_statuses(strict_server, new["access_token"], rounds=4) == [200] * 8

    reuse = requests.post(
        f"{strict_server}/api/auth/refresh", headers=bearer(old["refresh_token"]), timeout=TIMEOUT
    )
    assert_error(reuse, 401)

    for token in (new["access_token"], old["access_token"]):
        assert _http_statuses(strict_server, token, rounds=8) == [401] * 16
    refreshes = run_together(
        8,
        lambda session, _: requests.post(
            f"{strict_server}/api/auth/refresh",
            headers=bearer(new["refresh_token"]),
            timeout=TIMEOUT,
        ),
    )
    assert [response.status_code for response in refreshes] == [401] * 8
    assert _http_statuses(strict_server, bystander["access_token"], rounds=4) == [200] * 8
