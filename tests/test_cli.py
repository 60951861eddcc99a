"""The `flask` commands: `seed`, `users create|delete`,
`tokens purge`. Every failure is one `Error: ...` line on stderr and a non-zero
exit, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, insert, select

from todo_service import create_app, security
from todo_service.config import TestConfig
from todo_service.db.models import RevokedToken, Tag, Task, TaskTag, User
from todo_service.extensions import db
from todo_service.services import seeding

from .conftest import ROOT, TEST_SECRET

DEMO_LOGIN = re.compile(r"^Demo login: (\S+) / (\S+)$", re.MULTILINE)
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"  # nothing listens on port 1
# API.md: an email of at most 254 characters (domain labels of at most 63).
EMAIL_254 = f"{'a' * 64}@{'b' * 60}.{'c' * 60}.{'d' * 63}.com"
EMAIL_255 = f"{'a' * 64}@{'b' * 60}.{'c' * 61}.{'d' * 63}.com"


def assert_one_line_error(result: Any, *, exit_code: int = 1, says: str = "") -> str:
    """Failed with `exit_code`, one `Error: ...` line on stderr, no traceback."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert says.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def seed(runner: Any, users: int, tasks: int) -> Any:
    result = runner.invoke(args=["seed", "--users", str(users), "--tasks", str(tasks)])
    assert result.exit_code == 0, result.output
    return result


def tasks_per_user(app: Flask) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(User.email, func.count(Task.id))
            .outerjoin(Task, Task.user_id == User.id)
            .group_by(User.email)
        )
        return {email: count for email, count in rows}


def user_exists(app: Flask, email: str) -> bool:
    with app.app_context():
        return db.session.execute(select(User.id).where(User.email == email)).first() is not None


# --------------------------------------------------------------------- seed


def test_seed_creates_demo_users_with_their_tasks(app, runner):
    result = seed(runner, users=3, tasks=20)

    assert tasks_per_user(app) == {
        "demo1@example.com": 20,
        "demo2@example.com": 20,
        "demo3@example.com": 20,
    }
    assert "Demo users: 3 (3 created). Tasks added: 60" in result.stdout
    assert DEMO_LOGIN.search(result.stdout).group(1) == "demo1@example.com"


def test_seed_twice_duplicates_nothing(app, runner):
    seed(runner, users=3, tasks=20)
    with app.app_context():
        before = set(db.session.execute(select(Task.id, Task.user_id)).all())

    result = seed(runner, users=3, tasks=20)

    with app.app_context():
        assert set(db.session.execute(select(Task.id, Task.user_id)).all()) == before
    assert len(before) == 60
    assert "Demo users: 3 (0 created). Tasks added: 0" in result.stdout
    assert DEMO_LOGIN.search(result.stdout)


def test_seed_tops_up_users_and_tasks_to_the_numbers_asked(app, runner):
    seed(runner, users=2, tasks=5)

    result = seed(runner, users=3, tasks=8)

    assert tasks_per_user(app) == {
        "demo1@example.com": 8,
        "demo2@example.com": 8,
        "demo3@example.com": 8,
    }
    assert "Demo users: 3 (1 created). Tasks added: 14" in result.stdout


def test_seed_never_removes_tasks_beyond_the_number_asked(app, runner):
    seed(runner, users=1, tasks=10)

    seed(runner, users=1, tasks=4)

    assert tasks_per_user(app) == {"demo1@example.com": 10}


def test_concurrent_seeds_add_each_task_once(app, runner):
    """Runs exclude each other (advisory lock / BEGIN IMMEDIATE): two at once
    cannot both see a user short of tasks and both top it up."""
    seed(runner, users=2, tasks=0)
    start = threading.Barrier(3)
    failures: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            start.wait()
            try:
                seeding.seed(
                    users=2,
                    tasks_per_user=50,
                    hash_password=security.hash_password,
                    check_password=security.verify_password,
                )
            except BaseException as exc:  # reported below
                failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert tasks_per_user(app) == {"demo1@example.com": 50, "demo2@example.com": 50}


def test_seed_with_zero_tasks_creates_only_users(app, runner):
    seed(runner, users=2, tasks=0)

    assert tasks_per_user(app) == {"demo1@example.com": 0, "demo2@example.com": 0}


