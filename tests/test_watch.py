"""``GET /namespaces/{ns}/watch`` in process: the SSE stream driven straight through ASGI (httpx's
ASGI transport buffers a whole response, so it cannot follow an endless stream), against every
storage backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from backends import BACKENDS, open_store
from starlette.applications import Starlette

from botwire_server.errors import RevisionCompacted
from botwire_server.http import create_app
from botwire_server.settings import Limits, Settings
from botwire_server.storage.base import Store


class Stream:
    """One watch request driven through the app's ASGI interface."""

    def __init__(self, app: Starlette, path: str, headers: dict[str, str] | None = None) -> None:
        target, _, query = path.partition("?")
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"bw.test")]
            + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 5000),
            "server": ("bw.test", 80),
        }
        self.app = app
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.buffer = b""
        self.ended = False
        self.task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        if not hasattr(self, "_sent_request"):
            self._sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        await self.messages.put(message)

    async def start(self) -> dict[str, Any]:
        self.task = asyncio.ensure_future(self.app(self.scope, self._receive, self._send))
        start = await asyncio.wait_for(self.messages.get(), 5)
        return start

    async def chunk(self, timeout: float = 5) -> bytes:
        message = await asyncio.wait_for(self.messages.get(), timeout)
        assert message["type"] == "http.response.body"
        if not message.get("more_body", False):
            self.ended = True
        data: bytes = message["body"]
        return data

    async def events(self, count: int, timeout: float = 5) -> list[dict[str, Any]]:
        """The next ``count`` SSE events (comments included, as {"comment": text})."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            while b"\n\n" not in self.buffer:
                assert not self.ended, f"stream ended after {out}"
                self.buffer += await self.chunk(timeout)
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            out.append(parse(block))
        return out

    async def disconnect(self) -> None:
        self.gone.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


def parse(block: bytes) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for line in block.decode().split("\n"):
        if line.startswith(":"):
            event["comment"] = line[1:].strip()
            continue
        name, _, value = line.partition(": ")
        event[name] = json.loads(value) if name == "data" else value
    return event


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path, limits=Limits(writes_per_day=0)) as s:
        yield s


@contextlib.asynccontextmanager
async def serve(
    store: Store, keepalive: float = 15.0
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(Settings(limits=store.limits, watch_keepalive=keepalive), store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
        yield app, c


def changes(events: list[dict[str, Any]]) -> list[tuple[str | None, int, str, str]]:
    return [(e.get("id"), e["data"]["revision"], e["data"]["key"], e["data"]["op"]) for e in events]


async def test_watch_streams_new_commits_with_ids_on_the_last_event(store: Store) -> None:
    async with serve(store) as (app, c):
        await c.put("/memory/ns/before", json={"value": 0})
        stream = Stream(app, "/namespaces/ns/watch")
        start = await stream.start()
        assert start["status"] == 200
        headers = dict(start["headers"])
        assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
        assert headers[b"cache-control"] == b"no-cache"
        assert headers[b"x-accel-buffering"] == b"no"
        await c.post(
            "/namespaces/ns/batch",
            json={
                "ops": [
                    {"op": "set", "key": "a", "value": {"x": 1}, "ttl": 60},
                    {"op": "set", "key": "b", "value": 2},
                    {"op": "delete", "key": "before"},
                ]
            },
        )
        await c.put("/memory/ns/c", json={"value": "three"})
        got = await stream.events(4)
        assert all(e["event"] == "change" for e in got)
        # Only the last event of revision 2 carries its id; the revision-1 write came before
        # the watch started (no `after`: from the head on).
        assert changes(got) == [
            (None, 2, "a", "set"),
            (None, 2, "b", "set"),
            ("2", 2, "before", "delete"),
            ("3", 3, "c", "set"),
        ]
        feed = (await c.get("/namespaces/ns/changes?after=1")).json()["events"]
        assert [e["data"] for e in got] == feed
        await stream.disconnect()


async def test_after_and_last_event_id(store: Store) -> None:
    async with serve(store) as (app, c):
        for i in range(5):
            await c.put(f"/memory/ns/k{i}", json={"value": i})
        stream = Stream(app, "/namespaces/ns/watch?after=1")
        await stream.start()
        assert [e["data"]["revision"] for e in await stream.events(4)] == [2, 3, 4, 5]
        await stream.disconnect()
        # Last-Event-ID wins over after.
        resumed = Stream(app, "/namespaces/ns/watch?after=0", {"Last-Event-ID": "3"})
        await resumed.start()
        assert changes(await resumed.events(2)) == [("4", 4, "k3", "set"), ("5", 5, "k4", "set")]
        await c.put("/memory/ns/k5", json={"value": 5})
        assert changes(await resumed.events(1)) == [("6", 6, "k5", "set")]
        await resumed.disconnect()


async def test_prefix_filters_the_stream(store: Store) -> None:
    async with serve(store) as (app, c):
        stream = Stream(app, "/namespaces/ns/watch?after=0&prefix=user")
        await stream.start()
        await c.put("/memory/ns/other", json={"value": 1})
        await c.put("/memory/ns/user-1", json={"value": 2})
        assert changes(await stream.events(1)) == [("2", 2, "user-1", "set")]
        await stream.disconnect()


async def test_keepalive_comment_while_idle(store: Store) -> None:
    async with serve(store, keepalive=0.05) as (app, c):
        stream = Stream(app, "/namespaces/ns/watch")
        await stream.start()
        assert await stream.events(2, timeout=2) == [{"comment": "keepalive"}] * 2
        await c.put("/memory/ns/k", json={"value": 1})
        got = [e for e in await stream.events(3, timeout=2) if "comment" not in e]
        assert changes(got[:1]) == [("1", 1, "k", "set")]
        await stream.disconnect()


async def test_disconnect_ends_the_stream_and_frees_the_watcher(store: Store) -> None:
    async with serve(store) as (app, c):
        hub = app.state.service.hub
        stream = Stream(app, "/namespaces/ns/watch")
        await stream.start()
        await c.put("/memory/ns/k", json={"value": 1})
        await stream.events(1)
        assert hub.watchers == 1
        await stream.disconnect()
        assert hub.watchers == 0
        await c.put("/memory/ns/k", json={"value": 2})  # nobody left to wake: no error


async def test_shutdown_ends_open_streams(store: Store) -> None:
    async with serve(store) as (app, c):
        streams = [Stream(app, "/namespaces/ns/watch") for _ in range(3)]
        for s in streams:
            await s.start()
        await c.put("/memory/ns/k", json={"value": 1})
        for s in streams:
            await s.events(1)
        app.state.lifecycle.close()
        for s in streams:
            assert await s.chunk() == b""
            assert s.ended
            assert s.task is not None
            await asyncio.wait_for(s.task, 5)
        assert app.state.service.hub.watchers == 0
        # New requests (watches included) are refused while closing.
        r = await c.get("/namespaces/ns/watch")
        assert r.status_code == 503 and r.json()["code"] == "shutting_down"


async def test_one_commit_wakes_many_watchers_with_one_read(store: Store) -> None:
    async with serve(store) as (app, c):
        reads: list[int] = []
        original = store.changes

        async def counted(namespace: str, **kwargs: Any) -> Any:
            reads.append(kwargs["after"])
            return await original(namespace, **kwargs)

        store.changes = counted  # type: ignore[method-assign]
        streams = [Stream(app, "/namespaces/ns/watch") for _ in range(300)]
        for s in streams:
            await s.start()
        assert reads == []  # no `after`: the head, no feed read; idle watchers read nothing
        await asyncio.sleep(0.05)
        assert reads == []
        await c.put("/memory/ns/k", json={"value": 1})
        for s in streams:
            assert changes(await s.events(1)) == [("1", 1, "k", "set")]
        assert len(reads) <= 3, len(reads)
        for s in streams:
            await s.disconnect()


async def test_a_reader_far_behind_pages_through_the_feed(store: Store) -> None:
    async with serve(store) as (app, c):
        ops = [{"op": "set", "key": f"k{i}", "value": i} for i in range(3)]
        for _ in range(5):  # concurrent writes: SQLite commits them in groups
            await asyncio.gather(*(store.set("ns", "k", b"1") for _ in range(500)))
        await c.post("/namespaces/ns/batch", json={"ops": ops})
        limits: list[int] = []
        original = store.changes

        async def counted(namespace: str, **kwargs: Any) -> Any:
            limits.append(kwargs["limit"])
            return await original(namespace, **kwargs)

        store.changes = counted  # type: ignore[method-assign]
        stream = Stream(app, "/namespaces/ns/watch?after=0")
        await stream.start()
        got = await stream.events(2503)
        revisions = [e["data"]["revision"] for e in got]
        assert revisions == list(range(1, 2501)) + [2501] * 3
        assert [e.get("id") for e in got[-3:]] == [None, None, "2501"]
        assert limits == [1000, 1000, 1000]
        await stream.disconnect()


async def test_head_request_ends_at_once(store: Store) -> None:
    async with serve(store) as (app, c):
        r = await c.head("/namespaces/ns/watch")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert app.state.service.hub.watchers == 0


async def test_an_error_mid_stream_is_sent_as_an_error_event(store: Store) -> None:
    async with serve(store) as (app, c):
        stream = Stream(app, "/namespaces/ns/watch")
        await stream.start()
        await c.put("/memory/ns/k", json={"value": 1})
        await stream.events(1)

        async def compacted(namespace: str, **kwargs: Any) -> Any:
            raise RevisionCompacted(kwargs["after"], 5)

        store.changes = compacted  # type: ignore[method-assign]
        await c.put("/memory/ns/k", json={"value": 2})
        (error,) = await stream.events(1)
        assert error == {
            "event": "error",
            "data": {
                "error": "Revision 1 is older than the kept history; the oldest readable "
                "revision is 5.",
                "code": "revision_compacted",
                "status": 410,
                "oldest_revision": 5,
            },
        }
        assert await stream.chunk() == b"" and stream.ended
        assert stream.task is not None
        await asyncio.wait_for(stream.task, 5)
        assert app.state.service.hub.watchers == 0
