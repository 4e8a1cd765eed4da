"""Two real ``botwire serve`` processes on one PostgreSQL database, driven by client processes.

The first test is the replica promise: compare-and-set increments from six processes spread over
both servers add up exactly, with revisions 1..240. The others take the database away in the
middle of traffic (connections killed by PostgreSQL, then PostgreSQL unreachable altogether)
and check that the servers answer 503 meanwhile, serve again afterwards without a restart, and
lose no acknowledged write.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pg import CuttableProxy, require_postgres, temp_database_sync, terminate_backends
from server_process import ServerProcess, clean_env

from botwire_server.storage.migrations import migration_files

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

NS = "e2e"
# Small pools: the PostgreSQL server is shared, and two pools of 4 are plenty for this load.
SERVER_ENV = {"BOTWIRE_WRITES_PER_DAY": "0", "BOTWIRE_POOL_MIN": "1", "BOTWIRE_POOL_MAX": "4"}

INCREMENTER = textwrap.dedent(
    """
    import json, sys
    from botwire import ConflictError, Memory

    base_url, namespace, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    memory = Memory(namespace, base_url=base_url)
    versions, conflicts = [], 0
    while len(versions) < count:
        item = memory.item("counter")
        value = item.value if item else 0
        try:
            versions.append(
                memory.set("counter", value + 1, expected_version=item.version if item else 0)
            )
        except ConflictError:
            conflicts += 1
    print(json.dumps({"versions": versions, "conflicts": conflicts}))
    """
)

# Writes distinct keys until the stop file appears; reports every write the server
# acknowledged (key, value, version) and every refusal.
WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from botwire import BotWireError, Memory

    base_url, namespace, client, stop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    memory = Memory(namespace, base_url=base_url, retries=0)
    acked, failed, i = [], [], 0
    while not os.path.exists(stop) and i < 5000:
        key, value = f"{client}-{i}", {"client": client, "i": i}
        try:
            acked.append([key, value, memory.set(key, value)])
        except BotWireError as exc:
            failed.append(type(exc).__name__)
            time.sleep(0.02)
        i += 1
    print(json.dumps({"acked": acked, "failed": failed}))
    """
)


@pytest.fixture
def database() -> Iterator[str]:
    require_postgres()
    with temp_database_sync() as url:
        yield url


def start_together(*servers: ServerProcess) -> None:
    """Start servers at the same moment: each migrates the empty database on start, and the
    advisory lock must let exactly one of them do it."""
    with ThreadPoolExecutor(len(servers)) as pool:
        for future in [pool.submit(server.start) for server in servers]:
            future.result()


def close(*servers: ServerProcess) -> None:
    """Stop each server (SIGTERM, then SIGKILL if needed) and release its log file."""
    for server in servers:
        server.__exit__(None, None, None)


def client(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen[str], timeout: float = 120) -> Any:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out)


