"""Migrations at deploy: AUTO_MIGRATE's default, several replicas upgrading
one PostgreSQL database at once, and DATABASE_DIRECT_URL for migrations
(PgBouncer in transaction mode in front of the pooled DATABASE_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

from todo_service import MIGRATIONS_DIR
from todo_service.config import ConfigError
from todo_service.db import models  # noqa: F401 (the tables, in db.metadata)
from todo_service.deploy import auto_migrate_enabled
from todo_service.extensions import db

from .conftest import ROOT, free_port

ON_SQLITE = not os.environ.get("TEST_DATABASE_URL", "").strip() or os.environ[
    "TEST_DATABASE_URL"
].startswith("sqlite")
postgresql_only = pytest.mark.skipif(
    ON_SQLITE,
    reason="PostgreSQL only (set TEST_DATABASE_URL): advisory locks and direct URLs",
)

PG_URL = "postgresql://db.example.com/todo"


# -------------------------------------------------------------- AUTO_MIGRATE


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, True),  # the SQLite quick start migrates itself
        ({"DATABASE_URL": "  "}, True),
        ({"DATABASE_URL": PG_URL}, False),  # a real database: `flask db upgrade` is a step
        ({"DATABASE_URL": PG_URL, "AUTO_MIGRATE": ""}, False),
        ({"DATABASE_URL": PG_URL, "AUTO_MIGRATE": "1"}, True),
        ({"DATABASE_URL": PG_URL, "AUTO_MIGRATE": " TRUE "}, True),
        ({"DATABASE_URL": PG_URL, "AUTO_MIGRATE": "yes"}, True),
        ({"DATABASE_URL": PG_URL, "AUTO_MIGRATE": "on"}, True),
        ({"AUTO_MIGRATE": "0"}, False),
        ({"AUTO_MIGRATE": "false"}, False),
        ({"AUTO_MIGRATE": "No"}, False),
        ({"AUTO_MIGRATE": "off"}, False),
    ],
)
def test_auto_migrate_defaults_on_only_without_database_url(
    env: dict[str, str], enabled: bool
) -> None:
    assert auto_migrate_enabled(env) is enabled


@pytest.mark.parametrize("value", ["2", "maybe", "enable"])
def test_auto_migrate_with_an_unknown_value_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="AUTO_MIGRATE"):
        auto_migrate_enabled({"AUTO_MIGRATE": value})


# ------------------------------------------------------------- `db upgrade`


@dataclass(frozen=True)
class FreshDatabase:
    url: str  # as the app reaches it (through PgBouncer, if the tests run so)
    direct_url: str  # straight to PostgreSQL

    def env(self, server_env: dict[str, str], **changes: str) -> dict[str, str]:
        """server_env for this database: DATABASE_DIRECT_URL only when the
        app's URL goes through a pooler, as in production."""
        env = dict(server_env, DATABASE_URL=self.url)
        env.pop("DATABASE_DIRECT_URL", None)
        if self.direct_url != self.url:
            env["DATABASE_DIRECT_URL"] = self.direct_url
        env.update(changes)
        return env


@pytest.fixture
def fresh_database(database_url: str, database_direct_url: str) -> Iterator[FreshDatabase]:
    """A new, empty PostgreSQL database on the test server; dropped after."""
    name = f"todo_deploy_{uuid.uuid4().hex[:10]}"
    admin = create_engine(database_direct_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield FreshDatabase(
            url=_render(make_url(database_url).set(database=name)),
            direct_url=_render(make_url(database_direct_url).set(database=name)),
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def flask_db_upgrade(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_schema_at_head(url: str) -> None:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            assert [row.version_num for row in versions] == [head]
            tables = set(inspect(connection).get_table_names())
            assert tables == {*db.metadata.tables, "alembic_version"}
            # The migrated schema is exactly what the models describe.
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []
    finally:
        engine.dispose()


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@postgresql_only
def test_three_upgrades_started_at_once_migrate_one_database_exactly_once(
    fresh_database: str, server_env: dict[str, str]
) -> None:
    env = fresh_database.env(server_env)
    upgrades = [flask_db_upgrade(env) for _ in range(3)]
    outputs = [process.communicate(timeout=60)[0] for process in upgrades]

    assert [process.returncode for process in upgrades] == [0, 0, 0], outputs
    assert_schema_at_head(fresh_database.direct_url)


@postgresql_only
def test_upgrade_uses_the_direct_url_when_one_is_given(
    fresh_database: str, server_env: dict[str, str]
) -> None:
    # The pooled URL leads nowhere: only the direct one can work.
    unreachable = make_url(fresh_database.url).set(host="127.0.0.1", port=free_port())
    env = fresh_database.env(
        server_env,
        DATABASE_URL=_render(unreachable),
        DATABASE_DIRECT_URL=fresh_database.direct_url,
    )
    upgrade = flask_db_upgrade(env)
    output = upgrade.communicate(timeout=60)[0]

    assert upgrade.returncode == 0, output
    assert_schema_at_head(fresh_database.direct_url)


@postgresql_only
def test_upgrade_without_a_direct_url_uses_database_url(
    fresh_database: str, server_env: dict[str, str]
) -> None:
    unreachable = make_url(fresh_database.url).set(host="127.0.0.1", port=free_port())
    env = fresh_database.env(server_env, DATABASE_URL=_render(unreachable))
    env.pop("DATABASE_DIRECT_URL", None)
    upgrade = flask_db_upgrade(env)
    output = upgrade.communicate(timeout=60)[0]

    assert upgrade.returncode != 0, output
    engine = create_engine(fresh_database.direct_url)
    with engine.connect() as connection:
        assert inspect(connection).get_table_names() == []
    engine.dispose()
