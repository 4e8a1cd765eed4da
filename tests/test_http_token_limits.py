"""Per-token limits over HTTP, in process: the 429 and 413 bodies of a token over its daily
writes or its bytes, across namespaces; the operator's admin token stays unlimited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from backends import FakeClock, open_store
from test_http import assert_error

from botwire_server import service
from botwire_server.auth import parse_grant
from botwire_server.http import create_app
from botwire_server.settings import Limits, Settings

ADMIN = "bw_operator_" + "s3cret" * 6


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_token_quota_and_storage_bodies(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    limits = Limits(token_writes_per_day=2, token_max_bytes=12)
    async with open_store("sqlite", tmp_path, limits=limits, clock=clock) as store:
        _, alice = await service.create_token(
            store, "alice", [parse_grant("*:write")], expires_in=None
        )
        _, bob = await service.create_token(store, "bob", [parse_grant("*:write")], expires_in=None)
        app = create_app(Settings(auth="tokens", admin_token=ADMIN, limits=limits), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
            # alice: 2 writes over two namespaces, then refused in a third.
            for ns in ("n1", "n2"):
                r = await c.put(f"/memory/{ns}/k", json={"value": 1}, headers=auth(alice))
                assert r.status_code == 200, r.text
            r = await c.put("/memory/n3/k", json={"value": 1}, headers=auth(alice))
            body = assert_error(r, 429, "token_quota_exceeded")
            assert body == {
                "error": "This token has used its 2 writes for today (UTC), across all its "
                "namespaces; retry after 3600 seconds.",
                "code": "token_quota_exceeded",
                "status": 429,
                "retry_after": 3600,
            }
            assert r.headers["Retry-After"] == "3600"
            assert (await c.get("/memory/n3/k", headers=auth(bob))).status_code == 404
            # bob has his own count and bytes; the operator's admin token is not limited.
            r = await c.put("/memory/n3/k", json={"value": "12345678"}, headers=auth(bob))
            assert r.status_code == 200, r.text  # bob: 1 + 10 = 11 bytes
            r = await c.put("/memory/n4/kk", json={"value": 1}, headers=auth(bob))
            body = assert_error(r, 413, "token_storage_full")
            assert body == {
                "error": "This token's values would hold 14 bytes across its namespaces, over "
                "its limit of 12. Delete keys it wrote or store smaller values.",
                "code": "token_storage_full",
                "status": 413,
                "limit": 12,
            }
            for i in range(4):
                r = await c.put(f"/memory/a{i}/k", json={"value": "x" * 20}, headers=auth(ADMIN))
                assert r.status_code == 200, r.text
            # The admin token overwrote nothing of bob's; a delete by it frees bob's bytes.
            r = await c.delete("/memory/n3/k", headers=auth(ADMIN))
            assert r.status_code == 200, r.text
            r = await c.put("/memory/n4/kk", json={"value": 1}, headers=auth(bob))
            assert r.status_code == 200, r.text
