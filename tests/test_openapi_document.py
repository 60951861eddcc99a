"""The served OpenAPI document is one that consumers' tools accept: valid
OpenAPI 3.0, no `null` where a value belongs, and precise where generators
and testers look (operation ids, security, timestamps, headers).

That every real answer matches it is checked on every request of the suite
(contract.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from .contract import ContractViolation, check_response, openapi_for, served_document

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PUBLIC_OPERATIONS = {"register", "login", "checkLiveness", "checkReadiness"}


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    return served_document(app)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def walk(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_document_is_valid_openapi_3_0(document):
    assert document["openapi"].startswith("3.0.")
    validate(document)  # raises on the first violation


def test_the_validator_would_refuse_a_null_format(document):
    broken = {**document, "components": {**document["components"]}}
    broken["components"]["schemas"] = {
        **document["components"]["schemas"],
        "Broken": {"type": "string", "format": None},
    }
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_no_value_in_the_document_is_null_except_an_example(document):
    nulls = [where for where, value in walk(document) if value is None]
    assert nulls == []


def test_every_timestamp_is_a_date_time_string(document):
    timestamps = {
        f"{name}.{field}": schema
        for name, component in document["components"]["schemas"].items()
        for field, schema in component.get("properties", {}).items()
        if field.endswith("_at")
    }
    assert timestamps  # users and tasks both have them
    for where, schema in timestamps.items():
        if where.endswith(".due_at"):  # the only optional one (API.md, Version 1.1)
            assert schema.pop("nullable") is True, where
            schema.pop("example", None)
        assert schema == {"type": "string", "format": "date-time"}, where


def test_every_operation_has_a_unique_operation_id(document):
    ids = [operation.get("operationId") for _, _, operation in operations(document)]
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_every_operation_says_which_security_it_needs(document):
    for path, method, operation in operations(document):
        expected = [] if operation["operationId"] in PUBLIC_OPERATIONS else [{"bearerAuth": []}]
        assert operation.get("security") == expected, f"{method} {path}"


def test_there_is_a_server(document):
    assert document["servers"] == [{"url": "/", "description": "This service"}]


def test_every_error_response_is_the_strict_error_shape(document):
    strict = document["components"]["schemas"]["ErrorOut"]
    assert set(strict["required"]) == {"code", "status", "message"}
    assert strict["additionalProperties"] is False
    for path, method, operation in operations(document):
        assert "default" not in operation["responses"], f"{method} {path}"
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            schema = resolve(document, response)["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, f"{method} {path} {status}"


def test_every_response_documents_its_request_id(document):
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            headers = resolve(document, response)["headers"]
            header = resolve(document, headers["X-Request-ID"])
            assert header["required"] is True, f"{method} {path} {status}"


def test_401_documents_the_challenge_and_429_the_wait(document):
    seen = set()
    for _, _, operation in operations(document):
        for status, name in (("401", "WWW-Authenticate"), ("429", "Retry-After")):
            if status in operation["responses"]:
                headers = resolve(document, operation["responses"][status])["headers"]
                assert resolve(document, headers[name])["required"] is True
                seen.add(status)
    assert seen == {"401", "429"}


def test_x_pagination_is_a_json_header_with_the_paging_schema(document):
    listing = document["paths"]["/api/{user_id}/tasks"]["get"]["responses"]["200"]
    header = resolve(document, listing["headers"]["X-Pagination"])
    assert "schema" not in header
    schema = header["content"]["application/json"]["schema"]
    assert resolve(document, schema) == document["components"]["schemas"]["PaginationMetadata"]
    assert set(resolve(document, schema)["required"]) == {
        "total",
        "total_pages",
        "first_page",
        "last_page",
        "page",
    }


def test_every_body_taking_operation_documents_413_and_415(document):
    for path, method, operation in operations(document):
        if method in ("post", "put", "patch", "delete"):
            assert {"413", "415"} <= set(operation["responses"]), f"{method} {path}"


def test_a_body_is_required_only_where_the_service_requires_one(document):
    required = {
        operation["operationId"]: operation["requestBody"].get("required", False)
        for _, _, operation in operations(document)
        if "requestBody" in operation
    }
    assert required == {
        "register": True,
        "login": True,
        "logout": False,
        "updateMe": True,
        "createTask": True,
        "replaceTask": True,
        "updateTask": False,
        "setTaskCompletion": False,
    }


def test_health_bodies_are_described(document):
    for path in ("/healthz", "/readyz"):
        ok = document["paths"][path]["get"]["responses"]["200"]
        schema = resolve(document, ok["content"]["application/json"]["schema"])
        assert schema["properties"] == {"status": {"type": "string", "enum": ["ok"]}}


# ------------------------------------------- the per-response check can fail


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda r: r.set_data(b'{"status": "ok", "extra": 1}'), id="extra key"),
        pytest.param(lambda r: r.set_data(b'{"status": "fine"}'), id="off-enum value"),
        pytest.param(lambda r: r.headers.pop("X-Request-ID"), id="no request id"),
        pytest.param(lambda r: setattr(r, "status_code", 418), id="undocumented status"),
        pytest.param(lambda r: setattr(r, "mimetype", "text/html"), id="wrong content type"),
    ],
)
def test_the_response_check_refuses_an_answer_off_the_document(app, tamper):
    response = app.test_client().get("/healthz")  # checked, and passes
    tamper(response)
    with pytest.raises(ContractViolation):
        check_response(openapi_for(app), response)


def test_the_response_check_refuses_an_error_body_off_the_error_shape(app):
    response = app.test_client().get("/api/me/tasks")
    assert response.status_code == 401
    response.set_data(b'{"msg": "Missing Authorization Header"}')
    with pytest.raises(ContractViolation):
        check_response(openapi_for(app), response)


def test_a_request_outside_the_document_must_say_so(app):
    with pytest.raises(ContractViolation, match="no such path"):
        app.test_client().get("/no/such/route")
    assert (
        app.test_client().get("/no/such/route", off_document="an unknown route").status_code == 404
    )
