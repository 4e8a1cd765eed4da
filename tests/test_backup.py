"""Backups: ``botwire backup`` of a live SQLite database while writers run, restored and served
by a real server, equals a point-in-time snapshot of the original; a PostgreSQL database dumped
with ``pg_dump`` and restored with ``pg_restore`` into a new database serves the same data."""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from pg import create_database, drop_database, require_postgres, temp_database_sync
from server_process import ServerProcess
from transfer_util import picture

from botwire_client.cli import main
from botwire_server.storage.base import MICROS, Write
from botwire_server.storage.postgres import PostgresStore

pytestmark = pytest.mark.e2e
SPACES = ("alpha", "beta", "gamma")


def state(client: httpx.Client, ns: str, as_of: int | None = None) -> dict[str, Any]:
    """A namespace's keys and values at ``as_of`` (default: now) and its feed up to there."""
    params = {} if as_of is None else {"as_of": as_of}
    snapshot = client.get(f"/namespaces/{ns}/snapshot", params=params)
    assert snapshot.status_code == 200, snapshot.text
    body = snapshot.json()
    head = body["revision"]
    feed = client.get(f"/namespaces/{ns}/changes", params={"after": 0, "limit": 1000})
    events = [e for e in feed.json()["events"] if e["revision"] <= head]
    return {"revision": head, "values": body["values"], "feed": events}


def test_a_backup_taken_under_writes_is_a_point_in_time_copy(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    copy = tmp_path / "backup.db"
    with ServerProcess(f"sqlite:///{live}") as server:
        stop = threading.Event()
        counts = dict.fromkeys(SPACES, 0)

        def write(ns: str) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop.is_set():
                    i = counts[ns] = counts[ns] + 1
                    ops = [{"op": "set", "key": f"k{j}", "value": [i, j]} for j in range(3)]
                    r = client.post(f"/namespaces/{ns}/batch", json={"ops": ops})
                    assert r.status_code == 200, r.text

        writers = [threading.Thread(target=write, args=(ns,)) for ns in SPACES]
        for thread in writers:
            thread.start()
        while min(counts.values()) < 5:
            threading.Event().wait(0.05)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):  # the command, in this process
            code = main(["backup", "--db", f"sqlite:///{live}", str(copy)])
        more = dict(counts)
        threading.Event().wait(0.3)
        stop.set()
        for thread in writers:
            thread.join(30)
        assert code == 0, err.getvalue()
        assert "backed up" in err.getvalue()
        assert min(counts[ns] - more[ns] for ns in SPACES) > 0  # writes went on meanwhile
        # Restore (README): the server stopped, the copy in place of the database file.
        restored = tmp_path / "restored" / "botwire.db"
        restored.parent.mkdir()
        shutil.copyfile(copy, restored)
        with (
            ServerProcess(f"sqlite:///{restored}") as second,
            httpx.Client(base_url=second.url) as back,
            httpx.Client(base_url=server.url) as original,
        ):
            for ns in SPACES:
                got = state(back, ns)
                assert 0 < got["revision"] < state(original, ns)["revision"]
                assert got == state(original, ns, got["revision"])
                # Each batch is whole in the copy: its three keys agree.
                assert {value[0] for value in got["values"].values()} == {got["revision"]}
            # The restored server takes writes from where the copy ends.
            next_rev = back.put("/memory/alpha/new", json={"value": 1}).json()["version"]
            assert next_rev == state(back, "alpha")["revision"]


def test_backup_refuses_postgresql_and_a_missing_file(tmp_path: Path) -> None:
    assert main(["backup", "--db", "postgresql://u@127.0.0.1/x", str(tmp_path / "b")]) == 2
    assert main(["backup", "--db", f"sqlite:///{tmp_path / 'none.db'}", str(tmp_path / "b")]) == 1
    assert not (tmp_path / "b").exists()


async def _fill(url: str) -> None:
    store = PostgresStore(url)
    await store.migrate()
    await store.open()
    try:
        for i in range(30):
            await store.set(
                "pg", f"k{i % 7}", b'{"i":%d}' % i, ttl=3600 * MICROS if i % 2 else None
            )
        await store.commit(
            "pg", [Write(op="delete", key="k3"), Write(op="set", key="b", value=b"[]")]
        )
        await store.rollback("pg", 10)
        await store.compact("pg", before=5)
    finally:
        await store.close()


async def _picture(url: str) -> dict[str, Any]:
    store = PostgresStore(url)
    await store.open()
    try:
        return await picture(store, "pg", range(5, 33))
    finally:
        await store.close()


@pytest.mark.slow
def test_pg_dump_restored_into_a_new_database_serves_the_same_data(tmp_path: Path) -> None:
    require_postgres()
    with temp_database_sync() as source:
        asyncio.run(_fill(source))
        dump = tmp_path / "botwire.dump"
        subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), source], check=True)
        target = asyncio.run(create_database())
        try:
            subprocess.run(["pg_restore", "--no-owner", "--dbname", target, str(dump)], check=True)
            assert asyncio.run(_picture(target)) == asyncio.run(_picture(source))
            with ServerProcess(target) as server, httpx.Client(base_url=server.url) as client:
                info = client.get("/namespaces/pg").json()
                assert (info["revision"], info["oldest_revision"]) == (32, 5)
                assert client.get("/memory/pg/k2").json()["value"] == {"i": 9}  # the rollback
                assert client.get("/memory/pg/b").status_code == 404
                assert client.put("/memory/pg/new", json={"value": 1}).json()["version"] == 33
        finally:
            asyncio.run(drop_database(target))
