"""Every answer the test suite gets is held against the served OpenAPI document.

`ContractCheckingClient` is the test client of every app the suite builds
(`tests/conftest.py` installs it). After each request it asks openapi-core
whether the response is one the document allows for that operation: the
status is listed for the operation itself (falling back on `default` does
not count), the body matches the schema of that status (error bodies
included), and the documented headers are there and well-formed.

What the service serves besides the API is not in the document and not
checked: the document itself, the docs page and its assets, `/metrics`, and
CORS preflights (`OPTIONS`, answered for every route). Any other request that
deliberately goes outside the document (an unknown route, a path that does
not parse) says so at the call site:
`client.get("/nope", off_document="an unknown route")`.
"""

from __future__ import annotations

import weakref
from typing import Any

import orjson
from flask import Flask
from flask.testing import FlaskClient
from jsonschema_path import SchemaPath
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_schema_validator import OAS30Validator
from werkzeug.test import TestResponse

DOCUMENT_PATH = "/api/openapi.json"
NOT_API_PATHS = (DOCUMENT_PATH, "/api/docs", "/metrics")
NOT_API_METHODS = ("OPTIONS",)

_documents: weakref.WeakKeyDictionary[Flask, OpenAPI] = weakref.WeakKeyDictionary()


class ContractViolation(AssertionError):
    pass


class _AnsweredRequest(WerkzeugOpenAPIRequest):
    """The request a response answered. Its body was read by the app: only
    the response is checked here, so the body is not asked for again."""

    @property
    def body(self) -> bytes | None:
        return None


def served_document(app: Flask) -> dict[str, Any]:
    """The document as the app serves it (fetched without being checked)."""
    response = FlaskClient(app).get(DOCUMENT_PATH)
    assert response.status_code == 200, response.data
    document: dict[str, Any] = orjson.loads(response.data)
    return document


def openapi_for(app: Flask) -> OpenAPI:
    openapi = _documents.get(app)
    if openapi is None:
        openapi = OpenAPI.from_dict(served_document(app))
        _documents[app] = openapi
    return openapi


class ContractCheckingClient(FlaskClient):
    def open(self, *args: Any, off_document: str | None = None, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        if off_document is None and is_api_request(response):
            check_response(openapi_for(self.application), response)
        return response


def is_api_request(response: TestResponse) -> bool:
    request = response.request
    if request.method in NOT_API_METHODS:
        return False
    return not any(
        request.path == path or request.path.startswith(path + "/") for path in NOT_API_PATHS
    )


def check_response(openapi: OpenAPI, response: TestResponse) -> None:
    request = _AnsweredRequest(response.request)
    what = f"{request.method.upper()} {response.request.path} -> {response.status_code}"
    try:
        _, operation, *_ = APICallPathFinder(openapi.spec).find(
            request.method, request.host_url + request.path.lstrip("/")
        )
    except PathNotFound:
        raise ContractViolation(
            f"{what}: the document has no such path (pass off_document=... if meant)"
        ) from None
    except OperationNotFound:
        if response.status_code == 405:
            _check_method_not_allowed(openapi.spec, response, what)
            return
        raise ContractViolation(f"{what}: the document has no such operation") from None
    documented = {str(code) for code in (operation / "responses").read_value()}
    if str(response.status_code) not in documented:
        raise ContractViolation(
            f"{what}: status not documented for this operation (it lists {sorted(documented)})"
        )
    result = openapi.unmarshal_response(request, WerkzeugOpenAPIResponse(response))
    if result.errors:
        details = "; ".join(_describe(error) for error in result.errors)
        raise ContractViolation(f"{what}: {details}\nbody: {response.data[:500]!r}")


def _check_method_not_allowed(spec: SchemaPath, response: TestResponse, what: str) -> None:
    """A wrong method has no operation to be checked against: its answer is
    held against the document's error schema and common headers instead."""
    error_schema = (spec / "components" / "schemas" / "ErrorOut").read_value()
    errors = [e.message for e in OAS30Validator(error_schema).iter_errors(response.get_json())]
    for header in ("Allow", "X-Request-ID"):
        if header not in response.headers:
            errors.append(f"no {header} header")
    if errors:
        raise ContractViolation(f"{what}: {'; '.join(errors)}")


def _describe(error: BaseException) -> str:
    causes = [str(error)]
    inner = getattr(error, "schema_errors", None) or []
    causes.extend(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in inner)
    cause = error.__cause__
    if cause is not None:
        causes.append(_describe(cause))
    return " | ".join(causes)
