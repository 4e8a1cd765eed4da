"""Batches and multi-get through ``httpx.MockTransport``: what is sent, what is refused before
sending, and how conflicts and chunked reads come back."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from test_client_core import Flaky, error, mock

from botwire import Conflict, ConflictError, InvalidRequest, Memory, ServerUnavailable
from botwire_client import core


class Recorder:
    """Answers every request with ``answer(request)`` and keeps the requests."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answer(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.seen]


def batch_ok(request: httpx.Request) -> httpx.Response:
    ops = json.loads(request.content)["ops"]
    results = [
        {"key": op["key"], "version": op.get("expected_version", 0) if op["op"] == "check" else 9}
        for op in ops
    ]
    return httpx.Response(200, json={"namespace": "ns", "revision": 9, "results": results})


# -- batches -----------------------------------------------------------------------------------


def test_a_batch_sends_its_ops_in_order_and_commits_on_a_clean_exit() -> None:
    server = Recorder(batch_ok)
    memory = mock(server)
    with memory.batch() as b:
        b.check("config", 7)
        b.set("a", {"x": 1}, ttl=60).set("b", None, expected_version=0)
        b.delete("old", expected_version=3)
        b.delete("gone")
        assert len(b) == 5 and b.revision is None and b.versions == {}
        assert server.seen == []  # nothing leaves before the commit
    assert (server.seen[0].method, server.seen[0].url.path) == ("POST", "/namespaces/ns/batch")
    assert server.bodies()[0] == {
        "ops": [
            {"op": "check", "key": "config", "expected_version": 7},
            {"op": "set", "key": "a", "value": {"x": 1}, "ttl": 60},
            {"op": "set", "key": "b", "value": None, "expected_version": 0},
            {"op": "delete", "key": "old", "expected_version": 3},
            {"op": "delete", "key": "gone"},
        ]
    }
    assert b.revision == 9
    assert b.versions == {"config": 7, "a": 9, "b": 9, "old": 9, "gone": 9}
    assert list(b.versions) == ["config", "a", "b", "old", "gone"]


def test_commit_returns_the_revision_once_and_the_exit_sends_nothing_more() -> None:
    server = Recorder(batch_ok)
    memory = mock(server)
    with memory.batch() as b:
        b.set("a", 1)
        assert b.commit() == 9
        assert b.commit() == 9
        with pytest.raises(InvalidRequest, match="already committed"):
            b.set("c", 1)
    assert len(server.seen) == 1


def test_an_exception_inside_the_block_sends_nothing() -> None:
    server = Recorder(batch_ok)
    with pytest.raises(KeyError), mock(server).batch() as b:
        b.set("a", 1)
        raise KeyError("boom")
    assert server.seen == [] and b.revision is None


def test_an_empty_batch_writes_nothing_and_returns_the_head() -> None:
    server = Recorder(lambda r: httpx.Response(200, json={"namespace": "ns", "revision": 4}))
    with mock(server).batch() as b:
        pass
    assert b.revision == 4 and b.versions == {}
    assert [(r.method, r.url.path) for r in server.seen] == [("GET", "/namespaces/ns")]


def test_mistakes_are_refused_when_the_op_is_added() -> None:
    server = Recorder(batch_ok)
    b = mock(server).batch()
    b.set("a", 1)
    for add in [
        lambda: b.set("a", 2),  # a key at most once
        lambda: b.delete("a"),
        lambda: b.check("a", 1),
        lambda: b.set("bad\nkey", 1),
        lambda: b.set("k", object()),
        lambda: b.set("k", 1, ttl=0),
        lambda: b.set("k", 1, expected_version=-1),
        lambda: b.check("k", None),
        lambda: b.check("k", True),
    ]:
        with pytest.raises(InvalidRequest):
            add()  # type: ignore[no-untyped-call]
    assert len(b) == 1
    for i in range(core.BATCH_LIMIT - 1):
        b.set(f"k{i}", i)
    with pytest.raises(InvalidRequest, match="at most 1000"):
        b.set("one-too-many", 1)
    assert server.seen == []


def test_a_failed_condition_raises_conflict_error_with_every_conflict() -> None:
    conflicts = [
        {"index": 0, "key": "config", "current_version": 8},
        {"index": 2, "key": "gone", "current_version": 0},
    ]
    memory = mock(lambda r: error(409, "batch_conflict", conflicts=conflicts))
    with pytest.raises(ConflictError) as caught, memory.batch() as b:
        b.check("config", 7).set("a", 1).delete("gone")
    assert caught.value.conflicts == [Conflict(0, "config", 8), Conflict(2, "gone", 0)]
    assert caught.value.current_version == 8 and caught.value.code == "batch_conflict"
    assert "'config' is at 8" in str(caught.value) and "Nothing was written" in str(caught.value)
    assert b.revision is None
    # A single-key conflict keeps its shape.
    with pytest.raises(ConflictError) as single:
        mock(lambda r: error(409, "version_conflict", current_version=4)).set("k", 1)
    assert single.value.current_version == 4 and single.value.conflicts == []


