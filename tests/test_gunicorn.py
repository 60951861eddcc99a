"""gunicorn the way ops run it (`gunicorn -c gunicorn.conf.py wsgi:app`):
graceful SIGTERM, no database connection shared across the fork, and logs
that are JSON from the first line to the last."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import text

from todo_service import create_app
from todo_service.config import Config, TestConfig
from todo_service.deploy import forget_inherited_connections
from todo_service.extensions import db

from .conftest import start_gunicorn

pytestmark = pytest.mark.live

TIMEOUT = 30  # seconds, per request
PASSWORD = "correct horse battery staple"


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    assert lines, "gunicorn wrote nothing to stdout"
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line a collector reads is JSON
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def accept_queue_length(port: int) -> int:
    """Connections waiting in the listening socket's accept queue (Linux:
    `rx_queue` of a LISTEN socket in /proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":  # 0A: LISTEN
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


def stop(process: Any) -> int:
    process.send_signal(signal.SIGTERM)
    return int(process.wait(timeout=TIMEOUT))


# ------------------------------------------------------------------- SIGTERM


def send_all_but_the_last_byte(
    port: int, email: str, request_id: str
) -> tuple[socket.socket, bytes]:
    """A registration whose body still lacks its last byte: the worker that
    accepts it waits for the rest, busy with this request and no other."""
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    head = (
        f"POST /api/auth/register HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(head + body[:-1])
    return sock, body[-1:]


def read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        return response.status, json.loads(response.read())
    finally:
        response.close()
        sock.close()


def wait_for_line(path: Path, message: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not any(json.loads(line)["message"] == message for line in path.read_text().splitlines()):
        assert time.monotonic() < deadline, f"no {message!r} in the log"
        time.sleep(0.01)


@pytest.mark.parametrize(
    "signal_before_last_byte", [False, True], ids=["while-hashing", "while-uploading"]
)
def test_sigterm_lets_in_flight_requests_finish_and_the_master_exits_cleanly(
    app: Flask, server_env: dict[str, str], tmp_path: Path, signal_before_last_byte: bool
) -> None:
    workers = 4
    # Registrations at the production argon2 cost: a few tenths of a second
    # of work each once the body is in.
    env = dict(
        server_env,
        ARGON2_TIME_COST=str(Config.ARGON2_TIME_COST),
        ARGON2_MEMORY_COST=str(Config.ARGON2_MEMORY_COST),
    )
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process, url = start_gunicorn(env, workers=workers, config=True, stdout=log)
    port = int(url.rsplit(":", 1)[1])
    emails = [f"sigterm-{i}-{uuid.uuid4().hex[:8]}@example.com" for i in range(workers)]
    try:
        pending = [
            send_all_but_the_last_byte(port, email, f"sigterm-{i}")
            for i, email in enumerate(emails)
        ]
        # None left in the accept queue: each request is held by a worker of
        # its own (a sync worker takes one connection at a time).
        deadline = time.monotonic() + TIMEOUT
        while accept_queue_length(port) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert accept_queue_length(port) == 0

        if signal_before_last_byte:
            process.send_signal(signal.SIGTERM)
            wait_for_line(log_path, "Handling signal: term")
        for sock, last_byte in pending:
            sock.sendall(last_byte)
        if not signal_before_last_byte:
            process.send_signal(signal.SIGTERM)  # while they hash the passwords

        results = [read_response(sock) for sock, _ in pending]
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert [status for status, _ in results] == [201] * workers, results
    assert [body["email"] for _, body in results] == emails

    # The requests really were in flight when the master handled the signal.
    entries = json_lines(log_path)
    messages = [entry["message"] for entry in entries]
    signal_at = messages.index("Handling signal: term")
    finished_at = [
        i
        for i, entry in enumerate(entries)
        if str(entry.get("request_id", "")).startswith("sigterm-")
    ]
    assert len(finished_at) == workers
    assert min(finished_at) > signal_at, messages
    assert messages[-1] == "Shutting down: Master"


# ----------------------------------------------------------------- post_fork


def test_workers_forked_after_an_auto_migrating_master_serve_400_concurrent_requests(
    app: Flask, server_env: dict[str, str], tmp_path: Path
) -> None:
    # AUTO_MIGRATE=1: the master connects to the database (migration, advisory
    # lock on PostgreSQL) before it forks the workers.
    env = dict(server_env, AUTO_MIGRATE="1")
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process, url = start_gunicorn(env, workers=4, config=True, stdout=log)
    try:
        email = f"fork-{uuid.uuid4().hex[:8]}@example.com"
        registered = requests.post(
            f"{url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=30
        )
        assert registered.status_code == 201, registered.text
        tokens = requests.post(
            f"{url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
        ).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        created = requests.post(
            f"{url}/api/me/tasks", json={"title": "a"}, headers=auth, timeout=30
        )
        assert created.status_code == 201, created.text

        threads, per_thread = 20, 20
        outcomes: list[tuple[int, str]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(threads, timeout=TIMEOUT)

        def hammer() -> None:
            with requests.Session() as session:
                barrier.wait()
                for _ in range(per_thread):
                    try:
                        response = session.get(f"{url}/api/me/tasks", headers=auth, timeout=TIMEOUT)
                        outcome = (response.status_code, response.text)
                    except requests.RequestException as exc:
                        outcome = (0, repr(exc))
                    with lock:
                        outcomes.append(outcome)

        pool = [threading.Thread(target=hammer) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(timeout=2 * TIMEOUT)
        assert not any(thread.is_alive() for thread in pool), "a request thread hung"
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    failures = [outcome for outcome in outcomes if outcome[0] != 200]
    assert len(outcomes) == threads * per_thread
    assert not failures, f"{len(failures)} of {len(outcomes)} failed, e.g. {failures[:3]}"
    assert all(json.loads(body)[0]["title"] == "a" for _, body in outcomes)
    messages = [entry["message"] for entry in json_lines(log_path)]
    assert "AUTO_MIGRATE: upgrading the database schema" in messages


def test_forked_process_drops_the_inherited_pool_without_closing_the_parents_connection(
    database_direct_url: str,
) -> None:
    """What post_fork does, checked directly: the child opens its own
    connection, and the parent's pooled one survives the child. (Straight to
    the database: behind a transaction pooler, a temporary table may turn up
    in any client's session.)"""
    parent_app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": database_direct_url})
    with parent_app.app_context():
        engine = db.engine
    # A temporary table lives in one connection (session) only: it tells
    # whose connection a process is using.
    with engine.connect() as connection:
        connection.execute(text("CREATE TEMPORARY TABLE fork_marker (x INTEGER)"))
        connection.commit()
    assert engine.pool.checkedin() == 1

    pid = os.fork()
    if pid == 0:  # the child, as in gunicorn's post_fork
        code = 3
        try:
            forget_inherited_connections()
            with engine.connect() as connection:
                try:
                    connection.execute(text("SELECT x FROM fork_marker"))
                    code = 1  # still on the parent's connection
                except Exception:
                    code = 0  # a connection of its own
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child reused the parent's connection"

    with engine.connect() as connection:  # still the parent's own session
        assert connection.execute(text("SELECT count(*) FROM fork_marker")).scalar_one() == 0
    engine.dispose()


# ---------------------------------------------------------------------- logs


def test_gunicorn_logs_only_json_lines_from_start_to_shutdown(
    app: Flask, server_env: dict[str, str], tmp_path: Path
) -> None:
    # A user with no writable home, as in the container: gunicorn 27's
    # control socket would fail to start there and log a warning.
    env = {key: value for key, value in server_env.items() if key != "XDG_RUNTIME_DIR"}
    env["HOME"] = "/dev/null"
    log_path, err_path = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with log_path.open("wb") as log, err_path.open("wb") as err:
        process, url = start_gunicorn(env, workers=2, config=True, stdout=log, stderr=err)
    try:
        assert requests.get(f"{url}/readyz", timeout=TIMEOUT).status_code == 200
        assert requests.get(f"{url}/nope", timeout=TIMEOUT).status_code == 404
    finally:
        assert stop(process) == 0

    entries = json_lines(log_path)
    assert err_path.read_text() == ""
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= set(entry), entry
    messages = [entry["message"] for entry in entries]
    assert messages[0].startswith("Starting gunicorn")
    assert messages[-1] == "Shutting down: Master"
    served = [e["path"] for e in entries if e["logger"] == "todo_service.request"]
    assert [path for path in served if path != "/healthz"] == ["/readyz", "/nope"]
    problems = [e for e in entries if e["level"] not in {"DEBUG", "INFO"}]
    assert not problems, problems
    assert not [m for m in messages if "control" in m.lower()]
