"""``BOTWIRE_RETENTION``: history older than the setting is compacted, per namespace, in small
steps; current values stay; ``oldest_revision`` and ``410 revision_compacted`` follow."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest
from backends import FakeClock, OpenStore
from server_process import ServerProcess

from botwire_server.errors import RevisionCompacted
from botwire_server.retention import retain
from botwire_server.storage.base import Store


async def _snapshot(store: Store, ns: str, as_of: int | None = None) -> dict[str, bytes]:
    return {i.key: i.value for i in await store.list(ns, as_of=as_of, limit=1000)}


async def test_a_pass_compacts_what_is_older_than_the_retention(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
    async with make_store(clock=clock) as store:
        # Hour 0: revisions 1-30 in "old" (keys a0-a9 three times), 1-2 in "quiet".
        for round_ in range(3):
            for i in range(10):
                clock.advance(1)
                await store.set("old", f"a{i}", b"%d" % round_)
        await store.set("quiet", "only", b'"kept"')
        await store.delete("quiet", "only")
        await store.set("quiet", "kept", b"1")
        # Two hours later: revisions 31-33 in "old".
        clock.advance(7200)
        for i in range(3):
            await store.set("old", f"a{i}", b'"new"')
        current = {ns: await _snapshot(store, ns) for ns in ("old", "quiet")}
        at_30 = await _snapshot(store, "old", 30)

        removed = await retain(store, 3600, step=7, pause=0)
        assert removed == 20 + 2  # a0-a9 rounds 0 and 1; quiet's set@1 and tombstone@2
        old = await store.info("old")
        assert (old.oldest_revision, old.revision) == (30, 33)
        assert (await store.info("quiet")).oldest_revision == 3
        # Current values untouched; the floor still reads as before.
        assert {ns: await _snapshot(store, ns) for ns in ("old", "quiet")} == current
        assert await _snapshot(store, "old", 30) == at_30
        with pytest.raises(RevisionCompacted) as below:
            await store.get("old", "a5", as_of=29)
        assert below.value.oldest_revision == 30
        assert [e.revision for e in await store.history("old", "a5")] == [26]
        # Nothing new is old enough: a second pass removes nothing.
        assert await retain(store, 3600, step=7, pause=0) == 0
        # Later still, the recent writes age out too; a key's current value survives.
        clock.advance(7200)
        assert await retain(store, 3600) == 3  # a0-a2's round-2 sets
        assert (await store.info("old")).oldest_revision == 33
        assert await _snapshot(store, "old") == current["old"]


@pytest.mark.e2e
@pytest.mark.slow
def test_a_server_with_retention_compacts_in_the_background(tmp_path: object) -> None:
    env = {"BOTWIRE_RETENTION": "1", "BOTWIRE_RETENTION_INTERVAL": "0.2"}
    with (
        ServerProcess(f"sqlite:///{tmp_path}/r.db", env=env) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        for i in range(5):
            assert client.put("/memory/n/k", json={"value": i}).status_code == 200
        assert client.put("/memory/n/other", json={"value": "old"}).status_code == 200
        time.sleep(1.2)
        assert client.put("/memory/n/k", json={"value": "recent"}).status_code == 200
        deadline = time.monotonic() + 10
        while client.get("/namespaces/n").json()["oldest_revision"] < 6:
            assert time.monotonic() < deadline, "retention did not compact"
            time.sleep(0.1)
        assert client.get("/namespaces/n").json()["oldest_revision"] == 6
        gone = client.get("/memory/n/k", params={"as_of": 2})
        assert gone.status_code == 410 and gone.json()["code"] == "revision_compacted"
        assert client.get("/memory/n/k").json()["value"] == "recent"
        assert client.get("/memory/n/other").json()["value"] == "old"
        assert client.get("/memory/n/k", params={"as_of": 6}).json()["value"] == 4
        history = client.get("/memory/n/k/history").json()
        assert [e["revision"] for e in history["events"]] == [7, 5]
