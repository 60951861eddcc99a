#!/usr/bin/env bash
# Lint the OpenAPI document that the service serves at GET /api/openapi.json
# with Redocly CLI's recommended rules (redocly.yaml). Fails on any error, and
# on any warning but those accepted in .redocly.lint-ignore.yaml (the README
# says why each stays). Needs `npm ci` first and the Python venv (VENV,
# default .venv).
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
# redocly exits 0 on warnings: count them, so a new one cannot land unseen.
node_modules/.bin/redocly lint --config redocly.yaml --format=json "$DOC" 2>/dev/null | node -e '
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => {
    const { errors, warnings } = JSON.parse(text).totals;
    if (errors + warnings > 0) {
      console.error(`OpenAPI lint: ${errors} errors, ${warnings} warnings not accepted`);
      process.exit(1);
    }
  });'
