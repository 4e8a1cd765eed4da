"""The bad-input matrix: hostile names, paths, bodies, content types, queries and connections.

Every case runs against one real server process (value limit 1000 bytes, no write quota) and
must get a clear 4xx JSON error (``{"error", "code", "status"}``) or, when the client breaks
the connection itself, no reply; afterwards the server still answers and nothing was written
(the totals of ``/stats/memory`` and the revision of every namespace involved are unchanged).

Requests whose exact bytes matter (dot segments, encoded slashes, lying ``Content-Length``,
half-closed sockets) go over raw sockets: an HTTP client library would normalise or refuse them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from server_process import ServerProcess

VALUE_MAX = 1000
NAMESPACES = ["bad", "b", "ad", "etc", "memory"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db: Path = tmp_path_factory.mktemp("bad") / "botwire.db"
    env = {"BOTWIRE_VALUE_MAX_BYTES": str(VALUE_MAX), "BOTWIRE_WRITES_PER_DAY": "0"}
    with ServerProcess(f"sqlite:///{db}", env=env) as proc:
        yield proc


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@contextmanager
def nothing_written(client: httpx.Client) -> Iterator[None]:
    """Assert that the block writes nothing and leaves the server serving."""

    def state() -> tuple[Any, ...]:
        stats = client.get("/stats/memory").json()
        heads = [client.get(f"/namespaces/{ns}").json()["revision"] for ns in NAMESPACES]
        return (stats, heads)

    before = state()
    yield
    assert client.get("/healthz").status_code == 200
    assert state() == before


def assert_error(status: int, body: bytes | str, expected_status: int, code: str | None) -> None:
    assert status == expected_status, body
    parsed = json.loads(body)
    assert isinstance(parsed["error"], str) and parsed["error"]
    assert parsed["status"] == expected_status
    if code is not None:
        assert parsed["code"] == code, parsed


# -- raw HTTP -----------------------------------------------------------------------------------


@dataclass
class RawReply:
    status: int | None  # None: the server closed (or went quiet) without replying
    headers: dict[str, str]
    body: bytes


def raw_exchange(
    port: int, data: bytes, *, half_close: bool = False, timeout: float = 5.0
) -> RawReply:
    """Send ``data`` as is and read until the server closes (requests say Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    if not received:
        return RawReply(None, {}, b"")
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawReply(int(lines[0].split()[1]), headers, body)


def request_bytes(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    content_type: str = "application/json",
    content_length: int | None = None,
) -> bytes:
    length = len(body) if content_length is None else content_length
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    return head.encode("latin-1") + body


BODY = b'{"value": 1}'


# -- names and paths ------------------------------------------------------------------------------

BAD_PATHS = [
    # (request target, status, code)
    ("/memory/bad/..", 400, "invalid_name"),
    ("/memory/bad/.", 400, "invalid_name"),
    ("/memory/bad/%2E%2E", 400, "invalid_name"),
    ("/memory/bad/%2e", 400, "invalid_name"),
    ("/memory/%2e%2e/k", 400, "invalid_name"),
    ("/memory/../memory/bad/k", 404, "route_not_found"),
    ("//memory/bad/k", 404, "route_not_found"),
    ("/memory//k", 404, "route_not_found"),
    ("/memory/bad/", 404, "route_not_found"),
    ("/memory/bad/k/", 404, "route_not_found"),
    ("/memory/bad/a/b", 404, "route_not_found"),  # a raw '/' separates; %2F would not
    ("/memory/bad/k%00", 400, "invalid_name"),
    ("/memory/bad/k%0A", 400, "invalid_name"),
    ("/memory/bad/k%7F", 400, "invalid_name"),
    ("/memory/b%1Bad/k", 400, "invalid_name"),
    ("/memory/bad/k%", 400, "invalid_name"),  # a '%' that starts no escape
    ("/memory/bad/k%4", 400, "invalid_name"),
    ("/memory/bad/k%FF", 400, "invalid_name"),  # not UTF-8 once decoded
    ("/memory/bad/k%C3", 400, "invalid_name"),  # a UTF-8 sequence cut short
    ("/memory/bad/%ED%A0%80", 400, "invalid_name"),  # an encoded surrogate
    ("/memory/bad/%C0%AF", 400, "invalid_name"),  # an overlong '/'
    ("/memory/bad/" + "k" * 1025, 400, "invalid_name"),
    ("/memory/bad/" + "%C3%A9" * 513, 400, "invalid_name"),  # 513 characters, 1026 bytes
    ("/memory/" + "n" * 257 + "/k", 400, "invalid_name"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("target", "status", "code"), BAD_PATHS)
def test_bad_names_and_path_tricks_write_nothing(
    server: ServerProcess, client: httpx.Client, target: str, status: int, code: str
) -> None:
    with nothing_written(client):
        for method in ("PUT", "GET", "DELETE"):
            reply = raw_exchange(server.port, request_bytes(method, target, BODY))
            assert reply.status is not None
            # GET/DELETE of a well-formed but absent key would be 404 key_not_found; every
            # target here is malformed, so every method gets the same answer.
            assert_error(reply.status, reply.body, status, code)


@pytest.mark.e2e
def test_names_at_their_length_limits_are_accepted(client: httpx.Client) -> None:
    for ns, key in (("n" * 256, "k" * 1024), ("é" * 128, "🙂" * 256)):
        path = f"/memory/{quote(ns, safe='')}/{quote(key, safe='')}"
        r = client.put(path, json={"value": "edge"})
        assert r.status_code == 200, r.text
        assert (r.json()["namespace"], r.json()["key"]) == (ns, key)
        assert client.get(path).json()["value"] == "edge"
        assert client.delete(path).json()["deleted"] is True


# Targets that once were path tricks and now are names: each writes exactly its own key.
NAME_PATHS = [
    # (request target, namespace, key)
    (b"/memory/tricks/a%2Fb", "tricks", "a/b"),
    (b"/memory/tricks/k%2F..%2F..%2Fetc", "tricks", "k/../../etc"),
    (b"/memory/tricks/%2E%2E%2F", "tricks", "../"),
    (b"/memory/tricks/%25", "tricks", "%"),
    (b"/memory/tricks/%252F", "tricks", "%2F"),
    (b"/memory/tricks/k%20", "tricks", "k "),
    (b"/memory/tricks/%D0%BAey", "tricks", "\u043aey"),  # Cyrillic "\u043a" for "k"
    (b"/memory/tricks/k%E2%80%8B", "tricks", "k\u200b"),  # a zero-width space after "k"
    (b"/memory/tricks/user:42@host", "tricks", "user:42@host"),
    (b"/memory/tri%2Fcks/k", "tri/cks", "k"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("target", "ns", "key"), NAME_PATHS, ids=range(len(NAME_PATHS)))
def test_encoded_names_are_names(
    server: ServerProcess, client: httpx.Client, target: bytes, ns: str, key: str
) -> None:
    before = client.get("/stats/memory").json()["total_entries"]
    reply = raw_exchange(server.port, request_bytes("PUT", target.decode(), b'{"value": "here"}'))
    assert reply.status == 200, reply.body
    stored = json.loads(reply.body)
    assert (stored["namespace"], stored["key"]) == (ns, key)
    path = f"/memory/{quote(ns, safe='')}/{quote(key, safe='')}"
    assert client.get(path).json()["value"] == "here"
    assert client.get("/stats/memory").json()["total_entries"] == before + 1
    client.delete(path)


# -- bodies and content types -------------------------------------------------------------------

BAD_BODIES = [
    (b'{"value":', 400, "invalid_json"),
    (b"", 400, "invalid_json"),
    (b"NaN", 400, "invalid_json"),
    (b'{"value": NaN}', 400, "invalid_json"),
    (b"\xff\xfe{}", 400, "invalid_json"),
    (b'{"value": 1} trailing', 400, "invalid_json"),
    (b"[1]", 400, "invalid_body"),
    (b"{}", 400, "invalid_body"),
    (b'{"value": 1, "expected_version": -1}', 400, "invalid_body"),
    (b'{"value": 1, "expected_version": "1"}', 400, "invalid_body"),
    (b'{"value": 1e999}', 400, "invalid_body"),
    # Valid JSON, but an integer too long to decode safely (over Python's 4300-digit limit).
    (b'{"value": ' + b"1" * 5000 + b"}", 400, "invalid_body"),
    (b'{"value": ' + b"[" * 101 + b"]" * 101 + b"}", 400, "invalid_body"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
def test_bad_bodies_write_nothing(
    client: httpx.Client, body: bytes, status: int, code: str
) -> None:
    with nothing_written(client):
        r = client.put("/memory/bad/k", content=body, headers={"content-type": "application/json"})
        assert_error(r.status_code, r.text, status, code)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
    ],
)
def test_wrong_content_types_are_415(client: httpx.Client, content_type: str) -> None:
    with nothing_written(client):
        r = client.put("/memory/bad/k", content=BODY, headers={"content-type": content_type})
        assert_error(r.status_code, r.text, 415, "unsupported_media_type")
        r = client.post(
            "/namespaces/bad/rollback", content=b'{"to": 0}', headers={"content-type": content_type}
        )
        assert_error(r.status_code, r.text, 415, "unsupported_media_type")


def string_value_of_size(size: int) -> bytes:
    """A body whose value encodes to exactly ``size`` bytes (a JSON string, quotes included)."""
    return b'{"value": "' + b"x" * (size - 2) + b'"}'


@pytest.mark.e2e
def test_value_at_exactly_the_limit_is_stored_and_one_byte_more_is_413(
    client: httpx.Client,
) -> None:
    headers = {"content-type": "application/json"}
    r = client.put("/memory/bad/exact", content=string_value_of_size(VALUE_MAX), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == VALUE_MAX
    with nothing_written(client):
        r = client.put(
            "/memory/bad/over", content=string_value_of_size(VALUE_MAX + 1), headers=headers
        )
        assert_error(r.status_code, r.text, 413, "value_too_large")
        assert r.json()["limit"] == VALUE_MAX
        # Same for an update of an existing key, and for a number rather than a string.
        r = client.put(
            "/memory/bad/exact", content=string_value_of_size(VALUE_MAX + 1), headers=headers
        )
        assert_error(r.status_code, r.text, 413, "value_too_large")
        r = client.put("/memory/bad/num", content=b'{"value": 1' + b"0" * VALUE_MAX + b"e-1}")
        assert r.status_code in (400, 413), r.text


@pytest.mark.e2e
def test_declared_oversized_body_is_refused_before_it_is_sent(server: ServerProcess) -> None:
    # Only the headers go out: the server must answer from Content-Length alone.
    data = request_bytes("PUT", "/memory/bad/k", b"", content_length=50_000_000)
    reply = raw_exchange(server.port, data)
    assert reply.status is not None
    assert_error(reply.status, reply.body, 413, "value_too_large")


@pytest.mark.e2e
def test_oversized_chunked_body_is_refused(server: ServerProcess, client: httpx.Client) -> None:
    chunks = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(64)) + b"0\r\n\r\n"
    data = (
        b"PUT /memory/bad/k HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )
    with nothing_written(client):
        reply = raw_exchange(server.port, data)
        assert reply.status is not None
        assert_error(reply.status, reply.body, 413, "value_too_large")


@pytest.mark.e2e
def test_truncated_body_then_close_writes_nothing(
    server: ServerProcess, client: httpx.Client
) -> None:
    """Content-Length promises more than is sent, then the client closes: no reply is owed,
    nothing may be written, and the server carries on."""
    with nothing_written(client):
        data = request_bytes("PUT", "/memory/bad/trunc", b'{"value": "abc', content_length=100)
        reply = raw_exchange(server.port, data, half_close=True)
        assert reply.status in (None, 400), reply
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(data)
        time.sleep(0.2)  # let the server notice the closed connection
    assert client.get("/memory/bad/trunc").status_code == 404


@pytest.mark.e2e
def test_body_longer_than_content_length_is_cut_and_refused(
    server: ServerProcess, client: httpx.Client
) -> None:
    with nothing_written(client):
        reply = raw_exchange(
            server.port, request_bytes("PUT", "/memory/bad/k", BODY, content_length=5)
        )
        assert reply.status is not None
        assert_error(reply.status, reply.body, 400, "invalid_json")


# -- query strings ------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "invalid_parameter"),
        ("limit=1001", "invalid_parameter"),
        ("limit=abc", "invalid_parameter"),
        ("limit=1&limit=2000", "invalid_parameter"),
        ("as_of=abc", "invalid_parameter"),
        ("as_of=-1", "invalid_parameter"),
        ("as_of=2026-01-01T00:00:00", "invalid_parameter"),  # no timezone
        ("as_of=" + "9" * 40, "future_revision"),
        ("cursor=zzz", "invalid_cursor"),
        ("prefix=a%00b", "invalid_parameter"),
        ("prefix=" + "a" * 100_000, "invalid_parameter"),
    ],
)
def test_bad_query_parameters_are_400(
    server: ServerProcess, client: httpx.Client, query: str, code: str
) -> None:
    with nothing_written(client):
        # Raw: httpx refuses URLs over 64 KiB, and the server must cope with them anyway.
        reply = raw_exchange(server.port, request_bytes("GET", f"/memory/bad?{query}"))
        assert reply.status is not None
        assert_error(reply.status, reply.body, 400, code)


@pytest.mark.e2e
def test_huge_unknown_query_string_is_ignored(client: httpx.Client) -> None:
    with nothing_written(client):
        r = client.get("/memory/bad", params={"junk": "j" * 60_000})
        assert r.status_code == 200, r.text[:300]


@pytest.mark.e2e
def test_unknown_method_is_405_with_allow(client: httpx.Client) -> None:
    with nothing_written(client):
        r = client.request("PATCH", "/memory/bad/k", json={"value": 1})
        assert_error(r.status_code, r.text, 405, "method_not_allowed")
        assert "PUT" in r.headers["allow"]


# -- connections --------------------------------------------------------------------------------


@pytest.mark.e2e
def test_not_http_at_all_is_refused_and_server_carries_on(
    server: ServerProcess, client: httpx.Client
) -> None:
    """Bytes that are not HTTP never reach the application: the HTTP layer answers 400 (as
    plain text, since no route ran) or closes the connection."""
    with nothing_written(client):
        for garbage in (b"HELLO\r\n\r\n", b"\x00" * 1000, b"PUT\r\n\r\n{}"):
            reply = raw_exchange(server.port, garbage, timeout=2.0)
            assert reply.status in (None, 400), reply


@pytest.mark.e2e
def test_half_closed_after_a_complete_request(server: ServerProcess, client: httpx.Client) -> None:
    """A client that sends a whole request and then shuts its sending side may or may not get
    the reply (the server treats end-of-stream as the client leaving); a read answers when it
    does, and the server carries on either way."""
    with nothing_written(client):
        reply = raw_exchange(
            server.port,
            b"GET /memory/bad HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
            half_close=True,
        )
        assert reply.status in (None, 200), reply


@pytest.mark.e2e
def test_slow_and_idle_connections_do_not_block_others(
    server: ServerProcess, client: httpx.Client
) -> None:
    """200 connections that send half a request and stall, and one that sends a request a
    byte at a time: other clients are served meanwhile, and the slow request completes."""
    stalled = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"PUT /memory/bad/stalled HTTP/1.1\r\nHost: test\r\n")
            stalled.append(sock)
        with nothing_written(client):
            assert client.get("/memory/bad").status_code == 200
        slow = b"GET /namespaces/bad HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            for i in range(len(slow)):
                sock.sendall(slow[i : i + 1])
                if i % 8 == 0:
                    time.sleep(0.02)
                    assert client.get("/healthz").status_code == 200
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply
    finally:
        for sock in stalled:
            sock.close()
    assert client.get("/memory/bad/stalled").status_code == 404


# -- many keys --------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_thousands_of_keys_in_one_namespace(server: ServerProcess) -> None:
    n = 2000
    names = [f"key-{i:05d}" for i in range(n)]
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=32)
    ) as c:
        sem = asyncio.Semaphore(32)

        async def put(name: str) -> int:
            async with sem:
                return (await c.put(f"/memory/many/{name}", json={"value": name})).status_code

        statuses = await asyncio.gather(*(put(name) for name in names))
        assert set(statuses) == {200}
        listed: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = (await c.get("/memory/many", params=params)).json()
            assert page["count"] == len(page["keys"]) <= 1000
            listed += [k["key"] for k in page["keys"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert listed == names
        info = (await c.get("/namespaces/many")).json()
        assert info["keys"] == n and info["revision"] == n
        snapshot: dict[str, Any] = {}
        params = {"limit": 1000}
        while True:
            page = (await c.get("/namespaces/many/snapshot", params=params)).json()
            snapshot.update(page["values"])
            if not page["next_cursor"]:
                break
            params = {"limit": 1000, "cursor": page["next_cursor"], "as_of": page["revision"]}
        assert snapshot == {name: name for name in names}
        prefixed = (await c.get("/memory/many", params={"prefix": "key-012"})).json()
        assert [k["key"] for k in prefixed["keys"]] == names[1200:1300]
