"""What only the SQLite backend promises: durability settings, group commit, readers that never
wait for the writer, reads by index, and the translation of SQLite's errors."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
import pytest

from botwire_server.errors import Conflict, DiskFull, NotFound, Unavailable
from botwire_server.settings import Limits
from botwire_server.storage.base import WriteResult
from botwire_server.storage.sqlite import CHANGED_SINCE, SQLiteStore, sqlite_path
from botwire_server.storage.sqlite_sql import REVISION_AT_TIME, event_at, list_at, translate

NO_LIMITS = Limits(writes_per_day=0, namespace_max_bytes=0, value_max_bytes=0)


async def opened(path: Path) -> SQLiteStore:
    store = SQLiteStore(path, limits=NO_LIMITS)
    await store.migrate()
    await store.open()
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = await opened(tmp_path / "db.sqlite")
    yield s
    await s.close()


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:///./data/x.db") == Path("./data/x.db")
    assert sqlite_path("sqlite:///data/x.db") == Path("data/x.db")
    assert sqlite_path("sqlite:////abs/x.db") == Path("/abs/x.db")
    assert sqlite_path("/abs/x.db") == Path("/abs/x.db")
    assert sqlite_path("rel/x.db") == Path("rel/x.db")


async def test_parent_directory_is_created(tmp_path: Path) -> None:
    path = sqlite_path(f"sqlite:///{tmp_path}/deep/er/x.db")
    store = await opened(path)
    await store.set("ns", "k", b"1")
    await store.close()
    assert path.is_file()


async def test_writer_is_wal_with_full_sync(store: SQLiteStore) -> None:
    writer = store._writer
    assert writer is not None
    assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # WAL is a property of the file: every later connection sees it.
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = await opened(path)
    await store.set("ns", "a", b"1")
    await store.set("ns", "a", b"2")
    await store.set("ns", "b", b"3")
    await store.delete("ns", "b")
    await store.compact("ns", before=2)
    await store.close()

    store = await opened(path)
    try:
        item = await store.get("ns", "a")
        assert item is not None and (item.value, item.version, item.created_revision) == (
            b"2",
            2,
            1,
        )
        info = await store.info("ns")
        assert (info.revision, info.keys, info.bytes, info.oldest_revision) == (4, 1, 2, 2)
        assert [e.revision for e in await store.history("ns", "b")] == [4, 3]
        w = await store.set("ns", "c", b"1")
        assert w.revision == 5
    finally:
        await store.close()


async def test_concurrent_writes_share_transactions(store: SQLiteStore) -> None:
    before = store.batches_committed
    results = await asyncio.gather(*(store.set("ns", f"k{i}", b"1") for i in range(64)))
    batches = store.batches_committed - before
    assert sorted(r.revision for r in results) == list(range(1, 65))
    assert 1 <= batches <= 4


async def test_refused_ops_share_the_transaction_of_their_neighbours(store: SQLiteStore) -> None:
    await store.set("ns", "taken", b"1")
    before = store.batches_committed
    results = await asyncio.gather(
        store.set("ns", "a", b"1"),
        store.set("ns", "taken", b"2", expected_version=0),
        store.delete("ns", "absent"),
        store.set("ns", "b", b"1"),
        return_exceptions=True,
    )
    assert store.batches_committed - before == 1  # one transaction for all four
    assert isinstance(results[1], Conflict) and isinstance(results[2], NotFound)
    assert [r.revision for r in results if isinstance(r, WriteResult)] == [2, 3]
    assert [e.revision for e in await store.history("ns", "taken")] == [1]


async def test_a_statement_failing_midway_fails_only_its_op(store: SQLiteStore) -> None:
    # The trigger aborts the third statement of a set of "boom", after its revision and event
    # rows were written: the batch is undone and rerun, and only "boom" fails, leaving no row.
    writer = store._writer
    assert writer is not None
    writer.execute(
        "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.current WHEN NEW.key = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
    )
    before = store.batches_committed
    results = await asyncio.gather(
        store.set("ns", "a", b"1"),
        store.set("ns", "boom", b"2"),
        store.set("ns", "b", b"3"),
        return_exceptions=True,
    )
    assert store.batches_committed - before == 1
    assert isinstance(results[1], Unavailable) and "boom refused" in str(results[1])
    assert [r.revision for r in results if isinstance(r, WriteResult)] == [1, 2]
    assert await store.history("ns", "boom") == []
    assert await store.get("ns", "boom") is None
    info = await store.info("ns")
    assert (info.revision, info.keys, info.bytes) == (2, 2, 2 * len("a") + 2)
    reader = sqlite3.connect(store.path)
    try:
        assert reader.execute("SELECT count(*) FROM revisions").fetchone()[0] == 2
    finally:
        reader.close()


async def test_two_stores_on_one_file_keep_revisions_gap_free(store: SQLiteStore) -> None:
    # Two stores on one file stand for two server processes: each batch re-reads the namespace
    # rows inside its BEGIN IMMEDIATE, so neither works from a stale head.
    other = await opened(store.path)
    try:
        results = await asyncio.gather(
            *(s.set("ns", f"k{i}", b"1") for i in range(40) for s in (store, other))
        )
    finally:
        await other.close()
    assert sorted(r.revision for r in results) == list(range(1, 81))
    info = await store.info("ns")
    assert (info.revision, info.keys, info.bytes) == (
        80,
        40,
        sum(len(f"k{i}") + 1 for i in range(40)),
    )


async def test_reads_do_not_wait_for_a_held_write_lock(store: SQLiteStore) -> None:
    await store.set("ns", "k", b"1")
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long transaction would
    blocker.execute("UPDATE namespaces SET last_at = last_at")
    try:
        pending = asyncio.create_task(store.set("ns", "k", b"2"))
        await asyncio.sleep(0.05)
        assert not pending.done()  # the write waits for the lock ...
        item = await store.get("ns", "k")  # ... the reads do not
        assert item is not None and item.value == b"1"
        assert [i.key for i in await store.list("ns")] == ["k"]
        assert len(await store.history("ns", "k")) == 1
        assert (await store.info("ns")).revision == 1
        assert await store.resolve("ns", 1) == 1
        await store.ping()
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert (await pending).revision == 2
    item = await store.get("ns", "k")
    assert item is not None and item.value == b"2"


async def test_writes_commit_while_every_worker_thread_is_busy(store: SQLiteStore) -> None:
    limiter = anyio.to_thread.current_default_thread_limiter()
    release = threading.Event()
    busy = [
        asyncio.create_task(anyio.to_thread.run_sync(release.wait))
        for _ in range(int(limiter.total_tokens))
    ]
    try:
        while limiter.borrowed_tokens < limiter.total_tokens:
            await asyncio.sleep(0.01)
        # The writer has a thread of its own; without it this write would wait for a token.
        result = await asyncio.wait_for(store.set("ns", "k", b"1"), timeout=30)
        assert result.revision == 1
        item = await store.get("ns", "k")  # primary-key reads need no thread either
        assert item is not None and item.value == b"1"
    finally:
        release.set()
        await asyncio.gather(*busy)


async def test_reads_see_commits_of_other_connections(store: SQLiteStore) -> None:
    await store.set("ns", "k", b"1")
    assert await store.get("ns", "k") is not None
    await store.list("ns")
    reader = store._reader
    assert reader is not None and not reader.in_transaction  # no snapshot left open
    assert all(not conn.in_transaction for conn in store._pool)
    # A second store on the same file (another process in production) writes; we see it.
    other = await opened(store.path)
    try:
        await other.set("ns", "k", b"2")
    finally:
        await other.close()
    item = await store.get("ns", "k")
    assert item is not None and item.value == b"2"
    assert [i.value for i in await store.list("ns")] == [b"2"]


async def test_page_reads_share_a_bounded_pool_of_connections(store: SQLiteStore) -> None:
    for i in range(20):
        await store.set("ns", f"k{i:02}", b"1")
    # Many page reads at once: each pooled connection keeps its own page cache, so the number
    # of connections (and with it memory) must stay bounded however many reads are in flight.
    pages = await asyncio.gather(*(store.list("ns", limit=5) for _ in range(200)))
    assert all([i.key for i in page] == ["k00", "k01", "k02", "k03", "k04"] for page in pages)
    assert 1 <= len(store._pool) <= SQLiteStore.READ_THREADS


async def test_point_in_time_reads_use_index_seeks(store: SQLiteStore) -> None:
    for i in range(200):
        await store.set("ns", "long", str(i).encode())
    await store.set("ns", "short", b"1")
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        plan = " ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT revision, op, value FROM events"
                " WHERE namespace = ? AND key = ? AND revision <= ?"
                " ORDER BY revision DESC LIMIT 1",
                ("ns", "long", 5),
            )
        )
        assert "SEARCH events USING INDEX events_by_key (namespace=? AND key=?" in plan
        assert "SCAN" not in plan and "TEMP B-TREE" not in plan

        def plan_of(sql: str, *params: object) -> str:
            return " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

        # A rollback reads only the events after its target ...
        changed = plan_of(CHANGED_SINCE, "ns", 5)
        assert "USING COVERING INDEX events_by_revision (namespace=? AND revision>?)" in changed
        # ... and a timestamp becomes a revision by one seek on revisions_by_time.
        by_time = plan_of(REVISION_AT_TIME, "ns", 1)
        assert "USING COVERING INDEX revisions_by_time" in by_time
        assert "TEMP B-TREE" not in by_time

        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        items = list_at(conn, "ns", "", False, None, 100, 150)
        assert [(i.key, i.value) for i in items] == [("long", b"149")]
        # Two keys seen, whatever their history: a next-key seek and a point seek per key,
        # and one final next-key seek that finds nothing.
        assert len(statements) == 2 * 2 + 1
        statements.clear()
        assert event_at(conn, "ns", "long", 3) is not None
        assert len(statements) == 1
    finally:
        conn.close()


async def test_rollback_of_many_keys(store: SQLiteStore) -> None:
    n = 3000
    await asyncio.gather(*(store.set("ns", f"k{i:05d}", b"1") for i in range(n)))
    mark = await store.head("ns")
    await asyncio.gather(*(store.set("ns", f"k{i:05d}", b"2") for i in range(n)))
    await store.set("ns", "extra", b"1")
    result = await store.rollback("ns", mark)
    assert result.revision == 2 * n + 2
    assert len(result.changes) == n + 1
    assert result.changes[0].key == "extra" and result.changes[0].op == "delete"
    assert {c.value for c in result.changes[1:]} == {b"1"}
    assert (await store.info("ns")).keys == n
    assert len(await store.history("ns", "k00000")) == 3


async def test_close_finishes_queued_writes_then_refuses(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = await opened(path)
    writes = [asyncio.create_task(store.set("ns", f"k{i}", b"1")) for i in range(50)]
    await asyncio.sleep(0)  # let every write enqueue
    await store.close()
    results = [await w for w in writes]
    assert sorted(r.revision for r in results) == list(range(1, 51))
    with pytest.raises(Unavailable) as exc:
        await store.set("ns", "late", b"1")
    assert exc.value.code == "shutting_down" and exc.value.status == 503
    store = await opened(path)
    try:
        assert (await store.info("ns")).keys == 50
    finally:
        await store.close()


async def test_a_directory_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path, limits=NO_LIMITS)  # a directory, not a file
    with pytest.raises(Unavailable) as exc:
        await store.migrate()
    assert exc.value.status == 503
    assert str(tmp_path) in exc.value.message


async def test_a_corrupt_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not a database file at all" * 200)
    store = SQLiteStore(path, limits=NO_LIMITS)
    with pytest.raises(Unavailable) as exc:
        await store.migrate()
    assert exc.value.code == "database_unavailable"


async def test_disk_full_is_507_and_writes_nothing(store: SQLiteStore) -> None:
    await store.set("ns", "small", b"1")
    writer = store._writer
    assert writer is not None
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {pages + 2}")  # the "disk" holds 2 more pages
    with pytest.raises(DiskFull) as exc:
        await store.set("ns", "big", b"x" * 100_000)
    assert exc.value.status == 507 and exc.value.code == "disk_full"
    assert await store.get("ns", "big") is None
    assert (await store.info("ns")).revision == 1
    writer.execute("PRAGMA max_page_count = 1073741823")
    assert (await store.set("ns", "big", b"x" * 100_000)).revision == 2


async def test_reads_on_a_closed_store_are_unavailable(tmp_path: Path) -> None:
    store = await opened(tmp_path / "db.sqlite")
    await store.close()
    with pytest.raises(Unavailable):
        await store.get("ns", "k")
    with pytest.raises(Unavailable):
        await store.list("ns")
    with pytest.raises(Unavailable):
        await store.ping()


def test_a_store_reopens_on_another_event_loop(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite", limits=NO_LIMITS)

    async def session(value: bytes) -> int:
        await store.migrate()
        await store.open()
        try:
            return (await store.set("ns", "k", value)).revision
        finally:
            await store.close()

    assert asyncio.run(session(b"1")) == 1
    assert asyncio.run(session(b"2")) == 2


async def test_a_read_only_database_is_unavailable(store: SQLiteStore) -> None:
    await store.set("ns", "k", b"1")
    writer = store._writer
    assert writer is not None
    writer.execute("PRAGMA query_only = 1")  # SQLITE_READONLY on every write, even as root
    with pytest.raises(Unavailable) as exc:
        await store.set("ns", "k", b"2")
    assert exc.value.status == 503 and "readonly" in exc.value.message
    writer.execute("PRAGMA query_only = 0")
    item = await store.get("ns", "k")
    assert item is not None and item.value == b"1"
    assert (await store.set("ns", "k", b"3")).revision == 2


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (sqlite3.SQLITE_FULL, "database or disk is full", DiskFull),
        (None, "database or disk is full", DiskFull),
        (sqlite3.SQLITE_IOERR, "disk I/O error", Unavailable),
        (sqlite3.SQLITE_CANTOPEN, "unable to open database file", Unavailable),
        (sqlite3.SQLITE_CORRUPT, "database disk image is malformed", Unavailable),
        (sqlite3.SQLITE_READONLY, "attempt to write a readonly database", Unavailable),
        (sqlite3.SQLITE_BUSY, "database is locked", Unavailable),
    ],
)
def test_error_translation(code: int | None, message: str, expected: type[Exception]) -> None:
    error = sqlite3.OperationalError(message)
    if code is not None:
        error.sqlite_errorcode = code
    translated = translate(error, Path("/data/botwire.db"))
    assert type(translated) is expected
    assert "/data/botwire.db" in translated.message and message in translated.message
