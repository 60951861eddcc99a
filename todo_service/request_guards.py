"""Body size and content type, checked before anything parses the body.

API.md, Order of checks: routing first, then body size (413) and content type
(415), then authentication. Werkzeug's `MAX_CONTENT_LENGTH` alone is not
enough: it does not fire for a body the view never reads, and a chunked body
over the limit ends as an HTML 400. So a WSGI middleware buffers at most
limit + 1 bytes of any body (chunked or not) and marks an oversized one; a
`before_request` hook, which stands aside for routing errors, turns the mark
into the 413.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from flask import Flask, request

from .errors import PayloadTooLarge, UnsupportedMediaType
from .observability import StartResponse, WSGIApp

TOO_LARGE_KEY = "todo.body_too_large"
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class BodyLimitMiddleware:
    def __init__(self, app: WSGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") in _BODY_METHODS:
            self._buffer_body(environ)
        return self.app(environ, start_response)

    def _buffer_body(self, environ: dict[str, Any]) -> None:
        declared = environ.get("CONTENT_LENGTH")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if declared and not chunked:
            try:
                length = int(declared)
            except ValueError:
                length = 0
            if length > self.limit:
                self._replace_body(environ, b"", too_large=True)
            return  # within the limit: Werkzeug reads exactly `length` bytes
        if not (chunked or environ.get("wsgi.input_terminated")):
            return  # no length and no terminated stream: there is no body
        body = _read_at_most(environ["wsgi.input"], self.limit + 1)
        self._replace_body(environ, body, too_large=len(body) > self.limit)

    @staticmethod
    def _replace_body(environ: dict[str, Any], body: bytes, *, too_large: bool) -> None:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        if too_large:
            environ[TOO_LARGE_KEY] = True


def _read_at_most(stream: Any, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def check_body() -> None:
    if request.routing_exception is not None:
        return  # the routing 404/405 comes first
    if request.environ.get(TOO_LARGE_KEY):
        raise PayloadTooLarge()
    if (
        request.method in _BODY_METHODS
        and request.content_length
        and not _is_json(request.mimetype)
    ):
        raise UnsupportedMediaType()


def register_request_guards(app: Flask) -> None:
    app.before_request(check_body)
    app.wsgi_app = BodyLimitMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, app.config["MAX_BODY_BYTES"]
    )
