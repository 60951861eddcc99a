"""API.md, Conventions, Operations and the Details on request ids, bodies, the
order of checks, routing errors and status phrases."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import insert

from todo_service import create_app
from todo_service.config import TestConfig
from todo_service.db.models import Task
from todo_service.extensions import db

from .helpers import assert_error, captured_records

LIMIT = 65_536
SANE_IDS = ["abc", "A" * 128, "req-1.2_3:4", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "-", "."]
INSANE_IDS = [
    "<script>alert(1)</script>",
    "has space",
    "A" * 129,
    "semi;colon",
    'quote"d',
    "a/b",
    "per%cent",
]


def padded_json(prefix: str, size: int) -> bytes:
    """A valid JSON document of exactly `size` bytes: `prefix` then white space
    (JSON allows any amount), so the size check is what a test exercises."""
    raw = prefix.encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def register_body(size: int) -> bytes:
    email = f"big-{uuid.uuid4().hex}@example.com"
    return padded_json(f'{{"email": "{email}", "password": "long enough password"}}', size)


@pytest.fixture
def request_log() -> Iterator[list[logging.LogRecord]]:
    """The per-request log records of this test."""
    with captured_records("todo_service.request") as records:
        yield records


def records_for(records: list[logging.LogRecord], request_id: str) -> list[logging.LogRecord]:
    return [r for r in records if getattr(r, "request_id", None) == request_id]


# ------------------------------------------------------------------ request id


@pytest.mark.parametrize("request_id", SANE_IDS)
def test_sane_request_id_is_echoed(client, request_id):
    response = client.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize("request_id", INSANE_IDS)
def test_insane_request_id_is_replaced(client, request_id):
    response = client.get("/healthz", headers={"X-Request-ID": request_id})
    replacement = response.headers["X-Request-ID"]
    assert replacement != request_id
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", replacement)


def test_generated_request_ids_are_unique_per_request(client):
    seen = []
    for index in range(20):
        headers = {"X-Request-ID": "bad id"} if index % 2 else {}
        seen.append(client.get("/healthz", headers=headers).headers["X-Request-ID"])
    assert all(seen)
    assert len(set(seen)) == len(seen)


def test_request_id_is_on_errors_and_204s(client, headers):
    task = client.post("/api/me/tasks", json={"title": "x"}, headers=headers).json
    responses = {
        "404 route": client.get("/no/such/route", off_document="an unknown route"),
        "405": client.put("/api/me/tasks", headers=headers),
        "401": client.get("/api/me/tasks"),
        "422": client.post("/api/me/tasks", json={}, headers=headers),
        "400": client.post(
            "/api/me/tasks", data="{", headers=headers, content_type="application/json"
        ),
        "404 task": client.get(f"/api/me/tasks/{uuid.uuid4()}", headers=headers),
        "204": client.delete(f"/api/me/tasks/{task['id']}", headers=headers),
    }
    assert responses["204"].status_code == 204
    for name, response in responses.items():
        assert response.headers.get("X-Request-ID"), name
    ids = [r.headers["X-Request-ID"] for r in responses.values()]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("trace-me-123", True), ("not sane!", False), (None, False)],
)
def test_log_line_carries_the_response_request_id(client, request_log, sent, echoed):
    headers = {"X-Request-ID": sent} if sent else {}
    response = client.get("/api/me/tasks", headers=headers)  # a 401
    request_id = response.headers["X-Request-ID"]
    assert (request_id == sent) is echoed
    (record,) = records_for(request_log, request_id)
    assert record.name == "todo_service.request"
    assert record.status == 401
    assert record.method == "GET"
    assert record.path == "/api/me/tasks"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/no/such/route", 404), ("DELETE", "/api/auth/login", 405), ("GET", "/healthz", 200)],
)
def test_each_request_logs_one_line_with_its_id(client, request_log, method, path, status):
    unknown = "an unknown route" if status == 404 else None
    response = client.open(
        path, method=method, headers={"X-Request-ID": "one-line"}, off_document=unknown
    )
    assert response.status_code == status
    (record,) = records_for(request_log, "one-line")
    assert record.status == status


def test_log_line_of_a_204_carries_its_request_id(client, request_log, user, login):
    tokens = login(user)
    response = client.post(
        "/api/auth/logout",
        headers={"Authorization": f"Bearer {tokens['access_token']}", "X-Request-ID": "bye-1"},
    )
    assert response.status_code == 204
    assert response.headers["X-Request-ID"] == "bye-1"
    (record,) = records_for(request_log, "bye-1")
    assert record.status == 204


# ------------------------------------------------------------ routing errors


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/api",
        "/api/",
        "/api/tasks",
        "/api/auth",
        "/api/me",
        "/api/me/task",
        "/api/me/tasks/x/y/z",
        "/healthz/extra",
        "/api/auth/me/extra",
    ],
)
def test_unknown_route_is_json_404(client, path):
    assert_error(client.get(path, off_document="an unknown route"), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/auth/register", {"POST"}),
        ("PUT", "/api/auth/login", {"POST"}),
        ("GET", "/api/auth/refresh", {"POST"}),
        ("DELETE", "/api/auth/logout", {"POST"}),
        ("POST", "/api/auth/me", {"GET", "PATCH", "DELETE"}),
        ("PUT", "/api/auth/me", {"GET", "PATCH", "DELETE"}),
        ("PUT", "/api/me/tasks", {"GET", "POST", "DELETE"}),
        ("PATCH", "/api/me/tasks", {"GET", "POST", "DELETE"}),
        ("POST", f"/api/me/tasks/{uuid.uuid4()}", {"GET", "PUT", "PATCH", "DELETE"}),
        ("GET", f"/api/me/tasks/{uuid.uuid4()}/complete", {"PATCH"}),
        ("POST", f"/api/me/tasks/{uuid.uuid4()}/complete", {"PATCH"}),
        ("POST", "/healthz", {"GET"}),
        ("DELETE", "/readyz", {"GET"}),
    ],
)
def test_wrong_method_is_json_405_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)
    assert_error(response, 405)
    allow = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= allow
    assert allow - allowed <= {"HEAD", "OPTIONS"}


# ------------------------------------------------------------------- bodies


def test_body_of_exactly_the_limit_is_accepted(client):
    body = register_body(LIMIT)
    assert len(body) == LIMIT
    response = client.post("/api/auth/register", data=body, content_type="application/json")
    assert response.status_code == 201, response.get_data(as_text=True)


def test_body_one_byte_over_the_limit_is_413(client):
    response = client.post(
        "/api/auth/register", data=register_body(LIMIT + 1), content_type="application/json"
    )
    assert_error(response, 413)


def test_the_413_message_names_the_configured_limit(database_url):
    small = create_app(
        TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, "MAX_BODY_BYTES": 1000}
    )
    response = small.test_client().post(
        "/api/auth/register", data=register_body(1001), content_type="application/json"
    )
    assert_error(response, 413)
    assert response.json["message"] == "Request body too large: at most 1000 bytes."


def test_oversized_body_is_413_even_where_the_view_ignores_bodies(client, headers):
    task = client.post("/api/me/tasks", json={"title": "keep"}, headers=headers).json
    response = client.delete(
        f"/api/me/tasks/{task['id']}",
        data=padded_json("{}", LIMIT + 1),
        content_type="application/json",
        headers=headers,
    )
    assert_error(response, 413)
    assert client.get(f"/api/me/tasks/{task['id']}", headers=headers).status_code == 200


def _chunks(body: bytes, size: int = 7_000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.live
def test_chunked_body_of_exactly_the_limit_is_accepted(live_server):
    response = requests.post(
        f"{live_server}/api/auth/register",
        data=_chunks(register_body(LIMIT)),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 201, response.text


@pytest.mark.live
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_body_over_the_limit_is_413_on_the_server(live_server, chunked):
    body = register_body(LIMIT + 1)
    response = requests.post(
        f"{live_server}/api/auth/register",
        data=_chunks(body) if chunked else body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert ("Content-Length" not in response.request.headers) is chunked
    assert_error(response, 413)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        None,
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/auth/register"), ("POST", "/api/me/tasks"), ("PATCH", "/api/auth/me")],
)
def test_non_json_body_is_415(client, headers, content_type, method, path):
    response = client.open(
        path,
        method=method,
        data=b'{"title": "x", "email": "a@example.com", "password": "long enough"}',
        headers={**headers, **({"Content-Type": content_type} if content_type else {})},
    )
    assert_error(response, 415)


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"title": }', b"{'title': 'x'}", b'{"title": "x",}', b"nul", b"[1, 2", b'"open'],
)
def test_malformed_json_is_400_without_field_errors(client, headers, body):
    response = client.post(
        "/api/me/tasks", data=body, content_type="application/json", headers=headers
    )
    assert_error(response, 400)


@pytest.mark.parametrize(
    "body",
    [b'{"title": "\xff"}', b'{"title": "\xc3"}', b'{"title": "\xed\xa0\x80"}', b"\xfe\xff{}"],
)
def test_invalid_utf8_is_400(client, headers, body):
    response = client.post(
        "/api/me/tasks", data=body, content_type="application/json", headers=headers
    )
    assert_error(response, 400)


# ---------------------------------------------------------- order of checks


def test_non_uuid_user_id_is_404_before_401(client):
    assert_error(client.get("/api/not-a-uuid/tasks"), 404)
    assert_error(client.post("/api/12345/tasks", json={"title": "x"}), 404)


def test_non_uuid_task_id_is_404_before_401(client):
    assert_error(client.get("/api/me/tasks/not-a-uuid"), 404)
    assert_error(client.patch("/api/me/tasks/123/complete"), 404)


def test_non_uuid_id_is_404_with_a_token_too(client, headers):
    assert_error(client.get("/api/not-a-uuid/tasks", headers=headers), 404)
    assert_error(client.delete("/api/me/tasks/not-a-uuid", headers=headers), 404)


def test_wrong_method_is_405_before_401(client):
    response = client.put("/api/me/tasks")
    assert_error(response, 405)
    assert "WWW-Authenticate" not in response.headers


def test_oversized_body_is_413_before_401(client):
    response = client.post(
        "/api/me/tasks", data=padded_json("{}", LIMIT + 1), content_type="application/json"
    )
    assert_error(response, 413)


def test_non_json_body_is_415_before_401(client):
    response = client.post("/api/me/tasks", data="title=x", content_type="text/plain")
    assert_error(response, 415)


@pytest.mark.parametrize(
    "body", [b"{", b'{"title": ""}', b'{"nope": 1}', b"[]", b'{"title": "\xff"}']
)
def test_missing_token_is_401_before_the_body_is_judged(client, body):
    response = client.post("/api/me/tasks", data=body, content_type="application/json")
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("body", "code", "fields"),
    [
        (b'{"title": ""}', 422, {"json": {"title"}}),
        (b'{"title": "x", "bogus": 1}', 422, {"json": {"bogus"}}),
        (b"{", 400, None),
    ],
)
def test_bad_body_is_judged_before_ownership(client, headers, make_user, body, code, fields):
    other = make_user()
    response = client.post(
        f"/api/{other.id}/tasks", data=body, content_type="application/json", headers=headers
    )
    assert_error(response, code, error_fields=fields)


def test_bad_body_on_a_foreign_task_is_422_not_403(client, headers, make_user):
    other = make_user()
    response = client.put(
        f"/api/{other.id}/tasks/{uuid.uuid4()}", json={"title": "  "}, headers=headers
    )
    assert_error(response, 422, error_fields={"json": {"title"}})


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
def test_foreign_user_id_is_403_before_missing_task_404(client, headers, make_user, method):
    other = make_user()
    response = client.open(f"/api/{other.id}/tasks/{uuid.uuid4()}", method=method, headers=headers)
    assert_error(response, 403)


def test_foreign_user_id_on_toggle_is_403_before_missing_task_404(client, headers, make_user):
    other = make_user()
    response = client.patch(f"/api/{other.id}/tasks/{uuid.uuid4()}/complete", headers=headers)
    assert_error(response, 403)


# ------------------------------------------------------------------ status phrases


def test_every_error_status_carries_its_reason_phrase(client, user, headers, make_user):
    """assert_error checks `status` against the standard phrase of `code`."""
    other = make_user()
    task = client.post("/api/me/tasks", json={"title": "x"}, headers=headers).json
    cases = [
        (
            client.post(
                "/api/me/tasks", data="{", content_type="application/json", headers=headers
            ),
            400,
        ),
        (client.get("/api/me/tasks"), 401),
        (client.get(f"/api/{other.id}/tasks", headers=headers), 403),
        (client.get(f"/api/me/tasks/{uuid.uuid4()}", headers=headers), 404),
        (client.put("/api/me/tasks", headers=headers), 405),
        (
            client.post("/api/auth/register", json={"email": user.email, "password": "whatever1"}),
            409,
        ),
        (
            client.patch(
                f"/api/me/tasks/{task['id']}",
                data=padded_json("{}", LIMIT + 1),
                content_type="application/json",
                headers=headers,
            ),
            413,
        ),
        (client.post("/api/me/tasks", data="x", content_type="text/plain", headers=headers), 415),
    ]
    for response, code in cases:
        assert_error(response, code)
    body = client.post("/api/me/tasks", json={"title": ""}, headers=headers)
    assert assert_error(body, 422, error_fields={"json": {"title"}})["status"] == (
        "Unprocessable Entity"
    )


# ------------------------------------------------------------------ operations


def test_healthz_is_200(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")


def test_readyz_is_200_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")


def test_docs_are_an_html_page(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"/api/openapi.json" in response.data


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.json


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


# Served, but not API operations: the document itself, the docs page and its
# assets, and the Prometheus scrape endpoint.
NOT_IN_OPENAPI = ("/api/openapi.json", "/api/docs", "/metrics")


def app_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith(NOT_IN_OPENAPI):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operations.add((openapi_path(rule.rule), method.lower()))
    return operations


def spec_operations(spec: dict) -> dict[tuple[str, str], dict]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {
        (path, method): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in methods
    }


def concrete_url(path: str) -> str:
    return path.replace("{user_id}", "me").replace("{task_id}", str(uuid.uuid4()))


def test_openapi_is_version_3_with_a_bearer_scheme(spec):
    assert spec["openapi"].startswith("3.")
    schemes = spec["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"].lower() == "bearer" for s in schemes.values())


def test_openapi_describes_exactly_the_app_routes(app, spec):
    assert set(spec_operations(spec)) == app_operations(app)


def test_every_ref_in_openapi_resolves(spec):
    def refs(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    for ref in set(refs(spec)):
        assert ref.startswith("#/"), ref
        target: object = spec
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, ref
            target = target[part]


def test_openapi_security_matches_what_the_routes_enforce(client, spec):
    """An operation declares the bearer requirement exactly when an anonymous
    request to it is a 401 (register, login and the probes are open)."""
    schemes = spec["components"]["securitySchemes"]
    bearer_names = {name for name, s in schemes.items() if s["scheme"].lower() == "bearer"}
    open_operations = set()
    for (path, method), operation in spec_operations(spec).items():
        response = client.open(concrete_url(path), method=method.upper(), json={})
        declared = {name for req in operation.get("security", []) for name in req}
        if response.status_code == 401:
            assert declared & bearer_names, (method, path)
        else:
            assert not declared, (method, path)
            open_operations.add((path, method))
    assert open_operations == {
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    }


BODY_OPERATIONS = {
    ("/api/auth/register", "post"),
    ("/api/auth/login", "post"),
    ("/api/auth/logout", "post"),
    ("/api/auth/me", "patch"),
    ("/api/{user_id}/tasks", "post"),
    ("/api/{user_id}/tasks/{task_id}", "put"),
    ("/api/{user_id}/tasks/{task_id}", "patch"),
    ("/api/{user_id}/tasks/{task_id}/complete", "patch"),
}


def test_openapi_documents_the_error_statuses(spec):
    for (path, method), operation in spec_operations(spec).items():
        documented = set(operation["responses"])
        where = (method, path)
        if operation.get("security"):
            assert "401" in documented, where
        if (path, method) in BODY_OPERATIONS:
            assert "requestBody" in operation, where
            assert {"400", "413", "415", "422"} <= documented, where
        if "{user_id}" in path:
            assert "403" in documented, where
        if "{task_id}" in path:
            assert "404" in documented, where
    assert "422" in spec["paths"]["/api/{user_id}/tasks"]["get"]["responses"]
    assert "409" in spec["paths"]["/api/auth/register"]["post"]["responses"]
    assert "403" in spec["paths"]["/api/auth/me"]["patch"]["responses"]
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]


def test_openapi_task_schema_has_exactly_the_keys_of_a_task(client, headers, spec):
    task = client.post("/api/me/tasks", json={"title": "x"}, headers=headers).json
    assert set(spec["components"]["schemas"]["TaskOut"]["properties"]) == set(task)


def test_openapi_user_schema_has_exactly_the_keys_of_a_user(client, headers, spec):
    me = client.get("/api/auth/me", headers=headers).json
    assert set(spec["components"]["schemas"]["UserOut"]["properties"]) == set(me)


# ------------------------------------------------------------------------ 500


@pytest.fixture(scope="module")
def failing_client(database_url):
    """A separate app with routes that fail the way a bug would. Its requests
    stay out of the process-wide metrics, whose routes are the real app's."""
    application = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "PROPAGATE_EXCEPTIONS": False,
            "METRICS_ENABLED": False,
        },
    )

    @application.get("/boom")
    def boom():
        raise RuntimeError(
            "SELECT password_hash FROM users; JWT_SECRET_KEY=" + TestConfig.JWT_SECRET_KEY
        )

    @application.get("/boom-sql")
    def boom_sql():
        # A foreign key violation: the driver's message carries the SQL.
        db.session.execute(
            insert(Task).values(id=uuid.uuid4(), user_id=uuid.uuid4(), title="orphan")
        )
        db.session.commit()
        return "unreachable"

    yield application.test_client()
    with application.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("path", ["/boom", "/boom-sql"])
def test_unhandled_error_is_a_generic_json_500(app, failing_client, path):
    response = failing_client.get(
        path, headers={"X-Request-ID": "boom-1"}, off_document="a route made to fail"
    )
    body = assert_error(response, 500)
    assert response.headers["X-Request-ID"] == "boom-1"
    text = response.get_data(as_text=True)
    for leak in (
        "Traceback",
        "SELECT",
        "INSERT",
        "password_hash",
        "orphan",
        "tasks",
        "JWT_SECRET_KEY",
        TestConfig.JWT_SECRET_KEY,
        "RuntimeError",
        "Integrity",
        'File "',
    ):
        assert leak not in text, leak
    assert body["message"] in {"Internal server error.", "Internal Server Error"}
