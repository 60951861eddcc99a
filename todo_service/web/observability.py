"""Request ids, JSON logs, and one log line per request.

The request id and the log line live in a WSGI middleware rather than in Flask
hooks, so that every response gets them: routing errors, errors raised in
other hooks and unhandled exceptions included (API.md, Request id).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from .. import request_keys

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")

request_log = logging.getLogger("todo_service.request")

# Attributes every LogRecord has; anything else was passed in `extra=`.
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class JsonFormatter(logging.Formatter):
    """One JSON object a line: what a log collector reads without parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    """JSON lines on stdout for the service's loggers and for migrations
    (Alembic); idempotent."""
    for name in ("todo_service", "alembic"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(getattr(h, "_todo_json", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(JsonFormatter())
            handler._todo_json = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
            logger.propagate = False


def sane_request_id(candidate: str | None) -> str:
    if candidate and REQUEST_ID_PATTERN.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


class RequestLogMiddleware:
    """Adds `X-Request-ID` to every response and logs one line per request."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = sane_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ[request_keys.REQUEST_ID] = request_id
        status_code = 500

        def start_with_request_id(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            nonlocal status_code
            status_code = int(status[:3])
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, *exc)

        try:
            return self.app(environ, start_with_request_id)
        finally:
            if request_log.isEnabledFor(logging.INFO):
                user_id = environ.get(request_keys.USER_ID)
                # makeRecord + handle is what `info()` does, less looking up
                # the caller's file and line in the stack (always this line).
                record = request_log.makeRecord(
                    request_log.name,
                    logging.INFO,
                    __file__,
                    0,
                    "request",
                    (),
                    None,
                    extra={
                        "request_id": request_id,
                        "method": environ.get("REQUEST_METHOD"),
                        "path": environ.get("PATH_INFO"),
                        "status": status_code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "user_id": str(user_id) if user_id else None,
                    },
                )
                request_log.handle(record)
