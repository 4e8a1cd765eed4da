"""The cross-tenant matrix of ``test_auth.py`` through real ``botwire serve`` processes: on
SQLite, and on PostgreSQL with two servers (tokens made and revoked through one, every request
of the matrix sent through the other, what is stored read back through the first).

For each route and each caller (no token, a malformed, unknown, revoked or expired one, read,
write and admin tokens on ``team-a/*``, a token for other namespaces, the operator's token) the
status is the contract's; a refused request writes nothing, and its body is the same whether or
not the namespace exists."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pg import require_postgres, temp_database_sync
from server_process import ServerProcess
from test_auth import ROUTES, SUCCESS, UNKNOWN, enc, expected

ADMIN = "bw_operator_" + "s3cret" * 6
ENV = {"BOTWIRE_AUTH": "tokens", "BOTWIRE_ADMIN_TOKEN": ADMIN}
ROOT = {"Authorization": f"Bearer {ADMIN}"}
# make test-long: about 2,000 requests per backend; test_auth runs the same matrix in process.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def servers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """(the server that manages tokens and reads state back, the one the matrix goes through)."""
    if request.param == "sqlite":
        with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}", env=ENV) as only:
            yield only, only
        return
    require_postgres()
    with (
        temp_database_sync() as url,
        ServerProcess(url, env=ENV) as a,
        ServerProcess(url, env=ENV) as b,
    ):
        yield a, b


def make_token(url: str, grants: list[str], expires_in: float | None = None) -> dict[str, Any]:
    parsed = []
    for grant in grants:
        pattern, _, access = grant.rpartition(":")
        parsed.append({"namespaces": pattern, "access": access})
    body: dict[str, Any] = {"name": "matrix", "grants": parsed}
    if expires_in is not None:
        body["expires_in"] = expires_in
    r = httpx.post(f"{url}/admin/tokens", json=body, headers=ROOT)
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


def callers(manager: str, via: str, ns: str) -> dict[str, str | None]:
    revoked = make_token(manager, ["team-a/*:write"])
    expired = make_token(manager, ["team-a/*:write"], expires_in=0.5)
    tokens: dict[str, str | None] = {
        "none": None,
        "malformed": "Bearer bw_nope",
        "unknown": f"Bearer {UNKNOWN}",
        "revoked": f"Bearer {revoked['token']}",
        "expired": f"Bearer {expired['token']}",
        "read": f"Bearer {make_token(manager, ['team-a/*:read'])['token']}",
        "write": f"Bearer {make_token(manager, ['team-a/*:write'])['token']}",
        "admin": f"Bearer {make_token(manager, ['team-a/*:admin'])['token']}",
        "other": f"Bearer {make_token(manager, ['team-b/*:admin', 'team-a/z:write'])['token']}",
        "root": f"Bearer {ADMIN}",
    }
    # The revoked token was in use on the other server before its revocation (so that server
    # cached it); the matrix starts once it is refused there, which must take at most 5 s.
    used = {"Authorization": tokens["revoked"] or ""}
    assert httpx.get(f"{via}/memory/{enc(ns)}", headers=used).status_code == 200
    r = httpx.delete(f"{manager}/admin/tokens/{revoked['id']}", headers=ROOT)
    assert r.status_code == 200, r.text
    since = time.monotonic()
    while httpx.get(f"{via}/memory/{enc(ns)}", headers=used).status_code != 401:
        assert time.monotonic() - since <= 5.0, "revocation did not reach the other server"
        time.sleep(0.05)
    time.sleep(max(0.0, 0.6 - (time.monotonic() - since)))  # the expired token's time is up
    return tokens


def state(client: httpx.Client, ns: str) -> tuple[Any, Any, Any]:
    """The namespace's head and contents and the token list, as the operator sees them."""
    info = client.get(f"/namespaces/{enc(ns)}", headers=ROOT)
    snapshot = client.get(f"/namespaces/{enc(ns)}/snapshot", headers=ROOT)
    tokens = client.get("/admin/tokens", headers=ROOT)
    assert info.status_code == snapshot.status_code == tokens.status_code == 200
    # A refused request of a valid token still marks it used (last_used_at): not a write.
    listed = [{k: v for k, v in t.items() if k != "last_used_at"} for t in tokens.json()["tokens"]]
    return info.json().get("revision"), snapshot.json(), listed


def call(client: httpx.Client, route: str, ns: str, header: str | None) -> httpx.Response:
    method, path, body, _ = ROUTES[route]
    headers = {} if header is None else {"Authorization": header}
    return client.request(method, path.format(ns=enc(ns)), json=body, headers=headers)


def test_cross_tenant_matrix_through_real_servers(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    tokens = callers(servers[0].url, servers[1].url, "team-a/warm-up")
    checked = 0
    with (
        httpx.Client(base_url=servers[0].url, timeout=30) as manager,
        httpx.Client(base_url=servers[1].url, timeout=30) as via,
    ):
        for route, (_, _, _, need) in ROUTES.items():
            # A namespace per route: an allowed compaction or rollback must not change what
            # the next route's callers find.
            ns, ghost_ns = f"team-a/{route}", f"team-a/{route}-never-written"
            for caller, header in tokens.items():
                for key, value in (("k", 1), ("k2", 2)):
                    put = manager.put(
                        f"/memory/{enc(ns)}/{key}", json={"value": value}, headers=ROOT
                    )
                    assert put.status_code == 200, put.text
                want = expected(caller, need)
                if route == "watch" and want == 200:
                    continue  # an endless stream; test_auth covers an open watch's revocation
                before = state(manager, ns)
                r = call(via, route, ns, header)
                assert r.status_code == (SUCCESS.get(route, 200) if want == 200 else want), (
                    route,
                    caller,
                    r.text,
                )
                checked += 1
                if want == 200:
                    continue
                assert state(manager, ns) == before, (route, caller)
                body = r.json()
                assert body["status"] == want
                assert body["code"] == ("unauthenticated" if want == 401 else "forbidden")
                if want == 401:
                    assert r.headers["www-authenticate"] == "Bearer"
                ghost = call(via, route, ghost_ns, header)
                assert ghost.status_code == want, (route, caller)
                assert ghost.text.replace(ghost_ns, ns) == r.text, (route, caller)
                assert state(manager, ghost_ns)[0] == 0, (route, caller)  # nothing written
    # Every route with every caller, but for the open streams of allowed watches.
    allowed_watches = sum(expected(c, ROUTES["watch"][3]) == 200 for c in tokens)
    assert checked == len(ROUTES) * len(tokens) - allowed_watches
