#!/usr/bin/env python3
"""Load test for any deployment of the todo service. Standard library only.

    python3 benchmarks/load.py --url http://127.0.0.1:8000 [--tasks 10000] [--duration 10]
        [--connections 32] [--scenarios list_first,mixed] [--email E --password P]
        [--seed api|none] [--wrk] [--cleanup] [--full-sync] [--json FILE]

Logs in a benchmark user (registering it the first time), tops its tasks up to
--tasks through the API, then runs each scenario for --duration seconds over
--connections keep-alive connections and prints req/s and latency percentiles.
The scenarios are those of the side-by-side harness (../shared/bench):

    list_first  GET the first page, page_size=50
    list_deep   GET the page at 90 % depth, page_size=50
    get_one     GET a random task among the newest 100
    create      POST a task
    toggle      PATCH .../complete without a body on a random task among the newest 100
    mixed       50 % list_first, 25 % get_one, 15 % toggle, 10 % create

and those of contract 1.1:

    list_revalidate  GET the first page with If-None-Match naming its ETag (a 304)
    list_tag         GET the first page filtered by the user's most common tag
    tags             GET /api/<user>/tags
    changes_pull     GET .../tasks/changes after a cursor that is 10 changes old
                     (set up by making 10 changes just before the scenario runs)

--full-sync times an initial sync, following cursors in pages of 1,000 until
has_more is false, and reports its total time and page latencies.

Exit status: 0 when every response was a 2xx, 1 otherwise, 2 when setup failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

SCENARIOS = ("list_first", "list_deep", "get_one", "create", "toggle", "mixed")
SCENARIOS_1_1 = ("list_revalidate", "list_tag", "tags", "changes_pull")
ALL_SCENARIOS = SCENARIOS + SCENARIOS_1_1
SYNC_PAGE = 1000  # --full-sync's limit
PULL_CHANGES = 10  # changes_pull: how old its cursor is
PAGE_SIZE = 50
ID_POOL = 100  # get_one and toggle pick among the user's newest tasks
CREATED_TITLE = "load.py created"  # marks the write scenarios' rows for --cleanup
CREATE_BODY = json.dumps({"title": CREATED_TITLE, "description": "benchmarks/load.py"}).encode()
DEFAULT_EMAIL, DEFAULT_PASSWORD = "loadtest@example.com", "loadtest-password"
WRK_SCRIPT = Path(__file__).resolve().parent / "lua" / "scenario.lua"
SETUP_THREADS = 8  # concurrent requests while seeding and cleaning up
NET_ERRORS = (OSError, http.client.HTTPException)
# What sending on a keep-alive connection the server has closed raises.
CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
MIXED = {"list_first": 50, "get_one": 25, "toggle": 15, "create": 10}  # per cent
Request = tuple[str, str, bytes | None]
Result = dict[str, Any]
Options = argparse.Namespace
COLUMNS = [("requests", "requests", ""), ("rps", "req/s", ".1f")]
COLUMNS += [(f"p{p}_ms", f"p{p} ms", ".1f") for p in (50, 90, 99)]
COLUMNS += [("non2xx", "non-2xx", ""), ("errors", "errors", "")]


class SetupError(Exception):
    """A step before the load failed: one line on stderr, exit 2."""


class Client:
    """One keep-alive connection. A request that finds the connection closed by
    the server while it sat idle (gunicorn closes keep-alive connections after a
    few seconds: between scenarios, the setup connection is idle for the whole
    run) is sent once more on a new connection; after any other network error
    the next request reconnects."""

    def __init__(self, url: str, token: str = "", timeout: float = 10) -> None:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        connection = http.client.HTTPSConnection if https else http.client.HTTPConnection
        self.conn = connection(parts.netloc, timeout=timeout)
        self.prefix = parts.path.rstrip("/")
        self.token = token

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, bytes]:
        headers = {"Accept": "application/json", **(extra_headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        reused = self.conn.sock is not None
        for attempt in (1, 2):
            try:
                return self._exchange(method, path, body, headers)
            except NET_ERRORS as exc:
                self.conn.close()
                # Once more only if the server had closed the idle connection
                # before this request reached it (no response came back). The
                # setup requests are safe to repeat (login, GET, DELETE; a
                # second register gets its 409).
                if attempt == 2 or not reused or not isinstance(exc, CLOSED_WHILE_IDLE):
                    raise
        raise AssertionError("unreachable")

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any, bytes]:
        self.conn.request(method, self.prefix + path, body, headers)
        response = self.conn.getresponse()
        return response.status, response.headers, response.read()

    def call(
        self, method: str, path: str, payload: Any = None, ok: tuple[int, ...] = (200,)
    ) -> tuple[int, Any, Any]:
        """A setup request: (status, headers, decoded body); SetupError unless status in ok."""
        body = None if payload is None else json.dumps(payload).encode()
        try:
            status, headers, data = self.send(method, path, body)
        except NET_ERRORS as exc:
            raise SetupError(f"{method} {path}: {exc!r}") from None
        if status == 429:
            raise SetupError(
                f"{method} {path}: 429, rate limited (retry after {headers.get('Retry-After')} s). "
                "Wait, or run the server with RATELIMIT_ENABLED=false for load tests."
            )
        if status not in ok:
            message = data[:200].decode(errors="replace")
            raise SetupError(f"{method} {path}: unexpected {status}: {message}")
        return status, headers, json.loads(data) if data else None


def log(message: str, end: str = "\n") -> None:
    print(message, end=end, file=sys.stderr, flush=True)


class Session:
    """The benchmark user's tokens; the access token is refreshed at half its lifetime."""

    def __init__(self, url: str, email: str, password: str) -> None:
        self.url, self.client = url, Client(url)
        credentials = {"email": email, "password": password}
        status, _, tokens = self.client.call("POST", "/api/auth/login", credentials, (200, 401))
        if status == 401:  # first run: make the account
            status, _, _ = self.client.call("POST", "/api/auth/register", credentials, (201, 409))
            if status == 409:
                raise SetupError(f"{email} exists and refused that password (--email/--password)")
            log(f"Registered {email}")
            _, _, tokens = self.client.call("POST", "/api/auth/login", credentials)
        self._keep(tokens)
        self.user_id = self.client.call("GET", "/api/auth/me")[2]["id"]
        self.tasks_path = f"/api/{self.user_id}/tasks"

    def _keep(self, tokens: dict[str, Any]) -> None:
        self.client.token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
        self.refresh_at = time.monotonic() + tokens["expires_in"] / 2

    def token(self) -> str:
        if time.monotonic() > self.refresh_at:
            self.client.token = self.refresh_token
            self._keep(self.client.call("POST", "/api/auth/refresh")[2])
        return self.client.token

    def page(self, query: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(X-Pagination, tasks) of one list request."""
        self.token()
        _, headers, tasks = self.client.call("GET", f"{self.tasks_path}?{query}")
        return json.loads(headers["X-Pagination"]), tasks

    def total(self) -> int:
        return int(self.page("page_size=1")[0]["total"])


def in_parallel(session: Session, requests: list[tuple[str, str, Any, int]], label: str) -> None:
    """Setup requests (method, path, payload, expected status) over a few connections."""
    done, lock, step, token = 0, threading.Lock(), max(1, len(requests) // 20), session.token()

    def worker(first: int) -> None:
        nonlocal done
        client = Client(session.url, token)
        for method, path, payload, status in requests[first::SETUP_THREADS]:
            client.call(method, path, payload, (status,))  # a failure ends this thread
            with lock:
                done += 1
                if done == len(requests) or (done % step == 0 and sys.stderr.isatty()):
                    log(f"\r{label}: {done}/{len(requests)}", end="\n" * (done == len(requests)))

    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        list(pool.map(worker, range(SETUP_THREADS)))


def seed(session: Session, wanted: int) -> None:
    have = session.total()
    if have >= wanted:
        return
    log(f"Creating {wanted - have} tasks through the API. For large numbers `flask seed` on the")
    log("server is far faster (bulk COPY): `flask seed --users 1 --tasks N`, then run this with")
    log("--email demo1@example.com --password demo-password --seed none.")
    path = session.tasks_path
    tasks = [{"title": f"Task {i}", "completed": i % 3 == 0} for i in range(have + 1, wanted + 1)]
    in_parallel(session, [("POST", path, task, 201) for task in tasks], "Seeding")


def cleanup(session: Session) -> int:
    """Delete the tasks the write scenarios created (found by their title); how many."""
    deleted, query = 0, f"q={quote(CREATED_TITLE)}&page_size=1000"
    while ids := [task["id"] for task in session.page(query)[1]]:
        path = session.tasks_path
        in_parallel(session, [("DELETE", f"{path}/{i}", None, 204) for i in ids], "Deleting")
        deleted += len(ids)
    return deleted


# ---------------------------------------------------------------- the load


class Extras:
    """What the 1.1 scenarios need, found once before they run."""

    def __init__(self) -> None:
        self.etag = ""  # the first page's ETag
        self.tag = ""  # the user's most common tag
        self.cursor = ""  # a change-feed cursor PULL_CHANGES changes old


def prepare(scenario: str, session: Session, extras: Extras, ids: list[str]) -> None:
    """Set up a 1.1 scenario just before it runs."""
    if scenario == "list_revalidate":
        session.token()
        _, headers, _ = session.client.call("GET", f"{session.tasks_path}?page_size={PAGE_SIZE}")
        extras.etag = headers["ETag"]
    elif scenario == "list_tag":
        session.token()
        tags = session.client.call("GET", session.tasks_path.removesuffix("/tasks") + "/tags")[2]
        if not tags:
            raise SetupError("list_tag: the user's tasks carry no tags (flask seed gives some)")
        extras.tag = max(tags, key=lambda entry: entry["count"])["tag"]
    elif scenario == "changes_pull":
        cursor = follow_changes(session, None, SYNC_PAGE)[0]
        for task_id in ids[:PULL_CHANGES]:  # PULL_CHANGES changes after the cursor
            session.client.call("PATCH", f"{session.tasks_path}/{task_id}/complete")
        extras.cursor = cursor


def follow_changes(
    session: Session, since: str | None, limit: int, until_done: bool = True
) -> tuple[str, list[float], int]:
    """Follow the change feed from `since` (None: an initial sync) until has_more
    is false: (the last cursor, each page's seconds, tasks and ids seen)."""
    cursor, seconds, seen = since, [], 0
    while True:
        session.token()
        query = f"limit={limit}" + (f"&since={quote(cursor)}" if cursor else "")
        started = time.perf_counter()
        _, _, page = session.client.call("GET", f"{session.tasks_path}/changes?{query}")
        seconds.append(time.perf_counter() - started)
        seen += len(page["changes"]) + len(page["deleted"])
        cursor = page["cursor"]
        if not page["has_more"] or not until_done:
            return cursor, seconds, seen


def full_sync(session: Session) -> Result:
    """An initial sync in pages of SYNC_PAGE: total time and page latencies."""
    started = time.perf_counter()
    _, seconds, seen = follow_changes(session, None, SYNC_PAGE)
    total = time.perf_counter() - started
    ordered = sorted(seconds)
    return {
        "pages": len(seconds),
        "items": seen,
        "total_s": round(total, 2),
        "page_p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
        "page_max_ms": round(1000 * ordered[-1], 1),
    }


def pick(
    scenario: str,
    rng: random.Random,
    path: str,
    ids: list[str],
    deep_page: int,
    extras: Extras | None = None,
) -> tuple[str, str, bytes | None, dict[str, str]]:
    """(method, path, body, headers) of the next request of a scenario."""
    if scenario in SCENARIOS_1_1:
        assert extras is not None
        if scenario == "list_revalidate":
            return "GET", f"{path}?page_size={PAGE_SIZE}", None, {"If-None-Match": extras.etag}
        if scenario == "list_tag":
            return "GET", f"{path}?page_size={PAGE_SIZE}&tag={quote(extras.tag)}", None, {}
        if scenario == "tags":
            return "GET", path.removesuffix("/tasks") + "/tags", None, {}
        return "GET", f"{path}/changes?since={quote(extras.cursor)}", None, {}
    return (*pick_v1(scenario, rng, path, ids, deep_page), {})


def pick_v1(
    scenario: str, rng: random.Random, path: str, ids: list[str], deep_page: int
) -> Request:
    """(method, path, body) of the next request of a version 1 scenario."""
    if scenario == "mixed":
        scenario = rng.choices(tuple(MIXED), tuple(MIXED.values()))[0]
    if scenario == "list_first":
        return "GET", f"{path}?page_size={PAGE_SIZE}", None
    if scenario == "list_deep":
        return "GET", f"{path}?page_size={PAGE_SIZE}&page={deep_page}", None
    if scenario == "get_one":
        return "GET", f"{path}/{rng.choice(ids)}", None
    if scenario == "toggle":
        return "PATCH", f"{path}/{rng.choice(ids)}/complete", None
    return "POST", path, CREATE_BODY


def expected(scenario: str, status: int) -> bool:
    """A good answer: a 2xx, or the 304 that revalidation is after."""
    return status == 304 if scenario == "list_revalidate" else 200 <= status < 300


def run_python(
    scenario: str, session: Session, opts: Options, ids: list[str], deep: int, extras: Extras
) -> Result:
    """One thread per connection; each request timed from sending to its last byte read."""
    token, deadline = session.token(), time.perf_counter() + opts.duration

    def worker(number: int) -> tuple[list[float], Counter[int], int]:
        rng, client = random.Random(1000 + number), Client(session.url, token)
        latencies, statuses, errors = [], Counter[int](), 0
        while (start := time.perf_counter()) < deadline:
            method, path, body, headers = pick(scenario, rng, session.tasks_path, ids, deep, extras)
            try:
                statuses[client.send(method, path, body, headers)[0]] += 1
                latencies.append(time.perf_counter() - start)
            except NET_ERRORS:
                errors += 1
                time.sleep(0.05)  # no busy loop against a server that refuses connections
        return latencies, statuses, errors

    started = time.perf_counter()
    with ThreadPoolExecutor(opts.connections) as pool:
        outcomes = list(pool.map(worker, range(opts.connections)))
    elapsed = time.perf_counter() - started
    latencies = sorted(x for outcome in outcomes for x in outcome[0]) or [0.0]
    statuses = sum((outcome[1] for outcome in outcomes), Counter[int]())
    count = sum(statuses.values())
    return {
        "requests": count,
        "rps": round(count / elapsed, 1),
        **{
            f"p{p}_ms": round(1000 * latencies[int(p / 100 * len(latencies))], 3)
            for p in (50, 90, 99)
        },
        "non2xx": sum(n for status, n in statuses.items() if not expected(scenario, status)),
        "status_429": statuses[429],
        "non2xx_by_status": {
            s: n for s, n in sorted(statuses.items()) if not expected(scenario, s)
        },
        "errors": sum(outcome[2] for outcome in outcomes),
    }


def run_wrk(
    scenario: str, session: Session, opts: Options, ids: list[str], deep: int, extras: Extras
) -> Result:
    """The same scenario driven by wrk and benchmarks/lua/scenario.lua."""
    parts, threads = urlsplit(opts.url), min(opts.connections, os.cpu_count() or 1)
    tasks_path, ids_csv = parts.path.rstrip("/") + session.tasks_path, ",".join(ids)
    command = [
        *f"wrk -t {threads} -c {opts.connections} -d {opts.duration}s --timeout 10s".split(),
        *("-s", str(WRK_SCRIPT), f"{parts.scheme}://{parts.netloc}/", "--", scenario),
        *(tasks_path, session.token(), ids_csv, str(PAGE_SIZE), str(deep)),
        *(extras.etag or "-", quote(extras.tag) or "-", quote(extras.cursor) or "-"),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=opts.duration + 60)
    line = next((x for x in run.stdout.splitlines() if x.startswith("LOAD_JSON ")), None)
    if run.returncode or line is None:
        raise SetupError(f"wrk failed ({run.returncode}): {(run.stderr or run.stdout)[-500:]}")
    wrk = json.loads(line.removeprefix("LOAD_JSON "))
    return {
        "requests": wrk["requests"],
        "rps": round(wrk["requests"] / (wrk["duration_us"] / 1e6), 1),
        **{f"p{p}_ms": wrk["latency_us"][f"p{p}"] / 1000 for p in (50, 90, 99)},
        "non2xx": wrk["non2xx"],
        "status_429": wrk["status_429"],
        # wrk's "status" errors are the non-2xx responses, counted above
        "errors": sum(n for kind, n in wrk["errors"].items() if kind != "status"),
    }


# ------------------------------------------------------------------ main


def parse_args() -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 2)[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--url", default="http://127.0.0.1:8000", help="base URL of the service")
    add("--tasks", type=int, default=10_000, help="tasks the benchmark user should hold")
    add("--duration", type=int, default=10, help="seconds per scenario")
    add("--connections", type=int, default=32, help="concurrent keep-alive connections")
    add(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from: %(default)s, {','.join(SCENARIOS_1_1)}",
    )
    add("--email", default=DEFAULT_EMAIL, help="benchmark user (registered if login fails)")
    add("--password", default=DEFAULT_PASSWORD)
    add("--seed", choices=("api", "none"), default="api", help="top tasks up through the API")
    add("--wrk", action="store_true", help="drive the load with wrk (must be on PATH)")
    add("--cleanup", action="store_true", help="delete the tasks that create and mixed added")
    add("--full-sync", action="store_true", help="time an initial sync in pages of 1,000")
    add("--json", metavar="FILE", help="also write the results to FILE")
    opts = parser.parse_args()
    opts.scenarios = list(dict.fromkeys(n.strip() for n in opts.scenarios.split(",") if n.strip()))
    unknown = set(opts.scenarios) - set(ALL_SCENARIOS)
    if unknown or not opts.scenarios:
        parser.error(
            f"--scenarios: unknown {', '.join(sorted(unknown))}; choose from {ALL_SCENARIOS}"
        )
    if min(opts.tasks, opts.duration - 1, opts.connections - 1) < 0:
        parser.error("--tasks must be >= 0, --duration and --connections >= 1")
    if opts.wrk and not shutil.which("wrk"):
        parser.error("--wrk: wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    return opts


def report(results: dict[str, Result]) -> None:
    print(f"\n{'scenario':<12}" + "".join(f"{label:>10}" for _, label, _ in COLUMNS))
    for scenario, result in results.items():
        print(f"{scenario:<12}" + "".join(f"{result[key]:>10{fmt}}" for key, _, fmt in COLUMNS))


def main() -> int:
    opts = parse_args()
    session = Session(opts.url, opts.email, opts.password)
    if opts.seed == "api":
        seed(session, opts.tasks)
    meta, newest = session.page(f"page_size={ID_POOL}")
    total, ids = meta["total"], [task["id"] for task in newest]
    if not ids and {"get_one", "toggle", "mixed"} & set(opts.scenarios):
        raise SetupError(f"{opts.email} has no tasks: get_one, toggle and mixed need some")
    deep = max(1, int(0.9 * -(-total // PAGE_SIZE)))  # the harness's page at 90 % depth
    driver = f"wrk, {min(opts.connections, os.cpu_count() or 1)} threads" if opts.wrk else "python"
    log(f"{opts.url}: {opts.email} holds {total} tasks, deep page {deep}; each scenario")
    log(f"{opts.duration} s over {opts.connections} connections ({driver}).")
    if not opts.wrk:
        log("The Python load generator is CPU-bound itself (one core: the GIL), so its req/s is a")
        log("floor, lower still on the server's own machine; --wrk measures the service.")
    run = run_wrk if opts.wrk else run_python
    results, extras = {}, Extras()
    for scenario in opts.scenarios:
        prepare(scenario, session, extras, ids)
        results[scenario] = run(scenario, session, opts, ids, deep, extras)
    report(results)
    sync = full_sync(session) if opts.full_sync else None
    if sync:
        print(
            f"\nfull sync: {sync['items']} items in {sync['pages']} pages of {SYNC_PAGE}, "
            f"{sync['total_s']} s (page p50 {sync['page_p50_ms']} ms, max {sync['page_max_ms']} ms)"
        )

    if opts.json:
        settings = {key: getattr(opts, key) for key in ("url", "duration", "connections", "wrk")}
        document = {**settings, "user_tasks": total, "page_size": PAGE_SIZE, "deep_page": deep}
        document["results"] = results
        if sync:
            document["full_sync"] = sync
        Path(opts.json).write_text(json.dumps(document, indent=2) + "\n")
    failed = sum(result["non2xx"] + result["errors"] for result in results.values())
    if failed:
        log(f"\nFAILED: {failed} non-2xx responses or connection errors.")
        for scenario, result in results.items():  # by status: the Python generator only
            if counts := result.get("non2xx_by_status"):
                log(f"  {scenario}: " + ", ".join(f"{n} x {code}" for code, n in counts.items()))
        if any(result["status_429"] for result in results.values()):
            log("Some were 429: a rate limit stands in the way (the service's own: run it with")
            log("RATELIMIT_ENABLED=false for load tests).")
    added = session.total() - total
    if opts.cleanup:
        print(f"\nDeleted {cleanup(session)} tasks titled {CREATED_TITLE!r} (--cleanup).")
    elif added > 0:
        print(f"\nThe run added {added} tasks titled {CREATED_TITLE!r}; --cleanup deletes them.")
    if {"toggle", "mixed"} & set(results):
        print(f"Toggles flipped the status of some of the newest {len(ids)} tasks.")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as exc:
        log(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
