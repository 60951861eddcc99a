"""Configuration from the environment (STYLE.md, Config):
URL normalisation, one clear error for a bad value, the generated JWT key,
SQLite connection settings, and a factory that never touches the database."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token, decode_token
from sqlalchemy import text

from todo_service import create_app
from todo_service.config import (
    Config,
    ConfigError,
    TestConfig,
    engine_options,
    normalize_database_url,
)
from todo_service.extensions import db

from .helpers import assert_error, captured_records

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"


@pytest.fixture
def service_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the service's loggers."""
    with captured_records("todo_service") as records:
        yield records


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No service setting inherited from whoever runs the tests."""
    for name in ("DATABASE_URL", "JWT_SECRET_KEY", "LOG_LEVEL", "JWT_ACCESS_TOKEN_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def dispose(app) -> None:
    with app.app_context():
        db.engine.dispose()


# -------------------------------------------------------------- database URL


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://u:p@db.example.com:5432/todo",
            "postgresql+psycopg2://u:p@db.example.com:5432/todo",
        ),
        ("postgresql://u:p@db.example.com/todo", "postgresql+psycopg2://u:p@db.example.com/todo"),
        ("postgresql+psycopg2://u@h/todo", "postgresql+psycopg2://u@h/todo"),
        (
            "postgres://u:p@ep-x.neon.tech/todo?sslmode=require",
            "postgresql+psycopg2://u:p@ep-x.neon.tech/todo?sslmode=require",
        ),
        ("  postgres://u@h/todo\n", "postgresql+psycopg2://u@h/todo"),
        ("sqlite:////tmp/todo.sqlite3", "sqlite:////tmp/todo.sqlite3"),
    ],
)
def test_database_url_is_normalized(given, expected):
    assert normalize_database_url(given) == expected


def test_database_url_from_env_is_normalized():
    values = Config.from_env({"DATABASE_URL": "postgres://u:p@h:5432/todo"})
    assert values["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://u:p@h:5432/todo"


@pytest.mark.parametrize("url", ["postgres://u@h/todo", "postgresql://u@h/todo"])
def test_app_uses_psycopg2_for_every_postgres_spelling(clean_env, tmp_path, url):
    clean_env.setenv("DATABASE_URL", url)
    app = create_app(TestConfig, instance_path=tmp_path)
    with app.app_context():
        assert db.engine.dialect.driver == "psycopg2"
    dispose(app)


def test_postgres_url_given_as_an_override_is_normalized(tmp_path):
    app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": UNREACHABLE}, instance_path=tmp_path)
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg2://")
    dispose(app)


def test_default_database_is_a_sqlite_file_in_the_instance_folder(clean_env, tmp_path):
    app = create_app(TestConfig, instance_path=tmp_path)
    expected = tmp_path / "todo.sqlite3"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{expected}"
    assert not expected.exists()  # the factory never touches the database
    dispose(app)


# ---------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"JWT_ACCESS_TOKEN_MINUTES": "abc"}, "JWT_ACCESS_TOKEN_MINUTES"),
        ({"JWT_ACCESS_TOKEN_MINUTES": "0"}, "JWT_ACCESS_TOKEN_MINUTES"),
        ({"JWT_ACCESS_TOKEN_MINUTES": "-5"}, "JWT_ACCESS_TOKEN_MINUTES"),
        ({"JWT_ACCESS_TOKEN_MINUTES": "1.5"}, "JWT_ACCESS_TOKEN_MINUTES"),
        ({"JWT_ACCESS_TOKEN_MINUTES": "1441"}, "JWT_ACCESS_TOKEN_MINUTES"),
        ({"JWT_REFRESH_TOKEN_DAYS": "soon"}, "JWT_REFRESH_TOKEN_DAYS"),
        ({"JWT_REFRESH_TOKEN_DAYS": "0"}, "JWT_REFRESH_TOKEN_DAYS"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"REFRESH_REUSE_GRACE_SECONDS": "soon"}, "REFRESH_REUSE_GRACE_SECONDS"),
        ({"REFRESH_REUSE_GRACE_SECONDS": "-1"}, "REFRESH_REUSE_GRACE_SECONDS"),
        ({"REFRESH_REUSE_GRACE_SECONDS": "2.5"}, "REFRESH_REUSE_GRACE_SECONDS"),
        ({"ARGON2_TIME_COST": "0"}, "ARGON2_TIME_COST"),
        ({"ARGON2_MEMORY_COST": "lots"}, "ARGON2_MEMORY_COST"),
        ({"DATABASE_PREPARED_STATEMENTS": "sometimes"}, "DATABASE_PREPARED_STATEMENTS"),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else None,
)
def test_bad_value_is_one_clear_config_error(env, name):
    with pytest.raises(ConfigError) as raised:
        Config.from_env(env)
    message = str(raised.value)
    assert "\n" not in message.strip()
    assert name in message
    (value,) = env.values()
    if not value.lstrip("-").isdigit():
        assert value.upper() in message.upper()  # says what it got


@pytest.mark.parametrize("secret", ["short", "x" * 31])
def test_short_jwt_secret_is_refused_without_echoing_it(secret):
    with pytest.raises(ConfigError) as raised:
        Config.from_env({"JWT_SECRET_KEY": secret})
    message = str(raised.value)
    assert "JWT_SECRET_KEY" in message
    assert "32" in message
    assert secret not in message
    assert "\n" not in message.strip()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_POOL_SIZE", "abc"),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_CONNECT_TIMEOUT", "soon"),
        ("DATABASE_POOL_RECYCLE", "-1"),
    ],
)
def test_bad_pool_setting_is_a_config_error_at_start_up(clean_env, tmp_path, name, value):
    clean_env.setenv("DATABASE_URL", UNREACHABLE)
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        create_app(TestConfig, instance_path=tmp_path)


def test_bad_environment_fails_create_app(clean_env, tmp_path):
    clean_env.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        create_app(TestConfig, instance_path=tmp_path)


def test_defaults_apply_when_nothing_is_set():
    values = Config.from_env({})
    assert values["JWT_ACCESS_TOKEN_EXPIRES"] == timedelta(minutes=15)
    assert values["JWT_REFRESH_TOKEN_EXPIRES"] == timedelta(days=30)
    assert values["LOG_LEVEL"] == "INFO"
    assert values["REFRESH_REUSE_GRACE_SECONDS"] == 10
    assert "JWT_SECRET_KEY" not in values
    assert "SQLALCHEMY_DATABASE_URI" not in values


def test_blank_values_count_as_unset():
    values = Config.from_env(
        {
            "JWT_ACCESS_TOKEN_MINUTES": "",
            "DATABASE_URL": "  ",
            "JWT_SECRET_KEY": "",
            "REFRESH_REUSE_GRACE_SECONDS": " ",
        }
    )
    assert values["JWT_ACCESS_TOKEN_EXPIRES"] == timedelta(minutes=15)
    assert values["REFRESH_REUSE_GRACE_SECONDS"] == 10
    assert "SQLALCHEMY_DATABASE_URI" not in values
    assert "JWT_SECRET_KEY" not in values


def test_good_values_are_parsed():
    values = Config.from_env(
        {
            "JWT_ACCESS_TOKEN_MINUTES": "5",
            "JWT_REFRESH_TOKEN_DAYS": "2",
            "LOG_LEVEL": "debug",
            "JWT_SECRET_KEY": "k" * 32,
        }
    )
    assert values["JWT_ACCESS_TOKEN_EXPIRES"] == timedelta(minutes=5)
    assert values["JWT_REFRESH_TOKEN_EXPIRES"] == timedelta(days=2)
    assert values["LOG_LEVEL"] == "DEBUG"
    assert values["JWT_SECRET_KEY"] == "k" * 32


@pytest.mark.parametrize(("given", "expected"), [("0", 0), ("3", 3), (" 120 ", 120)])
def test_refresh_reuse_grace_is_whole_seconds_from_zero(given, expected):
    values = Config.from_env({"REFRESH_REUSE_GRACE_SECONDS": given})
    assert values["REFRESH_REUSE_GRACE_SECONDS"] == expected


def test_postgres_engine_has_a_recycle_time_and_connect_timeout():
    options = engine_options("postgresql+psycopg2://u@h/todo", {})
    assert options["pool_recycle"] > 0
    assert options["connect_args"]["connect_timeout"] > 0
    tuned = engine_options(
        "postgresql+psycopg2://u@h/todo",
        {"DATABASE_CONNECT_TIMEOUT": "7", "DATABASE_POOL_SIZE": "3", "DATABASE_POOL_RECYCLE": "60"},
    )
    assert tuned["connect_args"]["connect_timeout"] == 7
    assert tuned["pool_size"] == 3
    assert tuned["pool_recycle"] == 60


# ---------------------------------------------------------------- JWT secret


def test_missing_secret_is_generated_kept_and_reused(clean_env, tmp_path, service_log):
    overrides = {"JWT_SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/db"}
    first = create_app(TestConfig, overrides, instance_path=tmp_path)
    key_file = tmp_path / "jwt-secret.key"
    key = first.config["JWT_SECRET_KEY"]
    assert key_file.read_text().strip() == key
    assert len(key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) & 0o077 == 0  # not readable by others

    second = create_app(TestConfig, overrides, instance_path=tmp_path)
    assert second.config["JWT_SECRET_KEY"] == key
    with first.app_context():
        token = create_access_token(identity="someone")
    with second.app_context():
        assert decode_token(token)["sub"] == "someone"

    warnings = [
        r
        for r in service_log
        if r.levelno == logging.WARNING and "JWT_SECRET_KEY" in r.getMessage()
    ]
    assert len(warnings) == 2
    assert key not in "".join(r.getMessage() for r in service_log)
    dispose(first)
    dispose(second)


def test_generated_secrets_differ_between_instance_folders(clean_env, tmp_path):
    keys = set()
    for name in ("a", "b"):
        folder = tmp_path / name
        app = create_app(
            TestConfig,
            {"JWT_SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/db"},
            instance_path=folder,
        )
        keys.add(app.config["JWT_SECRET_KEY"])
        dispose(app)
    assert len(keys) == 2
    assert TestConfig.JWT_SECRET_KEY not in keys


def test_secret_from_the_environment_writes_no_file_and_no_warning(
    clean_env, tmp_path, service_log
):
    clean_env.setenv("JWT_SECRET_KEY", "e" * 40)
    app = create_app(
        Config, {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/db"}, instance_path=tmp_path
    )
    assert app.config["JWT_SECRET_KEY"] == "e" * 40
    assert not (tmp_path / "jwt-secret.key").exists()
    assert not [r for r in service_log if "JWT_SECRET_KEY" in r.getMessage()]
    dispose(app)


# ------------------------------------------------------------------- SQLite


def test_sqlite_connections_enforce_foreign_keys_with_wal_and_busy_timeout(tmp_path):
    app = create_app(
        TestConfig,
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.sqlite3"},
        instance_path=tmp_path,
    )
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one().lower() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() >= 1000
    dispose(app)


# --------------------------------------------------------- database is down


@pytest.fixture
def down_client(clean_env, tmp_path):
    """An app whose PostgreSQL refuses connections (nothing listens on port 1);
    built through the environment, the way a deployment configures it."""
    clean_env.setenv("DATABASE_URL", UNREACHABLE)
    app = create_app(TestConfig, instance_path=tmp_path)
    yield app.test_client()
    dispose(app)


def test_app_starts_and_is_live_without_a_database(down_client):
    response = down_client.get("/healthz")
    assert response.status_code == 200


def test_readiness_is_503_json_without_a_database(down_client):
    assert_error(down_client.get("/readyz"), 503)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/auth/register", {"email": "a@example.com", "password": "long enough"}),
        ("POST", "/api/auth/login", {"email": "a@example.com", "password": "long enough"}),
        ("GET", "/api/me/tasks", None),
        ("POST", "/api/me/tasks", {"title": "x"}),
        # Answers that would be a 403, 422 or 404 first settle the token check,
        # which needs the database too: 503, never 500.
        ("GET", "/api/0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c/tasks", None),
        ("POST", "/api/me/tasks", {"title": ""}),
        ("GET", "/api/me/tasks?page=0", None),
        ("GET", "/api/auth/me", None),
    ],
)
def test_requests_needing_the_database_are_503_json(down_client, method, path, body):
    app = down_client.application
    with app.app_context():
        token = create_access_token(
            identity="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", additional_claims={"ver": 0}
        )
    response = down_client.open(
        path, method=method, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    body_json = assert_error(response, 503)
    assert "postgres" not in body_json["message"].lower()
    assert "127.0.0.1" not in response.get_data(as_text=True)
