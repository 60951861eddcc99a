"""Contract 1.1: priority, due dates and tags; the change feed; idempotency keys.

In place on a populated 1.0 database, without rewriting `tasks` on PostgreSQL:
every new column is nullable or has a constant default (PostgreSQL 11+ stores
such a default in the catalogue), so existing tasks read as priority medium,
no due date, no tags, and change position (0, 0).

- `tasks.priority` ('low' | 'medium' | 'high', checked), `tasks.due_at`.
- `tags` (one row per user and tag, with the number of tasks carrying it) and
  `task_tags` (the many-to-many link, with the tag's place in the task's list).
  The counts are kept by triggers on `task_tags`, however the links are
  written.
- The change feed: every insert or real change of a task gets a change
  position (`change_xid`, `change_seq`) from a trigger; every deleted task
  leaves a row in `task_tombstones` (a trigger again). On PostgreSQL,
  `change_xid` is the writing transaction's id: a reader returns only changes
  of transactions older than every transaction still running (its snapshot's
  xmin), in (`change_xid`, `change_seq`) order, so a change that commits later
  can never land behind a cursor already handed out. On SQLite one writer at
  a time makes `change_seq` alone commit-ordered; `change_xid` stays 0.
- `sync_horizons`: per user, the newest change position whose tombstone was
  purged; a cursor older than that is answered with 410.
- `idempotency_keys`: a POST's kept answer per (user, key).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PRIORITIES = "('low', 'medium', 'high')"

PG_TRIGGERS = """
CREATE SEQUENCE task_change_seq;

CREATE FUNCTION tasks_mark_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A write that changes nothing is not a change (API.md, Sync).
    IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NEW;
    END IF;
    NEW.change_xid := pg_current_xact_id()::text::bigint;
    NEW.change_seq := nextval('task_change_seq');
    RETURN NEW;
END
$$;
CREATE TRIGGER tasks_mark_change BEFORE INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_mark_change();

