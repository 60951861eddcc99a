"""CORS, abuse limits and metrics: through real apps on the test
database, made with the settings under test; the multi-worker metrics check
runs against a live gunicorn."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from todo_service import create_app
from todo_service.config import Config, ConfigError, TestConfig
from todo_service.extensions import db

from .helpers import TestUser, assert_error

ORIGIN = "https://app.example.com"
EXPOSED = {
    "x-pagination",
    "link",
    "location",
    "x-request-id",
    "retry-after",
    "etag",
    "idempotent-replayed",
}
REDIS_URL = "redis://127.0.0.1:6379"
LIMITS = {
    "RATELIMIT_ENABLED": True,
    # Hours, not minutes: a window must not roll over in the middle of a test.
    "RATELIMIT_LOGIN": "3 per hour",
    "RATELIMIT_LOGIN_ACCOUNT": "2 per hour",
    "RATELIMIT_REGISTER": "2 per hour",
    "RATELIMIT_REGISTER_ACCOUNT": "2 per hour",
}
TASKS_RULE = "/api/<user_ref:user_id>/tasks"


@pytest.fixture
def make_app(app: Flask, database_url: str) -> Iterator[Callable[..., Flask]]:
    """Another app on the (migrated) test database, with some settings changed."""
    made: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        application = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, **overrides})
        made.append(application)
        return application

    yield factory
    for application in made:
        with application.app_context():
            db.engine.dispose()


def _login(client: FlaskClient, email: str, address: str = "192.0.2.1", **kwargs: Any) -> Any:
    return client.post(
        "/api/auth/login",
        json={"email": email, "password": "not the password"},
        environ_base={"REMOTE_ADDR": address},
        **kwargs,
    )


def _register(client: FlaskClient, email: str, address: str = "192.0.2.1") -> Any:
    return client.post(
        "/api/auth/register",
        json={"email": email, "password": "correct horse battery staple"},
        environ_base={"REMOTE_ADDR": address},
    )


def _assert_too_many(response: Any) -> None:
    assert_error(response, 429)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600


# ------------------------------------------------------------------- settings


def test_cors_origins_are_read_as_a_trimmed_list() -> None:
    settings = Config.from_env({"CORS_ORIGINS": " https://a.example.com, http://localhost:3000/ ,"})
    assert settings["CORS_ORIGINS"] == ["https://a.example.com", "http://localhost:3000"]
    assert Config.from_env({})["CORS_ORIGINS"] == []


def test_defaults_turn_limits_and_metrics_on_and_tests_turn_limits_off() -> None:
    settings = Config.from_env({})
    assert settings["RATELIMIT_ENABLED"] is True
    assert settings["RATELIMIT_STORAGE_URI"] == "memory://"
    assert settings["METRICS_ENABLED"] is True
    assert TestConfig.from_env({})["RATELIMIT_ENABLED"] is False


def test_rate_limit_settings_come_from_the_environment() -> None:
    settings = Config.from_env(
        {
            "RATELIMIT_ENABLED": "false",
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "RATELIMIT_KEY_PREFIX": "staging",
            "RATELIMIT_LOGIN": "20 per minute; 200 per hour",
            "RATELIMIT_REGISTER_ACCOUNT": "1 per minute",
            "PROXY_FIX_X_FOR": "1",
        }
    )
    assert settings["RATELIMIT_ENABLED"] is False
    assert settings["RATELIMIT_STORAGE_URI"] == REDIS_URL
    assert settings["RATELIMIT_KEY_PREFIX"] == "staging"
    assert settings["RATELIMIT_LOGIN"] == "20 per minute; 200 per hour"
    assert settings["RATELIMIT_LOGIN_ACCOUNT"] == Config.RATELIMIT_LOGIN_ACCOUNT
    assert settings["RATELIMIT_REGISTER_ACCOUNT"] == "1 per minute"
    assert settings["PROXY_FIX_X_FOR"] == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CORS_ORIGINS", "app.example.com"),
        ("CORS_ORIGINS", "https://app.example.com/path"),
        ("CORS_ORIGINS", "https://a.example.com, ftp://b.example.com"),
        ("RATELIMIT_ENABLED", "maybe"),
        ("RATELIMIT_STORAGE_URI", "127.0.0.1:6379"),
        ("PROXY_FIX_X_FOR", "-1"),
        ("METRICS_ENABLED", "perhaps"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/metrics"),
    ],
)
def test_unusable_settings_stop_start_up_with_one_clear_line(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATELIMIT_LOGIN", "lots"),
        ("RATELIMIT_LOGIN_ACCOUNT", "5 per fortnight"),
        ("RATELIMIT_REGISTER", "per minute"),
        ("RATELIMIT_STORAGE_URI", "nosuchstore://somewhere"),
    ],
)
def test_unusable_rate_limit_settings_stop_the_app(
    make_app: Callable[..., Flask], name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        make_app(**{**LIMITS, name: value})


# ----------------------------------------------------------------------- CORS


@pytest.fixture
def cors_client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(CORS_ORIGINS=[ORIGIN, "http://localhost:3000"]).test_client()


def _exposed(response: Any) -> set[str]:
    value = response.headers.get("Access-Control-Expose-Headers", "")
    return {name.strip().lower() for name in value.split(",") if name.strip()}


def test_allowed_origin_gets_cors_headers_and_can_read_the_paging_headers(
    cors_client: FlaskClient, headers: dict[str, str]
) -> None:
    response = cors_client.get("/api/me/tasks", headers={**headers, "Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert _exposed(response) == EXPOSED
    assert "Origin" in response.headers.get("Vary", "")
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_errors_carry_cors_headers_so_the_front_end_can_read_them(
    cors_client: FlaskClient,
) -> None:
    response = cors_client.get("/api/auth/me", headers={"Origin": ORIGIN})
    assert_error(response, 401)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_other_origins_get_no_cors_headers(
    cors_client: FlaskClient, headers: dict[str, str]
) -> None:
    response = cors_client.get(
        "/api/me/tasks", headers={**headers, "Origin": "https://evil.example.com"}
    )
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("path", ["/api/me/tasks", "/api/auth/login"])
def test_preflight_from_an_allowed_origin_is_answered(cors_client: FlaskClient, path: str) -> None:
    response = cors_client.options(
        path,
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert response.headers.get("X-Request-ID")


def test_preflight_from_another_origin_is_not_allowed(cors_client: FlaskClient) -> None:
    response = cors_client.options(
        "/api/me/tasks",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_no_origin_is_allowed_by_default(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.get("/api/me/tasks", headers={**headers, "Origin": ORIGIN})
    preflight = client.options(
        "/api/me/tasks", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    for answer in (response, preflight):
        assert not [name for name, _ in answer.headers if name.startswith("Access-Control-")]


# ---------------------------------------------------------------- rate limits


@pytest.fixture
def limited(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(**LIMITS).test_client()


def test_login_over_the_address_limit_is_429_with_retry_after(limited: FlaskClient) -> None:
    for n in range(3):  # different accounts: only the per-address limit counts
        assert _login(limited, f"nobody{n}@example.com").status_code == 401
    _assert_too_many(_login(limited, "nobody3@example.com"))
    # Another client address is not affected.
    assert _login(limited, "nobody4@example.com", address="192.0.2.2").status_code == 401


def test_account_limit_holds_across_client_addresses(
    limited: FlaskClient, make_user: Callable[..., TestUser]
) -> None:
    user = make_user()
    assert _login(limited, user.email, address="198.51.100.1").status_code == 401
    # The same account, however the email is spelled.
    assert _login(limited, f"  {user.email.upper()} ", address="198.51.100.2").status_code == 401
    _assert_too_many(_login(limited, user.email, address="198.51.100.3"))
    # Even the right password waits: the account is what is being guessed at.
    response = limited.post(
        "/api/auth/login",
        json={"email": user.email, "password": user.password},
        environ_base={"REMOTE_ADDR": "198.51.100.4"},
    )
    _assert_too_many(response)
    assert _login(limited, "someone.else@example.com", address="198.51.100.5").status_code == 401


def test_registration_is_limited_per_address(limited: FlaskClient) -> None:
    for n in range(2):
        assert _register(limited, f"new{n}-{uuid.uuid4().hex}@example.com").status_code == 201
    _assert_too_many(_register(limited, f"new2-{uuid.uuid4().hex}@example.com"))


def test_registration_is_limited_per_account(limited: FlaskClient) -> None:
    email = f"taken-{uuid.uuid4().hex}@example.com"
    assert _register(limited, email, address="203.0.113.1").status_code == 201
    assert _register(limited, email.upper(), address="203.0.113.2").status_code == 409
    _assert_too_many(_register(limited, email, address="203.0.113.3"))


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"email": "a@example.com", ', "application/json", 400),
        (b"\xff\xfe not utf-8", "application/json", 400),
        (b'["a@example.com"]', "application/json", {400, 422}),
        (b'{"email": 42, "password": "whatever1"}', "application/json", 422),
        (b'{"email": null, "password": "whatever1"}', "application/json", 422),
        (b'{"password": "whatever1"}', "application/json", 422),
        (b'{"email": "' + b"a" * 300 + b'@example.com", "password": "x"}', "application/json", 422),
        (b"", "application/json", 422),
    ],
)
def test_odd_login_bodies_get_their_4xx_with_limits_on(
    limited: FlaskClient, body: bytes, content_type: str, expected: int | set[int]
) -> None:
    response = limited.post("/api/auth/login", data=body, content_type=content_type)
    codes = expected if isinstance(expected, set) else {expected}
    assert response.status_code in codes, response.get_data(as_text=True)
    if response.status_code == 400:
        assert_error(response, 400)
    else:
        assert_error(response, 422, error_fields={"json": set(response.json["errors"]["json"])})


def test_bodies_without_an_email_do_not_use_up_an_account(
    limited: FlaskClient, make_user: Callable[..., TestUser]
) -> None:
    user = make_user()
    for n in range(3):  # each from its own address, so only account limits could trip
        response = limited.post(
            "/api/auth/login",
            json={"password": "x" * 8},
            environ_base={"REMOTE_ADDR": f"10.0.0.{n}"},
        )
        assert response.status_code == 422
    assert _login(limited, user.email, address="10.0.1.1").status_code == 401


@pytest.mark.parametrize(
    ("method", "kwargs", "code"),
    [
        ("get", {}, 405),
        ("post", {"data": b"x" * 70_000, "content_type": "application/json"}, 413),
        ("post", {"data": b"email=a", "content_type": "text/plain"}, 415),
    ],
)
def test_routing_size_and_type_errors_come_before_the_limit(
    limited: FlaskClient, method: str, kwargs: dict[str, Any], code: int
) -> None:
    for n in range(3):
        _login(limited, f"nobody{n}@example.com")
    _assert_too_many(_login(limited, "nobody@example.com"))
    response = getattr(limited, method)(
        "/api/auth/login", environ_base={"REMOTE_ADDR": "192.0.2.1"}, **kwargs
    )
    assert_error(response, code)


def test_a_browser_can_read_the_429_and_its_retry_after(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(**LIMITS, CORS_ORIGINS=[ORIGIN]).test_client()
    origin = {"Origin": ORIGIN}
    for n in range(3):
        _login(client, f"nobody{n}@example.com", headers=origin)
    response = _login(client, "nobody3@example.com", headers=origin)
    _assert_too_many(response)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "retry-after" in _exposed(response)
    # Preflights are not counted, nor refused.
    preflight = client.options(
        "/api/auth/login",
        headers={**origin, "Access-Control-Request-Method": "POST"},
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_limits_are_off_when_disabled(make_app: Callable[..., Flask]) -> None:
    client = make_app(**{**LIMITS, "RATELIMIT_ENABLED": False, "RATELIMIT_LOGIN": "1 per hour"})
    for n in range(4):
        assert _login(client.test_client(), f"nobody{n}@example.com").status_code == 401


@pytest.mark.parametrize(("hops", "limited_by_header"), [(0, False), (1, True)])
def test_forwarded_for_is_trusted_only_when_configured(
    make_app: Callable[..., Flask], hops: int, limited_by_header: bool
) -> None:
    """Without PROXY_FIX_X_FOR a client cannot dodge its limit by sending
    X-Forwarded-For; with it, clients behind the proxy count separately."""
    client = make_app(**LIMITS, PROXY_FIX_X_FOR=hops).test_client()
    codes = [
        _login(
            client,
            f"nobody{n}@example.com",
            address="10.1.1.1",  # the proxy
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        ).status_code
        for n in range(5)
    ]
    assert (429 in codes) is not limited_by_header, codes


def _redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.mark.parametrize(("storage", "shared"), [("memory://", False), (REDIS_URL, True)])
def test_limits_are_shared_between_instances_through_redis(
    make_app: Callable[..., Flask], storage: str, shared: bool
) -> None:
    if storage.startswith("redis") and not _redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"todo-test-{uuid.uuid4().hex}"
    settings = {**LIMITS, "RATELIMIT_STORAGE_URI": storage, "RATELIMIT_KEY_PREFIX": prefix}
    first, second = make_app(**settings).test_client(), make_app(**settings).test_client()
    try:
        for n in range(3):
            assert _login(first, f"nobody{n}@example.com").status_code == 401
        response = _login(second, "nobody3@example.com")
        if shared:
            _assert_too_many(response)
        else:
            assert response.status_code == 401  # each in-process store counts alone
    finally:
        if storage.startswith("redis"):
            import redis

            store = redis.Redis.from_url(REDIS_URL)
            for key in store.scan_iter(match=f"*{prefix}*"):
                store.delete(key)


def test_unreachable_redis_falls_back_to_in_process_limits(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(**LIMITS, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1").test_client()
    for n in range(3):
        assert _login(client, f"nobody{n}@example.com").status_code == 401
    _assert_too_many(_login(client, "nobody3@example.com"))


def test_openapi_documents_429_with_retry_after(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").json["paths"]
    for path in ("/api/auth/login", "/api/auth/register"):
        too_many = paths[path]["post"]["responses"]["429"]
        assert "Retry-After" in too_many["headers"]
        assert too_many["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")


# -------------------------------------------------------------------- metrics


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text, name).get(tuple(sorted(labels.items())), 0.0)


def _scrape(client: FlaskClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def test_requests_are_counted_by_route_template_method_and_status(
    client: FlaskClient, headers: dict[str, str], user: TestUser
) -> None:
    ok = {"method": "GET", "route": TASKS_RULE, "status": "200"}
    missing = {"method": "GET", "route": "<unmatched>", "status": "404"}
    before = _scrape(client)
    for path in ("/api/me/tasks", f"/api/{user.id}/tasks", f"/api/{user.id.upper()}/tasks"):
        assert client.get(path, headers=headers).status_code == 200
    assert client.get("/api/me/tasks").status_code == 401
    assert (
        client.get(f"/no/such/{uuid.uuid4()}", off_document="an unknown route").status_code == 404
    )
    after = _scrape(client)

    name = "todo_http_requests_total"
    assert _value(after, name, **ok) - _value(before, name, **ok) == 3
    unauthorized = {**ok, "status": "401"}
    assert _value(after, name, **unauthorized) - _value(before, name, **unauthorized) == 1
    assert _value(after, name, **missing) - _value(before, name, **missing) == 1
    count = "todo_http_request_duration_seconds_count"
    assert _value(after, count, **ok) - _value(before, count, **ok) == 3
    bucket = "todo_http_request_duration_seconds_bucket"
    assert _value(after, bucket, **ok, le="+Inf") - _value(before, bucket, **ok, le="+Inf") == 3
    # Templates, never raw paths: the number of series stays bounded.
    templates = {rule.rule for rule in client.application.url_map.iter_rules()}
    routes = {dict(labels)["route"] for labels in _samples(after, name)}
    assert routes <= templates | {"<unmatched>"}, routes - templates


def test_pool_gauge_counts_connections_in_use(app: Flask, client: FlaskClient) -> None:
    gauge = "todo_db_pool_connections_in_use"
    idle = _value(_scrape(client), gauge)
    with app.app_context():
        connection = db.engine.connect()
        try:
            busy = _value(_scrape(client), gauge)
        finally:
            connection.close()
    assert busy == idle + 1
    assert _value(_scrape(client), gauge) == idle


def test_pool_gauge_does_not_drift_when_the_database_cannot_be_reached(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    application = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'x.sqlite3'}")
    client = application.test_client()
    assert client.get("/readyz").status_code == 200
    with application.app_context():  # the pooled connection must reconnect next time
        connection = db.engine.connect()
        connection.invalidate()
        connection.close()
    gauge = "todo_db_pool_connections_in_use"
    before = _value(_scrape(client), gauge)
    shutil.rmtree(folder)  # ... and cannot
    for _ in range(3):
        assert_error(client.get("/readyz"), 503)
    assert _value(_scrape(client), gauge) == before


def test_metrics_are_not_in_the_openapi_document(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    assert "/metrics" not in spec["paths"]
    assert not [path for path in spec["paths"] if "swagger-ui" in path]


def test_metrics_can_be_turned_off(make_app: Callable[..., Flask]) -> None:
    client = make_app(METRICS_ENABLED=False).test_client()
    assert_error(client.get("/metrics"), 404)
    assert client.get("/healthz").status_code == 200


@pytest.mark.live
def test_metrics_add_up_every_gunicorn_worker(live_server: str) -> None:
    """Four workers each count their own requests; /metrics (answered by any
    one of them) must report the sum."""
    requests_made = 60
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    name = "todo_http_requests_total"
    before = _value(requests.get(f"{live_server}/metrics", timeout=5).text, name, **labels)
    for _ in range(requests_made):
        # A new connection each time, so that the workers share the requests.
        response = requests.get(
            f"{live_server}/healthz", headers={"Connection": "close"}, timeout=5
        )
        assert response.status_code == 200
    after = _value(requests.get(f"{live_server}/metrics", timeout=5).text, name, **labels)
    assert after - before == requests_made
