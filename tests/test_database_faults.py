"""Database down and back (API.md, Details: Database down), for real: a
throwaway PostgreSQL cluster that the test stops and starts under a running
gunicorn. While it is down, /readyz and every API call that needs the
database answer a JSON 503 quickly and /healthz stays 200; once it is back,
the same workers serve again (stale pooled connections replaced)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .conftest import free_port, start_gunicorn
from .helpers import assert_error

ON_SQLITE = not os.environ.get("TEST_DATABASE_URL", "").strip() or os.environ[
    "TEST_DATABASE_URL"
].startswith("sqlite")
PG_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"))

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        ON_SQLITE, reason="PostgreSQL only (TEST_DATABASE_URL): stops and starts a PG cluster"
    ),
    pytest.mark.skipif(not PG_BINARIES, reason="PostgreSQL server binaries not installed"),
]

# Per request while the database is down: an answer well within this, or the
# service hangs.
QUICK = 5
PASSWORD = "correct horse battery staple"


@dataclass
class Cluster:
    """A PostgreSQL server of the test's own, in a temp dir."""

    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        # initdb and pg_ctl refuse to run as root.
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(  # noqa: S603
            [*as_postgres, str(PG_BINARIES[-1] / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres", "-N"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.directory / "data"),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.directory / "data" / "postmaster.pid").exists()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One cluster for the module (initdb takes a few seconds); each test
    starts or stops it as it needs."""
    directory = Path(tempfile.mkdtemp(prefix="todo-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    server = Cluster(directory, free_port())
    try:
        server.init()
        yield server
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def cluster_env(server_env: dict[str, str], cluster: Cluster, **changes: str) -> dict[str, str]:
    env = dict(server_env, DATABASE_URL=cluster.url, **changes)
    env.pop("DATABASE_DIRECT_URL", None)  # the test database's: not this one
    return env


def wait_for(url: str, status: int, timeout: float = 15.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(url, timeout=QUICK)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_outage_gives_quick_json_503s_and_the_same_workers_recover(
    cluster: Cluster, server_env: dict[str, str], tmp_path: Path
) -> None:
    if not cluster.running():
        cluster.start()
    # AUTO_MIGRATE: gunicorn's master brings the new cluster's schema to head.
    env = cluster_env(server_env, cluster, AUTO_MIGRATE="1")
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process, base = start_gunicorn(env, workers=2, config=True, stdout=log)
    try:
        email = f"outage-{uuid.uuid4().hex[:8]}@example.com"
        account = {"email": email, "password": PASSWORD}
        assert requests.post(f"{base}/api/auth/register", json=account, timeout=QUICK).ok
        tokens = requests.post(f"{base}/api/auth/login", json=account, timeout=QUICK).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        task = requests.post(
            f"{base}/api/me/tasks", json={"title": "Survive"}, headers=auth, timeout=QUICK
        ).json()
        # Both workers hold pooled connections that the outage will leave stale.
        for _ in range(10):
            assert requests.get(f"{base}/api/me/tasks", headers=auth, timeout=QUICK).ok

        cluster.stop()

        calls = [
            ("GET", "/readyz", {}),
            ("GET", "/api/me/tasks", {"headers": auth}),  # the token check needs the database
            ("GET", f"/api/me/tasks/{task['id']}", {"headers": auth}),
            ("POST", "/api/me/tasks", {"headers": auth, "json": {"title": "Lost"}}),
            ("GET", "/api/auth/me", {"headers": auth}),
            ("POST", "/api/auth/login", {"json": account}),
            ("POST", "/api/auth/register", {"json": {**account, "email": f"x{email}"}}),
        ]
        for method, path, kwargs in calls * 2:  # twice: each worker has its turn
            response = requests.request(method, base + path, timeout=QUICK, **kwargs)
            body = assert_error(response, 503)
            assert body["message"] == "Database unavailable.", (method, path)
        assert requests.get(f"{base}/healthz", timeout=QUICK).status_code == 200

        cluster.start()

        assert wait_for(f"{base}/readyz", 200).status_code == 200
        for _ in range(10):
            listed = requests.get(f"{base}/api/me/tasks", headers=auth, timeout=QUICK)
            assert listed.status_code == 200, listed.text
            assert [t["id"] for t in listed.json()] == [task["id"]]
        created = requests.post(
            f"{base}/api/me/tasks", json={"title": "Back"}, headers=auth, timeout=QUICK
        )
        assert created.status_code == 201, created.text
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)

    # No worker died or was replaced along the way.
    assert log_path.read_text().count("Booting worker") == 2


def test_service_started_while_the_database_is_down_serves_and_becomes_ready(
    cluster: Cluster, server_env: dict[str, str]
) -> None:
    if cluster.running():
        cluster.stop()
    env = cluster_env(server_env, cluster, AUTO_MIGRATE="0")
    process, base = start_gunicorn(env, workers=2, config=True)  # waits for /healthz
    try:
        assert_error(requests.get(f"{base}/readyz", timeout=QUICK), 503)
        login = requests.post(
            f"{base}/api/auth/login",
            json={"email": "early@example.com", "password": PASSWORD},
            timeout=QUICK,
        )
        assert_error(login, 503)

        cluster.start()

        assert wait_for(f"{base}/readyz", 200).status_code == 200
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_requests_right_after_a_database_restart_all_succeed(
    cluster: Cluster, server_env: dict[str, str]
) -> None:
    """A restart between two requests (a failover, a serverless resume): the
    pooled connections are dead, and the next requests must not be the ones
    to find out."""
    if not cluster.running():
        cluster.start()
    process, base = start_gunicorn(
        cluster_env(server_env, cluster, AUTO_MIGRATE="1"), workers=2, config=True
    )
    try:
        email = f"restart-{uuid.uuid4().hex[:8]}@example.com"
        account = {"email": email, "password": PASSWORD}
        assert requests.post(f"{base}/api/auth/register", json=account, timeout=QUICK).ok
        tokens = requests.post(f"{base}/api/auth/login", json=account, timeout=QUICK).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        for _ in range(10):  # both workers hold pooled connections
            assert requests.get(f"{base}/api/me/tasks", headers=auth, timeout=QUICK).ok

        cluster.stop()
        cluster.start()

        statuses = [
            requests.get(f"{base}/api/me/tasks", headers=auth, timeout=QUICK).status_code
            for _ in range(10)
        ]
        assert statuses == [200] * 10
    finally:
        process.terminate()
        process.wait(timeout=30)
