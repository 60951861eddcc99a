#!/usr/bin/env bash
# Lint the OpenAPI document that the service serves at GET /api/openapi.json
# with Redocly CLI's recommended rules (redocly.yaml). Fails on any error;
# warnings are printed. Needs `npm ci` first and the Python venv
# (VENV, default .venv).
#
#   scripts/lint-openapi.sh            # or: npm run lint:openapi
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
DOC=build/openapi.json

"$VENV/bin/python" scripts/dump_openapi.py "$DOC"
# No update check and no notices on stderr: nothing is fetched at run time.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true REDOCLY_SUPPRESS_NOTIFICATIONS=true
node_modules/.bin/redocly lint --config redocly.yaml "$DOC"
