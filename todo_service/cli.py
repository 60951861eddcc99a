"""`flask` commands beyond Flask-Migrate's `flask db ...`: seed, users, tokens.

Every failure is one line on stderr (`Error: ...`) and a non-zero exit, never a
traceback: bad arguments exit 2 without click's usage block; a
refused action (email taken, unknown email, invalid password) or a database
problem exits 1.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from marshmallow import ValidationError
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from . import security
from .errors import ApiError
from .schemas import RegisterIn
from .services import purge, seeding, tasks, tokens, users

PROGRESS_THRESHOLD = 50_000  # tasks; fewer are written before a bar would show
_MISSING_TABLE = re.compile(r"no such table|relation .* does not exist")

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------- one-line errors


def _bare(exc: click.UsageError) -> click.UsageError:
    """The same usage error without its context, so click prints only
    `Error: ...` (no usage block and help hint)."""
    return click.UsageError(exc.format_message())


class _Command(click.Command):
    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _bare(exc) from None


class _Group(AppGroup):
    command_class = _Command

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _bare(exc) from None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:  # "No such command ..."
            raise _bare(exc) from None


def _database_problem(exc: SQLAlchemyError) -> str:
    # The driver's own message, first line only (psycopg2 adds hints below).
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    detail = lines[0].strip() if lines else type(exc).__name__
    if _MISSING_TABLE.search(detail):
        return f"Database schema missing ({detail}): run `flask db upgrade` first."
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeoutError):
        return f"Database unavailable: {detail}"
    return f"Database error: {detail}"


def _one_line_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(_database_problem(exc)) from None

    return wrapper  # type: ignore[return-value]


def _validation_problem(exc: ValidationError) -> str:
    messages = exc.messages if isinstance(exc.messages, dict) else {"input": exc.messages}
    parts = []
    for field, problems in messages.items():
        text = " ".join(problems) if isinstance(problems, list) else str(problems)
        parts.append(f"{field}: {text}")
    return "Invalid " + "; ".join(parts)


# --------------------------------------------------------------------- seed


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int], object]]:
    if total < PROGRESS_THRESHOLD:
        yield lambda count: None
        return
    with click.progressbar(length=total, label="Writing tasks", file=sys.stderr) as bar:
        yield bar.update


@click.command("seed", cls=_Command)
@click.option(
    "--users",
    "user_count",
    type=click.IntRange(1, 1_000_000),
    default=5,
    show_default=True,
    help="Demo users: demo1@example.com, demo2@example.com, ...",
)
@click.option(
    "--tasks",
    "task_count",
    type=click.IntRange(0, 2_000_000),
    default=20,
    show_default=True,
    help="Tasks per demo user (topped up to this number, never added twice).",
)
@with_appcontext
@_one_line_errors
def seed_command(user_count: int, task_count: int) -> None:
    """Fill the database with demo users and tasks. Idempotent: run it again
    and nothing is duplicated."""
    result = seeding.seed(
        users=user_count,
        tasks_per_user=task_count,
        hash_password=security.hash_password,
        check_password=security.verify_password,
        progress=_progress_bar,
    )
    click.echo(
        f"Demo users: {result.users} ({result.users_created} created). "
        f"Tasks added: {result.tasks_created} (topped up to {task_count} per user)."
    )
    if result.demo_login_works:
        click.echo(f"Demo login: {result.demo_email} / {result.demo_password}")
    else:
        click.echo(
            f"Warning: {result.demo_email} existed already with another password, left unchanged.",
            err=True,
        )


# -------------------------------------------------------------------- users

users_cli = _Group("users", help="Accounts.")


def _read_password(stream: Any) -> str:
    """All of stdin, minus one trailing line end: every other character
    counts (API.md: every character of a password is significant)."""
    password = str(stream.read())
    if password.endswith("\n"):
        password = password[:-1]
    if password.endswith("\r"):
        password = password[:-1]
    return password


@users_cli.command("create")
@click.argument("email")
@click.option("--name", default=None, help="Display name.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of prompting.",
)
@_one_line_errors
def create_user(email: str, name: str | None, password_stdin: bool) -> None:
    """Create an account; the password is prompted for (hidden, twice)."""
    schema = RegisterIn()
    try:  # the email first, before anyone types a password for nothing
        address = schema.load({"email": email, "name": name}, partial=("password",))["email"]
    except ValidationError as exc:
        raise click.ClickException(_validation_problem(exc)) from None
    if users.find_by_email(address) is not None:
        raise click.ClickException(f"Email already registered: {address}")
    if password_stdin:
        password = _read_password(sys.stdin)
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        data = schema.load({"email": email, "password": password, "name": name})
    except ValidationError as exc:
        raise click.ClickException(_validation_problem(exc)) from None
    user = users.register(
        email=data["email"],
        password_hash=security.hash_password(data["password"]),
        name=data.get("name"),
    )
    click.echo(f"Created user {user.email} ({user.id}).")


@users_cli.command("delete")
@click.argument("email")
@_one_line_errors
def delete_user(email: str) -> None:
    """Delete an account and all of its tasks."""
    address = email.strip().lower()
    user = users.find_by_email(address)
    if user is None:
        raise click.ClickException(f"No user with email {address}")
    task_count = tasks.count_tasks(owner_id=user.id)
    users.delete_account(user.id)  # the foreign key's ON DELETE CASCADE takes the tasks
    click.echo(f"Deleted user {address} and {task_count} tasks.")


# ------------------------------------------------------------------- tokens

tokens_cli = _Group("tokens", help="Token revocation entries.")


@tokens_cli.command("purge")
@_one_line_errors
def purge_tokens() -> None:
    """Drop what is kept only for a while: revocation entries of tokens that
    have expired anyway, idempotency keys after 24 hours, task tombstones
    (the change feed's deletions) after 30 days. Schedule it, e.g. daily."""
    removed = tokens.purge_expired()
    click.echo(f"Purged {removed} expired revocation entries.")
    purged = purge.purge_expired()
    click.echo(f"Purged {purged.idempotency_keys} idempotency keys older than 24 hours.")
    click.echo(
        f"Purged {purged.tombstones} task tombstones older than 30 days "
        f"(sync horizon raised for {purged.horizons} users)."
    )


@click.command("purge", cls=_Command, help=purge_tokens.help)
@click.pass_context
def purge_command(ctx: click.Context) -> None:
    ctx.invoke(purge_tokens)


def register_commands(app: Flask) -> None:
    app.cli.add_command(seed_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(purge_command)