def test_demo_users_share_one_password_hash(app, runner):
    """The demo password is hashed once (argon2 costs ~0.1 s a hash)."""
    seed(runner, users=4, tasks=0)

    with app.app_context():
        hashes = db.session.execute(select(User.password_hash).distinct()).scalars().all()
    assert len(hashes) == 1 and hashes[0].startswith("$argon2")


def test_demo_login_works_and_lists_the_seeded_tasks(runner, client):
    result = seed(runner, users=2, tasks=20)
    email, password = DEMO_LOGIN.search(result.stdout).groups()

    login = client.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {login.json['access_token']}"}
    listing = client.get("/api/me/tasks?page_size=7", headers=headers)

    assert listing.status_code == 200
    assert len(listing.json) == 7
    assert json.loads(listing.headers["X-Pagination"])["total"] == 20
    me = client.get("/api/auth/me", headers=headers).json
    assert {task["user_id"] for task in listing.json} == {me["id"]}
    everything = client.get("/api/me/tasks?page_size=100", headers=headers).json
    assert len({task["id"] for task in everything}) == 20


def test_seeded_tasks_look_like_real_ones(app, runner):
    seed(runner, users=1, tasks=300)

    with app.app_context():
        tasks = db.session.execute(select(Task)).scalars().all()
    now = datetime.now(UTC)
    completed = sum(task.completed for task in tasks)
    described = sum(task.description is not None for task in tasks)
    assert 0.2 < completed / len(tasks) < 0.47  # about a third (5 standard deviations)
    assert 0 < described < len(tasks)
    assert len({task.title for task in tasks}) > 100
    assert len({task.created_at for task in tasks}) == len(tasks)
    assert len({task.created_at.microsecond for task in tasks}) > 250
    assert all(task.created_at <= task.updated_at <= now for task in tasks)
    oldest = min(task.created_at for task in tasks)
    assert now - timedelta(days=200) < oldest < now - timedelta(days=60)  # months back
    assert all(task.title.strip() == task.title and task.title for task in tasks)


def tag_counts_in_database(app: Flask, email: str) -> dict[str, int]:
    """Tag name -> how many of the user's tasks carry it, counted over `task_tags`."""
    with app.app_context():
        rows = db.session.execute(
            select(Tag.name, func.count())
            .join(TaskTag, TaskTag.tag_id == Tag.id)
            .join(User, User.id == Tag.user_id)
            .where(User.email == email)
            .group_by(Tag.name)
        )
        return {name: count for name, count in rows}


def tag_counts_through_api(client: Any, email: str, password: str) -> dict[str, int]:
    login = client.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.get_data(as_text=True)
    response = client.get(
        "/api/me/tags", headers={"Authorization": f"Bearer {login.json['access_token']}"}
    )
    assert response.status_code == 200
    return {entry["tag"]: entry["count"] for entry in response.json}


def test_seeded_tasks_show_every_1_1_feature(app, runner, client):
    """Every priority, overdue tasks and tasks due later, tasks with and
    without tags: a seeded database shows what version 1.1 added."""
    seed(runner, users=1, tasks=400)

    with app.app_context():
        tasks = db.session.execute(select(Task)).scalars().all()
        links = db.session.execute(
            select(TaskTag.task_id, TaskTag.position, Tag.name)
            .join(Tag, Tag.id == TaskTag.tag_id)
            .order_by(TaskTag.task_id, TaskTag.position)
        ).all()
    now = datetime.now(UTC)
    priorities = Counter(task.priority for task in tasks)
    assert set(priorities) == {"low", "medium", "high"}
    assert priorities["medium"] > len(tasks) / 2  # mostly medium (65 %)
    due = [task for task in tasks if task.due_at is not None]
    assert 0.3 < len(due) / len(tasks) < 0.7  # about half
    overdue = [task for task in due if task.due_at < now and not task.completed]
    assert overdue and any(task.due_at < now and task.completed for task in due)
    assert any(task.due_at > now for task in due)
    assert all(task.due_at.second == task.due_at.microsecond == 0 for task in due)
    tags_of: dict[Any, list[tuple[int, str]]] = {}
    for task_id, position, name in links:
        tags_of.setdefault(task_id, []).append((position, name))
    assert 0.3 < len(tags_of) / len(tasks) < 0.7  # half carry tags
    assert {len(names) for names in tags_of.values()} == {1, 2, 3}
    for names in tags_of.values():
        assert [position for position, _ in names] == list(range(len(names)))
        assert len({name for _, name in names}) == len(names)
    vocabulary = {name for names in tags_of.values() for _, name in names}
    assert 10 <= len(vocabulary) <= 20
    assert all(name == name.strip().lower() for name in vocabulary)


