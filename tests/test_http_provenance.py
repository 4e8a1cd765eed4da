"""Provenance, runs, revert and idempotency over HTTP, in process (PRODUCT.md section 9): the
headers on every write route, their 400s and the 422, the actor from the token, the run
routes, and the events of history, the change feed and watch carrying who and why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from backends import open_store
from test_http import assert_error

from botwire_server import service
from botwire_server.auth import parse_grant
from botwire_server.http import create_app, stream
from botwire_server.settings import Settings
from botwire_server.storage.base import Provenance

NS = "ns"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with open_store("sqlite", tmp_path) as store:
        app = create_app(Settings(), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
            yield c


def h(run: str | None = None, **extra: str) -> dict[str, str]:
    out = {"BotWire-Agent": "planner", "BotWire-Reason": "a test"}
    if run is not None:
        out["BotWire-Run"] = run
    out.update(extra)
    return out


async def test_every_write_route_records_run_agent_reason(client: httpx.AsyncClient) -> None:
    assert (await client.put(f"/memory/{NS}/a", json={"value": 1}, headers=h("r1"))).is_success
    r = await client.post(
        f"/namespaces/{NS}/batch",
        json={"ops": [{"op": "set", "key": "b", "value": 2}]},
        headers=h("r1"),
    )
    assert r.is_success
    assert (await client.delete(f"/memory/{NS}/b", headers=h("r2"))).is_success
    r = await client.post(f"/namespaces/{NS}/rollback", json={"to": 2}, headers=h("r3"))
    assert r.json()["revision"] == 4
    feed = (await client.get(f"/namespaces/{NS}/changes")).json()["events"]
    assert [(e["revision"], e["key"], e["run"], e["agent"], e["actor"]) for e in feed] == [
        (1, "a", "r1", "planner", None),
        (2, "b", "r1", "planner", None),
        (3, "b", "r2", "planner", None),
        (4, "b", "r3", "planner", None),
    ]
    hist = (await client.get(f"/memory/{NS}/b/history")).json()["events"]
    assert [(e["revision"], e["run"], e["reason"]) for e in hist] == [
        (4, "r3", "a test"),
        (3, "r2", "a test"),
        (2, "r1", "a test"),
    ]
    # Without headers: null, present in the body.
    await client.put(f"/memory/{NS}/c", json={"value": 3})
    last = (await client.get(f"/namespaces/{NS}/changes?after=4")).json()["events"][0]
    assert (last["actor"], last["run"], last["agent"], last["reason"]) == (None,) * 4


async def test_watch_events_carry_provenance(tmp_path: Path) -> None:
    async with open_store("memory", tmp_path) as store:
        await store.set(NS, "a", b"1", meta=Provenance(run="w", agent="planner", actor="al"))
        text = stream.encode_page(await store.changes(NS)).decode()
    assert text.startswith("event: change\nid: 1\ndata: {")
    assert '"actor":"al","run":"w","agent":"planner","reason":null' in text


async def test_runs_route_and_revert(client: httpx.AsyncClient) -> None:
    await client.put(f"/memory/{NS}/a", json={"value": 0})
    await client.put(f"/memory/{NS}/a", json={"value": 1}, headers=h("bad run/1"))
    await client.put(f"/memory/{NS}/b", json={"value": 1}, headers=h("bad run/1"))
    await client.put(f"/memory/{NS}/b", json={"value": 2}, headers=h("good"))
    run = "bad%20run%2F1"
    page = (await client.get(f"/namespaces/{NS}/runs/{run}?limit=1")).json()
    assert page["run"] == "bad run/1" and [e["key"] for e in page["events"]] == ["a"]
    rest = (await client.get(f"/namespaces/{NS}/runs/{run}?cursor={page['next_cursor']}")).json()
    assert [e["key"] for e in rest["events"]] == ["b"] and rest["next_cursor"] is None
    dry = await client.post(f"/namespaces/{NS}/runs/{run}/revert", json={"dry_run": True})
    assert dry.json() == {
        "namespace": NS,
        "run": "bad run/1",
        "revision": 4,
        "dry_run": True,
        "changed": [{"key": "a", "op": "set", "value": 0}],
        "skipped": [{"key": "b", "reason": "written_by_others", "current_version": 4}],
    }
    done = await client.post(f"/namespaces/{NS}/runs/{run}/revert", headers=h("undo"))
    assert done.json()["revision"] == 5 and done.json()["dry_run"] is False
    assert (await client.get(f"/memory/{NS}/a")).json()["value"] == 0
    undo = (await client.get(f"/namespaces/{NS}/runs/undo")).json()["events"]
    assert [(e["key"], e["value"]) for e in undo] == [("a", 0)]


async def test_idempotent_put_replays_and_refuses_another_body(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "act-1"}
    first = await client.put(f"/memory/{NS}/k", json={"value": "x"}, headers=key)
    again = await client.put(f"/memory/{NS}/k", json={"value": "x"}, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert (await client.get(f"/namespaces/{NS}")).json()["revision"] == 1
    body = assert_error(
        await client.put(f"/memory/{NS}/k", json={"value": "y"}, headers=key),
        422,
        "idempotency_key_reused",
    )
    assert "different request" in body["error"]
    # The same key on another route of the namespace is another request too.
    assert_error(await client.delete(f"/memory/{NS}/k", headers=key), 422, "idempotency_key_reused")
    # Batches, deletes, rollbacks and reverts replay too.
    for method, path, payload in [
        ("POST", f"/namespaces/{NS}/batch", {"ops": [{"op": "set", "key": "z", "value": 1}]}),
        ("DELETE", f"/memory/{NS}/k", None),
        ("POST", f"/namespaces/{NS}/rollback", {"to": 0}),
        ("POST", f"/namespaces/{NS}/runs/r/revert", {}),
    ]:
        hk = {"Idempotency-Key": f"k-{path}-{method}"}
        one = await client.request(method, path, json=payload, headers=hk)
        head = (await client.get(f"/namespaces/{NS}")).json()["revision"]
        two = await client.request(method, path, json=payload, headers=hk)
        assert one.status_code == two.status_code == 200, (one.text, two.text)
        assert one.content == two.content
        assert (await client.get(f"/namespaces/{NS}")).json()["revision"] == head


@pytest.mark.parametrize(
    ("name", "value", "phrase"),
    [
        ("BotWire-Run", "r" * 257, "BotWire-Run is 257 characters long; at most 256"),
        ("BotWire-Agent", "a" * 300, "BotWire-Agent is 300 characters long; at most 256"),
        ("BotWire-Reason", "x" * 257, "BotWire-Reason is 257 characters long; at most 256"),
        ("Idempotency-Key", "k" * 129, "Idempotency-Key is 129 characters long; at most 128"),
        ("BotWire-Run", "", "BotWire-Run is empty"),
    ],
)
async def test_bad_headers_are_400_and_write_nothing(
    client: httpx.AsyncClient, name: str, value: str, phrase: str
) -> None:
    for method, path, payload in [
        ("PUT", f"/memory/{NS}/k", {"value": 1}),
        ("POST", f"/namespaces/{NS}/batch", {"ops": [{"op": "set", "key": "k", "value": 1}]}),
        ("POST", f"/namespaces/{NS}/runs/r/revert", {"dry_run": False}),
    ]:
        r = await client.request(method, path, json=payload, headers={name: value})
        body = assert_error(r, 400, "invalid_header")
        assert phrase in body["error"]
    assert (await client.get(f"/namespaces/{NS}")).json()["revision"] == 0


async def test_header_limits_hold_at_the_bound_and_utf8(client: httpx.AsyncClient) -> None:
    run = "é" * 256  # 256 characters, 512 bytes of UTF-8
    r = await client.put(
        f"/memory/{NS}/k",
        json={"value": 1},
        headers={"BotWire-Run": run.encode()},
    )
    assert r.is_success, r.text
    events = (await client.get(f"/namespaces/{NS}/changes")).json()["events"]
    assert events[0]["run"] == run
    bad = await client.put(f"/memory/{NS}/k", json={"value": 1}, headers={"BotWire-Run": b"\xff"})
    assert "not UTF-8" in assert_error(bad, 400, "invalid_header")["error"]
    long_run = "r" * 257
    r = await client.get(f"/namespaces/{NS}/runs/{long_run}")
    assert "The run id is 257 characters long" in assert_error(r, 400, "invalid_header")["error"]


async def test_actor_is_the_token_name_and_keys_are_per_token(tmp_path: Path) -> None:
    async with open_store("memory", tmp_path) as store:
        _, alice = await service.create_token(
            store, "alice", [parse_grant("*:write")], expires_in=None
        )
        _, bob = await service.create_token(store, "bob", [parse_grant("*:write")], expires_in=None)
        _, reader = await service.create_token(
            store, "reader", [parse_grant("*:read")], expires_in=None
        )
        app = create_app(Settings(auth="tokens"), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:

            def auth(token: str, **more: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}", **more}

            same = {"Idempotency-Key": "one"}
            a = await c.put(f"/memory/{NS}/k", json={"value": 1}, headers=auth(alice, **same))
            b = await c.put(f"/memory/{NS}/k", json={"value": 1}, headers=auth(bob, **same))
            assert (a.json()["version"], b.json()["version"]) == (1, 2)
            # A client cannot set the actor: there is no such header, and an unknown one is
            # ignored.
            await c.put(
                f"/memory/{NS}/j", json={"value": 1}, headers=auth(alice, **{"BotWire-Actor": "x"})
            )
            events: list[dict[str, Any]] = (
                await c.get(f"/namespaces/{NS}/changes", headers=auth(alice))
            ).json()["events"]
            assert [e["actor"] for e in events] == ["alice", "bob", "alice"]
            r = await c.post(f"/namespaces/{NS}/runs/x/revert", json={}, headers=auth(reader))
            assert_error(r, 403, "forbidden")
            r = await c.get(f"/namespaces/{NS}/runs/x", headers=auth(reader))
            assert r.status_code == 200 and r.json()["events"] == []
