"""WSGI entry point: `gunicorn wsgi:app`; also what `flask` finds with no --app."""

import sys

from dotenv import load_dotenv

from todo_service import create_app
from todo_service.config import ConfigError

load_dotenv()  # a .env file works too; the real environment wins
try:
    app = create_app()
except ConfigError as exc:
    # One clear line, not a traceback, for a setting that is set but wrong.
    sys.exit(f"configuration error: {exc}")