def test_seeded_tags_reach_the_api_in_order_with_exact_counts(app, runner, client):
    result = seed(runner, users=2, tasks=150)
    email, password = DEMO_LOGIN.search(result.stdout).groups()

    counts = tag_counts_through_api(client, email, password)

    assert counts == tag_counts_in_database(app, email)
    assert sum(counts.values()) > 0
    with app.app_context():
        tags_of: dict[str, list[str]] = {}
        for task_id, name in db.session.execute(
            select(TaskTag.task_id, Tag.name)
            .join(Tag, Tag.id == TaskTag.tag_id)
            .join(User, User.id == Tag.user_id)
            .where(User.email == email)
            .order_by(TaskTag.position)
        ):
            tags_of.setdefault(str(task_id), []).append(name)
    login = client.post("/api/auth/login", json={"email": email, "password": password})
    headers = {"Authorization": f"Bearer {login.json['access_token']}"}
    listing = client.get("/api/me/tasks?page_size=1000", headers=headers).json
    assert len(listing) == 150
    assert {task["id"]: task["tags"] for task in listing} == {
        task["id"]: tags_of.get(task["id"], []) for task in listing
    }
    for query in ("overdue=true", "priority=high", "priority=low", "tag=work"):
        response = client.get(f"/api/me/tasks?{query}", headers=headers)
        assert response.status_code == 200
        assert json.loads(response.headers["X-Pagination"])["total"] > 0, query
    overdue = client.get("/api/me/tasks?overdue=true&page_size=1000", headers=headers).json
    assert (
        json.loads(client.get("/api/me/tasks?tag=work", headers=headers).headers["X-Pagination"])[
            "total"
        ]
        == counts["work"]
    )
    assert all(not task["completed"] and task["due_at"] for task in overdue)


def test_seed_in_many_rounds_keeps_tag_counts_exact(app, runner, client, monkeypatch):
    """Rounds of a few tasks (one COPY of tasks and one of links each on
    PostgreSQL, one batch each on SQLite), rounds spanning users, and a
    top-up that reuses the tags already there: every count stays exact."""
    monkeypatch.setattr(seeding, "_COPY_ROUND", 17)
    monkeypatch.setattr(seeding, "_SQLITE_BATCH", 17)
    seed(runner, users=3, tasks=40)

    seed(runner, users=3, tasks=90)

    assert tasks_per_user(app) == {seeding.demo_email(n): 90 for n in (1, 2, 3)}
    for number in (1, 2, 3):
        email = seeding.demo_email(number)
        counts = tag_counts_through_api(client, email, seeding.DEMO_PASSWORD)
        assert counts == tag_counts_in_database(app, email)
        assert sum(counts.values()) > 20
    with app.app_context():
        names = db.session.execute(select(Tag.user_id, Tag.name)).all()
        stored = dict(db.session.execute(select(Tag.id, Tag.task_count)).all())
        counted = dict(
            db.session.execute(select(TaskTag.tag_id, func.count()).group_by(TaskTag.tag_id)).all()
        )
    assert len(names) == len(set(names))  # one row per user and name
    assert {tag_id: count for tag_id, count in stored.items() if count} == counted


def test_seed_reuses_a_tag_the_user_made(app, runner, client, make_user, auth_headers):
    owner = make_user(email="demo1@example.com")
    headers = auth_headers(owner)
    made = client.post("/api/me/tasks", json={"title": "mine", "tags": ["Work"]}, headers=headers)
    assert made.status_code == 201

    seed(runner, users=1, tasks=200)

    with app.app_context():
        work = db.session.execute(select(Tag.id).where(Tag.name == "work")).scalars().all()
    assert len(work) == 1
    counts = tag_counts_through_api(client, owner.email, owner.password)
    assert counts == tag_counts_in_database(app, owner.email)
    assert counts["work"] > 1


