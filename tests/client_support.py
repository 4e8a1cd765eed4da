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
