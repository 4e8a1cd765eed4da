"""The change feed and the watch through ``httpx.MockTransport``: paging, Server-Sent Events,
reconnection from the last revision delivered in full, and de-duplication of a revision that a
broken connection delivered in part."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from test_client_core import error, mock

from botwire import Event, InvalidRequest, Memory, RevisionCompacted, ServerUnavailable
from botwire_client import core, feed

AT = "2026-11-21T10:00:00.000001Z"


def event(revision: int, key: str, op: str = "set", **extra: Any) -> dict[str, Any]:
    value = None if op != "set" else f"{key}{revision}"
    return {"revision": revision, "key": key, "op": op, "value": value, "at": AT, **extra}


def keyed(events: Any) -> list[tuple[int, str | None]]:
    return [(e.revision, e.key) for e in events]


# -- the change feed ---------------------------------------------------------------------------


class Feed:
    """A change feed over ``log`` that answers ``limit`` revisions per page; ``writes`` more
    revisions land after each page (the head moves while the client pages)."""

    def __init__(self, log: list[dict[str, Any]], writes: int = 0) -> None:
        self.log = log
        self.writes = writes
        self.seen: list[httpx.Request] = []

    def head(self) -> int:
        return max((e["revision"] for e in self.log), default=0)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        after = int(request.url.params["after"])
        limit = int(request.url.params["limit"])
        prefix = request.url.params.get("prefix", "")
        revisions = sorted({e["revision"] for e in self.log if e["revision"] > after})[:limit]
        covered = revisions[-1] if revisions else max(after, self.head())
        events = [
            e for e in self.log if after < e["revision"] <= covered and e["key"].startswith(prefix)
        ]
        body = {"namespace": "ns", "head": self.head(), "events": events, "next_after": covered}
        for _ in range(self.writes):
            self.log.append(event(self.head() + 1, "late"))
        return httpx.Response(200, json=body)


def test_changes_pages_until_the_first_head_and_keeps_revisions_whole() -> None:
    log = [event(1, "a"), event(2, "a"), event(2, "b"), event(3, "c", "delete"), event(4, "a")]
    log.append(event(5, "b", "expire"))
    server = Feed(log)
    events = list(mock(server, page_size=2).changes(1))
    assert keyed(events) == [(2, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "b")]
    assert [e.op for e in events] == ["set", "set", "delete", "set", "expire"]
    assert events[0].value == "a2" and events[2].value is None
    assert [r.url.params["after"] for r in server.seen] == ["1", "3"]  # the second covers 5
    assert all(r.url.path == "/namespaces/ns/changes" for r in server.seen)
    assert [r.url.params["limit"] for r in server.seen] == ["2"] * len(server.seen)


def test_changes_ends_at_the_head_it_saw_first_while_writes_continue() -> None:
    server = Feed([event(r, "k") for r in range(1, 6)], writes=3)
    events = list(mock(server, page_size=2).changes())
    # Pages: after 0 -> 1,2 (head 5); after 2 -> 3,4; after 4 -> 5 (and the late writes 6..).
    assert [e.revision for e in events][:5] == [1, 2, 3, 4, 5]
    assert len(server.seen) == 3


def test_changes_filters_by_prefix_and_stops_on_an_empty_feed() -> None:
    server = Feed([event(1, "user_a"), event(2, "other"), event(3, "user_b")])
    assert keyed(mock(server).changes(prefix="user_")) == [(1, "user_a"), (3, "user_b")]
    assert server.seen[0].url.params["prefix"] == "user_"
    empty = Feed([])
    assert list(mock(empty).changes()) == [] and len(empty.seen) == 1
    beyond = Feed([event(1, "a")])
    assert list(mock(beyond).changes(9)) == [] and len(beyond.seen) == 1


def test_changes_checks_its_arguments_when_called_and_maps_a_compacted_start() -> None:
    memory = mock(lambda r: error(410, "revision_compacted", oldest_revision=40))
    for bad in [-1, True, "3", None, 1.5]:
        with pytest.raises(InvalidRequest, match="after"):
            memory.changes(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="prefix"):
        memory.changes(prefix=3)  # type: ignore[arg-type]
    with pytest.raises(RevisionCompacted) as caught:
        list(memory.changes(2))
    assert caught.value.oldest_revision == 40


def test_achanges_pages_the_same_way() -> None:
    async def scenario() -> list[Event]:
        server = Feed([event(r, "k") for r in range(1, 6)])
        memory = Memory("ns", "http://t", page_size=2, async_transport=httpx.MockTransport(server))
        try:
            async with memory.achanges(0) as events:
                return [e async for e in events]
        finally:
            await memory.aclose()

    assert [e.revision for e in asyncio.run(scenario())] == [1, 2, 3, 4, 5]


# -- Server-Sent Events ------------------------------------------------------------------------


def test_the_sse_parser_follows_the_format() -> None:
    parser = feed.SSEParser()
    lines = [
        ": keepalive",
        "",
        "event: change",
        'data: {"a":',
        "data:1}",
        "id: 7",
        "",
        "data",  # a field without a colon has an empty value
        "retry: 100",
        "unknown: x",
        "",
        "id: 8",
        "",
        "event: change",
        "id: 9\0",
        "data: x",
        "",
    ]
    messages = [m for m in map(parser.feed, lines) if m is not None]
    assert messages == [
        feed.Message("change", '{"a":\n1}', "7"),
        feed.Message("message", "", None),
        feed.Message("message", "", "8"),
        feed.Message("change", "x", None),  # an id holding NUL is ignored, as the format says
    ]
    parser.feed("data: half")
    parser.reset()  # a connection broke before the blank line: the half message is dropped
    assert parser.feed("") is None


# -- the watch ---------------------------------------------------------------------------------


def sse(*events: dict[str, Any], last_id: bool = True) -> bytes:
    """The events as the server frames them: ``id:`` only on the last event of a revision."""
    out = []
    for i, e in enumerate(events):
        last = i + 1 == len(events) or events[i + 1]["revision"] != e["revision"]
        out.append(f"event: change\ndata: {json.dumps(e)}\n")
        if last and (last_id or i + 1 < len(events)):
            out.append(f"id: {e['revision']}\n")
        out.append("\n")
    return "".join(out).encode()


class Stream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body sent in ``chunks``, then broken with ``error`` (or ended cleanly)."""

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class Server:
    """Answers each watch request with the next of ``answers`` (a Stream, a Response or an
    exception to raise); ``GET /namespaces/ns`` answers ``head``."""

    def __init__(self, answers: list[Any], head: int = 0) -> None:
        self.answers = list(answers)
        self.head = head
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.path == "/namespaces/ns":
            return httpx.Response(200, json={"namespace": "ns", "revision": self.head})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Stream):
            headers = {"Content-Type": "text/event-stream"}
            return httpx.Response(200, stream=answer, headers=headers)
        assert isinstance(answer, httpx.Response)
        return answer

    def resumes(self) -> list[tuple[str, str | None]]:
        return [
            (r.url.params["after"], r.headers.get("last-event-id"))
            for r in self.seen
            if r.url.path.endswith("/watch")
        ]


