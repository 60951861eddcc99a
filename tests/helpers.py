"""Assertions shared by the tests."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES

# The task representation's keys (API.md, Tasks), exactly.
TASK_KEYS = {
    "priority",
    "due_at",
    "tags",
    "id",
    "user_id",
    "title",
    "description",
    "completed",
    "status",
    "created_at",
    "updated_at",
}


class RecordList(logging.Handler):
    """Keeps the log records it is handed, for assertions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_records(logger_name: str) -> Iterator[list[logging.LogRecord]]:
    """The records of one of the service's loggers while the block runs.
    `todo_service` does not propagate to the root (so caplog sees nothing),
    and caplog's handler changes between a test's setup and call phases, so
    the tests listen on the logger itself."""
    logger = logging.getLogger(logger_name)
    handler = RecordList()
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    id: str
    email: str
    password: str


def assert_error(
    response: Any,
    code: int,
    *,
    errors: dict[str, Any] | None = None,
    error_fields: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """The contract's error shape (API.md, Conventions), whole.

    `errors`: the exact `errors` object expected; `error_fields`: for each
    location, the set of field names expected under it. With neither, the body
    must have no `errors` key.
    """
    status = getattr(response, "status_code", None)
    assert status == code, f"expected {code}, got {status}: {_text(response)}"
    assert response.headers.get("Content-Type", "").startswith("application/json")
    assert response.headers.get("X-Request-ID")
    body = response.json() if callable(response.json) else response.json
    assert isinstance(body, dict), body
    assert body["code"] == code
    assert body["status"] == HTTP_STATUS_CODES[code]
    assert isinstance(body["message"], str) and body["message"].strip()
    if errors is None and error_fields is None:
        assert set(body) == {"code", "status", "message"}, body
        return body
    assert set(body) == {"code", "status", "message", "errors"}, body
    if errors is not None:
        assert body["errors"] == errors, body
    if error_fields is not None:
        assert {loc: set(fields) for loc, fields in body["errors"].items()} == error_fields, body
    for fields in body["errors"].values():
        assert isinstance(fields, dict) and fields
        for messages in fields.values():
            assert isinstance(messages, list) and messages
            assert all(isinstance(m, str) and m for m in messages)
    return body


def _text(response: Any) -> str:
    text = getattr(response, "text", None)
    if isinstance(text, str):
        return text[:500]
    return response.get_data(as_text=True)[:500]


def send(client, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    """`body` as raw UTF-8 JSON (the test client would escape non-ASCII)."""
    return client.open(
        url,
        method=method,
        data=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=headers,
    )
