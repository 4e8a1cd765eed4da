"""PostgreSQL for tests: a throw-away database per test run, on the server at 127.0.0.1:5432.

With ``CI=true`` an unreachable server fails the tests that need it; otherwise they are skipped
with the reason shown by ``-ra``. Tests never share a database with anything else: each run
creates ``botwire_test_<pid>_<random>`` and drops it afterwards (``WITH (FORCE)``, so a server
process that is still connected cannot keep it alive).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

# Read at import, before the autouse fixture clears BOTWIRE_* variables.
ADMIN_URL = os.environ.get(
    "BOTWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

TABLES = ("namespaces", "revisions", "events", "current", "tokens", "token_usage")


def url_for(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


async def _admin() -> Any:
    return await asyncpg.connect(ADMIN_URL, timeout=5)


_unreachable: str | None = None
_checked = False


def require_postgres() -> None:
    """Skip (or under CI, fail) the calling test when PostgreSQL does not answer."""
    global _unreachable, _checked
    if not _checked:
        _checked = True

        # A plain TCP probe: callable inside or outside an event loop. Anything past
        # "something listens" (auth, a missing role) then fails the test loudly.
        parts = urlsplit(ADMIN_URL)
        address = (parts.hostname or "127.0.0.1", parts.port or 5432)
        try:
            socket.create_connection(address, timeout=3).close()
        except OSError as exc:
            _unreachable = f"PostgreSQL at {address[0]}:{address[1]} is unreachable: {exc}"
    if _unreachable is not None:
        if IN_CI:
            pytest.fail(f"{_unreachable} (CI=true: PostgreSQL tests must run)")
        pytest.skip(_unreachable)


async def create_database() -> str:
    """Create an empty database with a unique name; return its URL."""
    name = f"botwire_test_{os.getpid()}_{secrets.token_hex(4)}"
    conn = await _admin()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url_for(name)


async def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    conn = await _admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def temp_database() -> AsyncIterator[str]:
    """An empty database for the duration of the block (async tests)."""
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@contextmanager
def temp_database_sync() -> Iterator[str]:
    """An empty database for the duration of the block (sync fixtures, outside any loop)."""
    url = asyncio.run(create_database())
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


async def truncate(url: str) -> None:
    """Empty every table of the store (between tests sharing one migrated database)."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    finally:
        await conn.close()


async def backend_pids(url: str, *, application_name: str = "botwire") -> list[int]:
    """Process ids of the PostgreSQL backends connected to ``url``'s database by the store."""
    name = url.rpartition("/")[2]
    conn = await _admin()
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            name,
            application_name,
        )
        return [r["pid"] for r in rows]
    finally:
        await conn.close()


async def terminate_backends(url: str, *, application_name: str = "botwire") -> int:
    """Cut every connection the store holds to ``url``'s database (as a PostgreSQL restart
    would, without disturbing other databases on the shared server). Returns how many."""
    name = url.rpartition("/")[2]
    conn = await _admin()
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()",
            name,
            application_name,
        )
        return sum(1 for r in rows if r[0])
    finally:
        await conn.close()


_shared: str | None = None


async def shared_database() -> str:
    """A migrated database shared by this test process, emptied on every call; dropped when
    the process exits. Creating a database costs ~0.3 s, emptying four tables a few ms, so the
    conformance and model tests, which open a store per test or per example, use this."""
    global _shared
    require_postgres()
    if _shared is None:
        from botwire_server.storage.postgres import PostgresStore

        url = await create_database()
        atexit.register(lambda: asyncio.run(drop_database(url)))
        await PostgresStore(url).migrate()
        _shared = url
    else:
        await truncate(_shared)
    return _shared


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One migrated database for the whole test run; tests truncate it before use."""
    require_postgres()
    from botwire_server.storage.postgres import PostgresStore

    with temp_database_sync() as url:
        asyncio.run(PostgresStore(url).migrate())
        yield url


class CuttableProxy:
    """A TCP proxy in front of PostgreSQL that a test can cut: ``cut()`` drops every connection
    and refuses new ones (what servers see while PostgreSQL restarts or the network is down),
    ``restore()`` listens again on the same port. It runs its own event loop in a thread, so
    both async tests and tests driving server processes can use it."""

    def __init__(self, target: str = ADMIN_URL) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    def url(self, database_url: str) -> str:
        """``database_url`` (a database on the target) reached through this proxy."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database_url.rpartition('/')[2]}"

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, up_writer.transport}
        self._transports |= pair

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._transports -= pair

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()

    def start(self) -> CuttableProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        self._call(self._cut())
        self._call(asyncio.sleep(0.1))  # let the aborted pipes finish before the loop stops
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
