"""benchmarks/load.py against a live gunicorn: it seeds, drives the
scenarios, reports, cleans up, and exits 0 when every response was a 2xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from .conftest import start_gunicorn

pytestmark = pytest.mark.live

LOAD_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "load.py"


def test_a_short_load_run_reports_every_scenario_and_cleans_up(
    app: Flask, server_env: dict[str, str]
) -> None:
    # Keep-alive connections closed after 1 s idle: the script's setup
    # connection sits idle through the scenarios, and must reconnect after them.
    env = {**server_env, "GUNICORN_KEEPALIVE": "1"}
    process, url = start_gunicorn(env, workers=2, config=True)
    try:
        run = subprocess.run(  # noqa: S603
            [
                sys.executable,
                str(LOAD_SCRIPT),
                *("--url", url, "--tasks", "120", "--duration", "2", "--connections", "4"),
                *("--scenarios", "list_first,create,toggle", "--cleanup"),
                *("--email", "load-script@example.com", "--password", "load-script-password"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert run.returncode == 0, run.stderr + run.stdout
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines() if line.strip()}
    for scenario in ("list_first", "create", "toggle"):
        requests, non2xx, errors = rows[scenario][1], rows[scenario][-2], rows[scenario][-1]
        assert int(requests) > 0 and (non2xx, errors) == ("0", "0"), rows[scenario]
    assert "Deleted" in run.stdout and "tasks titled 'load.py created'" in run.stdout
