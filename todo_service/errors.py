"""The one JSON error shape (API.md, Conventions) and the handlers that produce it.

Every error, whatever raised it, leaves as
`{"code", "status", "message"[, "errors"]}`; `errors` only where there are
field errors, keyed by location and then field.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, has_request_context, request
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from . import request_keys

log = logging.getLogger(__name__)

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# Messages for errors that Werkzeug raises with a long generic description.
_DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Authentication required.",
    403: "Forbidden.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict.",
    412: "Precondition failed.",
    413: "Request body too large.",
    415: "Unsupported media type: send application/json.",
    422: "Validation failed",
    429: "Too many requests.",
    500: "Internal server error.",
    503: "Service unavailable.",
}


class ApiError(Exception):
    """An error with its place in the contract; raised by services and views."""

    code = 400
    message = "Bad request."

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message
        self.errors = errors
        self.headers = headers or {}


class Unauthorized(ApiError):
    code = 401
    message = "Authentication required."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers=BEARER_CHALLENGE)


class InvalidCredentials(Unauthorized):
    message = "Invalid email or password."


class Forbidden(ApiError):
    code = 403
    message = "You may only access your own tasks."


class WrongPassword(ApiError):
    code = 403
    message = "The current password is missing or wrong."


class TaskNotFound(ApiError):
    code = 404
    message = "Task not found."


class PreconditionFailed(ApiError):
    code = 412
    message = "The task has changed: If-Match does not name its current ETag."


class EmailTaken(ApiError):
    code = 409
    message = "Email already registered."


class IdempotencyKeyInProgress(ApiError):
    code = 409
    message = "A request with this Idempotency-Key is still being processed: retry later."


class PayloadTooLarge(ApiError):
    code = 413
    message = "Request body too large."

    @classmethod
    def over(cls, limit: int) -> PayloadTooLarge:
        return cls(f"Request body too large: at most {limit} bytes.")


class UnsupportedMediaType(ApiError):
    code = 415
    message = "Unsupported media type: send application/json."


class MalformedJson(ApiError):
    code = 400
    message = "Malformed JSON body."


class ValidationFailed(ApiError):
    code = 422
    message = "Validation failed"


class CursorExpired(ApiError):
    """A sync cursor older than the deletions still remembered (API.md, Sync)."""

    code = 410
    message = "Sync cursor expired: start over without `since`."


class DatabaseUnavailable(ApiError):
    code = 503
    message = "Database unavailable."


def error_body(code: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "status": HTTP_STATUS_CODES.get(code, "Error"),
        "message": message or _DEFAULT_MESSAGES.get(code, "Error."),
    }
    if errors:
        body["errors"] = errors
    return body


def error_response(
    code: int,
    message: str,
    errors: dict[str, Any] | None = None,
    headers: Any = None,
) -> Response:
    response = Response(
        orjson.dumps(error_body(code, message, errors)),
        status=code,
        mimetype="application/json",
    )
    if headers:
        for key, value in dict(headers).items():
            response.headers[key] = value
    return response


def _field_errors(messages: Any) -> dict[str, Any] | None:
    """webargs messages as the contract's `{location: {field: [...]}}`, or None.

    webargs reports malformed JSON as `{"json": ["Invalid JSON body."]}`, a list
    rather than a field object: that is a 400 with no `errors`.
    """
    if not isinstance(messages, dict):
        return None
    shaped = {loc: fields for loc, fields in messages.items() if isinstance(fields, dict)}
    return shaped or None


_DATABASE_ERRORS = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


def _handle_http_exception(exc: HTTPException) -> Response:
    code = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = _field_errors(data.get("messages"))
    if code == 422 and errors is None:
        code = 400  # e.g. webargs' "Invalid JSON body."
    message = data.get("message") or _DEFAULT_MESSAGES.get(code) or exc.name
    if code == 400 and "messages" in data and errors is None:
        message = MalformedJson.message
    # Keep the headers Werkzeug computed (`Allow` on a 405, for one).
    original = exc.get_response()
    headers = {
        key: value
        for key, value in original.headers.items()
        if key.lower() not in {"content-type", "content-length"}
    }
    return error_response(code, message, errors, headers)


def _handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.code, exc.message, exc.errors, exc.headers)


def _handle_database_unavailable(exc: Exception) -> Response:
    log.warning("database unavailable: %s", type(exc).__name__, extra={"request_id": _request_id()})
    return error_response(DatabaseUnavailable.code, DatabaseUnavailable.message)


def _handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _handle_http_exception(exc)
    log.exception("unhandled error", extra={"request_id": _request_id()})
    return error_response(500, _DEFAULT_MESSAGES[500])


def _request_id() -> str | None:
    return request.environ.get(request_keys.REQUEST_ID) if has_request_context() else None


def register_error_handlers(app: Flask) -> None:
    """Call after `api.init_app(app)`: Flask keeps the last handler registered
    for a class, so these replace flask-smorest's (which drops `message`)."""
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(ApiError, _handle_api_error)
    for db_error in _DATABASE_ERRORS:
        app.register_error_handler(db_error, _handle_database_unavailable)
    app.register_error_handler(Exception, _handle_unexpected)
