#!/usr/bin/env bash
# Property-based contract test: schemathesis generates valid and invalid
# requests for every operation of the served OpenAPI document and checks each
# answer against it, over a live gunicorn started from gunicorn.conf.py.
#
#   scripts/contract-test.sh sqlite|postgresql [PYTHON]
#
# sqlite: a fresh database file in a temporary directory; postgresql: a fresh
# database made with createdb (PGHOST, PGPORT, PGUSER as for psql) and dropped
# after. PYTHON (default .venv/bin/python) is the virtualenv with the dev
# requirements; its schemathesis is used. The run is seeded
# (CONTRACT_TEST_SEED, default below): a failure replays with the same seed.
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^(sqlite|postgresql)$ ]]; then
    echo "usage: $0 sqlite|postgresql [PYTHON]" >&2
    exit 2
fi
backend=$1
cd "$(dirname "$0")/.."
python=${2:-.venv/bin/python}
# Absolute, but not through the symlink: the virtualenv is where it points from.
[[ $python == /* ]] || python=$PWD/$python
venv_bin=$(dirname "$python")
seed=${CONTRACT_TEST_SEED:-20261205}
# Test cases per operation and phase; about a minute a database on 2 cores.
max_examples=${CONTRACT_TEST_MAX_EXAMPLES:-300}

# The cheapest password hashes: the fuzzer registers and logs in hundreds of
# times, and the hash cost is not what is under test.
export ARGON2_TIME_COST=1 ARGON2_MEMORY_COST=1024
# The rate limits are off: the fuzzer sends hundreds of register and login
# requests from one address, so with them on nearly every one after the fifth
# a minute would be a 429 and the handlers behind the limiter would go
# untested. Each 429 that can happen is documented, and held against the
# document by the test suite's per-response check (tests/contract.py).
export RATELIMIT_ENABLED=false

# shellcheck source=scripts/live-server.sh
source scripts/live-server.sh
start_live_server "$backend" "$python"

run_schemathesis() {
    local token=$1
    shift
    "$venv_bin/schemathesis" run "$base_url/api/openapi.json" \
        --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
        --seed "$seed" \
        --max-examples "$max_examples" \
        --header "Authorization: Bearer $token" \
        --generation-database none \
        --no-color \
        "$@"
}

# Refreshing takes a refresh token; logging out and deleting the account end
# the token that every other operation runs with: each of those three runs on
# its own, with a token of its own.
own_token='^(POST /api/auth/refresh|POST /api/auth/logout|DELETE /api/auth/me)$'
status=0
run_schemathesis "$(login_token contract-main@example.com access_token)" \
    --exclude-name-regex "$own_token" || status=$?
run_schemathesis "$(login_token contract-refresh@example.com refresh_token)" \
    --include-name "POST /api/auth/refresh" || status=$?
run_schemathesis "$(login_token contract-logout@example.com access_token)" \
    --include-name "POST /api/auth/logout" || status=$?
run_schemathesis "$(login_token contract-delete@example.com access_token)" \
    --include-name "DELETE /api/auth/me" || status=$?
exit "$status"
