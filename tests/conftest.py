"""Fixtures: a real app on a real database, SQLite by default, PostgreSQL when
TEST_DATABASE_URL is set (its schema is dropped and rebuilt: point it at a
database made for the tests).

TEST_DATABASE_DIRECT_URL: the same database without a pooler in between, when
TEST_DATABASE_URL goes through PgBouncer in transaction mode
(scripts/pgbouncer-test.sh): the schema reset and the migrations use it, as
DATABASE_DIRECT_URL does in production.

Tables are emptied after each test rather than rolled back: the concurrency
tests need real commits seen by other connections and processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import flask_migrate
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from todo_service import create_app
from todo_service.config import TestConfig, normalize_database_url
from todo_service.extensions import db

from .contract import ContractCheckingClient
from .helpers import TestUser

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = TestConfig.JWT_SECRET_KEY
DEFAULT_PASSWORD = "correct horse battery staple"


def _direct_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_DIRECT_URL", "").strip()
    return normalize_database_url(url) if url else None


@pytest.fixture(scope="session", autouse=True)
def _responses_checked_against_document() -> Iterator[None]:
    """Every response any test gets through a Flask test client, of any app,
    is checked against the OpenAPI document that app serves (contract.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Flask, "test_client_class", ContractCheckingClient)
        yield


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    url = normalize_database_url(url)
    engine = create_engine(_direct_url() or url)
    with engine.begin() as conn:  # a clean slate for the migrations
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def database_direct_url(database_url: str) -> str:
    """The test database with no pooler in between: for tests that need one
    server session throughout (temporary tables, session locks)."""
    return _direct_url() or database_url


@pytest.fixture(scope="session")
def server_env(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for subprocesses (gunicorn, flask CLI) on the test database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEST_")}
    env.update(
        DATABASE_URL=database_url,
        JWT_SECRET_KEY=TEST_SECRET,
        ARGON2_TIME_COST=str(TestConfig.ARGON2_TIME_COST),
        ARGON2_MEMORY_COST=str(TestConfig.ARGON2_MEMORY_COST),
        RATELIMIT_ENABLED="false",
        AUTO_MIGRATE="0",
        LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    env.pop("DATABASE_DIRECT_URL", None)  # never migrate some other database
    direct = _direct_url()
    if direct:
        env["DATABASE_DIRECT_URL"] = direct
    return env


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    application = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url})
    # migrations/env.py migrates over DATABASE_DIRECT_URL when it is set.
    direct = _direct_url()
    with pytest.MonkeyPatch.context() as patch, application.app_context():
        patch.delenv("DATABASE_DIRECT_URL", raising=False)
        if direct:
            patch.setenv("DATABASE_DIRECT_URL", direct)
        flask_migrate.upgrade()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    application: Flask = request.getfixturevalue("app")
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in ("tasks", "revoked_tokens", "users"):
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (fixed names)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def make_user(client: FlaskClient) -> Callable[..., TestUser]:
    """Register a user through the API."""
    counter = iter(range(1_000_000))

    def factory(
        email: str | None = None, password: str = DEFAULT_PASSWORD, name: str | None = None
    ) -> TestUser:
        email = email or f"user{next(counter)}-{time.monotonic_ns()}@example.com"
        body: dict[str, object] = {"email": email, "password": password}
        if name is not None:
            body["name"] = name
        response = client.post("/api/auth/register", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        return TestUser(id=response.json["id"], email=email.strip().lower(), password=password)

    return factory


@pytest.fixture
def login(client: FlaskClient) -> Callable[[TestUser], dict[str, str]]:
    """Log a user in through the API; the token pair."""

    def do_login(user: TestUser) -> dict[str, str]:
        response = client.post(
            "/api/auth/login", json={"email": user.email, "password": user.password}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json  # type: ignore[no-any-return]

    return do_login


@pytest.fixture
def auth_headers(login: Callable[[TestUser], dict[str, str]]) -> Callable[[TestUser], dict]:
    def headers(user: TestUser) -> dict[str, str]:
        return {"Authorization": f"Bearer {login(user)['access_token']}"}

    return headers


@pytest.fixture
def user(make_user: Callable[..., TestUser]) -> TestUser:
    return make_user()


@pytest.fixture
def headers(user: TestUser, auth_headers: Callable[[TestUser], dict]) -> dict[str, str]:
    return auth_headers(user)


# ---------------------------------------------------------------- live server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


def start_gunicorn(
    env: dict[str, str],
    *,
    workers: int = 4,
    extra_args: tuple[str, ...] = (),
    config: bool = False,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`config=True` starts it the way ops do, with gunicorn.conf.py (hooks,
    JSON logging); `--workers` and `--bind` given here override the file.
    `stdout`/`stderr`: files to capture the logs (discarded by default)."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            *(("-c", "gunicorn.conf.py") if config else ()),
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            *extra_args,
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=stdout or subprocess.DEVNULL,
        stderr=stderr or subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
    except RuntimeError:
        process.kill()
        raise
    return process, url


@pytest.fixture(scope="session")
def live_server(app: Flask, server_env: dict[str, str]) -> Iterator[str]:
    """A real multi-worker gunicorn on the test database (already migrated)."""
    process, url = start_gunicorn(server_env, config=True)  # as ops run it
    yield url
    process.terminate()
    process.wait(timeout=30)
