"""``BotWireByteStore`` against a real server: the LangChain ``BaseStore[str, bytes]`` API sync
and async, any string as a key, few requests; and (slow) langchain-tests' standard suites, run
in ``.cache/langchain-tests-venv`` because langchain-tests brings pytest plugins of its own."""

from __future__ import annotations

import asyncio
import fcntl
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from client_support import ROOT, fresh_namespace, serve, subprocess_env
from server_process import ServerProcess

from botwire.langchain import BotWireByteStore

pytestmark = pytest.mark.e2e

VENV = ROOT / ".cache" / "langchain-tests-venv"
LANGCHAIN_TESTS = "langchain-tests==1.1.9"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


def test_sync_and_async_api_with_any_key(server: ServerProcess) -> None:
    store = BotWireByteStore(fresh_namespace("bytes"), server.url)
    keys = ["a", "", ".", "..", "50%", "tab\tkey", "dir/file", ".env", "é"]
    store.mset([(k, k.encode() + b"\x00\xff") for k in keys])
    assert store.mget([*keys, "absent"]) == [k.encode() + b"\x00\xff" for k in keys] + [None]
    assert sorted(store.yield_keys()) == sorted(keys)
    assert sorted(store.yield_keys(prefix=".")) == [".", "..", ".env"]
    assert sorted(store.yield_keys(prefix="d")) == ["dir/file"]
    store.mdelete(["a", "", "absent"])
    assert store.mget(["a", "", "."]) == [None, None, b".\x00\xff"]

    async def twins() -> None:
        await store.amset([("x", b"1"), ("y", b"2"), ("x", b"3")])  # the last value wins
        assert await store.amget(["x", "y"]) == [b"3", b"2"]
        await store.amdelete(["x", "nope"])
        assert [k async for k in store.ayield_keys(prefix="y")] == ["y"]
        await store.memory.aclose()

    asyncio.run(twins())
    with pytest.raises(TypeError, match="stores bytes, not str"):
        store.mset([("k", "text")])  # type: ignore[list-item]


def test_one_request_per_call(server: ServerProcess) -> None:
    store = BotWireByteStore(fresh_namespace("bytes"), server.url)
    sent: list[str] = []
    original = store.memory._send

    def counting(client: Any, request: Any) -> Any:
        sent.append(request.method)
        return original(client, request)

    store.memory._send = counting  # type: ignore[method-assign]
    store.mset([(f"k{i}", b"v") for i in range(500)])
    store.mget([f"k{i}" for i in range(500)])
    assert sent == ["POST", "POST"]


def langchain_tests_python() -> str:
    """The Python of ``.cache/langchain-tests-venv`` (built on first use)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".botwire-installed"
    VENV.parent.mkdir(exist_ok=True)
    with open(ROOT / ".cache" / "langchain-tests-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            pip = [str(python), "-m", "pip", "install", "--quiet"]
            subprocess.run(
                [*pip, LANGCHAIN_TESTS, "langchain-core==1.8.3", "httpx", "msgspec"],
                check=True,
                timeout=1200,
            )
            subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True, timeout=600)
            stamp.touch()
    return str(python)


@pytest.mark.slow
def test_langchain_standard_suites_pass(server: ServerProcess) -> None:
    python = langchain_tests_python()
    suite = ROOT / "tests" / "standard"
    done = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(suite / "pytest.ini"),
            str(suite / "bytestore_suite.py"),
        ],
        env=subprocess_env(server.url),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=suite,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    # Both suites of langchain-tests 1.1.9 (12 tests each), none skipped or deselected.
    assert summary.startswith("24 passed"), summary
