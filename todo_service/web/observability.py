"""Request ids, JSON logs, and one log line and one metrics sample per request.

The request id, the log line and the metrics live in one WSGI middleware
rather than in Flask hooks, so that every response gets them: routing errors,
errors raised in other hooks and unhandled exceptions included (API.md,
Request id).
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


# What the metrics are given of each request: the environ, the status code
# (three digits) and the seconds it took (web/metrics.py).
RequestRecorder = Callable[[dict[str, Any], str, float], None]


class RequestObserver:
    """Adds `X-Request-ID` to every response, and measures each request once
    (status and time) for both its log line and the metrics."""

    def __init__(self, app: WSGIApp, *, record_metrics: RequestRecorder | None = None) -> None:
        self.app = app
        self.record_metrics = record_metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = sane_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ[request_keys.REQUEST_ID] = request_id
        status = "500"

        def start_with_request_id(
            status_line: str, headers: list[tuple[str, str]], *exc: Any
        ) -> Any:
            nonlocal status
            status = status_line[:3]
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-ID", request_id))
            return start_response(status_line, headers, *exc)

        try:
            return self.app(environ, start_with_request_id)
        finally:
            seconds = time.perf_counter() - started
            if self.record_metrics is not None:
                self.record_metrics(environ, status, seconds)
            if request_log.isEnabledFor(logging.INFO):
                _log_request(environ, request_id, int(status), seconds)


def _log_request(environ: dict[str, Any], request_id: str, status: int, seconds: float) -> None:
    user_id = environ.get(request_keys.USER_ID)
    # makeRecord + handle is what `info()` does, less looking up the caller's
    # file and line in the stack (always this line).
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
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "user_id": str(user_id) if user_id else None,
        },
    )
    request_log.handle(record)