CREATE FUNCTION task_tombstones_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Not for the tasks of a user being deleted: their tombstones would
    -- refer to a user who is gone.
    INSERT INTO task_tombstones (task_id, user_id, change_xid, change_seq, deleted_at)
    SELECT o.id, o.user_id, pg_current_xact_id()::text::bigint, nextval('task_change_seq'),
           clock_timestamp()
    FROM old_rows o
    WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id)
    ON CONFLICT (task_id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER task_tombstones_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION task_tombstones_on_delete();

-- Per-tag counts. Rows are locked in tag id order, so that two statements
-- changing the counts of the same tags cannot deadlock each other.
CREATE FUNCTION tag_counts_add(deltas jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    change record;
BEGIN
    FOR change IN
        SELECT key::bigint AS tag_id, value::int AS delta FROM jsonb_each_text(deltas)
        ORDER BY 1
    LOOP
        UPDATE tags SET task_count = task_count + change.delta WHERE id = change.tag_id;
    END LOOP;
END
$$;
CREATE FUNCTION tag_counts_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tag_counts_add(
        (SELECT jsonb_object_agg(tag_id, n) FROM
            (SELECT tag_id, count(*) AS n FROM new_rows GROUP BY tag_id) d));
    RETURN NULL;
END
$$;
CREATE FUNCTION tag_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tag_counts_add(
        (SELECT jsonb_object_agg(tag_id, -n) FROM
            (SELECT tag_id, count(*) AS n FROM old_rows GROUP BY tag_id) d));
    RETURN NULL;
END
$$;
CREATE FUNCTION tag_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tag_counts_add(
        (SELECT jsonb_object_agg(tag_id, n) FROM
            (SELECT tag_id, sum(n) AS n FROM (
                SELECT tag_id, 1 AS n FROM new_rows
                UNION ALL SELECT tag_id, -1 FROM old_rows) c
             GROUP BY tag_id HAVING sum(n) <> 0) d));
    RETURN NULL;
END
$$;
CREATE FUNCTION tag_counts_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tags SET task_count = 0 WHERE task_count <> 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER tag_counts_insert AFTER INSERT ON task_tags
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tag_counts_on_insert();
CREATE TRIGGER tag_counts_delete AFTER DELETE ON task_tags
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tag_counts_on_delete();
CREATE TRIGGER tag_counts_update AFTER UPDATE ON task_tags
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tag_counts_on_update();
CREATE TRIGGER tag_counts_truncate AFTER TRUNCATE ON task_tags
    FOR EACH STATEMENT EXECUTE FUNCTION tag_counts_on_truncate();
"""

PG_DROP = """
DROP TRIGGER IF EXISTS tag_counts_truncate ON task_tags;
DROP TRIGGER IF EXISTS tag_counts_update ON task_tags;
DROP TRIGGER IF EXISTS tag_counts_delete ON task_tags;
DROP TRIGGER IF EXISTS tag_counts_insert ON task_tags;
DROP FUNCTION IF EXISTS tag_counts_on_truncate();
DROP FUNCTION IF EXISTS tag_counts_on_update();
DROP FUNCTION IF EXISTS tag_counts_on_delete();
DROP FUNCTION IF EXISTS tag_counts_on_insert();
DROP FUNCTION IF EXISTS tag_counts_add(jsonb);
DROP TRIGGER IF EXISTS task_tombstones_delete ON tasks;
DROP FUNCTION IF EXISTS task_tombstones_on_delete();
DROP TRIGGER IF EXISTS tasks_mark_change ON tasks;
DROP FUNCTION IF EXISTS tasks_mark_change();
DROP SEQUENCE IF EXISTS task_change_seq;
"""

# SQLite: one writer at a time, so a counter bumped inside the write is in
# commit order. The change position is set by an AFTER trigger (SQLite's
# BEFORE triggers cannot assign NEW); recursive triggers are off, so its own
# UPDATE does not fire it again. `task_changes_update` lists every column but
# `change_seq`: a new column of `tasks` belongs in its WHEN.
SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER task_changes_insert AFTER INSERT ON tasks BEGIN
        UPDATE task_change_counter SET value = value + 1;
        UPDATE tasks SET change_seq = (SELECT value FROM task_change_counter)
        WHERE id = NEW.id;
    END
    """,
    """
    CREATE TRIGGER task_changes_update AFTER UPDATE ON tasks
    WHEN OLD.title IS NOT NEW.title OR OLD.description IS NOT NEW.description
        OR OLD.completed IS NOT NEW.completed OR OLD.priority IS NOT NEW.priority
        OR OLD.due_at IS NOT NEW.due_at OR OLD.updated_at IS NOT NEW.updated_at
        OR OLD.created_at IS NOT NEW.created_at OR OLD.user_id IS NOT NEW.user_id
        OR OLD.id IS NOT NEW.id
    BEGIN
        UPDATE task_change_counter SET value = value + 1;
        UPDATE tasks SET change_seq = (SELECT value FROM task_change_counter)
        WHERE id = NEW.id;
    END
    """,
    """
    CREATE TRIGGER task_tombstones_delete AFTER DELETE ON tasks
    WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
    BEGIN
        UPDATE task_change_counter SET value = value + 1;
        INSERT OR IGNORE INTO task_tombstones
            (task_id, user_id, change_xid, change_seq, deleted_at)
        VALUES (OLD.id, OLD.user_id, 0, (SELECT value FROM task_change_counter),
                strftime('%Y-%m-%d %H:%M:%f000', 'now'));
    END
    """,
    """
    CREATE TRIGGER tag_counts_insert AFTER INSERT ON task_tags BEGIN
        UPDATE tags SET task_count = task_count + 1 WHERE id = NEW.tag_id;
    END
    """,
    """
    CREATE TRIGGER tag_counts_delete AFTER DELETE ON task_tags BEGIN
        UPDATE tags SET task_count = task_count - 1 WHERE id = OLD.tag_id;
    END
    """,
    """
    CREATE TRIGGER tag_counts_update AFTER UPDATE OF tag_id ON task_tags BEGIN
        UPDATE tags SET task_count = task_count - 1 WHERE id = OLD.tag_id;
        UPDATE tags SET task_count = task_count + 1 WHERE id = NEW.tag_id;
    END
    """,
]
SQLITE_TRIGGER_NAMES = [
    "task_changes_insert",
    "task_changes_update",
    "task_tombstones_delete",
    "tag_counts_insert",
    "tag_counts_delete",
    "tag_counts_update",
]


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade():
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"no contract 1.1 schema for {dialect}")

    # Columns: constant defaults, no table rewrite.
    op.add_column(
        "tasks",
        sa.Column(
            "priority",
            sa.String(length=6),
            sa.CheckConstraint(f"priority IN {PRIORITIES}", name=op.f("ck_tasks_priority")),
            server_default="medium",
            nullable=False,
        ),
    )
    op.add_column("tasks", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tasks", sa.Column("change_xid", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "tasks", sa.Column("change_seq", sa.BigInteger(), server_default="0", nullable=False)
    )
    # The change feed in order, and "the newest change" for list ETags.
    op.create_index(
        "ix_tasks_user_id_change_xid_change_seq_id",
        "tasks",
        ["user_id", "change_xid", "change_seq", "id"],
    )
    # Due-date filters and sorts.
    op.create_index("ix_tasks_user_id_due_at_id", "tasks", ["user_id", "due_at", "id"])

    op.create_table(
        "tags",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("task_count", sa.Integer(), server_default="0", nullable=False),
        _user_fk("tags"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_tags_user_id_name")),
    )
    op.create_table(
        "task_tags",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("tag_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_tags_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"], ["tags.id"], name=op.f("fk_task_tags_tag_id_tags"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "tag_id", name=op.f("pk_task_tags")),
    )
    # "Tasks of this user with every one of these tags": from each tag to its tasks.
    op.create_index("ix_task_tags_tag_id_task_id", "task_tags", ["tag_id", "task_id"])

    op.create_table(
        "task_tombstones",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("change_xid", sa.BigInteger(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        _user_fk("task_tombstones"),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_tombstones")),
    )
    op.create_index(
        "ix_task_tombstones_user_id_change_xid_change_seq",
        "task_tombstones",
        ["user_id", "change_xid", "change_seq"],
    )
    op.create_index(op.f("ix_task_tombstones_deleted_at"), "task_tombstones", ["deleted_at"])
    op.create_table(
        "sync_horizons",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("change_xid", sa.BigInteger(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        _user_fk("sync_horizons"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_sync_horizons")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _user_fk("idempotency_keys"),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])

    if dialect == "postgresql":
        op.execute(PG_TRIGGERS)
    else:
        op.create_table(
            "task_change_counter",
            sa.Column("value", sa.BigInteger(), nullable=False),
        )
        op.execute("INSERT INTO task_change_counter (value) VALUES (0)")
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(PG_DROP)
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.drop_table("task_change_counter")
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("sync_horizons")
    op.drop_index(op.f("ix_task_tombstones_deleted_at"), table_name="task_tombstones")
    op.drop_index("ix_task_tombstones_user_id_change_xid_change_seq", table_name="task_tombstones")
    op.drop_table("task_tombstones")
    op.drop_index("ix_task_tags_tag_id_task_id", table_name="task_tags")
    op.drop_table("task_tags")
    op.drop_table("tags")
    op.drop_index("ix_tasks_user_id_due_at_id", table_name="tasks")
    op.drop_index("ix_tasks_user_id_change_xid_change_seq_id", table_name="tasks")
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy of the table, which
    # would lose the task count triggers of 0002.
    for column in ("change_seq", "change_xid", "due_at", "priority"):
        op.drop_column("tasks", column)
