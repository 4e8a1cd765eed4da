"""Overload on PostgreSQL: 1,000 PUTs to one namespace at the same moment, through one server and
through two, must all succeed.

Through one server they wait in its group-commit queue (holding no pool connection) instead of
each blocking a connection on the namespace row lock; through two, the servers' groups take the
row lock in turn. Every write is acknowledged, and the namespace ends with revisions 1..1000 and
every key holding the value its PUT was acknowledged with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from pg import require_postgres, temp_database_sync
from server_process import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

NS = "overload"
WRITES = 1000
# A small pool, as in production a pool is small next to the number of clients.
SERVER_ENV = {"BOTWIRE_WRITES_PER_DAY": "0", "BOTWIRE_POOL_MIN": "1", "BOTWIRE_POOL_MAX": "4"}
# Not a speed requirement: a bound so that a stall fails the test instead of hanging it.
HANG_GUARD = 240.0


@pytest.fixture
def database() -> Iterator[str]:
    require_postgres()
    with temp_database_sync() as url:
        yield url


async def put_all(urls: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=WRITES, max_keepalive_connections=WRITES)
    async with httpx.AsyncClient(limits=limits, timeout=HANG_GUARD) as client:
        # Every request is sent before any is answered, as far as one process can manage.
        return await asyncio.gather(
            *(
                client.put(f"{urls[i % len(urls)]}/memory/{NS}/k{i}", json={"value": i})
                for i in range(WRITES)
            )
        )


async def rows(url: str, sql: str) -> list[Any]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return list(await conn.fetch(sql, NS))
    finally:
        await conn.close()


@pytest.mark.parametrize("servers", [1, 2], ids=["one-server", "two-servers"])
def test_a_thousand_concurrent_puts_to_one_namespace_all_succeed(
    database: str, servers: int
) -> None:
    procs = [ServerProcess(database, env=SERVER_ENV) for _ in range(servers)]
    try:
        for proc in procs:
            proc.start()
        responses = asyncio.run(asyncio.wait_for(put_all([p.url for p in procs]), HANG_GUARD))
        refused = [(r.status_code, r.text) for r in responses if r.status_code != 200]
        assert refused == []
        acked = {r.json()["version"] for r in responses}
        assert acked == set(range(1, WRITES + 1))

        revisions = asyncio.run(
            rows(database, "SELECT revision FROM revisions WHERE namespace = $1 ORDER BY 1")
        )
        assert [r["revision"] for r in revisions] == list(range(1, WRITES + 1))
        current = asyncio.run(rows(database, "SELECT key, value FROM current WHERE namespace = $1"))
        assert {r["key"]: r["value"] for r in current} == {
            f"k{i}": str(i).encode() for i in range(WRITES)
        }
    finally:
        for proc in procs:
            proc.__exit__(None, None, None)
