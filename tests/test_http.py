"""The HTTP contract, in process (httpx + ASGITransport), against every storage backend.

Each test builds the application over a real, freshly migrated store from ``tests/backends.py``
(the in-memory reference store and a SQLite file, and whatever backends join that list).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema_rs
import pytest
from backends import BACKENDS, open_store

from botwire_server.http import create_app
from botwire_server.http.body import ENVELOPE_BYTES, MAX_DEPTH
from botwire_server.http.openapi import DOCUMENT
from botwire_server.settings import Limits, Settings

ISO_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MakeClient = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> MakeClient:
    """``async with api(limits=...) as client``: a client of an app over a fresh store."""

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


async def put(c: httpx.AsyncClient, path: str, value: Any, **body: Any) -> httpx.Response:
    return await c.put(path, json={"value": value, **body})


async def head(c: httpx.AsyncClient, ns: str = "ns") -> int:
    r = await c.get(f"/namespaces/{ns}")
    assert r.status_code == 200
    return int(r.json()["revision"])


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    return body


# -- set / get ---------------------------------------------------------------------------------

VALUES: list[Any] = [
    "plain string",
    '{"looks": "like json"}',
    "",
    0,
    -17,
    123456789012345678901234567890,
    3.25,
    True,
    False,
    None,
    [],
    {},
    [1, "two", {"three": [3.0, None]}],
    {"nested": {"deep": [1, 2, {"x": "é漢字🙂"}]}},
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
async def test_put_get_round_trips_any_json(client: httpx.AsyncClient, value: Any) -> None:
    r = await put(client, "/memory/ns/k", value)
    assert r.status_code == 200, r.text
    stored = r.json()
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert stored == {
        "namespace": "ns",
        "key": "k",
        "stored": True,
        "bytes": len(compact),
        "version": 1,
        "created_revision": 1,
    }
    assert r.headers["etag"] == '"1"'
    g = await client.get("/memory/ns/k")
    assert g.status_code == 200
    assert g.headers["etag"] == '"1"'
    item = g.json()
    assert item["value"] == value and type(item["value"]) is type(value)
    assert set(item) == {
        "namespace",
        "key",
        "value",
        "created_at",
        "updated_at",
        "version",
        "created_revision",
        "expires_at",
    }
    assert item["expires_at"] is None
    # The value is spliced into the response exactly as stored: compact JSON.
    assert b'"value":' + compact + b',"created_at"' in g.content


async def test_value_is_stored_compactly(client: httpx.AsyncClient) -> None:
    body = b'{ "value" : { "a" : [ 1 , 2 ] ,\n "b" : "x y" } }'
    r = await client.put("/memory/ns/k", content=body)
    assert r.json()["bytes"] == len(b'{"a":[1,2],"b":"x y"}')
    g = await client.get("/memory/ns/k")
    assert b'"value":{"a":[1,2],"b":"x y"}' in g.content


async def test_versions_and_created_revision(client: httpx.AsyncClient) -> None:
    assert (await put(client, "/memory/ns/a", 1)).json()["version"] == 1
    assert (await put(client, "/memory/ns/b", 1)).json()["version"] == 2
    r = await put(client, "/memory/ns/a", 2)
    assert (r.json()["version"], r.json()["created_revision"]) == (3, 1)
    item = (await client.get("/memory/ns/a")).json()
    assert (item["version"], item["created_revision"]) == (3, 1)
    assert item["updated_at"] >= item["created_at"] > 1.7e9
    assert (await client.delete("/memory/ns/a")).json() == {
        "deleted": True,
        "namespace": "ns",
        "key": "a",
        "version": 4,
    }
    r = await put(client, "/memory/ns/a", 3)
    assert (r.json()["version"], r.json()["created_revision"]) == (5, 5)
    # Namespaces count their revisions independently.
    assert (await put(client, "/memory/other/a", 1)).json()["version"] == 1


async def test_get_absent_key(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/memory/ns/nope"), 404, "key_not_found")
    await put(client, "/memory/ns/k", 1)
    await client.delete("/memory/ns/k")
    assert_error(await client.get("/memory/ns/k"), 404, "key_not_found")


async def test_head_request(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/k", "v")
    r = await client.head("/memory/ns/k")
    assert r.status_code == 200 and r.headers["etag"] == '"1"'


# -- optimistic concurrency -------------------------------------------------------------------


async def test_expected_version_in_body(client: httpx.AsyncClient) -> None:
    assert (await put(client, "/memory/ns/k", 1, expected_version=0)).status_code == 200
    body = assert_error(
        await put(client, "/memory/ns/k", 2, expected_version=0), 409, "version_conflict"
    )
    assert body["current_version"] == 1
    body = assert_error(
        await put(client, "/memory/ns/k", 2, expected_version=7), 409, "version_conflict"
    )
    assert body["current_version"] == 1
    assert (await put(client, "/memory/ns/k", 2, expected_version=1)).json()["version"] == 2
    body = assert_error(
        await put(client, "/memory/ns/new", 1, expected_version=3), 409, "version_conflict"
    )
    assert body["current_version"] == 0
    # Refused writes wrote nothing.
    assert await head(client) == 2
    assert (await client.get("/memory/ns/k")).json()["value"] == 2


async def test_if_match_and_if_none_match(client: httpx.AsyncClient) -> None:
    r = await client.put("/memory/ns/k", json={"value": 1}, headers={"If-None-Match": "*"})
    assert r.status_code == 200
    etag = r.headers["etag"]
    r = await client.put("/memory/ns/k", json={"value": 2}, headers={"If-None-Match": "*"})
    assert assert_error(r, 409, "version_conflict")["current_version"] == 1
    r = await client.put("/memory/ns/k", json={"value": 2}, headers={"If-Match": etag})
    assert r.status_code == 200 and r.headers["etag"] == '"2"'
    r = await client.put("/memory/ns/k", json={"value": 3}, headers={"If-Match": etag})
    assert assert_error(r, 409, "version_conflict")["current_version"] == 2
    # Agreeing conditions are fine; disagreeing ones are refused before anything is written.
    r = await client.put(
        "/memory/ns/k", json={"value": 3, "expected_version": 2}, headers={"If-Match": '"2"'}
    )
    assert r.status_code == 200
    r = await client.put(
        "/memory/ns/k", json={"value": 4, "expected_version": 3}, headers={"If-Match": '"2"'}
    )
    assert_error(r, 400, "invalid_parameter")
    r = await client.put("/memory/ns/k", json={"value": 4}, headers={"If-Match": "*"})
    assert_error(r, 400, "invalid_parameter")
    r = await client.put("/memory/ns/k", json={"value": 4}, headers={"If-None-Match": '"3"'})
    assert_error(r, 400, "invalid_parameter")
    assert await head(client) == 3


async def test_conditional_delete(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/k", 1)
    assert_error(await client.delete("/memory/ns/k?expected_version=5"), 409, "version_conflict")
    r = await client.delete("/memory/ns/k", headers={"If-Match": '"5"'})
    assert assert_error(r, 409, "version_conflict")["current_version"] == 1
    assert_error(await client.delete("/memory/ns/k?expected_version=x"), 400, "invalid_parameter")
    r = await client.delete("/memory/ns/k?expected_version=1", headers={"If-Match": '"2"'})
    assert_error(r, 400, "invalid_parameter")
    assert (await client.delete("/memory/ns/k?expected_version=1")).json()["version"] == 2
    # Absent is 404 whatever expected_version says.
    assert_error(await client.delete("/memory/ns/k?expected_version=0"), 404, "key_not_found")
    assert_error(await client.delete("/memory/ns/k"), 404, "key_not_found")


async def test_concurrent_compare_and_set_loses_no_update(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/counter", 0)

    async def increment() -> None:
        while True:
            r = await client.get("/memory/ns/counter")
            version = r.json()["version"]
            w = await put(
                client, "/memory/ns/counter", r.json()["value"] + 1, expected_version=version
            )
            if w.status_code == 200:
                return
            assert w.status_code == 409

    await asyncio.gather(*(increment() for _ in range(20)))
    assert (await client.get("/memory/ns/counter")).json()["value"] == 20


# -- listing ---------------------------------------------------------------------------------


async def test_list_pages_in_key_order(client: httpx.AsyncClient) -> None:
    names = ["b", "a", "c.1", "c.2", "d", "c-3"]
    for name in names:
        await put(client, f"/memory/ns/{name}", name)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        url = "/memory/ns?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(url)
        assert r.status_code == 200
        page = r.json()
        assert page["count"] == len(page["keys"]) <= 2
        assert page["revision"] == 6
        seen += [k["key"] for k in page["keys"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names) and pages == 3
    first = (await client.get("/memory/ns?limit=1")).json()["keys"][0]
    assert first == {
        "key": "a",
        "bytes": 3,
        "updated_at": first["updated_at"],
        "version": 2,
        "expires_at": None,
    }


async def test_list_default_limit_prefix_and_empty(client: httpx.AsyncClient) -> None:
    empty = (await client.get("/memory/nothing")).json()
    assert empty == {
        "namespace": "nothing",
        "count": 0,
        "keys": [],
        "next_cursor": None,
        "revision": 0,
    }
    await put_many(client, "ns", 105)
    await put(client, "/memory/ns/other", 1)
    page = (await client.get("/memory/ns")).json()
    assert page["count"] == 100 and page["next_cursor"] is not None
    # Empty optional parameters mean their defaults.
    assert (await client.get("/memory/ns?limit=&prefix=&cursor=&as_of=")).json() == page
    page = (await client.get("/memory/ns?prefix=k010")).json()
    assert [k["key"] for k in page["keys"]] == [f"k010{i}" for i in range(5)]
    assert page["next_cursor"] is None
    page = (await client.get("/memory/ns?prefix=o&limit=1000")).json()
    assert [k["key"] for k in page["keys"]] == ["other"]


async def test_list_full_page_of_1000_knows_whether_more_follow(api: MakeClient) -> None:
    async with api(limits=Limits(writes_per_day=0)) as client:
        await _full_page(client)


async def put_many(client: httpx.AsyncClient, ns: str, count: int, width: int = 16) -> None:
    """Set keys k0000.. of ``ns`` with ``width`` requests in flight at a time."""
    gate = asyncio.Semaphore(width)

    async def one(i: int) -> None:
        async with gate:
            r = await put(client, f"/memory/{ns}/k{i:04d}", i)
            assert r.status_code == 200, r.text

    await asyncio.gather(*(one(i) for i in range(count)))


async def _full_page(client: httpx.AsyncClient) -> None:
    await put_many(client, "ns", 1000)
    page = (await client.get("/memory/ns?limit=1000")).json()
    assert page["count"] == 1000 and page["next_cursor"] is None
    await put(client, "/memory/ns/z", 1)
    page = (await client.get("/memory/ns?limit=1000")).json()
    assert page["count"] == 1000 and page["next_cursor"] is not None
    last = (await client.get(f"/memory/ns?limit=1000&cursor={page['next_cursor']}")).json()
    assert [k["key"] for k in last["keys"]] == ["z"] and last["next_cursor"] is None


async def test_list_as_of(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/a", 1)
    await put(client, "/memory/ns/b", 2)
    await client.delete("/memory/ns/a")
    assert [k["key"] for k in (await client.get("/memory/ns")).json()["keys"]] == ["b"]
    page = (await client.get("/memory/ns?as_of=2")).json()
    assert [k["key"] for k in page["keys"]] == ["a", "b"] and page["revision"] == 2
    page = (await client.get("/memory/ns?as_of=1")).json()
    assert [(k["key"], k["version"]) for k in page["keys"]] == [("a", 1)]


# -- point-in-time reads -----------------------------------------------------------------------


async def test_get_as_of_revision(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/k", "one")
    await put(client, "/memory/ns/k", "two")
    await client.delete("/memory/ns/k")
    await put(client, "/memory/ns/k", "four")
    expected = {0: None, 1: "one", 2: "two", 3: None, 4: "four"}
    for revision, value in expected.items():
        r = await client.get(f"/memory/ns/k?as_of={revision}")
        if value is None:
            assert_error(r, 404, "key_not_found")
        else:
            assert r.json()["value"] == value and r.json()["version"] == revision
    body = assert_error(await client.get("/memory/ns/k?as_of=5"), 400, "future_revision")
    assert body["head"] == 4
    body = assert_error(await client.get(f"/memory/ns/k?as_of={10**40}"), 400, "future_revision")
    assert body["head"] == 4


async def test_get_as_of_timestamp(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/k", "one")
    await put(client, "/memory/ns/k", "two")
    events = (await client.get("/memory/ns/k/history")).json()["events"]
    first_at = datetime.fromisoformat(events[-1]["at"])
    # At the first commit's exact time, in UTC and in another offset, with the '+' unencoded.
    for stamp in (
        first_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        first_at.astimezone(timezone(timedelta(hours=2))).isoformat(),
    ):
        r = await client.get("/memory/ns/k", params={"as_of": stamp})
        assert r.json()["value"] == "one", stamp
    raw_plus = first_at.astimezone(timezone(timedelta(hours=2))).isoformat()
    r = await client.get(f"/memory/ns/k?as_of={raw_plus}")
    assert r.json()["value"] == "one"
    before = (first_at - timedelta(seconds=1)).isoformat()
    assert_error(await client.get("/memory/ns/k", params={"as_of": before}), 404, "key_not_found")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await client.get("/memory/ns/k", params={"as_of": later})).json()["value"] == "two"


@pytest.mark.parametrize(
    "raw",
    ["-1", "1.5", "abc", "2026-11-21", "2026-11-21T10:00:00", "0x10", "１", "2026-13-01T00:00:00Z"],
)
async def test_bad_as_of(client: httpx.AsyncClient, raw: str) -> None:
    await put(client, "/memory/ns/k", 1)
    for url in ("/memory/ns/k", "/memory/ns", "/namespaces/ns/snapshot"):
        assert_error(await client.get(url, params={"as_of": raw}), 400, "invalid_parameter")


async def test_compaction_floor(client: httpx.AsyncClient) -> None:
    for i in range(4):
        await put(client, "/memory/ns/k", i)
    r = await client.post("/namespaces/ns/compact", json={"before": 3})
    assert r.status_code == 200
    assert r.json() == {"namespace": "ns", "removed": 2, "oldest_revision": 3}
    for url in ("/memory/ns/k?as_of=2", "/memory/ns?as_of=2", "/namespaces/ns/snapshot?as_of=2"):
        assert (
            assert_error(await client.get(url), 410, "revision_compacted")["oldest_revision"] == 3
        )
    assert (await client.get("/memory/ns/k?as_of=3")).json()["value"] == 2
    assert (await client.get("/namespaces/ns")).json()["oldest_revision"] == 3
    assert_error(
        await client.post("/namespaces/ns/compact", json={"before": 9}), 400, "future_revision"
    )


# -- history, namespace info, snapshot ---------------------------------------------------------


async def test_history_newest_first_with_pages(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/k", {"v": 1})
    await put(client, "/memory/ns/other", 0)
    await put(client, "/memory/ns/k", "two")
    await client.delete("/memory/ns/k")
    r = await client.get("/memory/ns/k/history")
    page = r.json()
    assert [(e["revision"], e["op"], e["value"]) for e in page["events"]] == [
        (4, "delete", None),
        (3, "set", "two"),
        (1, "set", {"v": 1}),
    ]
    assert page["namespace"] == "ns" and page["key"] == "k" and page["next_cursor"] is None
    stamps = [e["at"] for e in page["events"]]
    assert all(ISO_AT.match(s) for s in stamps) and stamps == sorted(stamps, reverse=True)
    first = (await client.get("/memory/ns/k/history?limit=2")).json()
    assert [e["revision"] for e in first["events"]] == [4, 3]
    rest = (await client.get(f"/memory/ns/k/history?limit=2&cursor={first['next_cursor']}")).json()
    assert [e["revision"] for e in rest["events"]] == [1] and rest["next_cursor"] is None
    empty = (await client.get("/memory/ns/never/history")).json()
    assert empty["events"] == [] and empty["next_cursor"] is None


async def test_namespace_info(client: httpx.AsyncClient) -> None:
    assert (await client.get("/namespaces/ns")).json() == {
        "namespace": "ns",
        "revision": 0,
        "keys": 0,
        "bytes": 0,
        "oldest_revision": 0,
        "updated_at": None,
    }
    await put(client, "/memory/ns/ab", "xyz")
    await put(client, "/memory/ns/c", 12)
    info = (await client.get("/namespaces/ns")).json()
    assert (info["revision"], info["keys"], info["bytes"]) == (2, 2, 2 + 5 + 1 + 2)
    last = (await client.get("/memory/ns/c/history")).json()["events"][0]["at"]
    assert info["updated_at"] == last


async def test_snapshot_pages_at_one_revision(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await put(client, f"/memory/ns/k{i}", {"i": i})
    first = (await client.get("/namespaces/ns/snapshot?limit=2")).json()
    assert first["revision"] == 5 and first["values"] == {"k0": {"i": 0}, "k1": {"i": 1}}
    # Writes after the first page do not leak into the following pages read as_of its revision.
    await put(client, "/memory/ns/k3", "changed")
    await client.delete("/memory/ns/k4")
    values = dict(first["values"])
    cursor = first["next_cursor"]
    while cursor:
        page = (await client.get(f"/namespaces/ns/snapshot?limit=2&as_of=5&cursor={cursor}")).json()
        assert page["revision"] == 5
        values.update(page["values"])
        cursor = page["next_cursor"]
    assert values == {f"k{i}": {"i": i} for i in range(5)}
    now = (await client.get("/namespaces/ns/snapshot")).json()
    assert now["revision"] == 7 and now["values"]["k3"] == "changed" and "k4" not in now["values"]
    assert now["next_cursor"] is None
    sub = (await client.get("/namespaces/ns/snapshot?prefix=k1")).json()
    assert sub["values"] == {"k1": {"i": 1}}


# -- rollback ----------------------------------------------------------------------------------


async def test_rollback(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/a", 1)
    await put(client, "/memory/ns/b", 2)
    await put(client, "/memory/ns/a", 3)
    await client.delete("/memory/ns/b")
    await put(client, "/memory/ns/c", "new")
    dry = (await client.post("/namespaces/ns/rollback", json={"to": 2, "dry_run": True})).json()
    assert dry["dry_run"] is True and dry["revision"] == 5
    assert sorted((c["key"], c["op"], c["value"]) for c in dry["changed"]) == [
        ("a", "set", 1),
        ("b", "set", 2),
        ("c", "delete", None),
    ]
    assert await head(client) == 5
    done = (await client.post("/namespaces/ns/rollback", json={"to": 2})).json()
    assert done["revision"] == 6 and done["dry_run"] is False
    assert sorted(c["key"] for c in done["changed"]) == ["a", "b", "c"]
    assert (await client.get("/namespaces/ns/snapshot")).json()["values"] == {"a": 1, "b": 2}
    # Nothing differs any more: nothing is written and the head stays.
    again = (await client.post("/namespaces/ns/rollback", json={"to": 2})).json()
    assert again == {"namespace": "ns", "revision": 6, "dry_run": False, "changed": []}
    # The rollback itself can be rolled back, one key at a time.
    one = (await client.post("/namespaces/ns/rollback", json={"to": 5, "key": "c"})).json()
    assert one["changed"] == [{"key": "c", "op": "set", "value": "new"}] and one["revision"] == 7
    assert (await client.get("/memory/ns/a")).json()["value"] == 1


async def test_rollback_to_timestamp_and_errors(client: httpx.AsyncClient) -> None:
    await put(client, "/memory/ns/a", 1)
    await put(client, "/memory/ns/a", 2)
    at = (await client.get("/memory/ns/a/history")).json()["events"][-1]["at"]
    r = await client.post("/namespaces/ns/rollback", json={"to": at})
    assert r.json()["changed"] == [{"key": "a", "op": "set", "value": 1}]
    r = await client.post("/namespaces/ns/rollback", json={"to": 99})
    assert assert_error(r, 400, "future_revision")["head"] == 3
    r = await client.post("/namespaces/ns/rollback", json={"to": "yesterday"})
    assert_error(r, 400, "invalid_parameter")
    r = await client.post("/namespaces/ns/rollback", json={"to": -1})
    assert_error(r, 400, "invalid_body")
    r = await client.post("/namespaces/ns/rollback", json={"to": 1, "key": ".."})
    assert_error(r, 400, "invalid_name")
    r = await client.post("/namespaces/ns/rollback", json={"to": 1, "dry_run": "yes"})
    assert_error(r, 400, "invalid_body")
    assert await head(client) == 3


# -- stats, health, routing ----------------------------------------------------------------


async def test_stats(client: httpx.AsyncClient) -> None:
    assert (await client.get("/stats/memory")).json() == {
        "total_entries": 0,
        "total_namespaces": 0,
        "total_bytes": 0,
    }
    await put(client, "/memory/n1/a", "xx")
    await put(client, "/memory/n2/bb", 1)
    await put(client, "/memory/n2/c", 1)
    await client.delete("/memory/n2/c")
    assert (await client.get("/stats/memory")).json() == {
        "total_entries": 2,
        "total_namespaces": 2,
        "total_bytes": (1 + 4) + (2 + 1),
    }


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_requests_while_shutting_down_get_503(api: MakeClient) -> None:
    async with api() as c:
        app = c._transport.app  # type: ignore[attr-defined]
        app.state.lifecycle.closing = True
        assert_error(await c.get("/healthz"), 503, "shutting_down")
        assert_error(await put(c, "/memory/ns/k", 1), 503, "shutting_down")
        app.state.lifecycle.closing = False
        assert_error(await c.get("/memory/ns/k"), 404, "key_not_found")


async def test_unknown_routes_and_methods(client: httpx.AsyncClient) -> None:
    for path in ("/", "/memory", "/memory/ns/k/x/y", "/memory/ns/", "/namespaces/ns/nope"):
        assert_error(await client.get(path), 404, "route_not_found")
    r = await client.post("/memory/ns/k", json={"value": 1})
    assert_error(r, 405, "method_not_allowed")
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    r = await client.get("/namespaces/ns/rollback")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
    assert_error(await client.delete("/memory/ns"), 405, "method_not_allowed")


# -- bad input: always a 4xx, never a write ----------------------------------------------------

BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("malformed", b'{"value": ', "invalid_json"),
    ("trailing comma", b'{"value": [1,]}', "invalid_json"),
    ("empty", b"", "invalid_json"),
    ("not utf-8", b'{"value": "\xff\xfe"}', "invalid_json"),
    ("NaN", b'{"value": NaN}', "invalid_json"),
    ("Infinity", b'{"value": Infinity}', "invalid_json"),
    ("float overflow", b'{"value": 1e400}', "invalid_body"),
    ("huge integer", b'{"value": ' + b"9" * 5000 + b"}", "invalid_body"),
    ("array body", b"[1, 2]", "invalid_body"),
    ("string body", b'"value"', "invalid_body"),
    ("missing value", b'{"expected_version": 0}', "invalid_body"),
    ("expected_version string", b'{"value": 1, "expected_version": "1"}', "invalid_body"),
    ("expected_version bool", b'{"value": 1, "expected_version": true}', "invalid_body"),
    ("expected_version negative", b'{"value": 1, "expected_version": -1}', "invalid_body"),
    ("expected_version float", b'{"value": 1, "expected_version": 1.5}', "invalid_body"),
    (
        "expected_version huge",
        b'{"value": 1, "expected_version": 9223372036854775808}',
        "invalid_body",
    ),
    (
        "too deep",
        b'{"value": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
        "invalid_body",
    ),
    ("far too deep", b'{"value": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "invalid_body"),
    ("deep object", b'{"value": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}", "invalid_body"),
]


@pytest.mark.parametrize("body, code", [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
async def test_bad_put_bodies(client: httpx.AsyncClient, body: bytes, code: str) -> None:
    await put(client, "/memory/ns/k", "before")
    r = await client.put("/memory/ns/k", content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400, code)
    assert (await client.get("/memory/ns/k")).json()["value"] == "before"
    assert await head(client) == 1


async def test_nesting_up_to_the_limit_is_fine(client: httpx.AsyncClient) -> None:
    value: Any = 1
    for _ in range(MAX_DEPTH):
        value = [value]
    assert (await put(client, "/memory/ns/k", value)).status_code == 200
    assert (await client.get("/memory/ns/k")).json()["value"] == value
    brackets = {"s": "[[[[" * 100}  # brackets inside strings do not count as nesting
    assert (await put(client, "/memory/ns/k", brackets)).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/memory/" + "n" * 257 + "/k",
        "/memory/" + "%C3%A9" * 129 + "/k",  # 129 characters, 258 bytes
        "/memory/n%00s/k",
        "/memory/ns/" + "k" * 1025,
        "/memory/ns/" + "%F0%9F%99%82" * 256 + "k",  # 257 characters, 1025 bytes
        "/memory/ns/k%0Ak",
        "/memory/ns/k%7F",
        "/memory/ns/%2E%2E",
        "/memory/ns/%2E",
        "/memory/%2E%2E/k",
        "/memory/ns/k%FF",  # not UTF-8
        "/memory/ns/%ED%A0%80",  # an encoded surrogate is not UTF-8 either
        "/memory/ns/k%",  # a '%' that starts no escape
        "/memory/ns/k%2",
        "/memory/ns/k%zz",
    ],
)
async def test_invalid_names(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.put(path, json={"value": 1}), 400, "invalid_name")
    assert_error(await client.get(path), 400, "invalid_name")
    assert_error(await client.delete(path), 400, "invalid_name")
    assert_error(await client.get(path + "/history"), 400, "invalid_name")
    assert (await client.get("/stats/memory")).json()["total_entries"] == 0


async def test_invalid_namespaces_on_every_route(client: httpx.AsyncClient) -> None:
    for ns in ("n" * 257, "a%09b", "%2E%2E", "%FF"):
        assert_error(await client.get(f"/memory/{ns}"), 400, "invalid_name")
        assert_error(await client.get(f"/namespaces/{ns}"), 400, "invalid_name")
        assert_error(await client.get(f"/namespaces/{ns}/snapshot"), 400, "invalid_name")
        r = await client.post(f"/namespaces/{ns}/rollback", json={"to": 0})
        assert_error(r, 400, "invalid_name")
        r = await client.post(f"/namespaces/{ns}/compact", json={"before": 0})
        assert_error(r, 400, "invalid_name")


# Keys as agent code writes them; each one is one percent-encoded path segment.
NAMES = [
    "user:42",
    "alice@example.com",
    "notes/2026-11.md",
    "a/../b",
    "café",
    " ",
    "two words",
    "🙂",
    "%2F",
    "100%",
    "a+b",
    "q?x=1#frag",
    "A-z_0",
    ".hidden..x",
    "...",
    "ключ",
    "k" * 1024,
    "é" * 512,  # 512 characters, 1024 bytes
    "🙂" * 256,  # 256 characters, 1024 bytes
]


def seg(name: str) -> str:
    return quote(name, safe="")


@pytest.mark.parametrize("key", NAMES, ids=range(len(NAMES)))
async def test_any_valid_key_round_trips(client: httpx.AsyncClient, key: str) -> None:
    path = f"/memory/ns/{seg(key)}"
    stored = (await put(client, path, {"k": key})).json()
    assert (stored["key"], stored["version"]) == (key, 1)
    got = (await client.get(path)).json()
    assert (got["namespace"], got["key"], got["value"]) == ("ns", key, {"k": key})
    assert [k["key"] for k in (await client.get("/memory/ns")).json()["keys"]] == [key]
    listed = (await client.get("/memory/ns", params={"prefix": key})).json()["keys"]
    assert [k["key"] for k in listed] == [key]
    history = (await client.get(f"{path}/history")).json()
    assert history["key"] == key and [e["value"] for e in history["events"]] == [{"k": key}]
    snapshot = (await client.get("/namespaces/ns/snapshot")).json()["values"]
    assert snapshot == {key: {"k": key}}
    deleted = (await client.delete(path)).json()
    assert (deleted["key"], deleted["deleted"]) == (key, True)
    rolled = (await client.post("/namespaces/ns/rollback", json={"to": 1, "key": key})).json()
    assert rolled["changed"] == [{"key": key, "op": "set", "value": {"k": key}}]
    assert (await client.get(path)).json()["value"] == {"k": key}


@pytest.mark.parametrize("ns", ["user:42", "a/b", "café 🙂", "n" * 256, "é" * 128])
async def test_any_valid_namespace_round_trips(client: httpx.AsyncClient, ns: str) -> None:
    path = f"/memory/{seg(ns)}/{seg('k:1')}"
    assert (await put(client, path, 1)).json()["namespace"] == ns
    assert (await client.get(path)).json()["namespace"] == ns
    listing = (await client.get(f"/memory/{seg(ns)}")).json()
    assert (listing["namespace"], [k["key"] for k in listing["keys"]]) == (ns, ["k:1"])
    assert (await client.get(f"/namespaces/{seg(ns)}")).json()["namespace"] == ns
    assert (await head(client, seg(ns))) == 1
    # The namespace is its own: nothing leaks into one whose name it contains.
    assert (await client.get("/stats/memory")).json()["total_namespaces"] == 1


async def test_names_with_raw_reserved_characters(client: httpx.AsyncClient) -> None:
    # What a client that does not encode names sends: ':' '@' '+' '!' raw in the path.
    for raw in ("user:42", "alice@example.com", "a+b", "x!$&'()*,;=y"):
        assert (await put(client, f"/memory/ns:1/{raw}", raw)).status_code == 200
        assert (await client.get(f"/memory/ns:1/{raw}")).json()["key"] == raw
    # '+' in a path is a plus, not a space; %2B is the same key.
    assert (await client.get("/memory/ns:1/a%2Bb")).json()["value"] == "a+b"


async def test_encoded_slash_is_part_of_the_name(client: httpx.AsyncClient) -> None:
    # One segment: the namespace listing of "atk/viaslash", which takes no PUT.
    assert_error(await put(client, "/memory/atk%2Fviaslash", 1), 405, "method_not_allowed")
    listing = (await client.get("/memory/atk%2Fviaslash")).json()
    assert listing["namespace"] == "atk/viaslash"
    assert (await client.get("/stats/memory")).json()["total_entries"] == 0
    # Two segments: namespace "atk", key "a/b"; a raw '/' would be three segments.
    assert (await put(client, "/memory/atk/a%2Fb", 1)).json()["key"] == "a/b"
    assert_error(await client.get("/memory/atk/a/b"), 404, "route_not_found")
    assert (await client.get("/memory/atk/a%2fb")).json()["key"] == "a/b"
    # A key that looks like the history route's tail is still a key.
    assert (await put(client, "/memory/atk/k%2Fhistory", 2)).json()["key"] == "k/history"
    assert (await client.get("/memory/atk/k%2Fhistory")).json()["value"] == 2
    # Decoded exactly once: %252F is the three characters "%2F".
    assert (await put(client, "/memory/atk/%252F", 3)).json()["key"] == "%2F"
    keys = [k["key"] for k in (await client.get("/memory/atk")).json()["keys"]]
    assert keys == ["%2F", "a/b", "k/history"]


def rewrite_scope(app: Any, change: Callable[[dict[str, Any]], None]) -> Any:
    """``app`` behind a shim that edits each request's scope, as other servers shape it."""

    async def shim(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            change(scope)
        await app(scope, receive, send)

    return shim


async def test_routing_without_raw_path_or_with_raw_utf8(tmp_path: Path) -> None:
    def drop_raw_path(scope: dict[str, Any]) -> None:
        del scope["raw_path"]  # only the decoded path: an encoded '/' cannot be told apart

    def raw_utf8(scope: dict[str, Any]) -> None:
        # Non-ASCII characters as the raw UTF-8 bytes of a client that did not encode them.
        scope["raw_path"] = re.sub(
            rb"%[89A-F][0-9A-F]", lambda m: bytes([int(m.group()[1:], 16)]), scope["raw_path"]
        )

    async with open_store("memory", tmp_path) as store:
        app = create_app(Settings(), store=store)
        for change in (drop_raw_path, raw_utf8):
            transport = httpx.ASGITransport(app=rewrite_scope(app, change))
            async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
                for key in ("user:42", "café 🙂", "100%", "a%2Fb"):
                    r = await put(c, f"/memory/ns/{seg(key)}", key)
                    assert (r.status_code, r.json()["key"]) == (200, key)
                    assert (await c.get(f"/memory/ns/{seg(key)}")).json()["value"] == key
                assert_error(await c.get("/memory/ns/k%00"), 400, "invalid_name")
                assert_error(await c.get("/memory/ns/a/b"), 404, "route_not_found")


async def test_cursors_carry_any_key(client: httpx.AsyncClient) -> None:
    keys = sorted(["user:1", "user:2", "a/b", "🙂", "é" * 512, "k" * 1024, "x y"])
    for key in keys:
        await put(client, f"/memory/ns/{seg(key)}", key)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/memory/ns", params=params)).json()
        seen += [k["key"] for k in page["keys"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == keys
    snap: dict[str, Any] = {}
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/namespaces/ns/snapshot", params=params)).json()
        snap.update(page["values"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert snap == {k: k for k in keys}


async def test_prefixes_are_any_key_start(client: httpx.AsyncClient) -> None:
    for key in ("user:1", "user:2", "usera", ".env", "🙂a", "🙂b", "\U0010ffffz"):
        await put(client, f"/memory/ns/{seg(key)}", 1)

    async def listed(prefix: str) -> list[str]:
        page = (await client.get("/memory/ns", params={"prefix": prefix})).json()
        return [k["key"] for k in page["keys"]]

    assert await listed("user:") == ["user:1", "user:2"]
    assert await listed(".") == [".env"]
    assert await listed("🙂") == ["🙂a", "🙂b"]
    assert await listed("\U0010ffff") == ["\U0010ffffz"]
    assert await listed("k" * 1024) == []
    assert_error(
        await client.get("/memory/ns", params={"prefix": "k" * 1025}), 400, "invalid_parameter"
    )


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=-1",
        "limit=1.0",
        "limit=1&limit=2",
        "prefix=a%00",
        "prefix=a%1Fb",
        "prefix=a&prefix=b",
        "as_of=1&as_of=1",
        "cursor=a&cursor=b",
    ],
)
async def test_bad_list_parameters(client: httpx.AsyncClient, query: str) -> None:
    assert_error(await client.get(f"/memory/ns?{query}"), 400, "invalid_parameter")
    if query.startswith("limit"):
        assert_error(await client.get(f"/memory/ns/k/history?{query}"), 400, "invalid_parameter")
    assert_error(await client.get(f"/namespaces/ns/snapshot?{query}"), 400, "invalid_parameter")


async def test_bad_cursors(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await put(client, f"/memory/ns/k{i}", i)
    list_cursor = (await client.get("/memory/ns?limit=1")).json()["next_cursor"]
    history_cursor = (await client.get("/memory/ns/k0/history?limit=1")).json()
    await put(client, "/memory/ns/k0", "again")
    history_cursor = (await client.get("/memory/ns/k0/history?limit=1")).json()["next_cursor"]
    assert list_cursor and history_cursor
    for bad in ("garbage!", "AAAA", "%00", history_cursor):
        assert_error(await client.get(f"/memory/ns?cursor={bad}"), 400, "invalid_cursor")
    for bad in ("garbage!", list_cursor):
        r = await client.get(f"/memory/ns/k0/history?cursor={bad}")
        assert_error(r, 400, "invalid_cursor")
        assert_error(
            await client.get(f"/namespaces/ns/snapshot?cursor={bad}"), 400, "invalid_cursor"
        )


async def test_content_type(client: httpx.AsyncClient) -> None:
    r = await client.put(
        "/memory/ns/k", content=b'{"value": 1}', headers={"Content-Type": "text/plain"}
    )
    assert_error(r, 415, "unsupported_media_type")
    r = await client.put(
        "/memory/ns/k",
        content=b'{"value": 1}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(r, 415, "unsupported_media_type")
    r = await client.post(
        "/namespaces/ns/rollback", content=b'{"to": 0}', headers={"Content-Type": "text/plain"}
    )
    assert_error(r, 415, "unsupported_media_type")
    assert await head(client) == 0
    # No Content-Type is taken as JSON; so are charset parameters and +json types.
    assert (await client.put("/memory/ns/k", content=b'{"value": 1}')).status_code == 200
    for ctype in (
        "application/json; charset=utf-8",
        "application/merge-patch+json",
        "APPLICATION/JSON",
    ):
        r = await client.put(
            "/memory/ns/k", content=b'{"value": 2}', headers={"Content-Type": ctype}
        )
        assert r.status_code == 200, ctype


async def test_bad_compact_bodies(client: httpx.AsyncClient) -> None:
    for body in (b"{}", b'{"before": -1}', b'{"before": "1"}', b"[]"):
        assert_error(await client.post("/namespaces/ns/compact", content=body), 400, "invalid_body")
    assert_error(await client.post("/namespaces/ns/compact", content=b"{"), 400, "invalid_json")


# -- limits ------------------------------------------------------------------------------------


async def test_value_size_limit(api: MakeClient) -> None:
    async with api(limits=Limits(value_max_bytes=100)) as c:
        exact = "x" * 98  # 100 bytes once quoted
        assert (await put(c, "/memory/ns/k", exact)).json()["bytes"] == 100
        body = assert_error(await put(c, "/memory/ns/k", exact + "y"), 413, "value_too_large")
        assert body["limit"] == 100
        # The limit counts the compact encoding, not the whitespace around it.
        padded = b'{"value": [' + b" " * 5000 + b"1, 2]}"
        assert (await c.put("/memory/ns/p", content=padded)).json()["bytes"] == 5
        assert (await c.get("/memory/ns/k")).json()["value"] == exact


async def test_big_body_refused_from_its_content_length(api: MakeClient) -> None:
    async with api(limits=Limits(value_max_bytes=100)) as c:
        sent = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            for _ in range(1000):
                sent += 1
                yield b" " * 1024

        length = str(1000 * 1024)
        r = await c.put("/memory/ns/k", content=chunks(), headers={"Content-Length": length})
        body = assert_error(r, 413, "value_too_large")
        assert body["limit"] == 100
        assert sent <= 1  # refused before the body was read


async def test_chunked_body_refused_while_streaming(api: MakeClient) -> None:
    async with api(limits=Limits(value_max_bytes=100)) as c:
        sent = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            yield b'{"value": "'
            for _ in range(1000):
                sent += 1
                yield b"x" * 1024
            yield b'"}'

        r = await c.put("/memory/ns/k", content=chunks())
        assert_error(r, 413, "value_too_large")
        # Refused once the body passed the limit plus the envelope allowance, not at its end.
        assert sent <= (100 + ENVELOPE_BYTES) // 1024 + 2
        assert await head(c) == 0
        # A small chunked body is read and stored normally.

        async def small() -> AsyncIterator[bytes]:
            yield b'{"value": '
            yield b'"ok"}'

        assert (await c.put("/memory/ns/k", content=small())).status_code == 200


async def test_unlimited_value_size(api: MakeClient) -> None:
    async with api(limits=Limits(value_max_bytes=0)) as c:
        big = "x" * 300_000
        assert (await put(c, "/memory/ns/k", big)).json()["bytes"] == 300_002


async def test_namespace_full(api: MakeClient) -> None:
    async with api(limits=Limits(namespace_max_bytes=20)) as c:
        assert (await put(c, "/memory/ns/k", "x" * 10)).status_code == 200  # 1 + 12 bytes
        body = assert_error(await put(c, "/memory/ns/j", "x" * 10), 413, "namespace_full")
        assert body["limit"] == 20
        assert (await put(c, "/memory/other/j", "x" * 10)).status_code == 200


async def test_write_quota(api: MakeClient) -> None:
    async with api(limits=Limits(writes_per_day=2)) as c:
        assert (await put(c, "/memory/ns/a", 1)).status_code == 200
        # Refused writes do not count.
        assert (await put(c, "/memory/ns/a", 1, expected_version=9)).status_code == 409
        assert (await c.delete("/memory/ns/none")).status_code == 404
        assert (await put(c, "/memory/ns/a", 2)).status_code == 200
        r = await put(c, "/memory/ns/a", 3)
        body = assert_error(r, 429, "write_quota_exceeded")
        assert 1 <= body["retry_after"] <= 86_400
        assert r.headers["retry-after"] == str(body["retry_after"])
        assert_error(await c.delete("/memory/ns/a"), 429, "write_quota_exceeded")
        r = await c.post("/namespaces/ns/rollback", json={"to": 1})
        assert_error(r, 429, "write_quota_exceeded")
        # Reads are unlimited and other namespaces have their own quota.
        assert (await c.get("/memory/ns/a")).json()["value"] == 2
        assert (await put(c, "/memory/other/a", 1)).status_code == 200


# -- the OpenAPI document tells the truth ------------------------------------------------------


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    app = client._transport.app  # type: ignore[attr-defined]
    # /mcp speaks JSON-RPC (the Model Context Protocol describes it), not this API's shapes.
    served = {
        route.path: {m.lower() for m in route.methods if m != "HEAD"}
        for route in app.routes
        if route.path != "/mcp"
    }
    documented = {
        path: {m for m in ops if m in {"get", "put", "post", "delete", "patch"}}
        for path, ops in doc["paths"].items()
    }
    assert served == documented
    for path, ops in doc["paths"].items():
        for method in documented[path]:
            op = ops[method]
            assert {"200", "201"} & set(op["responses"]) and "503" in op["responses"]
            params = {p["name"] for p in op.get("parameters", []) + ops.get("parameters", [])}
            assert {seg[1:-1] for seg in re.findall(r"\{\w+\}", path)} <= params


def _validator(doc: dict[str, Any], path: str, method: str, status: int) -> Any:
    response = doc["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**schema, "components": doc["components"]})


async def test_responses_match_the_openapi_schemas(client: httpx.AsyncClient) -> None:
    doc = DOCUMENT
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("put", "/memory/{ns}/{key}", "/memory/ns/k", {"json": {"value": {"a": [1]}}}),
        ("put", "/memory/{ns}/{key}", "/memory/ns/k", {"json": {"value": "s"}}),
        ("get", "/memory/{ns}/{key}", "/memory/ns/k", {}),
        ("get", "/memory/{ns}/{key}", "/memory/ns/k?as_of=1", {}),
        ("get", "/memory/{ns}/{key}", "/memory/ns/missing", {}),
        ("get", "/memory/{ns}/{key}", "/memory/ns/k?as_of=99", {}),
        (
            "put",
            "/memory/{ns}/{key}",
            "/memory/ns/k",
            {"json": {"value": 1, "expected_version": 0}},
        ),
        ("put", "/memory/{ns}/{key}", "/memory/ns/k", {"content": b"nope"}),
        ("get", "/memory/{ns}", "/memory/ns?limit=1", {}),
        ("get", "/memory/{ns}/{key}/history", "/memory/ns/k/history", {}),
        ("get", "/namespaces/{ns}", "/namespaces/ns", {}),
        ("get", "/namespaces/{ns}", "/namespaces/empty", {}),
        ("get", "/namespaces/{ns}/snapshot", "/namespaces/ns/snapshot", {}),
        (
            "post",
            "/namespaces/{ns}/rollback",
            "/namespaces/ns/rollback",
            {"json": {"to": 1, "dry_run": True}},
        ),
        ("post", "/namespaces/{ns}/rollback", "/namespaces/ns/rollback", {"json": {"to": 1}}),
        ("post", "/namespaces/{ns}/rollback", "/namespaces/ns/rollback", {"json": {"to": "x"}}),
        ("post", "/namespaces/{ns}/compact", "/namespaces/ns/compact", {"json": {"before": 1}}),
        ("get", "/memory/{ns}/{key}", "/memory/ns/k?as_of=0", {}),
        ("get", "/stats/memory", "/stats/memory", {}),
        ("get", "/healthz", "/healthz", {}),
        ("put", "/memory/{ns}/{key}", "/memory/ns/t", {"json": {"value": 1, "ttl": 60}}),
        ("get", "/memory/{ns}/{key}", "/memory/ns/t", {}),
        ("get", "/memory/{ns}", "/memory/ns", {}),
        (
            "post",
            "/namespaces/{ns}/batch",
            "/namespaces/ns/batch",
            {
                "json": {
                    "ops": [
                        {"op": "set", "key": "b", "value": [1], "ttl": 5},
                        {"op": "check", "key": "t", "expected_version": 0},
                    ]
                }
            },
        ),
        (
            "post",
            "/namespaces/{ns}/batch",
            "/namespaces/ns/batch",
            {"json": {"ops": [{"op": "set", "key": "b2", "value": None}]}},
        ),
        ("post", "/namespaces/{ns}/batch", "/namespaces/ns/batch", {"json": {"ops": []}}),
        (
            "post",
            "/namespaces/{ns}/get",
            "/namespaces/ns/get",
            {"json": {"keys": ["t", "b2", "nope"], "as_of": None}},
        ),
        (
            "post",
            "/namespaces/{ns}/get",
            "/namespaces/ns/get",
            {"json": {"keys": ["t"], "as_of": 1}},
        ),
        (
            "post",
            "/namespaces/{ns}/query",
            "/namespaces/ns/query",
            {"json": {"filter": {"x": {"$gte": 1}}, "offset": 1, "limit": 2}},
        ),
        ("post", "/namespaces/{ns}/query", "/namespaces/ns/query", {"json": {"as_of": 1}}),
        (
            "post",
            "/namespaces/{ns}/query",
            "/namespaces/ns/query",
            {"json": {"filter": {"x": {"$in": [1]}}}},
        ),
        ("get", "/namespaces/{ns}/changes", "/namespaces/ns/changes?limit=2", {}),
        ("get", "/namespaces/{ns}/changes", "/namespaces/ns/changes?after=999", {}),
        ("get", "/namespaces/{ns}/watch", "/namespaces/ns/watch?after=999", {}),
        ("delete", "/memory/{ns}/{key}", "/memory/ns/k", {}),
        ("delete", "/memory/{ns}/{key}", "/memory/ns/k", {}),
    ]
    for method, template, url, kwargs in calls:
        r = await client.request(method.upper(), url, **kwargs)
        validator = _validator(doc, template, method, r.status_code)
        errors = [e.message for e in validator.iter_errors(r.json())]
        assert not errors, (method, url, r.status_code, r.json(), errors)


def test_the_watch_stream_is_documented_as_server_sent_events() -> None:
    op = DOCUMENT["paths"]["/namespaces/{ns}/watch"]["get"]
    assert list(op["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {p["name"] for p in op["parameters"]} == {"ns", "after", "prefix", "Last-Event-ID"}
    assert {"400", "410", "500", "503"} <= set(op["responses"])


def test_every_body_schema_comes_from_a_wire_struct() -> None:
    import msgspec

    from botwire_server.http import channel_wire, wire

    structs = {
        name
        for module in (wire, channel_wire)
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct) and obj is not msgspec.Struct
    }
    assert set(DOCUMENT["components"]["schemas"]) <= structs
    refs = re.findall(r'"#/components/schemas/(\w+)"', json.dumps(DOCUMENT))
    assert set(refs) == set(DOCUMENT["components"]["schemas"])
    conflict = DOCUMENT["paths"]["/namespaces/{ns}/batch"]["post"]["responses"]["409"]
    assert "batch_conflict (with conflicts)" in conflict["description"]
