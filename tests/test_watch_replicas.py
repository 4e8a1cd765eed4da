"""Watch across server replicas: two real ``botwire serve`` processes on one PostgreSQL
database. A watcher on server B sees what is written through server A within a second, in
revision order, and a watcher whose connection is cut over and over resumes with
``Last-Event-ID`` without losing or repeating an event across 10,000 writes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pg import require_postgres, temp_database_sync
from server_process import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

NS = "watched"
ENV = {"BOTWIRE_POOL_MIN": "1", "BOTWIRE_POOL_MAX": "4", "BOTWIRE_WRITES_PER_DAY": "0"}


@pytest.fixture
def servers() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    require_postgres()
    with temp_database_sync() as url:
        a = ServerProcess(url, env=ENV)
        b = ServerProcess(url, env=ENV)
        with a, b:
            yield a, b


async def sse(response: httpx.Response) -> AsyncIterator[tuple[int | None, dict[str, Any]]]:
    """(id or None, event data) for each ``change`` event of an SSE stream."""
    event_id: int | None = None
    data: list[str] = []
    kind = "message"
    async for line in response.aiter_lines():
        if line == "":
            if data and kind == "change":
                yield event_id, json.loads("\n".join(data))
            event_id, data, kind = None, [], "message"
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                event_id = int(value)
            elif field == "data":
                data.append(value)
            elif field == "event":
                kind = value


async def test_a_batch_through_a_reaches_a_watcher_on_b(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = servers
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("GET", f"{b.url}/namespaces/{NS}/watch?after=0") as response:
            assert response.status_code == 200
            events = sse(response)
            await asyncio.sleep(0.3)  # the stream is open
            sent = time.monotonic()
            reply = await http.post(
                f"{a.url}/namespaces/{NS}/batch",
                json={"ops": [{"op": "set", "key": f"k{i}", "value": i} for i in range(5)]},
            )
            assert reply.status_code == 200, reply.text
            got = []
            async for event_id, data in events:
                got.append((event_id, data["revision"], data["key"], data["value"]))
                if event_id is not None:
                    break
            assert time.monotonic() - sent < 1.0
            assert got == [(None, 1, f"k{i}", i) for i in range(4)] + [(1, 1, "k4", 4)]
            # A second write, through A again, arrives in order.
            await http.put(f"{a.url}/memory/{NS}/after", json={"value": "x"})
            async for event_id, data in events:
                assert (event_id, data["revision"], data["key"]) == (2, 2, "after")
                break


async def test_resuming_with_last_event_id_loses_and_repeats_nothing(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = servers
    singles, batches, size = 9000, 100, 10  # 10,000 writes: 9,100 revisions
    expected_events = singles + batches * size
    seen: list[tuple[int, str]] = []
    done_writing = asyncio.Event()

    async def write(http: httpx.AsyncClient, worker: int) -> None:
        for i in range(worker, singles, 16):
            r = await http.put(f"{a.url}/memory/{NS}/s{i}", json={"value": i})
            assert r.status_code == 200, r.text
        for i in range(worker, batches, 16):
            ops = [{"op": "set", "key": f"b{i}-{j}", "value": j} for j in range(size)]
            r = await http.post(f"{a.url}/namespaces/{NS}/batch", json={"ops": ops})
            assert r.status_code == 200, r.text

    async def watch(http: httpx.AsyncClient) -> int:
        last = 0
        cuts = 0
        while len(seen) < expected_events:
            headers = {"Last-Event-ID": str(last)}
            async with http.stream(
                "GET", f"{b.url}/namespaces/{NS}/watch", headers=headers
            ) as response:
                assert response.status_code == 200
                received = 0
                async for event_id, data in sse(response):
                    seen.append((data["revision"], data["key"]))
                    received += 1
                    if event_id is not None:
                        last = event_id
                        # Cut the connection every few hundred events, always right after a
                        # complete revision, as a proxy or a network would at random.
                        if received >= 300 and not (done_writing.is_set() and cuts > 30):
                            cuts += 1
                            break
                    if len(seen) >= expected_events:
                        break
        return cuts

    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        watcher = asyncio.create_task(watch(http))
        await asyncio.gather(*(write(http, w) for w in range(16)))
        done_writing.set()
        cuts = await asyncio.wait_for(watcher, 120)
        feed: list[tuple[int, str]] = []
        after = 0
        while True:
            page = await http.get(f"{a.url}/namespaces/{NS}/changes?after={after}&limit=1000")
            body = page.json()
            feed.extend((e["revision"], e["key"]) for e in body["events"])
            after = body["next_after"]
            if after >= body["head"]:
                break
    assert cuts >= 10
    assert len(feed) == expected_events
    assert seen == feed  # every event once, in revision order
