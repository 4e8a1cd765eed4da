"""SQLite migrations: each applied once, in order, in one transaction with its bookkeeping row."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from botwire_server.errors import Unavailable
from botwire_server.storage import sqlite as sqlite_module
from botwire_server.storage.migrations import migration_files
from botwire_server.storage.sqlite import SQLiteStore
from botwire_server.storage.sqlite_sql import split_statements

NAMES = [name for name, _ in migration_files("sqlite")]


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def bookkeeping(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT name, applied_at FROM schema_migrations ORDER BY name"))


async def test_applies_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    assert NAMES and NAMES[0] == "0001_init"
    store = SQLiteStore(path)
    assert await store.migrate() == NAMES
    assert {"namespaces", "revisions", "events", "current", "schema_migrations"} <= tables(path)
    rows = bookkeeping(path)
    assert [name for name, _ in rows] == NAMES
    assert all(isinstance(at, int) and at > 1_700_000_000_000_000 for _, at in rows)
    # Idempotent: nothing more to apply, bookkeeping unchanged.
    assert await store.migrate() == []
    assert await SQLiteStore(path).migrate() == []
    assert bookkeeping(path) == rows


async def test_applies_on_an_existing_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    assert await SQLiteStore(path).migrate() == NAMES
    store = SQLiteStore(path)
    await store.open()
    try:
        assert (await store.set("ns", "k", b"1")).revision == 1
    finally:
        await store.close()


async def test_concurrent_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    results = await asyncio.gather(*(SQLiteStore(path).migrate() for _ in range(4)))
    assert sorted(name for applied in results for name in applied) == sorted(NAMES)
    assert [name for name, _ in bookkeeping(path)] == NAMES


async def test_a_failing_migration_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite"
    broken = "CREATE TABLE half_done (a INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    files = [*migration_files("sqlite"), ("9999_broken", broken)]
    monkeypatch.setattr(sqlite_module, "migration_files", lambda dialect: files)
    with pytest.raises(Unavailable):
        await SQLiteStore(path).migrate()
    # The good migrations committed; the broken one rolled back whole, bookkeeping included.
    assert [name for name, _ in bookkeeping(path)] == NAMES
    assert "half_done" not in tables(path)
    monkeypatch.setattr(
        sqlite_module, "migration_files", lambda dialect: [*files[:-1], ("9999_fixed", broken[:36])]
    )
    assert await SQLiteStore(path).migrate() == ["9999_fixed"]
    assert "half_done" in tables(path)


def test_split_statements_respects_comments_and_strings() -> None:
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (a TEXT DEFAULT 'x;y');\n"
        "/* block; comment */ CREATE INDEX t_a ON t (a);\n"
        "\n"
    )
    statements = split_statements(script)
    assert len(statements) == 2
    assert "DEFAULT 'x;y'" in statements[0]
    assert statements[1].strip().endswith("CREATE INDEX t_a ON t (a);")


def test_every_statement_of_the_real_migrations_is_complete() -> None:
    for _, sql in migration_files("sqlite"):
        statements = split_statements(sql)
        assert statements
        assert all(sqlite3.complete_statement(s) for s in statements)
        assert sum(s.count("CREATE") for s in statements) == sql.count("CREATE")
