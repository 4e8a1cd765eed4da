"""A server that is safe to expose, checked against real ``botwire serve`` processes on
127.0.0.1: deadlines for a request's head and body, a bound on the size of a head, a connection
cap that keeps serving real clients while stalled ones hang, and flat memory under huge heads.

Short deadlines (1 s) keep the tests quick; every socket is closed, every server stopped.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, clean_env, free_port

from botwire_server.cli import exposed_without_auth
from botwire_server.settings import Settings

pytestmark = pytest.mark.e2e

GUARDS = {
    "BOTWIRE_HEADER_TIMEOUT": "1",
    "BOTWIRE_BODY_TIMEOUT": "1",
    "BOTWIRE_MAX_HEADER_BYTES": "8192",
}


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'botwire.db'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(db_url(tmp_path_factory.mktemp("guards")), env=GUARDS) as running:
        yield running


@dataclass
class Reply:
    status: int | None  # None: closed without a reply
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the last byte sent until the server closed

    def json(self) -> object:
        return json.loads(self.body)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_until_closed(sock: socket.socket) -> Reply:
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    seconds = time.monotonic() - started
    if not received:
        return Reply(None, {}, b"", seconds)
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body, seconds)


def exchange(port: int, data: bytes) -> Reply:
    with connect(port) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def error(status: int, code: str, message: str) -> dict[str, object]:
    return {"error": message, "code": code, "status": status}


# -- deadlines ----------------------------------------------------------------------------------


def test_half_a_request_head_gets_408_after_the_header_timeout(server: ServerProcess) -> None:
    reply = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
    assert reply.status == 408
    assert reply.json() == error(
        408,
        "request_timeout",
        "The request head did not arrive whole within 1 second (BOTWIRE_HEADER_TIMEOUT).",
    )
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["connection"] == "close"
    assert 0.7 < reply.seconds < 4


def test_a_connection_that_sends_nothing_is_closed_without_a_reply(
    server: ServerProcess,
) -> None:
    with connect(server.port) as sock:
        reply = read_until_closed(sock)
    assert reply.status is None and 0.7 < reply.seconds < 4


def test_a_head_sent_slowly_but_within_the_timeout_is_served(server: ServerProcess) -> None:
    with connect(server.port) as sock:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: test\r\n", b"Connection: close\r\n"):
            sock.sendall(part)
            time.sleep(0.2)
        sock.sendall(b"\r\n")
        reply = read_until_closed(sock)
    assert reply.status == 200, reply


def test_an_idle_keep_alive_connection_outlives_the_header_timeout(server: ServerProcess) -> None:
    """Between requests uvicorn's keep-alive timeout (30 s) applies, not the head deadline."""
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code == 200
        time.sleep(1.5)
        assert client.get("/healthz").status_code == 200
        # The same connection served both: a closed one would have shown a second handshake.
        assert client.get("/healthz", headers={"Connection": "close"}).status_code == 200


