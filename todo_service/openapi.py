"""The OpenAPI document: flask-smorest's `Api`, made to say exactly what the
service sends.

The marshmallow schemas describe bodies; this module adds what every
response has in common, so a new operation is documented without anyone
remembering to:

- every error response (422, 413, 415 and the `errors()` ones) is the one
  strict `ErrorOut`, and no operation has a catch-all `default`;
- every response carries `X-Request-ID`; every 401 `WWW-Authenticate`, every
  429 `Retry-After`;
- `X-Pagination` is a JSON header (`content`, not a plain string);
"""

from __future__ import annotations

import http
from typing import Any

from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from .schemas import ErrorOut, PaginationMetadata
from .web.observability import REQUEST_ID_PATTERN

# Header components, referenced by name from responses.
REQUEST_ID_HEADER = "X_REQUEST_ID"
PAGINATION_HEADER = "PAGINATION"
_HEADER_COMPONENTS: dict[str, dict[str, Any]] = {
    REQUEST_ID_HEADER: {
        "description": "This request's id, as in the service's log line: the client's own "
        "`X-Request-ID` when it is sane, a fresh one otherwise.",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN.pattern}$"},
    },
    "WWW_AUTHENTICATE": {
        "description": "The scheme to authenticate with.",
        "required": True,
        "schema": {"type": "string", "enum": ["Bearer"]},
    },
    "RETRY_AFTER": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
}
# Headers every response of a status carries, whatever the operation.
_HEADERS_BY_STATUS: dict[str, dict[str, str]] = {
    "401": {"WWW-Authenticate": "WWW_AUTHENTICATE"},
    "429": {"Retry-After": "RETRY_AFTER"},
}


# Whatever the route, a request of these methods may carry a body, which is
# checked for size and type before anything else (web/request_guards.py).
_BODY_METHODS = {"post", "put", "patch", "delete"}
_BODY_ERRORS = {"413": "REQUEST_ENTITY_TOO_LARGE", "415": "UNSUPPORTED_MEDIA_TYPE"}


class CommonResponses(BasePlugin):
    """What every operation has in common, added to each one: the body
    errors (413, 415) of every method that takes a body, and the headers that
    every response (or every response of a status) carries. The shared
    responses under `components.responses` get their headers where they are
    registered (`TodoApi`)."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            if method in _BODY_METHODS:
                for status, shared in _BODY_ERRORS.items():
                    responses.setdefault(status, shared)
            for status, response in responses.items():
                if isinstance(response, dict):  # not a reference to a shared response
                    add_common_headers(str(status), response)


def add_common_headers(status: str, response: dict[str, Any]) -> None:
    headers = response.setdefault("headers", {})
    headers.setdefault("X-Request-ID", REQUEST_ID_HEADER)
    for name, component in _HEADERS_BY_STATUS.get(status, {}).items():
        headers.setdefault(name, component)


class TodoApi(Api):
    ERROR_SCHEMA = ErrorOut
    # No catch-all `default` response: every status an operation can answer
    # is listed, so that a tester can tell an undocumented status (and a
    # generated client knows exactly which errors to expect).
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self) -> None:
        """flask-smorest's shared responses (one per status), with the strict
        error schema and the common headers."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not 100 <= status < 200 and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
            add_common_headers(str(int(status)), response)
            self.spec.components.response(status.name, response, lazy=True)
        for name, header in _HEADER_COMPONENTS.items():
            self.spec.components.header(name, header, lazy=True)

    def _register_pagination_header(self) -> None:
        # A JSON object in a header: `content`, so that tools parse it as JSON
        # (a `schema` of type object would mean `key,value,...` serialisation).
        self.spec.components.header(
            PAGINATION_HEADER,
            {
                "description": "Paging metadata (JSON): total, total_pages, first_page, "
                "last_page, page, and previous_page / next_page where there is one.",
                "required": True,
                "content": {"application/json": {"schema": PaginationMetadata}},
            },
            lazy=True,
        )


api = TodoApi(spec_kwargs={"extra_plugins": [CommonResponses()]})
