"""Exact write quotas under concurrency: 64 writers racing for a daily limit of 1000.

Each writer keeps writing until the server refuses it with 429, mixing in writes that are
refused for other reasons (a CAS conflict, a delete of an absent key), which must not count. At
the end exactly 1000 writes were accepted, the namespace's head is 1000, and every refusal was
a 429 carrying ``Retry-After``. On PostgreSQL the writers are spread over two server processes
on one database: the quota is the namespace's, not a server's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from pg import require_postgres, temp_database
from server_process import ServerProcess

LIMIT = 1000
WRITERS = 64
QUOTA_ENV = {"BOTWIRE_WRITES_PER_DAY": str(LIMIT)}


async def writer(client: httpx.AsyncClient, n: int, statuses: Counter[int]) -> None:
    i = 0
    while True:
        i += 1
        url = f"/memory/quota/w{n}"
        if i % 5 == 0:  # refused for a version conflict: must not use up the quota
            r = await client.put(url, json={"value": i, "expected_version": 10**9})
            assert r.status_code in (409, 429), r.text
        elif i % 7 == 0:  # a delete of a key that does not exist: 404, not counted
            r = await client.delete(f"/memory/quota/absent-{n}")
            assert r.status_code in (404, 429), r.text
        else:
            r = await client.put(url, json={"value": i})
            assert r.status_code in (200, 429), r.text
        statuses[r.status_code] += 1
        if r.status_code == 429:
            body = r.json()
            assert body["code"] == "write_quota_exceeded"
            assert int(r.headers["Retry-After"]) == body["retry_after"] > 0
            return


async def race(urls: list[str]) -> Counter[int]:
    statuses: Counter[int] = Counter()
    clients = [
        httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=WRITERS))
        for url in urls
    ]
    try:
        await asyncio.gather(
            *(writer(clients[n % len(clients)], n, statuses) for n in range(WRITERS))
        )
        for client in clients:
            info = (await client.get("/namespaces/quota")).json()
            assert info["revision"] == LIMIT
            # Reads are never limited; writes stay refused, also for a brand-new key.
            assert (await client.get("/memory/quota/w0")).status_code == 200
            assert (await client.put("/memory/quota/new", json={"value": 1})).status_code == 429
            # Another namespace has its own quota.
            assert (await client.put("/memory/other/k", json={"value": 1})).status_code == 200
    finally:
        for client in clients:
            await client.aclose()
    return statuses


@pytest.mark.e2e
async def test_quota_is_exact_under_64_concurrent_writers(tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}", env=QUOTA_ENV) as server:
        statuses = await race([server.url])
    assert statuses[200] == LIMIT, statuses
    assert statuses[429] == WRITERS, statuses
    assert statuses[409] > 0 and statuses[404] > 0, statuses


@pytest.mark.e2e
@pytest.mark.postgres
async def test_quota_is_exact_across_two_postgres_servers() -> None:
    require_postgres()
    async with temp_database() as db:
        with ServerProcess(db, env=QUOTA_ENV) as first, ServerProcess(db, env=QUOTA_ENV) as second:
            statuses = await race([first.url, second.url])
    assert statuses[200] == LIMIT, statuses
    assert statuses[429] == WRITERS, statuses


# -- per token -------------------------------------------------------------------------------
#
# One token's writers spread over many new namespaces (the way around a namespace quota) and
# over a few namespaces whose keys a second token also writes, so that values (and their
# bytes) move between the two tokens while both are locked by the same commits: a lock order
# that could deadlock would show as errors or a hang. Exactly TOKEN_LIMIT writes of the first
# token succeed across two PostgreSQL servers; the second token's writes all succeed.

ADMIN = "bw_root_" + "q" * 40
TOKEN_LIMIT = 300
TOKEN_ENV = {
    "BOTWIRE_AUTH": "tokens",
    "BOTWIRE_ADMIN_TOKEN": ADMIN,
    "BOTWIRE_TOKEN_WRITES_PER_DAY": str(TOKEN_LIMIT),
    "BOTWIRE_TOKEN_MAX_BYTES": "1000000",
}
OTHER_WRITERS, OTHER_WRITES = 4, 25


async def make_token(client: httpx.AsyncClient, name: str) -> str:
    r = await client.post(
        "/admin/tokens",
        json={"name": name, "grants": [{"namespaces": "*", "access": "write"}]},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


async def token_writer(
    client: httpx.AsyncClient, token: str, n: int, statuses: Counter[int]
) -> None:
    head = {"Authorization": f"Bearer {token}"}
    i = 0
    while True:
        i += 1
        if i % 5 == 0:  # refused for a version conflict: must not count
            url = f"/memory/t{n}-{i}/k"
            r = await client.put(url, json={"value": i, "expected_version": 10**9}, headers=head)
            assert r.status_code in (409, 429), r.text
        elif i % 3 == 0:  # a key the other token writes too: its bytes change owner
            r = await client.put(
                f"/memory/shared-{i % 4}/k{n % 4}", json={"value": i}, headers=head
            )
            assert r.status_code in (200, 429), r.text
        else:  # a namespace never written before
            r = await client.put(f"/memory/t{n}-{i}/k", json={"value": i}, headers=head)
            assert r.status_code in (200, 429), r.text
        statuses[r.status_code] += 1
        if r.status_code == 429:
            body = r.json()
            assert body["code"] == "token_quota_exceeded", body
            assert int(r.headers["Retry-After"]) == body["retry_after"] > 0
            return


async def other_writer(
    client: httpx.AsyncClient, token: str, n: int, statuses: Counter[int]
) -> None:
    head = {"Authorization": f"Bearer {token}"}
    for i in range(OTHER_WRITES):
        r = await client.put(
            f"/memory/shared-{i % 4}/k{(n + i) % 4}", json={"value": i}, headers=head
        )
        statuses[r.status_code] += 1


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.slow
async def test_token_quota_is_exact_across_two_postgres_servers() -> None:
    require_postgres()
    async with temp_database() as db:
        with (
            ServerProcess(db, env=TOKEN_ENV) as first,
            ServerProcess(db, env=TOKEN_ENV) as second,
        ):
            clients = [
                httpx.AsyncClient(
                    base_url=url, timeout=60, limits=httpx.Limits(max_connections=WRITERS)
                )
                for url in (first.url, second.url)
            ]
            try:
                token = await make_token(clients[0], "spreader")
                other = await make_token(clients[1], "neighbour")
                mine: Counter[int] = Counter()
                theirs: Counter[int] = Counter()
                await asyncio.gather(
                    *(token_writer(clients[n % 2], token, n, mine) for n in range(WRITERS)),
                    *(other_writer(clients[n % 2], other, n, theirs) for n in range(OTHER_WRITERS)),
                )
                for client in clients:
                    # Still refused in a brand-new namespace, on either server.
                    r = await client.put(
                        "/memory/brand-new/k",
                        json={"value": 1},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert r.status_code == 429 and r.json()["code"] == "token_quota_exceeded"
                # The operator's token is not limited.
                r = await clients[1].put(
                    "/memory/brand-new/k",
                    json={"value": 1},
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
                assert r.status_code == 200, r.text
            finally:
                for client in clients:
                    await client.aclose()
    assert mine[200] == TOKEN_LIMIT, mine
    assert mine[429] == WRITERS, mine
    assert mine[409] > 0, mine
    assert theirs == Counter({200: OTHER_WRITERS * OTHER_WRITES}), theirs