def reconnecting_script() -> tuple[Server, Stream]:
    last = Stream([sse(event(10, "d"))])  # stays open: the reader stops first
    last.chunks.append(b": keepalive\n\n")
    server = Server(
        [
            Stream(
                # Revision 8 is cut after key "a" (no id yet), then half a line of "b".
                [b": keepalive\n\n", sse(event(7, "x")), sse(event(8, "a"), last_id=False)]
                + [b'event: change\ndata: {"revision": 8, "ke'],
                httpx.ReadError("connection reset"),
            ),
            # The server re-sends all of revision 8 after Last-Event-ID 7. Revision 9's data
            # spans two lines; then the server restarts (a clean end of the stream).
            Stream(
                [
                    sse(event(8, "a"), event(8, "b", "delete")),
                    b'event: change\ndata: {"revision": 9, "key": "c", "op": "set",\n',
                    b'data: "value": [1], "at": "' + AT.encode() + b'", "agent": "p"}\nid: 9\n\n',
                ]
            ),
            error(503, "database_unavailable"),
            httpx.ConnectError("refused"),
            last,
        ]
    )
    return server, last


EXPECTED = [(7, "x"), (8, "a"), (8, "b"), (9, "c"), (10, "d")]
RESUMES = [("5", None), ("7", "7"), ("9", "9"), ("9", "9"), ("9", "9")]


