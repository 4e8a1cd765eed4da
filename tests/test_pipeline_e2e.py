"""The write pipeline on a real ``botwire serve`` process (SQLite): TTL expiry by the sweeper,
a watcher that sees another client's batch, resumption with ``Last-Event-ID`` across
concurrent writes, and a graceful stop that does not wait for open watch streams."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import ServerProcess

pytestmark = pytest.mark.e2e


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'botwire.db'}"


async def full_feed(c: httpx.AsyncClient, ns: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    after = 0
    while True:
        page = (await c.get(f"/namespaces/{ns}/changes?after={after}&limit=1000")).json()
        out += [(e["revision"], e["key"]) for e in page["events"]]
        if page["next_after"] == page["head"]:
            return out
        after = page["next_after"]


def test_a_key_with_a_ttl_expires_into_history_and_the_feed(tmp_path: Path) -> None:
    with ServerProcess(db_url(tmp_path)) as server, httpx.Client(base_url=server.url) as c:
        assert c.put("/memory/ns/short", json={"value": "bye", "ttl": 1}).status_code == 200
        c.put("/memory/ns/long", json={"value": "stays", "ttl": 3600})
        assert c.get("/memory/ns/short").json()["expires_at"] is not None
        deadline = time.monotonic() + 6
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            events = c.get("/memory/ns/short/history").json()["events"]
            if events[0]["op"] == "expire":
                break
            time.sleep(0.1)
        assert [(e["revision"], e["op"]) for e in events] == [(3, "expire"), (1, "set")]
        assert events[0]["value"] is None
        assert c.get("/memory/ns/short").status_code == 404
        assert c.get("/memory/ns/long").status_code == 200
        feed = c.get("/namespaces/ns/changes?after=2").json()["events"]
        assert [(e["revision"], e["key"], e["op"]) for e in feed] == [(3, "short", "expire")]
        info = c.get("/namespaces/ns").json()
        assert info["keys"] == 1 and info["revision"] == 3


async def read_events(
    response: httpx.Response,
    seen: list[tuple[int, str]],
    *,
    stop_after: int | None = None,
    stop_at: int | None = None,
) -> int | None:
    """Collect the (revision, key) of each complete revision from an SSE response, as a client
    does: events are kept once the id of their revision arrives. Returns the last id, after
    ``stop_after`` events (the caller then drops the connection mid-stream), once revision
    ``stop_at`` is complete, or at the end."""
    pending: list[tuple[int, str]] = []
    last: int | None = None
    count = 0
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if event.get("event") == "change":
                data = json.loads(event["data"])
                pending.append((data["revision"], data["key"]))
                count += 1
                if "id" in event:
                    assert int(event["id"]) == data["revision"]
                    seen.extend(pending)
                    pending.clear()
                    last = data["revision"]
                    if last == stop_at:
                        return last
            event = {}
            if stop_after is not None and count >= stop_after:
                return last
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        event[name] = value
    return last


async def test_watchers_see_batches_and_resume_without_loss(tmp_path: Path) -> None:
    with ServerProcess(db_url(tmp_path), env={"BOTWIRE_WRITES_PER_DAY": "0"}) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
            # A watcher connected from the head sees a batch another client commits.
            async with c.stream("GET", "/namespaces/ns/watch") as r:
                assert r.status_code == 200
                assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
                async with httpx.AsyncClient(base_url=server.url) as other:
                    ops = [{"op": "set", "key": f"b{i}", "value": i} for i in range(3)]
                    w = await other.post("/namespaces/ns/batch", json={"ops": ops})
                    assert w.status_code == 200 and w.json()["revision"] == 1
                seen: list[tuple[int, str]] = []
                assert await read_events(r, seen, stop_after=3) == 1
                assert seen == [(1, "b0"), (1, "b1"), (1, "b2")]

            # 40 concurrent writers commit 2,000 writes (each: 10 PUTs and 10 batches of 4
            # sets) while the watcher drops its connection every few hundred events, often
            # in the middle of a revision, and resumes with Last-Event-ID.
            async def writer(n: int) -> None:
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as w:
                    for i in range(20):
                        if i % 2:
                            ops = [
                                {"op": "set", "key": f"w{n}-{i}-{j}", "value": j} for j in "wxyz"
                            ]
                            r = await w.post("/namespaces/ns/batch", json={"ops": ops})
                        else:
                            r = await w.put(f"/memory/ns/w{n}-{i}", json={"value": i})
                        assert r.status_code == 200, r.text

            writers = asyncio.gather(*(writer(n) for n in range(40)))
            final = 1 + 40 * 20  # each PUT and each batch is one revision
            collected: list[tuple[int, str]] = list(seen)
            last = 1
            reconnects = 0
            while last != final:
                headers = {"Last-Event-ID": str(last)}
                async with c.stream("GET", "/namespaces/ns/watch", headers=headers) as r:
                    assert r.status_code == 200
                    got = await read_events(r, collected, stop_after=317, stop_at=final)
                reconnects += 1
                last = got if got is not None else last
            await writers
            assert reconnects > 3
            expected = await full_feed(c, "ns")
    assert len(expected) == 3 + 2000
    assert collected == expected


def test_a_graceful_stop_ends_open_watch_streams(tmp_path: Path) -> None:
    server = ServerProcess(db_url(tmp_path), env={"BOTWIRE_SHUTDOWN_TIMEOUT": "30"})
    with server, httpx.Client(base_url=server.url, timeout=10) as c:
        with c.stream("GET", "/namespaces/ns/watch") as r:
            assert r.status_code == 200
            started = time.monotonic()
            assert server.stop() == 0
            assert time.monotonic() - started < 5
            assert list(r.iter_lines()) == []