def test_seed_leaves_an_existing_demo_account_alone(runner, make_user, login):
    owner = make_user(email="demo1@example.com", password="the owner's own password")

    result = runner.invoke(args=["seed", "--users", "2", "--tasks", "1"])

    assert result.exit_code == 0, result.output
    assert "demo1@example.com existed already" in result.stderr
    assert not DEMO_LOGIN.search(result.stdout)
    assert login(owner)["access_token"]  # still the owner's password


@pytest.mark.parametrize(
    "args",
    [
        ["--users", "0"],
        ["--users", "many"],
        ["--tasks", "-1"],
        ["--tasks", "2000001"],
        ["--colour", "blue"],
        ["extra"],
    ],
)
def test_seed_rejects_bad_arguments_in_one_line(app, runner, args):
    result = runner.invoke(args=["seed", *args])

    assert_one_line_error(result, exit_code=2)
    assert tasks_per_user(app) == {}


# -------------------------------------------------------------------- users


def test_users_create_prompts_twice_without_echoing(app, runner, client):
    password = "prompted pass 1"

    result = runner.invoke(
        args=["users", "create", "Ops@Example.com", "--name", "Ops"],
        input=f"{password}\n{password}\n",
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.count("Password") == 1
    assert "Repeat for confirmation" in result.stdout
    assert password not in result.output
    assert "Created user ops@example.com" in result.stdout
    login = client.post("/api/auth/login", json={"email": "ops@example.com", "password": password})
    assert login.status_code == 200
    me = client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {login.json['access_token']}"}
    ).json
    assert (me["email"], me["name"]) == ("ops@example.com", "Ops")


def test_users_create_with_mismatched_confirmation_creates_nothing(app, runner):
    result = runner.invoke(
        args=["users", "create", "ops@example.com"], input="password one\npassword two\n"
    )

    assert result.exit_code != 0
    assert "do not match" in result.output
    assert "Traceback" not in result.output
    assert not user_exists(app, "ops@example.com")


@pytest.mark.parametrize(
    ("given", "password"),
    [
        ("secret password\n", "secret password"),
        ("no newline at all", "no newline at all"),
        ("  spaces kept  \r\n", "  spaces kept  "),
    ],
)
def test_users_create_reads_the_password_from_stdin(runner, client, given, password):
    result = runner.invoke(
        args=["users", "create", "ci@example.com", "--password-stdin"], input=given
    )

    assert result.exit_code == 0, result.output
    assert "Password" not in result.output  # no prompt
    login = client.post("/api/auth/login", json={"email": "ci@example.com", "password": password})
    assert login.status_code == 200


@pytest.mark.parametrize(
    ("email", "password", "says"),
    [
        ("not-an-email", "long enough", "email"),
        ("", "long enough", "email"),
        (EMAIL_255, "long enough", "email"),
        ("ok@example.com", "seven77", "password"),
        ("ok@example.com", "x" * 129, "password"),
        ("ok@example.com", "", "password"),
    ],
)
def test_users_create_refuses_what_the_api_refuses(app, runner, email, password, says):
    result = runner.invoke(
        args=["users", "create", email, "--password-stdin"], input=f"{password}\n"
    )

    assert_one_line_error(result, says=f"Invalid {says}")
    assert not user_exists(app, "ok@example.com")


def test_users_create_accepts_the_limits_the_api_accepts(app, runner):
    result = runner.invoke(
        args=["users", "create", EMAIL_254, "--password-stdin"], input="x" * 128 + "\n"
    )

    assert result.exit_code == 0, result.output
    assert user_exists(app, EMAIL_254)


def test_users_create_refuses_a_taken_email_before_asking_for_a_password(runner, make_user):
    make_user(email="taken@example.com")

    result = runner.invoke(args=["users", "create", "  TAKEN@example.com "])

    assert_one_line_error(result, says="already registered")
    assert "Password" not in result.output