def test_watch_reconnects_from_the_last_full_revision_without_losing_or_repeating() -> None:
    server, last = reconnecting_script()
    memory = mock(server)
    with memory.watch(5) as stream:
        events = [next(stream) for _ in EXPECTED]
    assert keyed(events) == EXPECTED
    assert events[3].value == [1] and events[3].agent == "p" and events[2].op == "delete"
    assert server.resumes() == RESUMES
    assert last.closed  # leaving the block closed the connection
    watches = [r for r in server.seen if r.url.path == "/namespaces/ns/watch"]
    assert watches[0].headers["accept"] == "text/event-stream"
    timeout = watches[0].extensions["timeout"]
    assert timeout["read"] == feed.WATCH_READ_TIMEOUT > 15 and timeout["connect"] == 10.0


def test_awatch_reconnects_the_same_way() -> None:
    async def scenario() -> tuple[list[Event], Server, Stream]:
        server, last = reconnecting_script()
        memory = Memory("ns", "http://t", async_transport=httpx.MockTransport(server))
        memory.retry = core.RetryPolicy(retries=3, backoff=0.001, max_backoff=0.01)
        events: list[Event] = []
        async with memory.awatch(5) as stream:
            async for e in stream:
                events.append(e)
                if len(events) == len(EXPECTED):
                    break
        await memory.aclose()
        return events, server, last

    events, server, last = asyncio.run(scenario())
    assert keyed(events) == EXPECTED and server.resumes() == RESUMES and last.closed


def test_watch_without_after_starts_at_the_head_and_breaking_out_closes() -> None:
    body = Stream([sse(event(5, "new"))])
    server = Server([body], head=4)
    for e in mock(server).watch(prefix="n"):
        assert (e.revision, e.key) == (5, "new")
        break
    assert body.closed
    assert [r.url.path for r in server.seen] == ["/namespaces/ns", "/namespaces/ns/watch"]
    assert server.seen[1].url.params["after"] == "4" and server.seen[1].url.params["prefix"] == "n"


def test_watch_errors_and_giving_up() -> None:
    memory = mock(Server([error(410, "revision_compacted", oldest_revision=3)]))
    with pytest.raises(RevisionCompacted):
        next(memory.watch(1))
    # Before the server ever accepted the watch, it gives up like any request...
    refused = Server([httpx.ConnectError("refused")] * 10)
    with pytest.raises(ServerUnavailable, match="Could not reach"):
        next(mock(refused, retries=2).watch(0))
    assert len(refused.seen) == 3
    # ...after, it outlives any outage.
    outage: list[Any] = [Stream([sse(event(1, "a"))])] + [httpx.ConnectError("down")] * 8
    outage.append(Stream([sse(event(2, "b"))]))
    with mock(Server(outage), retries=2).watch(0) as stream:
        assert keyed([next(stream), next(stream)]) == [(1, "a"), (2, "b")]
    for bad in [-1, "0", True]:
        with pytest.raises(InvalidRequest):
            memory.watch(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        memory.awatch(prefix=b"x")  # type: ignore[arg-type]