def query(url: str, sql: str, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def assert_log_intact(database: str, acked: list[tuple[str, Any, int]]) -> None:
    """Revisions gap-free, and every acknowledged write in the log at its acknowledged
    revision with its value."""
    revisions = [
        r["revision"]
        for r in query(
            database, "SELECT revision FROM revisions WHERE namespace = $1 ORDER BY 1", NS
        )
    ]
    assert revisions == list(range(1, len(revisions) + 1))
    events = {
        (r["key"], r["revision"]): json.loads(r["value"])
        for r in query(database, "SELECT key, revision, value FROM events WHERE namespace = $1", NS)
    }
    missing = [(k, v, rev) for k, v, rev in acked if events.get((k, rev)) != v]
    assert missing == []


def test_cas_increments_from_six_processes_over_two_servers(database: str) -> None:
    a = ServerProcess(database, env=SERVER_ENV)
    b = ServerProcess(database, env=SERVER_ENV)
    try:
        start_together(a, b)
        applied = query(database, "SELECT name FROM schema_migrations")
        # Each migration applied exactly once, although both servers started at once.
        assert [r["name"] for r in applied] == [name for name, _ in migration_files("postgres")]

        procs = [client(INCREMENTER, (a, b)[i % 2].url, NS, "40") for i in range(6)]
        outputs = [result(p) for p in procs]

        versions = sorted(v for out in outputs for v in out["versions"])
        assert versions == list(range(1, 241))
        for server in (a, b):
            item = httpx.get(f"{server.url}/memory/{NS}/counter").json()
            assert (item["value"], item["version"]) == (240, 240)
        history = httpx.get(f"{a.url}/memory/{NS}/counter/history", params={"limit": 1000}).json()
        events = history["events"]
        assert [e["revision"] for e in events] == list(range(240, 0, -1))
        assert [e["value"] for e in events] == list(range(240, 0, -1))
        assert history["next_cursor"] is None
        assert httpx.get(f"{b.url}/namespaces/{NS}").json()["revision"] == 240
    finally:
        close(a, b)


def run_writers(servers: list[ServerProcess], tmp_path: Path, disturb: Any) -> list[Any]:
    """Four writer processes over the servers; ``disturb()`` runs in the middle of their
    traffic. Returns each writer's report."""
    stop = tmp_path / "stop"
    procs = [
        client(WRITER, servers[i % len(servers)].url, NS, f"c{i}", str(stop)) for i in range(4)
    ]
    try:
        wait_for_writes(servers[0], 40)
        disturb()
        written = head(servers[0])
        wait_for_writes(servers[0], written + 40)  # traffic flows again, on both servers
    finally:
        stop.touch()
    return [result(p) for p in procs]


def head(server: ServerProcess) -> int:
    return int(httpx.get(f"{server.url}/namespaces/{NS}", timeout=5).json()["revision"])


def wait_for_writes(server: ServerProcess, revision: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if head(server) >= revision:
                return
        except (httpx.HTTPError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"the namespace did not reach revision {revision}")


def test_servers_survive_connection_kills_mid_traffic(database: str, tmp_path: Path) -> None:
    servers = [ServerProcess(database, env=SERVER_ENV) for _ in range(2)]
    pids = []
    try:
        start_together(*servers)
        pids = [s.proc.pid for s in servers if s.proc]

        def kill_connections() -> None:
            killed = 0
            for _ in range(10):
                killed += asyncio.run(terminate_backends(database))
                time.sleep(0.05)
            assert killed > 0

        reports = run_writers(servers, tmp_path, kill_connections)
        acked = [(k, v, rev) for r in reports for k, v, rev in r["acked"]]
        assert len(acked) > 80
        assert_log_intact(database, acked)
        for server in servers:
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        # The same processes: they recovered by themselves.
        assert [s.proc.pid for s in servers if s.proc] == pids
    finally:
        close(*servers)


def test_servers_answer_503_while_postgresql_is_down_then_recover(
    database: str, tmp_path: Path
) -> None:
    proxy = CuttableProxy().start()
    servers = [ServerProcess(proxy.url(database), env=SERVER_ENV) for _ in range(2)]
    outage: dict[str, Any] = {}
    try:
        start_together(*servers)
        pids = [s.proc.pid for s in servers if s.proc]

        def take_postgresql_away() -> None:
            proxy.cut()
            try:
                outage["health"] = [
                    httpx.get(f"{s.url}/healthz", timeout=30).status_code for s in servers
                ]
                put = httpx.put(f"{servers[0].url}/memory/{NS}/during", json={"value": 1})
                outage["put"] = (put.status_code, put.json())
                time.sleep(1.0)  # writers keep hitting the servers meanwhile
            finally:
                proxy.restore()

        reports = run_writers(servers, tmp_path, take_postgresql_away)

        assert outage["health"] == [503, 503]
        status, body = outage["put"]
        assert status == 503
        assert body["code"] == "database_unavailable"
        assert "PostgreSQL is unreachable" in body["error"]
        failed = [name for r in reports for name in r["failed"]]
        assert failed and set(failed) == {"ServerUnavailable"}

        acked = [(k, v, rev) for r in reports for k, v, rev in r["acked"]]
        assert_log_intact(database, acked)
        for server in servers:
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert [s.proc.pid for s in servers if s.proc] == pids
        assert httpx.get(f"{servers[1].url}/memory/{NS}/during").status_code == 404
    finally:
        close(*servers)
        proxy.stop()
