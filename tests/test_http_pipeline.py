"""The write pipeline over HTTP, in process: batches, TTL, multi-get and the change feed
(PRODUCT.md section 7), against every storage backend."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from backends import BACKENDS, open_store
from test_http import ISO_AT, assert_error

from botwire_server.http import create_app
from botwire_server.http.body import batch_body_limit
from botwire_server.service import MAX_TTL_SECONDS
from botwire_server.settings import Limits, Settings

MakeClient = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> MakeClient:
    @contextlib.asynccontextmanager
    async def make(limits: Limits | None = None) -> AsyncIterator[httpx.AsyncClient]:
        limits = limits or Limits()
        async with open_store(request.param, tmp_path, limits=limits) as store:
            app = create_app(Settings(limits=limits), store=store)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
                yield c

    return make


@pytest.fixture
async def client(api: MakeClient) -> AsyncIterator[httpx.AsyncClient]:
    async with api() as c:
        yield c


async def batch(c: httpx.AsyncClient, *ops: dict[str, Any], ns: str = "ns") -> httpx.Response:
    return await c.post(f"/namespaces/{ns}/batch", json={"ops": list(ops)})


async def feed(c: httpx.AsyncClient, query: str = "", ns: str = "ns") -> dict[str, Any]:
    r = await c.get(f"/namespaces/{ns}/changes{query}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# -- batch -----------------------------------------------------------------------------------


async def test_batch_commits_one_revision(client: httpx.AsyncClient) -> None:
    await client.put("/memory/ns/old", json={"value": "x"})
    await client.put("/memory/ns/seen", json={"value": "y"})
    r = await batch(
        client,
        {"op": "set", "key": "a", "value": {"n": [1, 2]}},
        {"op": "set", "key": "b", "value": "two", "expected_version": 0},
        {"op": "check", "key": "seen", "expected_version": 2},
        {"op": "delete", "key": "old", "expected_version": 1},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "namespace": "ns",
        "revision": 3,
        "results": [
            {"key": "a", "version": 3},
            {"key": "b", "version": 3},
            {"key": "seen", "version": 2},
            {"key": "old", "version": 3},
        ],
    }
    # Values are stored compactly, as PUT stores them.
    assert (await client.get("/memory/ns/a")).content.startswith(
        b'{"namespace":"ns","key":"a","value":{"n":[1,2]},'
    )
    assert (await client.get("/memory/ns/old")).status_code == 404
    events = (await feed(client, "?after=2"))["events"]
    assert [(e["revision"], e["key"], e["op"]) for e in events] == [
        (3, "a", "set"),
        (3, "b", "set"),
        (3, "old", "delete"),
    ]


async def test_batch_conflict_writes_nothing(client: httpx.AsyncClient) -> None:
    await client.put("/memory/ns/a", json={"value": 1})
    r = await batch(
        client,
        {"op": "set", "key": "new", "value": 1},
        {"op": "check", "key": "a", "expected_version": 7},
        {"op": "delete", "key": "absent"},
        {"op": "set", "key": "a2", "value": 1, "expected_version": 3},
    )
    body = assert_error(r, 409, "batch_conflict")
    assert body["conflicts"] == [
        {"index": 1, "key": "a", "current_version": 1},
        {"index": 2, "key": "absent", "current_version": 0},
        {"index": 3, "key": "a2", "current_version": 0},
    ]
    assert (await client.get("/memory/ns/new")).status_code == 404
    assert (await feed(client))["head"] == 1


@pytest.mark.parametrize(
    "body, code, message",
    [
        ({"ops": []}, "invalid_body", "A request holds 1 to 1000 ops; this one holds 0."),
        (
            {"ops": [{"op": "set", "key": f"k{i}", "value": i} for i in range(1001)]},
            "invalid_body",
            "A request holds 1 to 1000 ops; this one holds 1001.",
        ),
        (
            {"ops": [{"op": "set", "key": "a", "value": 1}, {"op": "delete", "key": "a"}]},
            "invalid_body",
            "Key 'a' appears more than once in the batch (op 1); a batch may touch each key once.",
        ),
        (
            {"ops": [{"op": "set", "key": "a", "value": 1, "ttl": 0}]},
            "invalid_body",
            f"ttl must be a number of seconds > 0 and at most {MAX_TTL_SECONDS} (100 years).",
        ),
        (
            {"ops": [{"op": "set", "key": "bad\u0000key", "value": 1}]},
            "invalid_name",
            None,
        ),
        ({"ops": [{"op": "rename", "key": "a"}]}, "invalid_body", None),
        ({"ops": [{"op": "check", "key": "a"}]}, "invalid_body", None),
        ({"ops": [{"op": "set", "key": "a", "value": 1, "extra": 2}]}, "invalid_body", None),
        ({"ops": [{"op": "set", "key": "a", "value": 1}], "atomic": True}, "invalid_body", None),
        ({"ops": {"op": "set"}}, "invalid_body", None),
    ],
)
async def test_batch_bad_input(
    client: httpx.AsyncClient, body: dict[str, Any], code: str, message: str | None
) -> None:
    r = await client.post("/namespaces/ns/batch", json=body)
    out = assert_error(r, 400, code)
    if message is not None:
        assert out["error"] == message
    assert (await feed(client))["head"] == 0


async def test_batch_value_and_body_limits(api: MakeClient) -> None:
    limits = Limits(value_max_bytes=100)
    async with api(limits=limits) as c:
        r = await batch(
            c,
            {"op": "set", "key": "ok", "value": "x" * 50},
            {"op": "set", "key": "big", "value": "x" * 200},
        )
        body = assert_error(r, 413, "value_too_large")
        assert body["limit"] == 100
        assert (await c.get("/memory/ns/ok")).status_code == 404
        # The body limit derives from the value limit: 1000 x (100 B + 2 KiB) here.
        allowed = batch_body_limit(100)
        assert allowed == 1000 * (100 + 2048)
        ops = [{"op": "set", "key": f"k{i}", "value": "y" * 90} for i in range(1000)]
        assert (await batch(c, *ops)).status_code == 200
        r = await c.post(
            "/namespaces/ns/batch",
            content=b'{"ops": [' + b" " * allowed + b"]}",
            headers={"Content-Type": "application/json"},
        )
        assert_error(r, 413, "value_too_large")
    assert batch_body_limit(0) == 0
    assert batch_body_limit(102_400) == 16 * 1024 * 1024


async def test_batch_counts_sets_and_deletes_against_the_quota(api: MakeClient) -> None:
    async with api(limits=Limits(writes_per_day=3)) as c:
        ok = await batch(
            c,
            {"op": "set", "key": "a", "value": 1},
            {"op": "set", "key": "b", "value": 1},
            {"op": "check", "key": "z", "expected_version": 0},
        )
        assert ok.status_code == 200
        r = await batch(c, {"op": "set", "key": "c", "value": 1}, {"op": "delete", "key": "a"})
        assert_error(r, 429, "write_quota_exceeded")
        assert (await batch(c, {"op": "delete", "key": "a"})).status_code == 200


# -- TTL ---------------------------------------------------------------------------------------


async def test_put_with_ttl_sets_expires_at(client: httpx.AsyncClient) -> None:
    before = time.time()
    r = await client.put("/memory/ns/k", json={"value": 1, "ttl": 30})
    assert r.status_code == 200, r.text
    item = (await client.get("/memory/ns/k")).json()
    assert item["expires_at"] == pytest.approx(item["updated_at"] + 30, abs=1e-6)
    assert before + 29 < item["expires_at"] < time.time() + 31
    keys = (await client.get("/memory/ns")).json()["keys"]
    assert keys[0]["expires_at"] == item["expires_at"]
    # A later set without ttl clears it.
    await client.put("/memory/ns/k", json={"value": 2})
    assert (await client.get("/memory/ns/k")).json()["expires_at"] is None


async def test_a_short_ttl_hides_the_key(client: httpx.AsyncClient) -> None:
    # Long enough that the first read lands before the expiry on a loaded machine.
    await client.put("/memory/ns/k", json={"value": 1, "ttl": 0.5})
    assert (await client.get("/memory/ns/k")).status_code == 200
    await asyncio.sleep(0.6)
    assert_error(await client.get("/memory/ns/k"), 404, "key_not_found")
    # ... but reading at the revision of the write still sees it (its commit time).
    then = await client.get("/memory/ns/k?as_of=1")
    assert then.status_code == 200, (then.text, (await client.get("/memory/ns/k/history")).text)


@pytest.mark.parametrize("ttl", [0, -1, 0.0, -0.5, MAX_TTL_SECONDS + 1])
async def test_a_bad_ttl_is_refused(client: httpx.AsyncClient, ttl: float) -> None:
    r = await client.put(
        "/memory/ns/k",
        content=b'{"value": 1, "ttl": %s}' % repr(ttl).encode(),
        headers={"Content-Type": "application/json"},
    )
    body = assert_error(r, 400, "invalid_body")
    assert body["error"] == (
        f"ttl must be a number of seconds > 0 and at most {MAX_TTL_SECONDS} (100 years)."
    )
    assert (await client.get("/memory/ns/k")).status_code == 404


@pytest.mark.parametrize("ttl", ['"10"', "true", "[1]", "1e400"])
async def test_a_ttl_that_is_not_a_number_is_refused(client: httpx.AsyncClient, ttl: str) -> None:
    r = await client.put(
        "/memory/ns/k",
        content=b'{"value": 1, "ttl": %s}' % ttl.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "invalid_body")


# -- multi-get ---------------------------------------------------------------------------------


async def test_get_many_reads_at_one_revision(client: httpx.AsyncClient) -> None:
    await batch(
        client,
        {"op": "set", "key": "a", "value": {"x": 1}, "ttl": 60},
        {"op": "set", "key": "b", "value": [2]},
    )
    await client.put("/memory/ns/a", json={"value": "later"})
    r = await client.post("/namespaces/ns/get", json={"keys": ["a", "b", "nope"]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["namespace"] == "ns" and out["revision"] == 2
    assert out["items"]["nope"] is None
    a = out["items"]["a"]
    assert a["value"] == "later" and a["version"] == 2 and a["created_revision"] == 1
    assert a["expires_at"] is None
    assert ISO_AT.match(a["created_at"]) and ISO_AT.match(a["updated_at"])
    assert set(a) == {
        "key",
        "value",
        "version",
        "created_revision",
        "created_at",
        "updated_at",
        "expires_at",
    }
    past = (await client.post("/namespaces/ns/get", json={"keys": ["a"], "as_of": 1})).json()
    assert past["revision"] == 1
    assert past["items"]["a"]["value"] == {"x": 1}
    assert ISO_AT.match(past["items"]["a"]["expires_at"])
    at = past["items"]["a"]["updated_at"]
    by_time = await client.post("/namespaces/ns/get", json={"keys": ["a"], "as_of": at})
    assert by_time.json()["revision"] == 1


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"keys": []}, 400, "invalid_body"),
        ({"keys": [f"k{i}" for i in range(1001)]}, 400, "invalid_body"),
        ({"keys": ["a\u0007b"]}, 400, "invalid_name"),
        ({"keys": ["a"], "as_of": 5}, 400, "future_revision"),
        ({"keys": ["a"], "as_of": "yesterday"}, 400, "invalid_parameter"),
        ({"keys": ["a"], "as_of": -1}, 400, "invalid_body"),
        ({"keys": ["a"], "extra": 1}, 400, "invalid_body"),
        ({"keys": "a"}, 400, "invalid_body"),
    ],
)
async def test_get_many_bad_input(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    assert_error(await client.post("/namespaces/ns/get", json=body), status, code)


async def test_get_many_after_compaction(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await client.put("/memory/ns/a", json={"value": i})
    await client.post("/namespaces/ns/compact", json={"before": 3})
    r = await client.post("/namespaces/ns/get", json={"keys": ["a"], "as_of": 1})
    assert assert_error(r, 410, "revision_compacted")["oldest_revision"] == 3


# -- the change feed ---------------------------------------------------------------------------


async def test_changes_pages_through_every_event(client: httpx.AsyncClient) -> None:
    await batch(
        client, {"op": "set", "key": "px", "value": 1}, {"op": "set", "key": "q", "value": 2}
    )
    await client.put("/memory/ns/pa", json={"value": 3, "ttl": 60})
    await client.delete("/memory/ns/q")
    await client.put("/memory/ns/pb", json={"value": None})
    first = await feed(client, "?limit=2")
    assert first["namespace"] == "ns" and first["head"] == 4 and first["next_after"] == 2
    assert [(e["revision"], e["key"], e["op"]) for e in first["events"]] == [
        (1, "px", "set"),
        (1, "q", "set"),
        (2, "pa", "set"),
    ]
    e = first["events"][2]
    assert e["value"] == 3 and ISO_AT.match(e["at"]) and ISO_AT.match(e["expires_at"])
    assert first["events"][0]["expires_at"] is None
    rest = await feed(client, f"?after={first['next_after']}&limit=2")
    assert [(e["revision"], e["key"], e["op"], e["value"]) for e in rest["events"]] == [
        (3, "q", "delete", None),
        (4, "pb", "set", None),
    ]
    assert rest["next_after"] == 4
    caught_up = await feed(client, "?after=4")
    assert caught_up["events"] == [] and caught_up["next_after"] == 4
    only_p = await feed(client, "?prefix=p")
    assert [e["key"] for e in only_p["events"]] == ["px", "pa", "pb"]
    assert only_p["next_after"] == 4


async def test_changes_errors(client: httpx.AsyncClient) -> None:
    for i in range(4):
        await client.put("/memory/ns/a", json={"value": i})
    await client.post("/namespaces/ns/compact", json={"before": 3})
    body = assert_error(
        await client.get("/namespaces/ns/changes?after=1"), 410, "revision_compacted"
    )
    assert body["oldest_revision"] == 3
    assert (await feed(client, "?after=3"))["events"][0]["revision"] == 4
    body = assert_error(await client.get("/namespaces/ns/changes?after=5"), 400, "future_revision")
    assert body["head"] == 4
    huge = "9" * 40
    assert_error(await client.get(f"/namespaces/ns/changes?after={huge}"), 400, "future_revision")
    for query in ["after=-1", "after=x", "limit=0", "limit=1001", "after=1&after=2"]:
        r = await client.get(f"/namespaces/ns/changes?{query}")
        assert_error(r, 400, "invalid_parameter")
    assert (await feed(client, ns="never"))["events"] == []