def test_a_partial_body_gets_408_after_the_body_timeout(server: ServerProcess) -> None:
    head = (
        b"PUT /memory/guards/k HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    reply = exchange(server.port, head + b'{"value": ')
    assert reply.status == 408
    assert reply.json() == error(
        408,
        "request_timeout",
        "The request body did not arrive whole within 1 second of its head (BOTWIRE_BODY_TIMEOUT).",
    )
    assert 0.7 < reply.seconds < 4
    assert httpx.get(f"{server.url}/memory/guards/k").status_code == 404  # nothing written


def test_a_body_sent_slowly_but_within_the_timeout_is_stored(server: ServerProcess) -> None:
    body = b'{"value": "slow"}'
    head = (
        b"PUT /memory/guards/slow HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with connect(server.port) as sock:
        sock.sendall(head + body[:5])
        time.sleep(0.5)
        sock.sendall(body[5:])
        reply = read_until_closed(sock)
    assert reply.status == 200, reply
    assert httpx.get(f"{server.url}/memory/guards/slow").json()["value"] == "slow"


# -- head size ----------------------------------------------------------------------------------


def test_a_100_kb_header_gets_431_json(server: ServerProcess) -> None:
    reply = exchange(
        server.port,
        b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    )
    assert reply.status == 431
    body = reply.json()
    assert isinstance(body, dict)
    assert (body["code"], body["status"]) == ("headers_too_large", 431)
    # "more than 8192" when refused while the head streams in, its size when it came at once.
    assert re.fullmatch(
        r"The request head \(request line and headers\) is (more than 8192|1000\d\d) bytes; "
        r"the largest accepted is 8192 bytes \(BOTWIRE_MAX_HEADER_BYTES\)\.",
        body["error"],
    ), body
    assert reply.headers["connection"] == "close"


@pytest.mark.parametrize(("size", "status"), [(7000, 200), (9000, 431)])
def test_the_head_limit_counts_the_whole_head(
    server: ServerProcess, size: int, status: int
) -> None:
    """A head that arrives at once is measured exactly, whatever else came with it."""
    head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Pad: "
    reply = exchange(server.port, head + b"p" * (size - len(head)) + b"\r\n\r\n")
    assert reply.status == status, reply.body[:300]
    if status == 431:
        assert json.loads(reply.body)["code"] == "headers_too_large"


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_while_10_connections_push_20_mb_headers(
    server: ServerProcess,
) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    before = vm_rss_kib(pid)
    peak = [before]
    done = threading.Event()

    def push() -> None:
        try:
            with connect(server.port) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Huge: ")
                chunk = b"h" * 1_000_000
                for _ in range(20):
                    sock.sendall(chunk)
        except OSError:
            pass  # the server refused and closed: what it should do

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], vm_rss_kib(pid))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    pushers = [threading.Thread(target=push) for _ in range(10)]
    for thread in pushers:
        thread.start()
    for thread in pushers:
        thread.join(30)
    done.set()
    watcher.join()
    assert peak[0] - before < 8 * 1024, f"grew by {peak[0] - before} KiB"
    assert httpx.get(f"{server.url}/healthz").status_code == 200


# -- connection cap -----------------------------------------------------------------------------


def healthz_status(url: str) -> tuple[int, httpx.Response]:
    r = httpx.get(f"{url}/healthz", timeout=5)
    return r.status_code, r


def test_stalled_connections_do_not_keep_a_new_client_out(tmp_path: Path) -> None:
    env = {"BOTWIRE_HEADER_TIMEOUT": "2", "BOTWIRE_MAX_CONNECTIONS": "20"}
    with ServerProcess(db_url(tmp_path), env=env) as server, ExitStack() as stack:
        assert "Serving at most 20 connections at once" in server.output()
        for _ in range(50):
            sock = stack.enter_context(connect(server.port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: stalled\r\n")
        started = time.monotonic()
        statuses = []
        while True:
            status, r = healthz_status(server.url)
            statuses.append(status)
            if status == 200:
                break
            assert status == 503 and r.json()["code"] == "too_many_connections", r.text
            assert time.monotonic() - started < 2 + 3, statuses
            time.sleep(0.2)
        assert time.monotonic() - started < 2 + 3


def test_at_the_cap_with_every_connection_busy_a_new_client_gets_503(tmp_path: Path) -> None:
    env = {"BOTWIRE_BODY_TIMEOUT": "2", "BOTWIRE_MAX_CONNECTIONS": "5"}
    head = b"PUT /memory/cap/k HTTP/1.1\r\nHost: busy\r\nContent-Length: 50\r\n\r\n{"
    with ServerProcess(db_url(tmp_path), env=env) as server, ExitStack() as stack:
        for _ in range(5):  # each waits for the rest of its body: a request in progress
            stack.enter_context(connect(server.port)).sendall(head)
        time.sleep(0.3)
        status, r = healthz_status(server.url)
        assert status == 503
        assert r.json() == error(
            503,
            "too_many_connections",
            "The server is serving its limit of 5 connections; retry after 1 second.",
        )
        assert r.headers["retry-after"] == "1"
        assert r.headers["connection"] == "close"
        time.sleep(2.5)  # the body timeout frees them
        assert healthz_status(server.url)[0] == 200


# -- conditional writes -------------------------------------------------------------------------


def test_a_weak_etag_in_if_match_is_refused(server: ServerProcess) -> None:
    url = f"{server.url}/memory/guards/etag"
    version = httpx.put(url, json={"value": 1}).json()["version"]
    r = httpx.put(url, json={"value": 2}, headers={"If-Match": f'W/"{version}"'})
    assert r.status_code == 400
    assert r.json() == error(
        400, "invalid_parameter", f'If-Match needs a strong ETag ("{version}"), not W/"{version}".'
    )
    assert httpx.get(url).json()["value"] == 1
    r = httpx.put(url, json={"value": 2}, headers={"If-Match": f'"{version}"'})
    assert r.status_code == 200, r.text


# -- refusing to start exposed without authentication -------------------------------------------

BOTWIRE = str(Path(sys.executable).parent / "botwire")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"]
)
def test_loopback_hosts_need_no_auth(host: str) -> None:
    assert exposed_without_auth(Settings(host=host)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "botwire.internal"])