def test_users_delete_removes_the_user_and_its_tasks(app, runner, make_user, auth_headers, client):
    doomed, kept = make_user(), make_user()
    for owner in (doomed, kept):
        headers = auth_headers(owner)
        for title in ("one", "two"):
            assert (
                client.post("/api/me/tasks", json={"title": title}, headers=headers).status_code
                == 201
            )

    result = runner.invoke(args=["users", "delete", doomed.email.upper()])

    assert result.exit_code == 0, result.output
    assert f"Deleted user {doomed.email} and 2 tasks." in result.stdout
    assert tasks_per_user(app) == {kept.email: 2}
    login = client.post(
        "/api/auth/login", json={"email": doomed.email, "password": doomed.password}
    )
    assert login.status_code == 401


def test_users_delete_of_an_unknown_email_fails_in_one_line(runner, user):
    result = runner.invoke(args=["users", "delete", "nobody@example.com"])

    assert_one_line_error(result, says="No user with email nobody@example.com")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["users", "create"], "Missing argument"),
        (["users", "delete"], "Missing argument"),
        (["users", "remove", "a@example.com"], "No such command"),
        (["users", "create", "a@example.com", "--password", "x"], "No such option"),
    ],
)
def test_users_commands_reject_bad_usage_in_one_line(runner, args, says):
    assert_one_line_error(runner.invoke(args=args), exit_code=2, says=says)


# ------------------------------------------------------------------- tokens


def test_tokens_purge_removes_only_expired_entries(app, runner):
    now = datetime.now(UTC)
    entries = {
        "expired-long-ago": now - timedelta(days=40),
        "expired-just-now": now - timedelta(seconds=5),
        "still-valid": now + timedelta(minutes=10),
        "valid-for-weeks": now + timedelta(days=20),
    }
    with app.app_context():
        db.session.execute(
            insert(RevokedToken), [{"jti": k, "expires_at": v} for k, v in entries.items()]
        )
        db.session.commit()

    result = runner.invoke(args=["tokens", "purge"])

    assert result.exit_code == 0, result.output
    assert "Purged 2 expired revocation entries." in result.stdout
    with app.app_context():
        left = set(db.session.execute(select(RevokedToken.jti)).scalars())
    assert left == {"still-valid", "valid-for-weeks"}


# --------------------------------------------------------- database faults


@pytest.fixture(scope="module")
def down_runner(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The CLI of an app whose PostgreSQL refuses connections."""
    app = create_app(
        TestConfig,
        {"SQLALCHEMY_DATABASE_URI": UNREACHABLE},
        instance_path=tmp_path_factory.mktemp("down"),
    )
    yield app.test_cli_runner()
    with app.app_context():
        db.engine.dispose()


COMMANDS = [
    (["seed", "--users", "2", "--tasks", "3"], None),
    (["users", "create", "ops@example.com", "--password-stdin"], "long enough\n"),
    (["users", "delete", "ops@example.com"], None),
    (["tokens", "purge"], None),
]


@pytest.mark.parametrize(("args", "stdin"), COMMANDS)
def test_unreachable_database_is_one_line_not_a_traceback(down_runner, args, stdin):
    result = down_runner.invoke(args=args, input=stdin)

    assert_one_line_error(result, says="Database unavailable")


@pytest.mark.parametrize(("args", "stdin"), COMMANDS)
def test_database_without_schema_says_to_migrate(tmp_path, args, stdin):
    app = create_app(
        TestConfig,
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.sqlite3'}"},
        instance_path=tmp_path,
    )
    try:
        result = app.test_cli_runner().invoke(args=args, input=stdin)
    finally:
        with app.app_context():
            db.engine.dispose()

    assert_one_line_error(result, says="flask db upgrade")


def test_flask_executable_reports_an_unreachable_database_in_one_line(server_env):
    """The whole path an operator takes: `flask` loading wsgi:app."""
    env = {**server_env, "DATABASE_URL": UNREACHABLE, "JWT_SECRET_KEY": TEST_SECRET}
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "flask", "users", "delete", "ops@example.com"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 1
    assert completed.stdout == ""
    errors = [line for line in completed.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and errors[0].startswith("Error: Database unavailable"), (
        completed.stderr
    )
