"""Tokens and grants over HTTP, in process, on every backend (PRODUCT.md section 8).

The cross-tenant matrix: every route against every kind of caller. A refused request gets the
contract's status, writes nothing (the namespace's head and contents are unchanged), and its
body does not depend on whether the namespace exists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from test_watch import Stream

from botwire_server import auth, service
from botwire_server.http import create_app
from botwire_server.settings import Settings
from botwire_server.storage.base import Store

ADMIN = "bw_operator_" + "s3cret" * 6
NS = "team-a/x"
GHOST = "team-a/y"  # never written
UNKNOWN = "bw_unknown12_" + "a" * 52


@dataclass
class World:
    client: httpx.AsyncClient
    store: Store
    tokens: dict[str, str | None]
    app: Starlette


async def _token(store: Store, *grants: str, expires_in: float | None = None) -> str:
    parsed = [auth.parse_grant(g) for g in grants]
    _, token = await service.create_token(store, "t", parsed, expires_in=expires_in)
    return token


@pytest.fixture
async def world(store: Store) -> AsyncIterator[World]:
    revoked = await _token(store, "team-a/*:write")
    await store.revoke_token(revoked.split("_")[1], at=store.clock())
    expired = await _token(store, "team-a/*:write", expires_in=0.001)
    tokens: dict[str, str | None] = {
        "none": None,
        "malformed": "Bearer bw_nope",
        "unknown": f"Bearer {UNKNOWN}",
        "revoked": f"Bearer {revoked}",
        "expired": f"Bearer {expired}",
        "read": f"Bearer {await _token(store, 'team-a/*:read')}",
        "write": f"Bearer {await _token(store, 'team-a/*:write')}",
        "admin": f"Bearer {await _token(store, 'team-a/*:admin')}",
        "other": f"Bearer {await _token(store, 'team-b/*:admin', 'team-a/z:write')}",
        "root": f"Bearer {ADMIN}",
    }
    await asyncio.sleep(0.01)  # the expired token's millisecond has passed
    app = create_app(Settings(auth="tokens", admin_token=ADMIN), store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as client:
        yield World(client, store, tokens, app)


def enc(ns: str) -> str:
    return ns.replace("/", "%2F")


# route -> (method, path template, body, access needed: read | write | admin | root | any)
ROUTES: dict[str, tuple[str, str, Any, str]] = {
    "get": ("GET", "/memory/{ns}/k", None, "read"),
    "put": ("PUT", "/memory/{ns}/k", {"value": 2}, "write"),
    "delete": ("DELETE", "/memory/{ns}/k2", None, "write"),
    "list": ("GET", "/memory/{ns}", None, "read"),
    "history": ("GET", "/memory/{ns}/k/history", None, "read"),
    "info": ("GET", "/namespaces/{ns}", None, "read"),
    "snapshot": ("GET", "/namespaces/{ns}/snapshot", None, "read"),
    "rollback": ("POST", "/namespaces/{ns}/rollback", {"to": 1}, "write"),
    "compact": ("POST", "/namespaces/{ns}/compact", {"before": 1}, "admin"),
    "batch": (
        "POST",
        "/namespaces/{ns}/batch",
        {"ops": [{"op": "set", "key": "b", "value": 1}]},
        "write",
    ),
    "get_many": ("POST", "/namespaces/{ns}/get", {"keys": ["k"]}, "read"),
    "query": ("POST", "/namespaces/{ns}/query", {"filter": {"v": {"$gte": 0}}}, "read"),
    "changes": ("GET", "/namespaces/{ns}/changes", None, "read"),
    "watch": ("GET", "/namespaces/{ns}/watch", None, "read"),
    "stats": ("GET", "/stats/memory", None, "root"),
    "namespaces": ("GET", "/namespaces", None, "any"),
    "tokens_list": ("GET", "/admin/tokens", None, "root"),
    "tokens_create": (
        "POST",
        "/admin/tokens",
        {"name": "n", "grants": [{"namespaces": "x", "access": "read"}]},
        "root",
    ),
    "tokens_revoke": ("DELETE", "/admin/tokens/nosuchtoken", None, "root"),
}
LEVEL = {"read": 1, "write": 2, "admin": 3}
GRANTED = {"read": 1, "write": 2, "admin": 3, "other": 0, "root": 4}
SUCCESS = {"tokens_create": 201, "tokens_revoke": 404}


def expected(caller: str, need: str) -> int:
    if caller not in GRANTED:
        return 401
    if need == "any":
        return 200
    if need == "root":
        return 200 if caller == "root" else 403
    return 200 if GRANTED[caller] >= LEVEL[need] else 403


async def state(store: Store, ns: str) -> tuple[int, list[Any], list[str]]:
    items = await store.list(ns, limit=1000)
    tokens = [t.id + str(t.revoked_at) for t in await store.list_tokens()]
    return await store.head(ns), [(i.key, i.value, i.version) for i in items], tokens


async def call(w: World, route: str, ns: str, caller: str) -> httpx.Response:
    method, path, body, _ = ROUTES[route]
    header = w.tokens[caller]
    headers = {} if header is None else {"Authorization": header}
    return await w.client.request(method, path.format(ns=enc(ns)), json=body, headers=headers)


@pytest.mark.parametrize("route", list(ROUTES))
async def test_cross_tenant_matrix(world: World, route: str) -> None:
    need = ROUTES[route][3]
    for caller in world.tokens:
        await world.store.set(NS, "k", b"1")
        await world.store.set(NS, "k2", b"2")
        want = expected(caller, need)
        if route == "watch" and want == 200:
            continue  # an endless stream; test_watch_ends_when_its_token_is_revoked
        before = await state(world.store, NS)
        r = await call(world, route, NS, caller)
        assert r.status_code == (SUCCESS.get(route, 200) if want == 200 else want), (caller, r.text)
        if want == 200:
            continue
        assert await state(world.store, NS) == before, caller
        body = r.json()
        assert body["status"] == want
        assert body["code"] == ("unauthenticated" if want == 401 else "forbidden")
        if want == 401:
            assert r.headers["www-authenticate"] == "Bearer"
        # The same answer for a namespace that does not exist.
        ghost = await call(world, route, GHOST, caller)
        assert ghost.status_code == want
        assert ghost.text.replace(GHOST, NS) == r.text
        assert await world.store.head(GHOST) == 0


async def test_messages_say_what_is_missing(world: World) -> None:
    r = await call(world, "put", NS, "read")
    assert r.json()["error"] == (
        "This token may read team-a/* but not write 'team-a/x'. "
        "Ask an operator for a token with write on it."
    )
    r = await call(world, "stats", NS, "admin")
    assert r.json()["error"] == (
        "This token may admin team-a/* but not read GET /stats/memory: that needs admin on *."
    )
    r = await call(world, "get", NS, "none")
    assert r.json()["error"].startswith("This server needs a token: send 'Authorization: Bearer")
    r = await call(world, "get", NS, "revoked")
    assert r.json()["error"].startswith("The token is unknown, expired or revoked")


async def test_public_routes_need_no_token(world: World) -> None:
    assert (await world.client.get("/healthz")).status_code == 200
    doc = (await world.client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_namespaces_lists_only_what_the_token_may_read(world: World) -> None:
    for ns in ["team-a/x", "team-a/z", "team-b/q", "solo"]:
        await world.store.set(ns, "k", b"1")

    async def names(caller: str, **query: str) -> list[str]:
        headers = {"Authorization": str(world.tokens[caller])}
        r = await world.client.get("/namespaces", params=query, headers=headers)
        assert r.status_code == 200, r.text
        return [n["namespace"] for n in r.json()["namespaces"]]

    assert await names("read") == ["team-a/x", "team-a/z"]
    assert await names("other") == ["team-a/z", "team-b/q"]
    assert await names("root") == ["solo", "team-a/x", "team-a/z", "team-b/q"]
    headers = {"Authorization": str(world.tokens["root"])}
    r = await world.client.get("/namespaces", params={"limit": "2"}, headers=headers)
    page = r.json()
    assert [n["namespace"] for n in page["namespaces"]] == ["solo", "team-a/x"]
    r = await world.client.get(
        "/namespaces", params={"limit": "2", "cursor": page["next_cursor"]}, headers=headers
    )
    assert [n["namespace"] for n in r.json()["namespaces"]] == ["team-a/z", "team-b/q"]
    assert r.json()["next_cursor"] is None


async def test_token_life_cycle_over_http(world: World) -> None:
    root = {"Authorization": str(world.tokens["root"])}
    r = await world.client.post(
        "/admin/tokens",
        json={
            "name": "agent",
            "grants": [{"namespaces": "team-c/*", "access": "write"}],
            "expires_in": 3600,
        },
        headers=root,
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["token"].startswith(f"bw_{made['id']}_") and made["expires_at"]
    mine = {"Authorization": f"Bearer {made['token']}"}
    assert (
        await world.client.put("/memory/team-c%2F1/k", json={"value": 1}, headers=mine)
    ).status_code == 200
    listed = (await world.client.get("/admin/tokens", headers=root)).json()["tokens"]
    entry = next(t for t in listed if t["id"] == made["id"])
    assert "token" not in entry and "secret_hash" not in entry and entry["revoked_at"] is None
    assert made["token"] not in (await world.client.get("/admin/tokens", headers=root)).text
    r = await world.client.delete(f"/admin/tokens/{made['id']}", headers=root)
    assert r.status_code == 200 and r.json()["revoked_at"]
    # This process forgets its cached record at once; others within auth.CACHE_SECONDS.
    r = await world.client.get("/memory/team-c%2F1/k", headers=mine)
    assert r.status_code == 401


async def test_bad_token_requests_are_refused(world: World) -> None:
    root = {"Authorization": str(world.tokens["root"])}
    for grants in (
        [],
        [{"namespaces": "a*b", "access": "read"}],
        [{"namespaces": "", "access": "read"}],
    ):
        r = await world.client.post(
            "/admin/tokens", json={"name": "x", "grants": grants}, headers=root
        )
        assert r.status_code == 400, grants
    r = await world.client.post(
        "/admin/tokens",
        json={"name": "x", "grants": [{"namespaces": "a", "access": "owner"}]},
        headers=root,
    )
    assert r.status_code == 400


async def test_auth_off_needs_nothing(store: Store) -> None:
    app = create_app(Settings(auth="off"), store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
        assert (await c.put("/memory/ns/k", json={"value": 1})).status_code == 200
        assert (await c.get("/stats/memory")).status_code == 200
        r = await c.get("/memory/ns/k", headers={"Authorization": "Bearer junk"})
        assert r.status_code == 200


async def test_watch_ends_when_its_token_is_revoked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwire_server.http import stream

    monkeypatch.setattr(stream, "RECHECK", 0.1)
    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.05)
    token = await _token(world.store, "team-a/*:read")
    watch = Stream(world.app, f"/namespaces/{enc(NS)}/watch", {"Authorization": f"Bearer {token}"})
    assert (await watch.start())["status"] == 200
    await world.store.set(NS, "k", b"1")
    (event,) = await watch.events(1)
    assert event["event"] == "change"
    await world.store.revoke_token(token.split("_")[1], at=world.store.clock())
    (event,) = await watch.events(1, timeout=3)
    assert event["event"] == "error" and event["data"]["code"] == "unauthenticated"
    while not watch.ended:
        await watch.chunk(3)
    await watch.disconnect()
