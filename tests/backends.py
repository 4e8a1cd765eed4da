"""The storage backends every conformance and model test runs against.

To add a backend: append its name to ``BACKENDS`` and give ``open_store`` a branch that builds it
(for a server database, create a temporary database first and drop it afterwards; the branch is
an async context, so setup and teardown sit around the ``yield``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path

from botwire_server.settings import Limits
from botwire_server.storage.base import MICROS, Clock, Store, system_clock, to_micros
from botwire_server.storage.memory import MemoryStore
from botwire_server.storage.sqlite import SQLiteStore

BACKENDS: list[str] = ["memory", "sqlite", "postgres"]


class FakeClock:
    """A clock the test moves by hand, in microseconds since the epoch."""

    def __init__(self, start: datetime) -> None:
        self.now = to_micros(start)

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * MICROS)


OpenStore = Callable[..., AbstractAsyncContextManager[Store]]


@contextlib.asynccontextmanager
async def open_store(
    name: str, tmp_path: Path, *, limits: Limits | None = None, clock: Clock | None = None
) -> AsyncIterator[Store]:
    """An opened, migrated, empty store of backend ``name``; closed on exit."""
    clock = clock or system_clock
    store: Store
    if name == "memory":
        store = MemoryStore(limits=limits, clock=clock)
    elif name == "sqlite":
        store = SQLiteStore(tmp_path / "botwire.db", limits=limits, clock=clock)
    elif name == "postgres":
        from pg import shared_database

        from botwire_server.storage.postgres import PostgresStore

        # One database per test run, emptied here (see tests/pg.py).
        store = PostgresStore(await shared_database(), limits=limits, clock=clock)
    else:
        raise ValueError(f"unknown backend {name!r}")
    await store.migrate()
    await store.open()
    try:
        yield store
    finally:
        await store.close()
