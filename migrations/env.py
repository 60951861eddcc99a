"""Alembic environment, run through Flask-Migrate (`flask db ...`)."""

import logging
import os

from alembic import context
from flask import current_app
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from todo_service.config import normalize_database_url

config = context.config
# Alembic's messages ("Running upgrade ...") go out as the app's JSON lines
# (observability.configure_logging); alembic.ini's logging is not used.
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db


# Any constant shared by every replica: one upgrade at a time per database.
MIGRATION_LOCK_KEY = 7_261_946_375


def get_engine():
    """The direct URL when one is given (Neon hands out a pooled and a direct
    one): DDL is best run without a transaction-mode pooler in between."""
    direct = os.environ.get("DATABASE_DIRECT_URL", "").strip()
    if direct:
        return create_engine(normalize_database_url(direct), poolclass=NullPool)
    return target_db.engine


def render_item(type_, obj, autogen_context):
    """Render the app's column types as plain SQLAlchemy types in revisions."""
    from todo_service.db.dialects import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline():
    url = get_engine().url.render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=target_db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        # No empty revision when autogenerate finds nothing to do.
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    conf_args.setdefault("render_item", render_item)
    conf_args.setdefault("compare_type", True)

    with get_engine().connect() as connection:
        # The app's engine runs in autocommit; a migration wants a transaction.
        postgres = connection.dialect.name == "postgresql"
        connection = connection.execution_options(
            isolation_level="READ COMMITTED" if postgres else "SERIALIZABLE"
        )
        context.configure(connection=connection, target_metadata=target_db.metadata, **conf_args)
        with context.begin_transaction():
            if postgres:
                # Several replicas upgrading at once: the first migrates, the
                # others wait here, then find the schema at head. A transaction
                # lock, so that it also holds through a transaction-mode pooler.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