def test_a_batch_is_retried_only_when_every_write_is_conditional() -> None:
    flaky = Flaky(1, httpx.ReadError("reset"))
    flaky_answer = Recorder(batch_ok)

    def conditional(request: httpx.Request) -> httpx.Response:
        flaky(request)  # raises the first time
        return flaky_answer(request)

    memory = mock(conditional)
    with memory.batch() as b:
        b.set("a", 1, expected_version=2).delete("b", expected_version=1).check("c", 3)
    assert flaky.calls == 2 and b.revision == 9
    flaky = Flaky(1, httpx.ReadError("reset"))
    with pytest.raises(ServerUnavailable, match="may or may not"), mock(conditional).batch() as b:
        b.set("a", 1, expected_version=2).set("b", 1)
    assert flaky.calls == 1


def test_the_async_batch_has_the_same_behaviour() -> None:
    async def scenario() -> None:
        server = Recorder(batch_ok)
        memory = Memory("ns", "http://t", async_transport=httpx.MockTransport(server))
        async with memory.abatch() as b:
            b.set("a", 1).check("c", 2)
        assert b.revision == 9 and b.versions == {"a": 9, "c": 2}
        b2 = memory.abatch().delete("x")
        assert await b2.commit() == 9 and await b2.commit() == 9
        assert len(server.seen) == 2
        with pytest.raises(RuntimeError):
            async with memory.abatch() as b3:
                b3.set("y", 1)
                raise RuntimeError
        assert len(server.seen) == 2
        await memory.aclose()

    asyncio.run(scenario())


# -- multi-get ---------------------------------------------------------------------------------

STORED = {"a": 1, "b": None, "c": [3], "d": {"x": 4}, "e": "five"}


def multi_get(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    items = {
        key: None
        if key not in STORED
        else {
            "key": key,
            "value": STORED[key],
            "version": 5,
            "created_revision": 2,
            "created_at": "2026-11-21T10:00:00.000001Z",
            "updated_at": "2026-11-21T10:00:05.000000Z",
            "expires_at": "2026-11-21T11:00:00.000000Z" if key == "a" else None,
        }
        for key in body["keys"]
    }
    return httpx.Response(200, json={"namespace": "ns", "revision": 12, "items": items})


def test_get_many_leaves_absent_keys_out_and_keeps_a_stored_none() -> None:
    server = Recorder(multi_get)
    memory = mock(server)
    got = memory.get_many(["c", "zz", "a", "b", "a"])
    assert got == {"c": [3], "a": 1, "b": None} and list(got) == ["c", "a", "b"]
    assert (server.seen[0].method, server.seen[0].url.path) == ("POST", "/namespaces/ns/get")
    assert server.bodies() == [{"keys": ["c", "zz", "a", "b"]}]  # repeats sent once
    items = memory.items_many(["a", "nope"], as_of=7)
    assert set(items) == {"a"} and items["a"].version == 5 and items["a"].created_revision == 2
    assert items["a"].created_at == datetime(2026, 11, 21, 10, 0, 0, 1, tzinfo=UTC)
    assert items["a"].expires_at == datetime(2026, 11, 21, 11, tzinfo=UTC)
    assert server.bodies()[-1] == {"keys": ["a", "nope"], "as_of": 7}


def test_get_many_splits_large_requests_and_pins_the_first_revision() -> None:
    server = Recorder(multi_get)
    memory = mock(server, page_size=2)
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    got = memory.get_many(list("abcdez"), as_of=moment)
    assert got == STORED
    assert server.bodies() == [
        {"keys": ["a", "b"], "as_of": "2030-01-01T00:00:00.000000Z"},
        {"keys": ["c", "d"], "as_of": 12},
        {"keys": ["e", "z"], "as_of": 12},
    ]
    server.seen.clear()
    assert memory.get_many(list("abc")) == {"a": 1, "b": None, "c": [3]}
    assert server.bodies() == [{"keys": ["a", "b"]}, {"keys": ["c"], "as_of": 12}]


def test_get_many_checks_its_keys_before_sending() -> None:
    server = Recorder(multi_get)
    memory = mock(server)
    assert memory.get_many([]) == {}
    for bad in ["abc", ["ok", "not\tok"], [1]]:
        with pytest.raises(InvalidRequest):
            memory.get_many(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="naive"):
        memory.get_many(["a"], as_of=datetime(2026, 1, 1))
    assert server.seen == []


def test_aget_many_reads_the_same_way() -> None:
    async def scenario() -> None:
        server = Recorder(multi_get)
        memory = Memory("ns", "http://t", page_size=3, async_transport=httpx.MockTransport(server))
        assert await memory.aget_many(list("edcba")) == {k: STORED[k] for k in "edcba"}
        assert (await memory.aitems_many(["b"]))["b"].value is None
        assert server.bodies()[1] == {"keys": ["b", "a"], "as_of": 12}
        await memory.aclose()

    asyncio.run(scenario())
