"""Body size and content type, checked before anything parses the body.

API.md, Order of checks: routing first, then body size (413) and content type
(415), then authentication. Werkzeug's `MAX_CONTENT_LENGTH` alone is not
enough: it does not fire for a body the view never reads, and a chunked body
over the limit ends as an HTML 400. So a WSGI middleware buffers at most
limit + 1 bytes of any body (chunked or not) and marks an oversized one; a
`before_request` hook, which stands aside for routing errors, turns the mark
into the 413.

Whatever the answer, the connection must then be able to carry the next
request: what the app left unread of a body (all of an oversized one, or one
refused before it was read: 415, 401, 429) is read and thrown away up to
`DISCARD_LIMIT_FACTOR` times the limit, before the answer is sent; a longer
body ends the connection after the answer, which says `Connection: close`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app, request

from .. import request_keys
from ..errors import PayloadTooLarge, UnsupportedMediaType
from .connection_close import close_after_response
from .observability import StartResponse, WSGIApp

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


# A body the app did not read (refused as too large, or answered before it
# was read: 415, 401, 429) is read and thrown away up to this many times the
# limit, so that the connection can carry the next request; a longer one
# ends the connection after the answer (connection_close.py).
DISCARD_LIMIT_FACTOR = 16


class BodyLimitMiddleware:
    def __init__(self, app: WSGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.discard_limit = limit * DISCARD_LIMIT_FACTOR

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in _BODY_METHODS:
            return self.app(environ, start_response)
        stream = environ["wsgi.input"]
        declared = _declared_length(environ)
        has_body = bool(declared) or _is_chunked(environ)
        self._buffer_body(environ)
        result = self.app(environ, start_response)
        # Before the answer is sent (the server sends it as `result` is
        # iterated), so that it can still say `Connection: close`.
        if has_body and not self._discard_unread(stream, declared):
            close_after_response()
        return result

    def _discard_unread(self, stream: Any, declared: int | None) -> bool:
        """Whether what the app left of the body could be read and thrown
        away (nothing is left of a body the app read)."""
        if declared is not None and declared > self.discard_limit:
            return False  # not worth reading
        return _discard_at_most(stream, self.discard_limit)

    def _buffer_body(self, environ: dict[str, Any]) -> None:
        chunked = _is_chunked(environ)
        if not chunked and environ.get("CONTENT_LENGTH"):
            if (_declared_length(environ) or 0) > self.limit:
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
            environ[request_keys.BODY_TOO_LARGE] = True


def _declared_length(environ: dict[str, Any]) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _is_chunked(environ: dict[str, Any]) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def _discard_at_most(stream: Any, size: int) -> bool:
    """Read and drop up to `size` bytes; whether the stream ended within them."""
    remaining = size
    while remaining >= 0:
        chunk = stream.read(min(remaining + 1, 65536))
        if not chunk:
            return True
        remaining -= len(chunk)
    return False


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
    if request.environ.get(request_keys.BODY_TOO_LARGE):
        raise PayloadTooLarge.over(current_app.config["MAX_BODY_BYTES"])
    if (
        request.method in _BODY_METHODS
        and request.content_length
        and not _is_json(request.mimetype)
    ):
        raise UnsupportedMediaType()


def register_request_guards(app: Flask) -> None:
    """The 413/415 checks; their WSGI half, `BodyLimitMiddleware`, is a layer
    of the stack that create_app builds."""
    app.before_request(check_body)
