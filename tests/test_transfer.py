"""``botwire export`` / ``botwire import`` as a user runs them: a namespace with TTLs, expiries,
deletes, batches, a rollback and a compaction moves from SQLite to PostgreSQL and back through
the command line, and every history, snapshots at 20 random revisions and the change feed (the
export, and the HTTP feed of real servers) come out byte for byte the same."""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pg import require_postgres, temp_database_sync
from server_process import clean_env
from transfer_util import picture

from botwire_client.cli import main
from botwire_server.expiry import sweep
from botwire_server.http import create_app
from botwire_server.settings import Settings
from botwire_server.storage.base import MICROS, Store, Write
from botwire_server.storage.postgres import PostgresStore
from botwire_server.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.e2e
NS = "agents/planner"
OTHER = "agents/other"


def botwire(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The command as a user runs it: a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", "from botwire_client.cli import main; raise SystemExit(main())"]
        + list(args),
        capture_output=True,
        env=clean_env(),
        timeout=900,
    )


def botwire_here(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The same command in this process (a new interpreter costs seconds on a busy machine):
    ``botwire_client.cli.main`` with stdout and stderr captured."""
    raw = io.BytesIO()
    out, err = io.TextIOWrapper(raw, encoding="utf-8"), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    out.flush()
    return subprocess.CompletedProcess(list(args), code, raw.getvalue(), err.getvalue().encode())


async def build(store: Store, events: int, *, seed: int = 7) -> None:
    """About ``events`` events in NS: single sets (a third with TTLs, some of 1 s that the
    sweeper expires), deletes, batches of 10, a rollback and a compaction at a tenth."""
    rng = random.Random(seed)
    keys = [f"k{i:05d}" for i in range(max(20, events // 50))]
    written = 0
    while written < events:
        # Concurrent commits: SQLite groups them into one transaction (fast to build).
        tasks = []
        for _ in range(200):
            key = rng.choice(keys)
            roll = rng.random()
            if roll < 0.1:
                writes = [
                    Write(op="set", key=k, value=b'{"batch":%d}' % written)
                    for k in sorted(set(rng.sample(keys, 10)))
                ]
                tasks.append(store.commit(NS, writes))
                written += len(writes)
            elif roll < 0.2:
                tasks.append(store.commit(NS, [Write(op="delete", key=key, expected_version=None)]))
                written += 1
            else:
                ttl = rng.choice([None, None, 3600 * MICROS, 1 * MICROS])
                value = b'{"n":%d,"s":"\\u00e9 \\"q\\""}' % written
                tasks.append(store.commit(NS, [Write(op="set", key=key, value=value, ttl=ttl)]))
                written += 1
        # A delete of an absent key is refused (BatchConflict): part of a realistic log.
        await asyncio.gather(*tasks, return_exceptions=True)
    await store.set(OTHER, "only", b"1")
    await asyncio.sleep(1.1)
    await sweep(store)
    head = await store.head(NS)
    await store.rollback(NS, head // 2)
    await store.compact(NS, before=head // 10)


def export(url: str, out: Path, *namespaces: str, process: bool = False) -> bytes:
    flags = [f"--namespace={ns}" for ns in namespaces]
    done = (botwire if process else botwire_here)("export", "--db", url, "-o", str(out), *flags)
    assert done.returncode == 0, done.stderr
    assert b"botwire: exported" in done.stderr
    return out.read_bytes()


def import_(
    path: Path, url: str, *flags: str, process: bool = False
) -> subprocess.CompletedProcess[bytes]:
    return (botwire if process else botwire_here)("import", str(path), "--db", url, *flags)


def open_url(url: str) -> Store:
    if url.startswith("postgresql"):
        return PostgresStore(url)
    return SQLiteStore(url[len("sqlite:///") :])


async def pictures(url: str, revisions: list[int]) -> dict[str, object]:
    store = open_url(url)
    await store.open()
    try:
        return {ns: await picture(store, ns, revisions if ns == NS else [1]) for ns in (NS, OTHER)}
    finally:
        await store.close()


async def feed_bytes(url: str) -> list[bytes]:
    """The change feed of NS as the HTTP API serves it for the database at ``url``: every
    page's body (the application in process, over ASGI)."""
    store = open_url(url)
    await store.open()
    pages = []
    path = f"/namespaces/{NS.replace('/', '%2F')}"
    try:
        app = create_app(Settings(database_url=url), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://botwire") as client:
            info = (await client.get(path)).json()
            after = info["oldest_revision"]
            while after < info["revision"]:
                page = await client.get(f"{path}/changes", params={"after": after, "limit": 1000})
                assert page.status_code == 200, page.text
                pages.append(page.content)
                after = page.json()["next_after"]
    finally:
        await store.close()
    return pages


async def _built(path: Path, events: int) -> tuple[int, int]:
    store = SQLiteStore(path)
    await store.migrate()
    await store.open()
    try:
        await build(store, events)
        return await store.head(NS), (await store.info(NS)).oldest_revision
    finally:
        await store.close()


def round_trip(tmp_path: Path, events: int) -> None:
    require_postgres()
    source = tmp_path / "source.db"
    head, floor = asyncio.run(_built(source, events))
    assert floor > 0 and head > floor
    src_url = f"sqlite:///{source}"
    first = export(src_url, tmp_path / "a.jsonl", process=True)
    assert first.count(b'"type":"event"') >= events * 0.8
    with temp_database_sync() as pg_url:
        done = import_(tmp_path / "a.jsonl", pg_url)
        assert done.returncode == 0, done.stderr
        second = export(pg_url, tmp_path / "b.jsonl")
        assert second == first
        back = f"sqlite:///{tmp_path / 'back.db'}"
        assert import_(tmp_path / "b.jsonl", back).returncode == 0
        assert export(back, tmp_path / "c.jsonl") == first
        # Every history, snapshots at 20 random revisions, the feed, current items.
        revisions = sorted(random.Random(3).sample(range(floor, head + 1), 20))
        want = asyncio.run(pictures(src_url, revisions))
        assert asyncio.run(pictures(pg_url, revisions)) == want
        assert asyncio.run(pictures(back, revisions)) == want
        assert asyncio.run(feed_bytes(pg_url)) == asyncio.run(feed_bytes(src_url))


def test_sqlite_to_postgres_and_back_keeps_every_event(tmp_path: Path) -> None:
    round_trip(tmp_path, 500)


@pytest.mark.slow
def test_sqlite_to_postgres_and_back_with_100000_events(tmp_path: Path) -> None:
    round_trip(tmp_path, 100_000)


async def _write(path: Path, *writes: tuple[str, str, bytes]) -> None:
    store = SQLiteStore(path)
    await store.migrate()
    await store.open()
    try:
        for namespace, key, value in writes:
            await store.set(namespace, key, value)
    finally:
        await store.close()


def test_import_refuses_to_merge_and_its_flags_say_how(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    asyncio.run(_write(source, (NS, "a", b"1"), (NS, "a", b"2"), (OTHER, "b", b"3")))
    dump = tmp_path / "a.jsonl"
    export(f"sqlite:///{source}", dump)
    target = tmp_path / "target.db"
    url = f"sqlite:///{target}"
    asyncio.run(_write(target, (NS, "mine", b"0")))

    refused = import_(dump, url)
    assert refused.returncode == 2
    assert b"already has events (revision 1)" in refused.stderr
    assert b"--replace" in refused.stderr and b"--skip-existing" in refused.stderr

    skipped = import_(dump, url, "--skip-existing")
    assert skipped.returncode == 0, skipped.stderr
    assert f"skipped namespace '{NS}'".encode() in skipped.stderr
    mixed = export(url, tmp_path / "mixed.jsonl")
    assert b'"key":"mine"' in mixed and b'"key":"b"' in mixed

    assert import_(dump, url, "--replace").returncode == 0
    assert export(url, tmp_path / "b.jsonl") == dump.read_bytes()
    # Run again without flags: the same import, skipped as done; nothing changes.
    again = import_(dump, url)
    assert again.returncode == 0, again.stderr
    assert b"imported already" in again.stderr
    assert export(url, tmp_path / "c.jsonl") == dump.read_bytes()
    # Only some namespaces; stdout; a broken file names its line.
    only = botwire_here("export", "--db", url, "--namespace", OTHER)
    assert only.returncode == 0 and only.stdout.count(b"\n") == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(dump.read_bytes().replace(b'"op":"set"', b'"op":"put"', 1))
    broken = import_(bad, f"sqlite:///{tmp_path / 'fresh.db'}")
    assert broken.returncode == 2 and b"Line 2 is not an export line" in broken.stderr
