"""Write the OpenAPI document exactly as the service serves it at
`GET /api/openapi.json`, without starting a server or touching a database:
`python scripts/dump_openapi.py OUT.json`. The linter and the TypeScript
client's type generator read this file."""

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from todo_service import create_app  # noqa: E402  (needs the path above)

# The document does not depend on these; they only keep the app from creating
# a SQLite file or a signing key in the repository's instance folder.
THROWAWAY = {
    "SQLALCHEMY_DATABASE_URI": "sqlite://",
    "JWT_SECRET_KEY": "only-used-to-build-the-app-for-its-openapi-document",
    "LOG_LEVEL": "WARNING",
}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: dump_openapi.py OUT.json")
    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as instance:
        app = create_app(overrides=THROWAWAY, instance_path=instance)
        response = app.test_client().get("/api/openapi.json")
    if response.status_code != 200:
        sys.exit(f"GET /api/openapi.json answered {response.status_code}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(response.get_json(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
