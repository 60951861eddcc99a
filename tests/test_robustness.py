"""Bad input of every kind, on every endpoint: never a 500, and every 4xx in
the contract's error shape (API.md, Conventions and Details).

Where API.md says what the answer is (a wrong type, a NUL, a lone surrogate,
malformed JSON, a bad token, a non-UUID id), the test asserts that too.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from werkzeug.http import HTTP_STATUS_CODES

from todo_service.config import TestConfig

ME = "/api/auth/me"
TASKS = "/api/me/tasks"
TASK = "/api/me/tasks/{task}"
COMPLETE = "/api/me/tasks/{task}/complete"


@dataclass
class World:
    """A user with a token pair and one task: what every request may need."""

    user_id: str
    email: str
    password: str
    access: str
    refresh: str
    task: str


@pytest.fixture
def new_world(client, make_user, login) -> Callable[[], World]:
    def build() -> World:
        user = make_user()
        tokens = login(user)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        task = client.post(TASKS, json={"title": "seed"}, headers=bearer)
        assert task.status_code == 201
        return World(
            user.id,
            user.email,
            user.password,
            tokens["access_token"],
            tokens["refresh_token"],
            task.json["id"],
        )

    return build


@pytest.fixture
def world(new_world) -> World:
    return new_world()


def check(response: Any, *, client_error: bool = False) -> str | None:
    """What is wrong with `response`, or None: no 5xx, a 4xx in the error
    shape; with `client_error`, it must be a 4xx."""
    status = response.status_code
    text = response.get_data(as_text=True)[:300]
    if status >= 500:
        return f"{status}: {text}"
    if client_error and not 400 <= status < 500:
        return f"expected a 4xx, got {status}: {text}"
    if 400 <= status < 500:
        problem = _error_shape_problem(response)
        if problem:
            return f"{status}: {problem}: {text}"
    return None


def _error_shape_problem(response: Any) -> str | None:
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return "not JSON"
    if not response.headers.get("X-Request-ID"):
        return "no X-Request-ID"
    body = response.json
    if not isinstance(body, dict) or not {"code", "status", "message"} <= set(body):
        return "not the error shape"
    if set(body) - {"code", "status", "message", "errors"}:
        return "extra keys"
    if body["code"] != response.status_code:
        return "code differs from the status"
    if body["status"] != HTTP_STATUS_CODES[response.status_code]:
        return "status is not the reason phrase"
    if not isinstance(body["message"], str) or not body["message"].strip():
        return "empty message"
    if "errors" in body:
        errors = body["errors"]
        if not isinstance(errors, dict) or not errors:
            return "errors is not a non-empty object"
        for location, fields in errors.items():
            if location not in {"json", "query", "headers"} or not isinstance(fields, dict):
                return "errors not keyed by location"
            for messages in fields.values():
                if not (isinstance(messages, list) and messages):
                    return "field errors are not a list"
                if not all(isinstance(m, str) and m for m in messages):
                    return "field error is not a string"
    return None


def assert_sane(response: Any, *, client_error: bool = False) -> None:
    problem = check(response, client_error=client_error)
    assert problem is None, problem


# ---------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    auth: str | None  # "access", "refresh" or None
    body: dict[str, Any] | None = None  # a valid body, one field at a time is spoiled
    fields: dict[str, str] | None = None  # field -> "str", "str?", "bool", "enum"
    # Every spoiled body is a 4xx: the contract says what a valid one is.
    strict: bool = True
    # A success uses up the world (a token, the account, the task).
    destructive: bool = False


def _valid_body(endpoint: Endpoint, world: World) -> dict[str, Any]:
    body = dict(endpoint.body or {})
    if endpoint.name == "register":
        body["email"] = f"new-{uuid.uuid4().hex}@example.com"
    if endpoint.name == "login":
        body = {"email": world.email, "password": world.password}
    return body


ENDPOINTS = [
    Endpoint(
        "register",
        "POST",
        "/api/auth/register",
        None,
        {"email": "", "password": "long enough password", "name": "Ada"},
        {"email": "str", "password": "str", "name": "str?"},
    ),
    Endpoint("login", "POST", "/api/auth/login", None, {}, {"email": "str", "password": "str"}),
    Endpoint("refresh", "POST", "/api/auth/refresh", "refresh", destructive=True),
    # API.md: anything but a valid refresh token of the caller is ignored.
    Endpoint(
        "logout",
        "POST",
        "/api/auth/logout",
        "access",
        {},
        {"refresh_token": "str?"},
        strict=False,
        destructive=True,
    ),
    Endpoint("me", "GET", ME, "access"),
    Endpoint(
        "me_patch",
        "PATCH",
        ME,
        "access",
        {"name": "Ada"},
        {"name": "str?", "password": "str", "current_password": "str"},
    ),
    Endpoint("me_delete", "DELETE", ME, "access", destructive=True),
    Endpoint("list", "GET", TASKS, "access"),
    Endpoint(
        "create",
        "POST",
        TASKS,
        "access",
        {"title": "ok"},
        {"title": "str", "description": "str?", "completed": "bool", "status": "enum"},
    ),
    Endpoint("get", "GET", TASK, "access"),
    Endpoint(
        "put",
        "PUT",
        TASK,
        "access",
        {"title": "ok"},
        {"title": "str", "description": "str?", "completed": "bool", "status": "enum"},
    ),
    Endpoint(
        "patch",
        "PATCH",
        TASK,
        "access",
        {"title": "ok"},
        {"title": "str", "description": "str?", "completed": "bool", "status": "enum"},
    ),
    Endpoint("delete", "DELETE", TASK, "access", destructive=True),
    Endpoint("complete", "PATCH", COMPLETE, "access", {"completed": True}, {"completed": "bool"}),
    Endpoint("healthz", "GET", "/healthz", None),
    Endpoint("readyz", "GET", "/readyz", None),
]
BY_NAME = {e.name: e for e in ENDPOINTS}
BODY_ENDPOINTS = [e for e in ENDPOINTS if e.fields]
PROTECTED = [e for e in ENDPOINTS if e.auth]


def send(
    client,
    endpoint: Endpoint,
    world: World,
    *,
    data: bytes | None = None,
    token: str | None = None,
    authorization: str | None = None,
    content_type: str = "application/json",
    query: str = "",
    path: str | None = None,
):
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif endpoint.auth:
        default = world.refresh if endpoint.auth == "refresh" else world.access
        headers["Authorization"] = f"Bearer {token or default}"
    url = (path or endpoint.path).format(task=world.task) + query
    if data is None and endpoint.body is not None:
        data = json.dumps(_valid_body(endpoint, world)).encode()
    kwargs: dict[str, Any] = {"headers": headers}
    if data is not None:
        kwargs.update(data=data, content_type=content_type)
    return client.open(url, method=endpoint.method, **kwargs)


# ------------------------------------------------------- spoiled field values

WRONG_TYPES: dict[str, Any] = {
    "zero": 0,
    "negative": -1,
    "float": 1.5,
    "huge int": 10**30,
    "empty list": [],
    "list": ["x"],
    "empty object": {},
    "object": {"a": "b"},
    "null": None,
    "true": True,
    "false": False,
}
STRINGS: dict[str, str] = {
    "empty": "",
    "blank": "   ",
    "string true": "true",
    "string 1": "1",
    "long 256": "x" * 256,
    "long 10001": "x" * 10_001,
    "long 60000 (under the body limit)": "x" * 60_000,
    "huge 100k (over the body limit)": "x" * 100_000,
    "emoji": "\U0001f600" * 300,
    "rtl": "\u202eabc\u202c",
    "combining": "e\u0301" * 200,
    "zero width": "\u200b\ufeff",
    "noncharacter": "\uffff\U0010ffff",
    "sql": "'; DROP TABLE users; --",
    "markup": "<script>alert(1)</script>",
    "like wildcards": "%_\\",
    "control": "\t\r\n\x1b",
}
# API.md, Bodies: a null byte or a lone surrogate in a text field is a 4xx.
POISON: dict[str, str] = {
    "nul": "a\x00b",
    "only nul": "\x00",
    "lone high surrogate": "\ud800",
    "lone low surrogate": "x\udfffx",
}


def _is_wrong_type(kind: str, value: Any) -> bool:
    if kind == "bool":
        return not isinstance(value, bool)
    if kind == "str?" and value is None:
        return False
    return not isinstance(value, str)


FIELD_CASES = [
    pytest.param(endpoint.name, field, id=f"{endpoint.name}-{field}")
    for endpoint in BODY_ENDPOINTS
    for field in endpoint.fields or {}
]


def _spoiled_bodies(endpoint: Endpoint, world: World, field: str, values: dict[str, Any]):
    for label, value in values.items():
        body = _valid_body(endpoint, world)
        body[field] = value
        # json.dumps escapes NULs and lone surrogates (`"\ud800"`), as a client would.
        yield label, json.dumps(body).encode()


@pytest.mark.parametrize(("name", "field"), FIELD_CASES)
def test_wrong_types_are_rejected_without_500(client, world, name, field):
    endpoint = BY_NAME[name]
    kind = (endpoint.fields or {})[field]
    failures = []
    for label, data in _spoiled_bodies(endpoint, world, field, WRONG_TYPES):
        strict = endpoint.strict and _is_wrong_type(kind, WRONG_TYPES[label])
        problem = check(send(client, endpoint, world, data=data), client_error=strict)
        if problem:
            failures.append(f"{label}: {problem}")
    assert not failures, failures


@pytest.mark.parametrize(("name", "field"), FIELD_CASES)
def test_odd_strings_never_500(client, world, name, field):
    endpoint = BY_NAME[name]
    kind = (endpoint.fields or {})[field]
    failures = []
    for label, data in _spoiled_bodies(endpoint, world, field, STRINGS):
        strict = endpoint.strict and (kind in {"bool", "enum"} or name == "login")
        if label.startswith("huge"):
            strict = True  # over 64 KiB: 413
        problem = check(send(client, endpoint, world, data=data), client_error=strict)
        if problem:
            failures.append(f"{label}: {problem}")
    assert not failures, failures


@pytest.mark.parametrize(("name", "field"), FIELD_CASES)
def test_nul_and_lone_surrogates_are_a_4xx(client, world, name, field):
    endpoint = BY_NAME[name]
    failures = []
    for label, data in _spoiled_bodies(endpoint, world, field, POISON):
        # A lone surrogate breaks the JSON itself (400), whoever reads it.
        strict = endpoint.strict or "surrogate" in label
        problem = check(send(client, endpoint, world, data=data), client_error=strict)
        if problem:
            failures.append(f"{label}: {problem}")
    assert not failures, failures


@pytest.mark.parametrize("name", [e.name for e in BODY_ENDPOINTS if e.strict])
def test_unknown_fields_are_a_4xx(client, world, name):
    endpoint = BY_NAME[name]
    body = {**_valid_body(endpoint, world), "bogus": 1, "id": str(uuid.uuid4())}
    assert_sane(send(client, endpoint, world, data=json.dumps(body).encode()), client_error=True)


# ----------------------------------------------------------- whole bodies

BROKEN_JSON = {
    "open brace": b"{",
    "trailing comma": b'{"a": 1,}',
    "single quotes": b"{'a': 'b'}",
    "NaN": b'{"title": NaN}',
    "infinity": b'{"title": 1e999}',
    "deep nesting": b"[" * 5000 + b"]" * 5000,
    "invalid utf-8": b'{"title": "\xff\xfe"}',
    "utf-8 surrogate": b'{"title": "\xed\xa0\x80"}',
    "raw nul": b"\x00",
    "bom": b"\xef\xbb\xbf{}",
}
NOT_OBJECTS = {
    "list": b"[]",
    "list of object": b'[{"title": "x"}]',
    "string": b'"title"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
}


def _on_every_endpoint(
    client, new_world, data: bytes, content_type: str = "application/json"
) -> Iterator[tuple[Endpoint, Any]]:
    shared = new_world()
    for endpoint in ENDPOINTS:
        world = new_world() if endpoint.destructive else shared
        yield endpoint, send(client, endpoint, world, data=data, content_type=content_type)


@pytest.mark.parametrize("label", list(BROKEN_JSON))
def test_malformed_json_never_500(client, new_world, label):
    failures = []
    for endpoint, response in _on_every_endpoint(client, new_world, BROKEN_JSON[label]):
        # API.md, Bodies: 400 wherever the body is read; elsewhere just no 500.
        problem = check(response)
        if endpoint.fields and response.status_code != 400:
            problem = f"expected 400, got {response.status_code}"
        if problem:
            failures.append(f"{endpoint.name}: {problem}")
    assert not failures, failures


@pytest.mark.parametrize("label", list(NOT_OBJECTS))
def test_json_that_is_not_an_object_never_500(client, new_world, label):
    failures = []
    for endpoint, response in _on_every_endpoint(client, new_world, NOT_OBJECTS[label]):
        problem = check(response)
        if endpoint.fields and endpoint.strict and response.status_code not in {400, 422}:
            problem = f"expected 400 or 422, got {response.status_code}"
        if problem:
            failures.append(f"{endpoint.name}: {problem}")
    assert not failures, failures


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream"],
)
def test_non_json_content_type_never_500(client, new_world, content_type):
    failures = []
    for endpoint, response in _on_every_endpoint(client, new_world, b"a=1&b=2", content_type):
        problem = check(response)
        has_body = endpoint.method in {"POST", "PUT", "PATCH", "DELETE"}
        if has_body and response.status_code not in {400, 415}:
            problem = f"expected 415 or 400, got {response.status_code}"
        if problem:
            failures.append(f"{endpoint.name}: {problem}")
    assert not failures, failures


# ------------------------------------------------------------- paths and ids

BAD_IDS = [
    "not-a-uuid",
    "123",
    "0193a1b2c3d47e5f8a9b0c1d2e3f4a5b",
    "{0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}",
    "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bf",
    "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",
    "g193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    "%00",
    "%ff",
    "%E2%80%AE",
    "' OR 1=1 --",
    "..",
    "x" * 5000,
    "null",
]
PATH_TEMPLATES = [
    ("GET", "/api/{user}/tasks"),
    ("POST", "/api/{user}/tasks"),
    ("GET", "/api/{user}/tasks/{task}"),
    ("PUT", "/api/{user}/tasks/{task}"),
    ("PATCH", "/api/{user}/tasks/{task}"),
    ("DELETE", "/api/{user}/tasks/{task}"),
    ("PATCH", "/api/{user}/tasks/{task}/complete"),
]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("which", ["user", "task"])
def test_non_uuid_ids_in_paths_are_404(client, world, bad, which):
    failures = []
    for method, template in PATH_TEMPLATES:
        if which == "task" and "{task}" not in template:
            continue
        ids = {"user": "me", "task": world.task, which: bad}
        url = template.format(**ids)
        for headers in ({"Authorization": f"Bearer {world.access}"}, {}):
            response = client.open(
                url,
                method=method,
                json={"title": "x"},
                headers=headers,
                # A `..` segment leaves the documented paths: clients normalise it away.
                off_document="a `..` path segment" if bad == ".." else None,
            )
            if response.status_code != 404 or check(response):
                failures.append(f"{method} {url[:60]}: {response.status_code}")
    assert not failures, failures


@pytest.mark.parametrize(
    "task_id", ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"]
)
def test_extreme_uuids_are_plain_not_found(client, world, task_id):
    for method, template in PATH_TEMPLATES:
        if "{task}" not in template:
            continue
        url = template.format(user="me", task=task_id)
        body = {"completed": True} if url.endswith("complete") else {"title": "x"}
        response = client.open(
            url, method=method, json=body, headers={"Authorization": f"Bearer {world.access}"}
        )
        assert response.status_code == 404, (method, url)
        assert_sane(response)


# ------------------------------------------------------------ query strings

BAD_QUERIES = [
    "page=abc",
    "page=0",
    "page=-1",
    "page=1.5",
    "page=",
    f"page={10**23}",
    "page=1000001",
    "page=%00",
    "page_size=-1",
    "page_size=0",
    "page_size=1001",
    "page_size=abc",
    f"page_size={10**23}",
    "sort=bogus",
    "sort=",
    "sort=title;DROP TABLE tasks",
    "status=bogus",
    "status=PENDING",
    "completed=1",
    "completed=yes",
    "completed=True",
    "completed=",
    "q=%00",
    "q=a%00b",
]
ODD_QUERIES = [
    "q=%ff",
    "q=%ed%a0%80",
    "q=%c3",
    "q=%",
    "q=%zz",
    "q=" + "x" * 20_000,
    "q=%25_%5C",
    "q=%27%3B%20DROP%20TABLE%20tasks%3B--",
    "q=%F0%9F%98%80",
    "page=2&page=abc",
    "unknown=%00",
    "q=a&q=b",
]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_invalid_list_query_is_422(client, world, query):
    response = send(client, BY_NAME["list"], world, query=f"?{query}")
    assert response.status_code == 422, response.get_data(as_text=True)
    assert_sane(response)
    assert set(response.json["errors"]) == {"query"}


@pytest.mark.parametrize("query", ODD_QUERIES, ids=lambda q: q[:30])
def test_odd_list_query_never_500(client, world, query):
    assert_sane(send(client, BY_NAME["list"], world, query=f"?{query}"))


@pytest.mark.parametrize("name", [e.name for e in ENDPOINTS])
def test_odd_query_strings_are_harmless_elsewhere(client, world, name):
    endpoint = BY_NAME[name]
    for query in ("?page=abc&q=%00", "?%ff=%ff", "?" + "a" * 10_000):
        assert_sane(send(client, endpoint, world, query=query))


# -------------------------------------------------------------------- tokens


def _claims(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def _sign(claims: dict[str, Any], key: str = TestConfig.JWT_SECRET_KEY, alg: str = "HS256") -> str:
    with warnings.catch_warnings():  # the test key is short for HS512, and that is fine
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return pyjwt.encode(claims, key, algorithm=alg)


def _alg_none(claims: dict[str, Any]) -> str:
    return pyjwt.encode(claims, None, algorithm="none")


def _with(token: str, **changes: Any) -> str:
    claims = {**_claims(token), **changes}
    return _sign({k: v for k, v in claims.items() if v is not _DROP})


_DROP = object()


def _bad_authorizations(world: World, endpoint: Endpoint) -> dict[str, str]:
    """Every kind of bad credential, as an Authorization header."""
    good = world.refresh if endpoint.auth == "refresh" else world.access
    wrong_type = world.access if endpoint.auth == "refresh" else world.refresh
    now = int(time.time())
    tokens = {
        "garbage": "garbage",
        "three dots": "a.b.c",
        "empty segments": "..",
        "base64 junk": "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
        "alg none": _alg_none(_claims(good)),
        "alg none, no dot": _alg_none(_claims(good)).rstrip("."),
        "wrong key": _sign(_claims(good), key="another-secret-key-that-is-long-enough!!"),
        "other algorithm": _sign(_claims(good), alg="HS512"),
        "tampered signature": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "expired": _with(good, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "not yet valid": _with(good, nbf=now + 3600),
        "exp not a number": _with(good, exp="tomorrow"),
        "wrong token type": wrong_type,
        "unknown token type": _with(good, type="id"),
        "no sub": _with(good, sub=_DROP),
        "sub not a uuid": _with(good, sub="not-a-uuid"),
        "sub a number": _with(good, sub=12345),
        "sub of nobody": _with(good, sub=str(uuid.uuid4())),
        "no jti": _with(good, jti=_DROP),
        "jti not a string": _with(good, jti=12345),
        "jti too long": _with(good, jti="j" * 500),
        "no version": _with(good, ver=_DROP),
        "old version": _with(good, ver=-1),
        "version a string": _with(good, ver="0"),
        "no exp": _with(good, exp=_DROP),
        "not json payload": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.W10.xxx",
    }
    headers = {kind: f"Bearer {token}" for kind, token in tokens.items()}
    headers.update(
        {
            "empty bearer": "Bearer ",
            "bare scheme": "Bearer",
            "two tokens": f"Bearer {good} {good}",
            "basic": "Basic dXNlcjpwYXNzd29yZA==",
            "other scheme": f"Token {good}",
            "no scheme": good,
            "very long": "Bearer " + "a" * 100_000,
            "non-ascii": "Bearer \xe9\xe8",
            "empty header": "",
        }
    )
    return headers


@pytest.mark.parametrize("name", [e.name for e in PROTECTED])
def test_bad_tokens_are_401_everywhere(client, world, name):
    endpoint = BY_NAME[name]
    failures = []
    for kind, authorization in _bad_authorizations(world, endpoint).items():
        response = send(client, endpoint, world, authorization=authorization)
        problem = check(response, client_error=True)
        if response.status_code != 401:
            problem = f"{response.status_code}: {response.get_data(as_text=True)[:200]}"
        elif not response.headers.get("WWW-Authenticate", "").startswith("Bearer"):
            problem = "no WWW-Authenticate: Bearer"
        if problem:
            failures.append(f"{kind}: {problem}")
    assert not failures, failures
    # and the good credentials still work, so the 401s above were about the token
    assert send(client, endpoint, world).status_code < 400


def test_revoked_token_is_401_everywhere(client, world):
    bearer = f"Bearer {world.access}"
    assert client.post("/api/auth/logout", headers={"Authorization": bearer}).status_code == 204
    for endpoint in PROTECTED:
        if endpoint.auth != "access":
            continue
        response = send(client, endpoint, world, authorization=bearer)
        assert response.status_code == 401, endpoint.name
        assert_sane(response)


def test_token_of_a_deleted_user_is_401_everywhere(client, world):
    bearer = {"Authorization": f"Bearer {world.access}"}
    assert client.delete(ME, headers=bearer).status_code == 204
    for endpoint in PROTECTED:
        response = send(client, endpoint, world)
        assert response.status_code == 401, endpoint.name
        assert_sane(response)
