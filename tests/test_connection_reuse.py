"""A refused request does not break the persistent connection it came on.

Over a live gunicorn started from gunicorn.conf.py, on one keep-alive
connection: oversized bodies (with `Content-Length`, and chunked) to every
body-taking route, and the other answers given before a body is read (415,
401, 429), interleaved with ordinary requests. Every request gets its answer,
and the next one either succeeds on the same connection, or the refusal said
`Connection: close` and the server closed the connection cleanly after it.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from flask import Flask

from .conftest import DEFAULT_PASSWORD, start_gunicorn

LIMIT = 65_536  # API.md: bodies up to 64 KiB
OVERSIZED = json.dumps({"title": "x" * 70_000}).encode()
# Larger than gunicorn discards by itself between two requests (64 KiB).
MUCH_OVERSIZED = json.dumps({"title": "x" * 200_000}).encode()


def _exactly(size: int) -> bytes:
    """A JSON body of exactly `size` bytes: the largest one accepted, left
    unread when the answer comes first."""
    body = json.dumps({"title": ""}).encode()
    return json.dumps({"title": "x" * (size - len(body))}).encode()


BEYOND_DRAIN = 3 * 1024 * 1024  # more than the service reads and throws away


@dataclass
class Server:
    url: str
    host: str
    port: int
    token: str = ""
    task_path: str = ""

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def with_account(self, email: str) -> Server:
        """This server, as a new user with one task (the tables are emptied
        after every test, so each test makes its own)."""
        body = {"email": email, "password": DEFAULT_PASSWORD}
        registered = requests.post(f"{self.url}/api/auth/register", json=body, timeout=10)
        assert registered.status_code == 201, registered.text
        login = requests.post(f"{self.url}/api/auth/login", json=body, timeout=10)
        token = login.json()["access_token"]
        task = requests.post(
            f"{self.url}/api/me/tasks",
            json={"title": "t"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        return Server(self.url, self.host, self.port, token, f"/api/me/tasks/{task['id']}")


def _serve(env: dict[str, str]) -> Iterator[Server]:
    process, url = start_gunicorn(env, workers=1, config=True)
    host, port = url.removeprefix("http://").split(":")
    yield Server(url, host, int(port))
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def gunicorn_server(app: Flask, server_env: dict[str, str]) -> Iterator[Server]:
    yield from _serve(server_env)


@pytest.fixture(scope="module")
def limited_gunicorn_server(app: Flask, server_env: dict[str, str]) -> Iterator[Server]:
    yield from _serve(
        {**server_env, "RATELIMIT_ENABLED": "true", "RATELIMIT_LOGIN": "2 per minute"}
    )


@pytest.fixture
def server(gunicorn_server: Server) -> Server:
    return gunicorn_server.with_account("keepalive@example.com")


@pytest.fixture
def limited_server(limited_gunicorn_server: Server) -> Server:
    return limited_gunicorn_server.with_account("limited@example.com")


def _body_routes(server: Server) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/logout"),
        ("PATCH", "/api/auth/me"),
        ("POST", "/api/me/tasks"),
        ("PUT", server.task_path),
        ("PATCH", server.task_path),
        ("PATCH", server.task_path + "/complete"),
    ]


class Conversation:
    """One client connection; reconnects only where the server said it would close."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connection = server.connect()
        self.reconnects = 0

    def send(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        all_headers = dict(headers or {})
        if auth:
            all_headers["Authorization"] = f"Bearer {self.server.token}"
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        chunked = body is not None and not isinstance(body, bytes)
        # A failure here (no answer at all) is exactly the bug under test.
        self.connection.request(
            method, path, body=body, headers=all_headers, encode_chunked=chunked
        )
        response = self.connection.getresponse()
        data = response.read()
        answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if answer[1].get("connection", "").lower() == "close":
            self._expect_clean_close()
        return answer

    def _expect_clean_close(self) -> None:
        sock = self.connection.sock
        if sock is not None:
            sock.settimeout(5)
            try:
                assert sock.recv(1) == b"", "the server said close but sent more"
            except ConnectionResetError:
                pytest.fail("the server said close but reset the connection")
        self.connection.close()
        self.connection = self.server.connect()
        self.reconnects += 1

    def ordinary_requests(self) -> None:
        status, _, body = self.send("GET", "/api/me/tasks?page_size=1")
        assert status == 200, body
        status, _, body = self.send("POST", "/api/me/tasks", json.dumps({"title": "ok"}).encode())
        assert status == 201, body

    def close(self) -> None:
        self.connection.close()


def _chunks(data: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_oversized_bodies_leave_the_connection_usable(server, framing):
    talk = Conversation(server)
    for _ in range(2):
        for method, path in _body_routes(server):
            body = OVERSIZED if framing == "content-length" else _chunks(MUCH_OVERSIZED)
            status, headers, data = talk.send(method, path, body)
            assert status == 413, (method, path, data)
            assert json.loads(data)["code"] == 413
            assert headers.get("connection", "").lower() != "close"  # read and discarded
            talk.ordinary_requests()
    assert talk.reconnects == 0
    talk.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_too_large_to_discard_closes_the_connection_cleanly(server, framing):
    talk = Conversation(server)
    huge = b"x" * BEYOND_DRAIN
    body = huge if framing == "content-length" else _chunks(huge, 65536)
    try:
        status, headers, _ = talk.send("POST", "/api/me/tasks", body)
    except (BrokenPipeError, ConnectionResetError):
        # The server may stop reading before the client has sent it all: it
        # answered and closed; the client sees a broken pipe while sending.
        talk.connection.close()
        talk.connection = server.connect()
    else:
        assert status == 413
        assert headers["connection"].lower() == "close"
    talk.ordinary_requests()
    talk.close()


def test_early_refusals_leave_the_connection_usable(server):
    talk = Conversation(server)
    json_body = _exactly(LIMIT)
    for _ in range(3):
        status, _, _ = talk.send(
            "POST", "/api/me/tasks", b"x" * LIMIT, {"Content-Type": "text/plain"}
        )
        assert status == 415
        talk.ordinary_requests()
        status, headers, _ = talk.send("POST", "/api/me/tasks", json_body, auth=False)
        assert status == 401
        assert headers["www-authenticate"] == "Bearer"
        talk.ordinary_requests()
        status, _, _ = talk.send("PUT", server.task_path, _chunks(json_body), auth=False)
        assert status == 401
        talk.ordinary_requests()
    assert talk.reconnects == 0
    talk.close()


def test_a_rate_limited_request_leaves_the_connection_usable(limited_server):
    talk = Conversation(limited_server)
    wrong = {"email": "limited@example.com", "password": "wrong password", "pad": ""}
    padding = LIMIT - len(json.dumps(wrong))
    login = json.dumps({**wrong, "pad": "x" * padding}).encode()
    assert len(login) == LIMIT
    statuses = []
    for _ in range(4):
        status, headers, _ = talk.send("POST", "/api/auth/login", login, auth=False)
        statuses.append(status)
        talk.ordinary_requests()
    assert statuses[-1] == 429
    assert talk.reconnects == 0
    talk.close()


def test_a_plain_socket_sees_one_answer_per_request(server):
    """The same at the byte level: two requests pipelined behind an
    oversized one get their two answers."""
    auth = f"Authorization: Bearer {server.token}\r\n"
    oversized = (
        f"POST /api/me/tasks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {len(OVERSIZED)}\r\n\r\n"
    ).encode() + OVERSIZED
    ordinary = f"GET /healthz HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(oversized + ordinary)
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {received.count(b'HTTP/1.1 ')} answer(s)"
            received += chunk
    assert received.startswith(b"HTTP/1.1 413")
    assert b"HTTP/1.1 200" in received
