"""The schema belongs to the migrations: the models agree
with them, `upgrade` builds the whole schema on an empty database and
`downgrade base` removes it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

from todo_service import create_app
from todo_service.config import TestConfig
from todo_service.db.models import Task, User
from todo_service.extensions import db

CORE_TABLES = {"users", "tasks", "revoked_tokens"}
LISTING_INDEX = ["user_id", "created_at", "id"]


# SQLite's change counter (migration 0003); PostgreSQL uses a sequence instead,
# so the models do not have it.
SQLITE_ONLY_TABLES = {"task_change_counter"}


def schema_differences(engine: Engine) -> list:
    def modelled(obj, name, type_, reflected, compare_to) -> bool:
        return not (type_ == "table" and name in SQLITE_ONLY_TABLES)

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": modelled}
        )
        return compare_metadata(context, db.metadata)


def listing_index_exists(engine: Engine) -> bool:
    indexes = inspect(engine).get_indexes("tasks")
    return any(index["column_names"] == LISTING_INDEX for index in indexes)


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path) -> Iterator[str]:
    """An empty database of the same kind as the test database."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"todo_migrations_{uuid.uuid4().hex[:12]}"
    server = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def fresh_app(fresh_database_url: str):
    application = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": fresh_database_url})
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def leftover_objects(engine: Engine) -> list[str]:
    """Anything but the version table: indexes, triggers, functions, types."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(
                text(
                    "SELECT type || ' ' || name FROM sqlite_master "
                    "WHERE name NOT LIKE 'sqlite_%' AND tbl_name != 'alembic_version'"
                )
            )
        else:
            rows = conn.execute(
                text(
                    "SELECT 'function ' || p.proname FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
                    "UNION ALL SELECT 'relation ' || c.relname FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                    "AND c.relname NOT LIKE 'alembic_version%' "
                    "UNION ALL SELECT 'type ' || t.typname FROM pg_type t "
                    "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' "
                    "AND t.typtype IN ('e', 'd') "
                    "UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal"
                )
            )
        return sorted(rows.scalars())


def model_tables() -> set[str]:
    tables = set(db.metadata.tables)
    assert tables >= CORE_TABLES
    if db.engine.dialect.name == "sqlite":
        tables |= SQLITE_ONLY_TABLES
    return tables


def test_models_and_migrations_agree(app):
    with app.app_context():
        assert schema_differences(db.engine) == []


def test_listing_index_exists(app):
    with app.app_context():
        assert listing_index_exists(db.engine)


def test_fresh_database_is_empty_before_upgrade(fresh_app):
    assert table_names(db.engine) == set()
    assert leftover_objects(db.engine) == []


def test_upgrade_builds_the_whole_schema_and_downgrade_removes_it(fresh_app):
    flask_migrate.upgrade()
    assert table_names(db.engine) == model_tables() | {"alembic_version"}
    assert schema_differences(db.engine) == []
    assert listing_index_exists(db.engine)
    assert leftover_objects(db.engine)  # the check below sees what upgrade made

    flask_migrate.downgrade(revision="base")
    db.engine.dispose()  # no cached metadata of dropped tables
    assert table_names(db.engine) == {"alembic_version"}
    assert leftover_objects(db.engine) == []
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 0

    # and back again: a downgrade leaves nothing in the way of the next upgrade
    flask_migrate.upgrade()
    assert table_names(db.engine) == model_tables() | {"alembic_version"}
    assert schema_differences(db.engine) == []


def test_deleting_a_user_in_sql_deletes_their_tasks(fresh_app):
    """ON DELETE CASCADE in the database itself (SQLite needs its foreign-key
    pragma on every connection), not only in the ORM."""
    flask_migrate.upgrade()
    now = datetime.now(UTC)
    doomed, kept = uuid.uuid4(), uuid.uuid4()
    with db.engine.begin() as conn:
        for user_id in (doomed, kept):
            conn.execute(
                User.__table__.insert().values(
                    id=user_id,
                    email=f"{user_id}@example.com",
                    password_hash="x",
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                Task.__table__.insert(),
                [
                    {
                        "id": uuid.uuid4(),
                        "user_id": user_id,
                        "title": f"t{i}",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(3)
                ],
            )
    with db.engine.begin() as conn:
        conn.execute(User.__table__.delete().where(User.id == doomed))

    with db.engine.connect() as conn:
        owners = conn.execute(select(Task.user_id, func.count()).group_by(Task.user_id)).all()
    assert [(owner, count) for owner, count in owners] == [(kept, 3)]


def test_task_of_a_missing_user_is_refused(fresh_app):
    flask_migrate.upgrade()
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError, match="(?i)foreign key"), db.engine.begin() as conn:
        conn.execute(
            Task.__table__.insert().values(
                id=uuid.uuid4(),
                user_id=uuid.uuid4(),
                title="orphan",
                created_at=now,
                updated_at=now,
            )
        )
