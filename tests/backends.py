"""The storage backends every conformance and model test runs against.

To add a backend: append its name to ``BACKENDS`` and give ``open_store`` a branch that builds it
(for a server database, create a temporary database first and drop it afterwards; the branch is
an async context, so setup and teardown sit around the ``yield``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from botwire_server.settings import Limits
from botwire_server.storage.base import Clock, Store, system_clock
from botwire_server.storage.memory import MemoryStore
from botwire_server.storage.sqlite import SQLiteStore

BACKENDS: list[str] = ["memory", "sqlite", "postgres"]


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
