"""What every blueprint shares: the JSON body parser, fast JSON rendering, and
the documentation of error responses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson
from flask import Request, Response, request
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.http import HTTP_STATUS_CODES

from ..errors import MalformedJson, ValidationFailed
from ..schemas import ErrorOut

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

# The public operations say so (an empty requirement), rather than leaving
# consumers' tools to guess.
PUBLIC: list[dict[str, list[str]]] = []


def parse_json_body(req: Request) -> Any:
    """The request's JSON body, `missing` when there is none; malformed JSON
    or invalid UTF-8 is a 400 with no field errors (API.md, Bodies)."""
    data = req.get_data(cache=True)
    if not data:
        return missing
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedJson() from None


# Query strings whose parsed arguments are remembered: short ones only, and
# at most this many (the memory stays under a few hundred KiB whatever is sent).
_QUERY_CACHE_ENTRIES = 512
_QUERY_CACHE_MAX_LENGTH = 256


class ApiParser(FlaskParser):
    """webargs' Flask parser with orjson for bodies, and a memory for query
    strings.

    Loading a query string through its marshmallow schema costs about a
    tenth of a list request's CPU, and clients poll with the same few query
    strings (`?page_size=50`) over and over. The outcome depends on the
    schema and the raw query string alone, so a valid one is loaded once and
    its arguments reused; an invalid one goes through the schema every time
    (and gets its 422).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parsed_queries: dict[tuple[Any, bytes, Any], dict[str, Any]] = {}

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return missing
        return parse_json_body(req)

    def parse(self, argmap: Any, req: Request | None = None, **kwargs: Any) -> Any:
        if (
            kwargs.get("location") != "query"
            or not isinstance(argmap, Schema)
            or kwargs.get("validate") is not None
        ):
            return super().parse(argmap, req, **kwargs)
        raw = (req or request).query_string
        if len(raw) > _QUERY_CACHE_MAX_LENGTH:
            return super().parse(argmap, req, **kwargs)
        key = (argmap, raw, kwargs.get("unknown"))
        known = self._parsed_queries.get(key)
        if known is not None:
            return dict(known)  # the view may change its copy
        parsed = super().parse(argmap, req, **kwargs)
        if len(self._parsed_queries) >= _QUERY_CACHE_ENTRIES:
            self._parsed_queries.clear()
        self._parsed_queries[key] = dict(parsed)
        return parsed


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = ApiParser()

    def alt_response(self, status_code: Any, **kwargs: Any) -> Callable[[Any], Any]:
        """flask-smorest's `alt_response`, documenting the view without
        wrapping it.

        Its wrapper does nothing but call the view through `ensure_sync`,
        once per documented response on every request: a get-one documents
        five of them (304, 401, 403, 404, 503). The documentation it builds
        on the wrapper is kept on the view, and the wrapper dropped."""
        document = super().alt_response(status_code, **kwargs)

        def decorator(view: Any) -> Any:
            view._apidoc = document(view)._apidoc
            return view

        return decorator

    def errors(self, *codes: int) -> Callable[[Any], Any]:
        """Document the error responses an operation can give (their common
        headers are added for every operation: openapi.py)."""

        def decorator(view: Any) -> Any:
            for code in codes:
                view = self.alt_response(
                    code, schema=ErrorOut, description=HTTP_STATUS_CODES[code]
                )(view)
            return view

        return decorator


def load_optional_body(schema: Schema) -> dict[str, Any] | None:
    """None when the request has no body; otherwise the body loaded through
    `schema`, failures as the usual 422."""
    body = parse_json_body(request)
    if body is missing:
        return None
    try:
        loaded: dict[str, Any] = schema.load(cast(Any, body))
    except ValidationError as exc:
        raise ValidationFailed(errors={"json": exc.messages_dict}) from None
    return loaded


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = orjson.dumps(payload, option=orjson.OPT_UTC_Z)
    return Response(body, status=status, headers=headers, mimetype="application/json")
