"""Connections against a real server: keep-alive reuse, one sync client shared by threads, and
the serverless pattern (a module-level Memory used by one ``asyncio.run`` per invocation)."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from client_support import PYTHON, fresh_namespace, serve, subprocess_env
from server_process import ServerProcess

from botwire import Memory

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


def _pool_size(client: Any) -> int:
    return len(client._transport._pool.connections)


def test_sync_requests_reuse_one_connection(server: ServerProcess) -> None:
    with Memory(fresh_namespace(), server.url) as memory:
        for i in range(20):
            memory.set(f"k{i}", i)
            assert memory.get(f"k{i}") == i
        assert memory._client is not None and _pool_size(memory._client) == 1
    assert memory._client is None


def test_one_sync_memory_shared_by_threads(server: ServerProcess) -> None:
    memory = Memory(fresh_namespace(), server.url)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                memory.set(f"t{n}-{i}", [n, i])
                assert memory.get(f"t{n}-{i}") == [n, i]
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(memory.list_keys()) == 200 and memory.head() == 200
    assert memory._client is not None and _pool_size(memory._client) <= 8
    memory.close()


def test_module_level_async_memory_across_many_event_loops(server: ServerProcess) -> None:
    memory = Memory(fresh_namespace(), server.url)

    async def handler(n: int) -> int:
        count = await memory.aget("count", 0)
        await memory.aset("count", count + 1, expected_version=n)
        assert len(memory._loops) == 1
        return int(await memory.aget("count"))

    for n in range(15):
        assert asyncio.run(handler(n)) == n + 1
        # The loop's shutdown closed its client: nothing is left bound to a dead loop.
        assert memory._loops == {}
    gc.collect()
    assert memory.get("count") == 15


def test_concurrent_loops_in_threads_each_get_their_own_client(server: ServerProcess) -> None:
    memory = Memory(fresh_namespace(), server.url)
    results: list[int] = []

    async def run(n: int) -> None:
        await asyncio.gather(*(memory.aset(f"k{n}-{i}", i) for i in range(10)))
        results.append(len(await memory.alist_keys(f"k{n}-")))

    threads = [threading.Thread(target=asyncio.run, args=(run(n),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [10, 10, 10, 10]
    assert memory._loops == {}


async def test_async_context_manager_closes_the_loops_client(server: ServerProcess) -> None:
    async with Memory(fresh_namespace(), server.url) as memory:
        await memory.aset("k", "v")
        client = memory._loops[asyncio.get_running_loop()].client
        assert await memory.aget("k") == "v"
    assert client.is_closed and memory._loops == {}


def test_serverless_pattern_in_a_fresh_process_leaves_no_warnings(server: ServerProcess) -> None:
    script = textwrap.dedent(
        """
        import asyncio, gc
        from botwire import Memory

        memory = Memory("serverless")          # module level, BOTWIRE_URL from the env

        async def invocation(n):
            await memory.aset(f"k{n}", n)
            return await memory.aget(f"k{n}")

        for n in range(10):
            assert asyncio.run(invocation(n)) == n
        gc.collect()
        print(sorted(memory.list_keys()) == sorted(f"k{n}" for n in range(10)))
        """
    )
    done = subprocess.run(
        [PYTHON, "-X", "dev", "-W", "error", "-c", script],
        env=subprocess_env(server.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert "Warning" not in done.stderr, done.stderr


def test_writes_after_a_server_restart_reuse_nothing_stale(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for server in serve(tmp_path_factory):
        memory = Memory(fresh_namespace(), server.url)

        with asyncio.Runner() as runner:
            for value in range(3):
                assert memory.set("k", value) == 2 * value + 1
                assert runner.run(memory.aset("k", value)) == 2 * value + 2
                # Both pools now hold a keep-alive connection the restart will cut.
                server.restart()
        assert memory.get("k") == 2
        memory.close()


def test_reads_ride_out_a_server_that_is_briefly_down(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for server in serve(tmp_path_factory):
        memory = Memory(fresh_namespace(), server.url, retries=10)
        memory.set("k", "kept")
        server.stop()
        restarter = threading.Timer(0.3, server.start)
        restarter.start()
        try:
            assert memory.get("k") == "kept"  # connection refused, retried until it is back
        finally:
            restarter.join()
        memory.close()
