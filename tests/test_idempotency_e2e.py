"""Exactly-once writes end to end (PRODUCT.md section 9): real ``botwire serve`` processes, the
real client, and a proxy that cuts connections after the server answered, that is after it
committed, before the reply reaches the client. The client retries each write with the same
``Idempotency-Key``; every write must be applied exactly once and revisions stay gap-free, on
SQLite and on two servers over one PostgreSQL database. A crash test SIGKILLs the server while
idempotent writes are in flight: after the restart every retry returns the original outcome.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pg import require_postgres, temp_database_sync
from server_process import ServerProcess, free_port

from botwire import Memory

ENV = {"BOTWIRE_WRITES_PER_DAY": "0", "BOTWIRE_POOL_MIN": "1", "BOTWIRE_POOL_MAX": "4"}


class CuttingProxy:
    """A TCP proxy in front of one or more servers (each new connection goes to one at
    random). With probability ``cut``, a chunk the server sends back (a response: the write is
    committed by then) is dropped and both connections are closed, so the client sees its
    connection lost without a reply. Runs its own event loop in a thread."""

    def __init__(self, upstreams: list[int], *, cut: float, seed: int = 7) -> None:
        self.upstreams = upstreams
        self.cut = cut
        self.random = random.Random(seed)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cuts = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await self._stop.wait()
        # Let the handlers of connections still open see them close.
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = self.random.choice(self.upstreams)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return

        async def client_to_server() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                if self.random.random() < self.cut:
                    self.cuts += 1
                    return  # committed, never told: the connection goes down here
                writer.write(data)
                await writer.drain()

        tasks = [
            asyncio.ensure_future(client_to_server()),
            asyncio.ensure_future(server_to_client()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, ConnectionError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (writer, up_writer):
                w.close()
            for w in (writer, up_writer):
                try:
                    await w.wait_closed()
                except (OSError, ConnectionError):
                    pass


def run_writes(url: str, ns: str, n: int, workers: int) -> dict[int, int]:
    """``n`` unconditional sets of distinct keys, each with its own idempotency key, from
    ``workers`` threads; returns each write's reported version."""
    memory = Memory(ns, url, retries=60)
    memory.retry = type(memory.retry)(retries=60, backoff=0.02, max_backoff=0.5)
    try:

        def write(i: int) -> tuple[int, int]:
            return i, memory.set(f"k{i}", {"i": i}, idempotency_key=f"write-{i}")

        with ThreadPoolExecutor(workers) as pool:
            return dict(pool.map(write, range(n)))
    finally:
        memory.close()


def check_exactly_once(url: str, ns: str, versions: dict[int, int], n: int) -> None:
    with Memory(ns, url) as m:
        events = list(m.changes())
        assert m.head() == n
    # One event per write, revisions 1..n without a gap, each write's version its event's.
    assert [e.revision for e in events] == list(range(1, n + 1))
    by_key = {e.key: e for e in events}
    assert len(by_key) == n
    for i, version in versions.items():
        event = by_key[f"k{i}"]
        assert (event.revision, event.value) == (version, {"i": i})


@pytest.mark.slow
def test_cut_replies_sqlite(tmp_path: Path) -> None:
    n = 1000
    with ServerProcess(f"sqlite:///{tmp_path / 'b.db'}", env=ENV) as server:
        with CuttingProxy([server.port], cut=0.3) as proxy:
            versions = run_writes(proxy.url, "once", n, workers=16)
            assert proxy.cuts > 100  # the retries really happened
        check_exactly_once(server.url, "once", versions, n)


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_postgres()
    with temp_database_sync() as url:
        yield url


@pytest.mark.slow
def test_cut_replies_two_servers_on_postgres(pg_url: str) -> None:
    n = 1000
    with ServerProcess(pg_url, env=ENV) as a, ServerProcess(pg_url, env=ENV) as b:
        with CuttingProxy([a.port, b.port], cut=0.3) as proxy:
            versions = run_writes(proxy.url, "once", n, workers=16)
            assert proxy.cuts > 100
        check_exactly_once(b.url, "once", versions, n)


def test_cut_replies_small(tmp_path: Path) -> None:
    """The same as the slow tests, 60 writes (``make test``)."""
    n = 60
    with ServerProcess(f"sqlite:///{tmp_path / 'b.db'}", env=ENV) as server:
        with CuttingProxy([server.port], cut=0.4) as proxy:
            versions = run_writes(proxy.url, "once", n, workers=8)
            assert proxy.cuts > 5
        check_exactly_once(server.url, "once", versions, n)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_while_idempotent_writes_are_in_flight(backend: str, tmp_path: Path) -> None:
    if backend == "postgres":
        require_postgres()
        db_context = temp_database_sync()
        db = db_context.__enter__()
    else:
        db_context = None
        db = f"sqlite:///{tmp_path / 'c.db'}"
    try:
        with ServerProcess(db, env=ENV) as server:
            _kill_during_writes(server)
    finally:
        if db_context is not None:
            db_context.__exit__(None, None, None)


def _kill_during_writes(server: ServerProcess) -> None:
    n = 400
    results: dict[int, int] = {}
    killed = threading.Event()

    def killer() -> None:
        # Kill once about a third of the writes were acknowledged, then restart on the
        # same port: the writes in flight meet a dead server and retry.
        while len(results) < n // 3:
            threading.Event().wait(0.005)
        server.kill()
        killed.set()
        server.start()

    memory = Memory("crash", server.url)
    memory.retry = type(memory.retry)(retries=200, backoff=0.02, max_backoff=0.25)

    def write(i: int) -> None:
        results[i] = memory.set(f"k{i}", {"i": i}, idempotency_key=f"w{i}")

    thread = threading.Thread(target=killer)
    thread.start()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(n)))
    thread.join()
    assert killed.is_set()
    # Every retry of an acknowledged or in-flight write now returns its original outcome.
    for i in range(n):
        assert memory.set(f"k{i}", {"i": i}, idempotency_key=f"w{i}") == results[i]
    memory.close()
    check_exactly_once(server.url, "crash", dict(results), n)
    with httpx.Client() as c:
        r = c.put(
            f"{server.url}/memory/crash/k0",
            json={"value": 1},
            headers={"Idempotency-Key": "w0"},
        )
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
