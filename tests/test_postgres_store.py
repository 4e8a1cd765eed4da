"""What only the PostgreSQL store has to prove: several connections and processes on one database.

The shared contract is checked by tests/test_conformance.py (which runs on PostgreSQL too); here:
concurrent migrations, revision order under many writers on several pools, exact quotas, exact
JSON bytes, and behaviour while PostgreSQL is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from pg import (
    ADMIN_URL,
    CuttableProxy,
    backend_pids,
    require_postgres,
    temp_database,
    terminate_backends,
    url_for,
)

from botwire_server.errors import (
    Conflict,
    DiskFull,
    PayloadTooLarge,
    QuotaExceeded,
    Unavailable,
)
from botwire_server.settings import Limits, Settings
from botwire_server.storage.base import Clock, Write, system_clock, to_micros
from botwire_server.storage.migrations import migration_files
from botwire_server.storage.postgres import PostgresStore
from botwire_server.storage.postgres_errors import translate
from botwire_server.storage.postgres_pool import PoolExhausted

pytestmark = pytest.mark.postgres

NS = "ns"
UNLIMITED = Limits(writes_per_day=0, namespace_max_bytes=0, value_max_bytes=0)
NOON = to_micros(datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
# Guards against a hang (an outage must not block a request for long); not a speed claim.
HANG_GUARD = 30.0


@pytest.fixture
async def db() -> AsyncIterator[str]:
    require_postgres()
    async with temp_database() as url:
        yield url


@pytest.fixture
async def migrated(db: str) -> str:
    await PostgresStore(db).migrate()
    return db


@asynccontextmanager
async def opened(
    url: str,
    *,
    limits: Limits = UNLIMITED,
    pool_min: int = 1,
    pool_max: int = 4,
    statement_timeout_ms: int = 5000,
    clock: Clock = system_clock,
    group_commit: bool = True,
    acquire_timeout: float = 10.0,
) -> AsyncIterator[PostgresStore]:
    settings = Settings(
        database_url=url,
        pool_min=pool_min,
        pool_max=pool_max,
        statement_timeout_ms=statement_timeout_ms,
    )
    store = PostgresStore(
        url,
        settings=settings,
        limits=limits,
        clock=clock,
        group_commit=group_commit,
        acquire_timeout=acquire_timeout,
    )
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def fetch(url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def revisions(url: str, namespace: str = NS) -> list[int]:
    rows = await fetch(
        url, "SELECT revision FROM revisions WHERE namespace = $1 ORDER BY revision", namespace
    )
    return [r["revision"] for r in rows]


# -- migrations ------------------------------------------------------------------------------


async def test_concurrent_migrations_apply_each_file_once(db: str) -> None:
    names = [name for name, _ in migration_files("postgres")]
    results = await asyncio.gather(*(PostgresStore(db).migrate() for _ in range(4)))
    # Exactly one caller applied everything; the others waited on the advisory lock and found
    # nothing left to do.
    assert sorted(results, key=len, reverse=True) == [names, [], [], []]
    rows = await fetch(db, "SELECT name FROM schema_migrations ORDER BY name")
    assert [r["name"] for r in rows] == names
    assert await PostgresStore(db).migrate() == []


# -- ordering, optimistic concurrency and quotas across pools --------------------------------


async def test_revisions_are_gap_free_and_reads_repeatable_under_many_writers(
    migrated: str,
) -> None:
    """Writers on four pools (16 connections) race on one namespace while a reader takes
    snapshots at the head it sees. Revisions come out exactly 1..N, and every snapshot taken
    during the race is still what that revision reads afterwards: no commit ever appeared
    below a revision a reader had already seen."""
    writes = 240
    seen: list[tuple[int, dict[str, bytes]]] = []
    done = asyncio.Event()
    async with (
        opened(migrated) as s1,
        opened(migrated) as s2,
        opened(migrated) as s3,
        opened(migrated) as s4,
        opened(migrated, pool_max=1) as reader,
    ):
        stores = [s1, s2, s3, s4]

        async def write(i: int) -> int:
            store = stores[i % len(stores)]
            result = await store.set(NS, f"k{i % 13}", json.dumps(i).encode())
            return result.revision

        async def read() -> None:
            while not done.is_set():
                head = (await reader.info(NS)).revision
                items = await reader.list(NS, limit=1000, as_of=head)
                seen.append((head, {item.key: item.value for item in items}))
                await asyncio.sleep(0)

        reading = asyncio.create_task(read())
        got = await asyncio.gather(*(write(i) for i in range(writes)))
        done.set()
        await reading

        assert sorted(got) == list(range(1, writes + 1))
        assert await revisions(migrated) == list(range(1, writes + 1))
        assert len(seen) > 1
        for head, snapshot in seen:
            items = await reader.list(NS, limit=1000, as_of=head)
            assert {item.key: item.value for item in items} == snapshot, head
        rows = await fetch(
            migrated, "SELECT at FROM revisions WHERE namespace = $1 ORDER BY revision", NS
        )
        times = [r["at"] for r in rows]
        assert times == sorted(times)


@pytest.mark.parametrize("group_commit", [True, False], ids=["grouped", "one-by-one"])
async def test_compare_and_set_increments_lose_nothing_across_pools(
    migrated: str, group_commit: bool
) -> None:
    workers, each = 8, 10

    async with (
        opened(migrated, group_commit=group_commit) as a,
        opened(migrated, group_commit=group_commit) as b,
    ):
        conflicts = 0

        async def worker(n: int) -> None:
            nonlocal conflicts
            store = (a, b)[n % 2]
            for _ in range(each):
                while True:
                    item = await store.get(NS, "counter")
                    value = json.loads(item.value) if item else 0
                    try:
                        await store.set(
                            NS,
                            "counter",
                            json.dumps(value + 1).encode(),
                            expected_version=item.version if item else 0,
                        )
                        break
                    except Conflict:
                        conflicts += 1

        await asyncio.gather(*(worker(n) for n in range(workers)))
        item = await a.get(NS, "counter")
        assert item is not None
        assert json.loads(item.value) == workers * each
        assert item.version == workers * each
        history = await a.history(NS, "counter", limit=1000)
        assert [json.loads(e.value or b"") for e in history] == list(range(80, 0, -1))
        assert conflicts > 0  # the workers really raced


async def test_refused_writes_in_a_group_leave_the_others_intact(migrated: str) -> None:
    """Writes queued together share one transaction; those refused inside it (here: all but
    one create-if-absent of the same key) write nothing and spoil nothing."""
    async with opened(migrated) as store:

        async def create(i: int) -> int | Conflict:
            try:
                return (await store.set(NS, "only", str(i).encode(), expected_version=0)).revision
            except Conflict as exc:
                return exc

        async def other(i: int) -> int:
            return (await store.set(NS, f"other{i}", b"1")).revision

        creates, others = await asyncio.gather(
            asyncio.gather(*(create(i) for i in range(20))),
            asyncio.gather(*(other(i) for i in range(20))),
        )
        won = [r for r in creates if isinstance(r, int)]
        assert len(won) == 1
        assert all(c.current_version == won[0] for c in creates if isinstance(c, Conflict))
        assert sorted(won + list(others)) == list(range(1, 22))
        assert await revisions(migrated) == list(range(1, 22))


@pytest.mark.parametrize("group_commit", [True, False], ids=["grouped", "one-by-one"])
@pytest.mark.parametrize("limit", ["writes_per_day", "namespace_max_bytes"])
async def test_limits_hold_exactly_with_64_concurrent_writers(
    migrated: str, limit: str, group_commit: bool
) -> None:
    allowed = 50
    value = b'"0123456789"'
    entry = len("k00") + len(value)
    limits = (
        Limits(writes_per_day=allowed, namespace_max_bytes=0, value_max_bytes=0)
        if limit == "writes_per_day"
        else Limits(writes_per_day=0, namespace_max_bytes=allowed * entry, value_max_bytes=0)
    )
    refused_type = QuotaExceeded if limit == "writes_per_day" else PayloadTooLarge

    def clock() -> int:  # a fixed moment: the quota day cannot roll over mid-test
        return NOON

    async with (
        opened(migrated, limits=limits, clock=clock, group_commit=group_commit) as s1,
        opened(migrated, limits=limits, clock=clock, group_commit=group_commit) as s2,
        opened(migrated, limits=limits, clock=clock, group_commit=group_commit) as s3,
        opened(migrated, limits=limits, clock=clock, group_commit=group_commit) as s4,
    ):
        stores = [s1, s2, s3, s4]

        async def write(i: int) -> str:
            try:
                await stores[i % 4].set(NS, f"k{i:02d}", value)
                return "ok"
            except refused_type:
                return "refused"

        outcomes = await asyncio.gather(*(write(i) for i in range(64)))
        assert outcomes.count("ok") == allowed
        assert outcomes.count("refused") == 64 - allowed
        info = await s1.info(NS)
        assert (info.revision, info.keys, info.bytes) == (allowed, allowed, allowed * entry)
        rows = await fetch(migrated, "SELECT quota_used FROM namespaces WHERE name = $1", NS)
        assert rows[0]["quota_used"] == allowed


# -- values ---------------------------------------------------------------------------------

EXACT_VALUES = [
    b'"caf\xc3\xa9 \xf0\x9f\xa4\x96"',  # raw UTF-8
    b'"caf\\u00e9"',  # the same text, escaped: stays escaped
    b"123456789012345678901234567890123456789012345678901234567890",
    b"1e400",
    b"-0.0",
    b"1.10",
    b'{"b":1,"a":[true,false,null]}',  # key order kept
    b'{ "spaced" : [ 1 , 2 ] }',  # whitespace kept
    b'"a string, not an object: {\\"x\\": 1}"',
    b"null",
]


async def test_json_values_round_trip_byte_for_byte(migrated: str) -> None:
    async with opened(migrated) as store:
        for i, value in enumerate(EXACT_VALUES):
            await store.set(NS, f"v{i}", value)
        for i, value in enumerate(EXACT_VALUES):
            item = await store.get(NS, f"v{i}")
            assert item is not None and item.value == value
            old = await store.get(NS, f"v{i}", as_of=i + 1)
            assert old is not None and old.value == value
            (event,) = await store.history(NS, f"v{i}")
            assert event.value == value
        listed = await store.list(NS, limit=1000)
        assert {item.key: item.value for item in listed} == {
            f"v{i}": v for i, v in enumerate(EXACT_VALUES)
        }
        # Overwrite everything, then roll back: the restored bytes are the original ones.
        for i in range(len(EXACT_VALUES)):
            await store.set(NS, f"v{i}", b"0")
        await store.rollback(NS, len(EXACT_VALUES))
        rows = await fetch(migrated, "SELECT key, value FROM current WHERE namespace = $1", NS)
        assert {r["key"]: r["value"] for r in rows} == {
            f"v{i}": v for i, v in enumerate(EXACT_VALUES)
        }


# -- operations -------------------------------------------------------------------------------


async def test_pool_is_sized_by_settings(migrated: str) -> None:
    async with opened(migrated, pool_min=2, pool_max=3) as store:
        assert len(await backend_pids(migrated)) == 2
        peak = 0

        async def write(i: int) -> None:
            nonlocal peak
            await store.set(NS, f"k{i}", b"1")
            peak = max(peak, len(await backend_pids(migrated)))

        await asyncio.gather(*(write(i) for i in range(30)))
        assert 2 <= peak <= 3
        assert (await store.info(NS)).revision == 30


async def test_lock_wait_timeout_is_overloaded_and_writes_nothing(migrated: str) -> None:
    async with opened(migrated, statement_timeout_ms=300) as store:
        await store.set(NS, "a", b"1")
        blocker = await asyncpg.connect(migrated)
        try:
            # Another session holds the namespace row lock for longer than the timeouts: the
            # lock timeout (4/5 of the statement timeout) ends the wait, reported as overload,
            # never as an unreachable database.
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM namespaces WHERE name = $1 FOR UPDATE", NS)
            with pytest.raises(Unavailable, match="overloaded.*Retry") as caught:
                await asyncio.wait_for(store.set(NS, "a", b"2"), HANG_GUARD)
            assert caught.value.status == 503
            assert caught.value.code == "database_unavailable"
            assert "unreachable" not in str(caught.value)
            await tx.rollback()
        finally:
            await blocker.close()
        assert (await store.set(NS, "a", b"3")).revision == 2
        assert await revisions(migrated) == [1, 2]


async def test_gets_waiting_for_a_connection_are_answered_by_grouped_reads(migrated: str) -> None:
    async with opened(migrated, pool_min=1, pool_max=1) as store:
        for i in range(0, 40, 2):
            await store.set(NS, f"k{i}", f"{i}".encode())
        await store.set("other", "k1", b"other")
        groups: list[int] = []
        read_group = store._read_group

        async def counting(group: Any) -> None:
            groups.append(len(group))
            await read_group(group)

        store._read_group = counting  # type: ignore[method-assign]
        # 200 gets at once on one connection: present and missing keys, repeated keys, and the
        # same key in another namespace.
        asks = [("other" if i % 7 == 0 else NS, f"k{i % 40}") for i in range(200)]
        items = await asyncio.wait_for(
            asyncio.gather(*(store.get(ns, key) for ns, key in asks)), HANG_GUARD
        )
        for (ns, key), item in zip(asks, items, strict=True):
            n = int(key[1:])
            if ns == "other":
                expected = b"other" if key == "k1" else None
            else:
                expected = f"{n}".encode() if n % 2 == 0 else None
            assert (item.value if item else None) == expected, (ns, key)
            if item is not None:
                assert item.key == key
        # Most gets went into groups, several keys per statement.
        assert sum(groups) > 100 and len(groups) < sum(groups)


async def test_an_exhausted_pool_is_overloaded_not_unreachable(migrated: str) -> None:
    async with opened(migrated, pool_min=1, pool_max=1, acquire_timeout=0.3) as store:
        await store.set(NS, "a", b"1")
        blocker = await asyncpg.connect(migrated)
        try:
            # The only connection is busy with a write waiting for a row lock held elsewhere.
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM namespaces WHERE name = $1 FOR UPDATE", NS)
            stuck = asyncio.create_task(store.set(NS, "a", b"2"))
            await asyncio.sleep(0.2)
            with pytest.raises(Unavailable, match="overloaded: no connection") as caught:
                await asyncio.wait_for(store.get(NS, "a"), HANG_GUARD)
            assert caught.value.status == 503 and "unreachable" not in str(caught.value)
            await tx.rollback()
            assert (await asyncio.wait_for(stuck, HANG_GUARD)).revision == 2
        finally:
            await blocker.close()
        # The connection came back: reads are served again.
        item = await store.get(NS, "a")
        assert item is not None and item.value == b"2"


async def test_store_recovers_at_once_after_its_connections_are_cut(migrated: str) -> None:
    async with opened(migrated, pool_min=3, pool_max=3) as store:
        await store.set(NS, "a", b"1")
        assert await terminate_backends(migrated) == 3
        # Every pooled connection is dead; the first operation finds out, replaces them and
        # retries on a fresh connection: no error reaches the caller.
        assert (await store.set(NS, "a", b"2")).revision == 2
        await store.ping()
        assert await terminate_backends(migrated) >= 1
        await store.ping()
        item = await store.get(NS, "a")
        assert item is not None and item.value == b"2"


async def test_writes_during_repeated_connection_cuts_fail_cleanly_and_none_is_lost(
    migrated: str,
) -> None:
    """Connections are killed (pg_terminate_backend) over and over while four writers run.
    Every write either succeeds or fails with Unavailable; every acknowledged write is in the
    log with the revision it was acknowledged with; revisions stay gap-free."""
    acknowledged: dict[str, tuple[int, bytes]] = {}
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async with opened(migrated, pool_min=2, pool_max=4) as store:

        async def writer(w: int) -> None:
            for i in range(60):
                key, value = f"w{w}-{i}", json.dumps({"w": w, "i": i}).encode()
                try:
                    result = await asyncio.wait_for(store.set(NS, key, value), HANG_GUARD)
                    acknowledged[key] = (result.revision, value)
                except Unavailable as exc:
                    failures.append(exc)

        async def killer() -> int:
            kills = 0
            rng = random.Random(7)
            while not stop.is_set():
                kills += await terminate_backends(migrated)
                await asyncio.sleep(rng.uniform(0.005, 0.03))
            return kills

        killing = asyncio.create_task(killer())
        await asyncio.gather(*(writer(w) for w in range(4)))
        stop.set()
        kills = await killing
        assert kills > 0

        # Recovered: the next write succeeds.
        assert (await store.set(NS, "after", b"1")).revision > 0
        head = (await store.info(NS)).revision
        assert await revisions(migrated) == list(range(1, head + 1))
        assert len(acknowledged) > 0
        for key, (revision, value) in acknowledged.items():
            item = await store.get(NS, key)
            assert item is not None, key
            assert (item.version, item.value) == (revision, value), key
        # A write that failed was either not applied, or (connection lost during COMMIT)
        # applied and reported as "may have been applied": never anything else.
        for exc in failures:
            assert isinstance(exc, Unavailable) and exc.status == 503


async def test_requests_fail_fast_while_postgresql_is_down_then_recover(migrated: str) -> None:
    proxy = CuttableProxy().start()
    try:
        url = proxy.url(migrated)
        async with opened(url, pool_min=2, pool_max=2) as store:
            await store.set(NS, "a", b"1")
            proxy.cut()
            for attempt in (
                store.ping(),
                store.set(NS, "a", b"2"),
                store.get(NS, "a"),
                store.list(NS),
            ):
                with pytest.raises(Unavailable, match="PostgreSQL is unreachable") as caught:
                    await asyncio.wait_for(attempt, HANG_GUARD)
                assert caught.value.body()["code"] == "database_unavailable"
                assert caught.value.status == 503
            proxy.restore()
            await store.ping()
            assert (await store.set(NS, "a", b"3")).revision == 2
            item = await store.get(NS, "a")
            assert item is not None and item.value == b"3"
        assert await revisions(migrated) == [1, 2]
    finally:
        proxy.stop()


async def test_unreachable_database_is_unavailable_at_open_and_migrate() -> None:
    require_postgres()
    proxy = CuttableProxy().start()
    url = proxy.url("postgres")
    proxy.cut()  # its port is now free of listeners: connections are refused
    try:
        store = PostgresStore(url)
        with pytest.raises(Unavailable, match="PostgreSQL is unreachable"):
            await asyncio.wait_for(store.migrate(), HANG_GUARD)
        with pytest.raises(Unavailable, match="PostgreSQL is unreachable"):
            await asyncio.wait_for(store.open(), HANG_GUARD)
        with pytest.raises(Unavailable, match="not open"):
            await store.ping()
    finally:
        proxy.stop()


async def test_missing_database_is_unavailable_with_a_clear_message() -> None:
    require_postgres()
    store = PostgresStore(url_for("botwire_test_no_such_database"))
    with pytest.raises(Unavailable, match="does not exist"):
        await asyncio.wait_for(store.migrate(), HANG_GUARD)


async def test_read_only_database_is_unavailable_and_writes_nothing(migrated: str) -> None:
    """What a server meets when its address points at a standby (say, mid-failover)."""
    name = migrated.rpartition("/")[2]
    await fetch(ADMIN_URL, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    async with opened(migrated) as store:
        with pytest.raises(Unavailable, match="read-only"):
            await store.set(NS, "a", b"1")
        assert await store.get(NS, "a") is None
        await store.ping()
    await fetch(ADMIN_URL, f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    async with opened(migrated) as store:
        assert (await store.set(NS, "a", b"1")).revision == 1


@pytest.mark.parametrize(
    ("raised", "expected", "code", "says"),
    [
        (lambda: asyncpg.DiskFullError("could not extend file"), DiskFull, "disk_full", "full"),
        (lambda: asyncpg.TooManyConnectionsError("x"), Unavailable, "database_unavailable", "too"),
        (
            lambda: asyncpg.QueryCanceledError("timeout"),
            Unavailable,
            "database_unavailable",
            "statement timeout",
        ),
        (lambda: asyncpg.LockNotAvailableError("x"), Unavailable, "database_unavailable", "overl"),
        (lambda: PoolExhausted(), Unavailable, "database_unavailable", "overloaded"),
        (lambda: asyncpg.AdminShutdownError("x"), Unavailable, "database_unavailable", "unreach"),
        (lambda: ConnectionRefusedError(111, "x"), Unavailable, "database_unavailable", "unreach"),
        (lambda: TimeoutError(), Unavailable, "database_unavailable", "unreachable"),
    ],
)
def test_driver_errors_translate_in_one_place(
    raised: Callable[[], BaseException], expected: type[Exception], code: str, says: str
) -> None:
    translated = translate(raised(), statement_timeout_ms=5000)
    assert isinstance(translated, expected)
    assert translated.body()["code"] == code  # type: ignore[attr-defined]
    assert says in str(translated)


def test_programming_errors_are_not_disguised_as_outages() -> None:
    error = asyncpg.UndefinedTableError("relation does not exist")
    assert translate(error, statement_timeout_ms=5000) is error


async def test_listeners_hear_commits_of_other_processes(migrated: str) -> None:
    """A commit through one store (one server process) reaches the listeners of another on
    the same database through LISTEN/NOTIFY, within a second."""
    async with opened(migrated) as a, opened(migrated) as b:
        heard: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        b.add_listener(lambda ns, head: heard.put_nowait((ns, head)))
        await asyncio.sleep(0.2)  # b's LISTEN connection is up
        await a.commit(
            NS, [Write(op="set", key="x", value=b"1"), Write(op="set", key="y", value=b"2")]
        )
        assert await asyncio.wait_for(heard.get(), 1.0) == (NS, 1)
        feed = await b.changes(NS)
        assert [(e.revision, e.key) for e in feed.events] == [(1, "x"), (1, "y")]
