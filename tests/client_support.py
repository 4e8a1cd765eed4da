"""Shared pieces of the client tests: a real server, fresh namespaces, and ``AsyncDriver``,
which lets one test body drive both the sync methods and their async twins."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_process import ServerProcess

from botwire import Memory

ROOT = Path(__file__).resolve().parent.parent
# Writes of concurrency and model tests would spend the default 1000-per-day quota.
UNLIMITED = {"BOTWIRE_WRITES_PER_DAY": "0"}

_counter = itertools.count()


def serve(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A real ``botwire serve`` on a fresh SQLite file, stopped afterwards."""
    path = tmp_path_factory.mktemp("server") / "botwire.db"
    with ServerProcess(f"sqlite:///{path}", env=UNLIMITED if env is None else env) as server:
        yield server


def fresh_namespace(prefix: str = "t") -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:8]}"


def subprocess_env(url: str, **extra: str) -> dict[str, str]:
    """Environment for a child Python process that imports the client from this tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env["BOTWIRE_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env.update(extra)
    return env


PYTHON = sys.executable


class AsyncDriver:
    """Calls ``memory.a<name>(...)`` to completion whenever ``<name>(...)`` is called.

    ``runner`` runs every call on one event loop, as an async application would.
    """

    def __init__(self, memory: Memory, runner: asyncio.Runner) -> None:
        self.memory = memory
        self.runner = runner
        self.namespace = memory.namespace

    def __getattr__(self, name: str) -> Callable[..., Any]:
        twin = getattr(self.memory, "a" + name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.runner.run(twin(*args, **kwargs))

        return call

    def __contains__(self, key: str) -> bool:
        return bool(self.runner.run(self.memory.aexists(key)))


CREWAI_VENV = ROOT / ".cache" / "crewai-venv"
# CrewAI pins older aiosqlite and pydantic than the server uses: it lives in its own
# virtualenv, with this project installed there without dependencies. That install does not use
# constraints.txt: CrewAI requires aiosqlite~=0.21, the lock pins the server's newer release.
CREWAI_ENV = {"CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true"}


def crewai_python() -> str:
    """The Python of ``.cache/crewai-venv`` (created on first use: about a minute)."""
    import fcntl
    import subprocess

    python = CREWAI_VENV / "bin" / "python"
    stamp = CREWAI_VENV / ".botwire-installed"
    CREWAI_VENV.parent.mkdir(exist_ok=True)
    with open(ROOT / ".cache" / "crewai-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs build it once
        if not stamp.exists():
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(CREWAI_VENV)], check=True)
            pip = [str(python), "-m", "pip", "install", "--quiet"]
            subprocess.run([*pip, "crewai", "httpx", "msgspec"], check=True, timeout=1200)
            subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True, timeout=600)
            stamp.touch()
    return str(python)