def test_other_hosts_need_auth_off_or_a_token(host: str) -> None:
    for refused in (Settings(host=host), Settings(host=host, auth="tokens")):
        message = exposed_without_auth(refused)
        assert message is not None
        assert message.startswith(f"refusing to serve on {host} without authentication")
        assert "BOTWIRE_AUTH=off" in message and "BOTWIRE_ADMIN_TOKEN" in message
    assert exposed_without_auth(Settings(host=host, auth="off")) is None
    assert exposed_without_auth(Settings(host=host, auth="tokens", admin_token="bw_a_b")) is None
    assert exposed_without_auth(Settings(host=host), has_tokens=True) is None


def test_serve_on_every_interface_without_auth_exits_2(tmp_path: Path) -> None:
    db = tmp_path / "exposed.db"
    port = str(free_port())
    done = subprocess.run(
        [BOTWIRE, "serve", "--host", "0.0.0.0", "--port", port, "--db", str(db)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("botwire: refusing to serve on 0.0.0.0 without authentication"), (
        done.stderr
    )
    assert "BOTWIRE_AUTH=off" in done.stderr and "BOTWIRE_ADMIN_TOKEN" in done.stderr
    # Refused after migrating (the file exists): only the database can tell whether a token
    # exists to call the server with.


def test_serve_on_every_interface_with_auth_off_starts_with_a_warning(tmp_path: Path) -> None:
    process = ServerProcess(
        db_url(tmp_path), env={"BOTWIRE_AUTH": "off"}, args=["--host", "0.0.0.0"]
    )
    with process as server:  # ServerProcess talks to it on 127.0.0.1
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert "serving on 0.0.0.0 with BOTWIRE_AUTH=off" in server.output()


def test_tokens_on_loopback_need_a_token_to_call_it_with(tmp_path: Path) -> None:
    """BOTWIRE_AUTH=tokens asked for on loopback: refused while no usable token exists (nobody
    could call the server), served once `botwire token create --db` has made one."""
    db = f"sqlite:///{tmp_path / 'tokens.db'}"
    env = {**clean_env(), "BOTWIRE_AUTH": "tokens"}
    argv = [BOTWIRE, "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--db", db]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        "botwire: refusing to serve on 127.0.0.1 with BOTWIRE_AUTH=tokens: no token exists"
    ), done.stderr
    made = subprocess.run(
        [BOTWIRE, "token", "create", "--db", db, "--name", "ops", "--grant", "*:read"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    token = made.stdout.split()[0]
    with ServerProcess(db, env={"BOTWIRE_AUTH": "tokens"}) as server:
        assert httpx.get(f"{server.url}/memory/ns/k").status_code == 401
        r = httpx.get(f"{server.url}/memory/ns/k", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404, r.text
