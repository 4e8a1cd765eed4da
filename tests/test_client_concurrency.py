"""Several client processes writing one key at once, against a real server: compare-and-set
increments and chat-history appends lose nothing. Half the writers use the sync API, half the
async one."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator

import pytest
from client_support import PYTHON, fresh_namespace, serve, subprocess_env
from server_process import ServerProcess

from botwire import BotWireChatHistory, Memory

pytestmark = pytest.mark.e2e

PROCESSES = 6
EACH = 40

INCREMENT = textwrap.dedent(
    """
    import asyncio, sys
    from botwire import ConflictError, Memory

    namespace, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    memory = Memory(namespace)

    def increment():
        while True:
            item = memory.item("counter")
            current, version = (0, 0) if item is None else (item.value, item.version)
            try:
                return memory.set("counter", current + 1, expected_version=version)
            except ConflictError:
                continue

    async def aincrement():
        while True:
            item = await memory.aitem("counter")
            current, version = (0, 0) if item is None else (item.value, item.version)
            try:
                return await memory.aset("counter", current + 1, expected_version=version)
            except ConflictError:
                continue

    async def amain():
        for _ in range(count):
            await aincrement()

    if mode == "sync":
        for _ in range(count):
            increment()
    else:
        asyncio.run(amain())
    """
)

APPEND = textwrap.dedent(
    """
    import asyncio, sys
    from langchain_core.messages import AIMessage, HumanMessage
    from botwire import BotWireChatHistory

    namespace, mode, writer, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    history = BotWireChatHistory("shared-session", namespace)

    def message(i):
        cls = HumanMessage if i % 2 == 0 else AIMessage
        return cls(f"{writer}:{i}")

    async def amain():
        for i in range(count):
            await history.aadd_messages([message(i)])

    if mode == "sync":
        for i in range(count):
            history.add_message(message(i))
    else:
        asyncio.run(amain())
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


def _run_all(commands: list[list[str]], url: str) -> None:
    procs = [
        subprocess.Popen(
            cmd, env=subprocess_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for cmd in commands
    ]
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(err.decode(errors="replace"))
    assert failures == []


def test_cas_increments_from_six_processes_lose_nothing(server: ServerProcess) -> None:
    namespace = fresh_namespace("cas")
    modes = ["sync", "async"] * (PROCESSES // 2)
    _run_all([[PYTHON, "-c", INCREMENT, namespace, mode, str(EACH)] for mode in modes], server.url)
    memory = Memory(namespace, server.url)
    assert memory.get("counter") == PROCESSES * EACH
    # Every intermediate value was written exactly once, in order: no increment was lost.
    events = memory.history("counter", limit=None)
    assert [e.value for e in reversed(events)] == list(range(1, PROCESSES * EACH + 1))
    memory.close()


def test_chat_appends_from_six_processes_keep_every_message_in_writer_order(
    server: ServerProcess,
) -> None:
    namespace = fresh_namespace("chat")
    modes = ["sync", "async"] * (PROCESSES // 2)
    _run_all(
        [
            [PYTHON, "-c", APPEND, namespace, mode, f"w{n}", str(EACH)]
            for n, mode in enumerate(modes)
        ],
        server.url,
    )
    history = BotWireChatHistory("shared-session", namespace, base_url=server.url)
    contents = [str(m.content) for m in history.messages]
    assert len(contents) == PROCESSES * EACH
    for n in range(PROCESSES):
        mine = [c for c in contents if c.startswith(f"w{n}:")]
        assert mine == [f"w{n}:{i}" for i in range(EACH)]
    history.memory.close()
