"""Lending the PostgreSQL store's connections at the cost of a list pop.

asyncpg's ``Pool.acquire(timeout=...)`` wraps every acquisition in ``asyncio.wait_for`` and every
release in ``asyncio.shield``: two extra tasks per query, which measured as half the store's CPU
for a primary-key read (about 62 µs per read through ``pool.acquire`` against 33 µs through a
plain list of connections, uvloop, 64 concurrent readers). The ``Lender`` takes connections from
the pool once and lends them out again and again; the pool still opens them (with its connect
timeout and server settings), closes them, and replaces the ones it is told have expired.

A connection goes back to the pool, not to the idle list, when it is broken or closed, still in a
transaction (the pool's reset rolls it back), older than the last ``expire()`` (PostgreSQL
restarted), or when the lender is closing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import asyncpg


class PoolExhausted(Exception):
    """Every connection stayed lent out for the whole acquire timeout."""


def _unusable(conn: Any) -> bool:
    try:
        return bool(conn.is_closed() or conn.is_in_transaction())
    except asyncpg.InterfaceError:
        # asyncpg released it to the pool itself when its connection closed under it.
        return True


class Lender:
    def __init__(self, pool: Any, *, acquire_timeout: float) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self._idle: list[Any] = []
        # Callers waiting for a connection, first come first served. A waiter's result is a
        # connection, or None: "one went back to the pool, take a fresh one from it".
        self._waiters: deque[asyncio.Future[Any]] = deque()
        # Connections taken from the pool (idle here or lent), with the generation they belong to.
        self._held: dict[Any, int] = {}
        self._generation = 0
        self._closing = False

    @property
    def idle(self) -> int:
        """Connections taken from the pool and idle here, ready to lend."""
        return len(self._idle)

    def available(self) -> bool:
        """A connection can be lent without waiting for one to come back."""
        return bool(self._idle) or len(self._held) < self.pool.get_max_size()

    async def lend(self) -> Any:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not _unusable(conn):
                    return conn
                await self._to_pool(conn)
            if len(self._held) < self.pool.get_max_size():
                return await self._from_pool()
            conn = await self._wait()
            if conn is not None:
                return conn

    async def _from_pool(self) -> Any:
        # Reserve the slot before the await, so that concurrent callers never overdraw.
        marker = object()
        self._held[marker] = self._generation
        try:
            conn = await self.pool.acquire(timeout=self.acquire_timeout)
        finally:
            del self._held[marker]
        self._held[conn] = self._generation
        return conn

    async def _wait(self) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(future)

        def expire() -> None:
            if not future.done():
                future.set_exception(PoolExhausted())

        timer = loop.call_later(self.acquire_timeout, expire)
        try:
            return await future
        except asyncio.CancelledError:
            # Cancelled after a connection was handed over: pass it on, do not lose it.
            if future.done() and not future.cancelled() and future.exception() is None:
                conn = future.result()
                if conn is not None:
                    await self.give_back(conn)
            raise
        finally:
            timer.cancel()
            if not future.done():
                future.cancel()
            try:
                self._waiters.remove(future)
            except ValueError:
                pass

    async def give_back(self, conn: Any, *, broken: bool = False) -> None:
        if broken or self._closing or _unusable(conn) or self._held.get(conn) != self._generation:
            await self._to_pool(conn)
            self._wake(None)
            return
        if not self._wake(conn):
            self._idle.append(conn)

    def _wake(self, conn: Any) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    async def _to_pool(self, conn: Any) -> None:
        self._held.pop(conn, None)
        # A no-op when asyncpg already took it back (it does when the connection closes).
        await self.pool.release(conn)

    async def expire(self) -> None:
        """Every connection is suspect (a PostgreSQL restart): idle ones go back to the pool
        now, lent ones when they come back, and the pool reconnects them all."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._to_pool(conn)
        await self.pool.expire_connections()

    async def close(self) -> None:
        """Idle connections go back to the pool now, lent ones when they come back."""
        self._closing = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._to_pool(conn)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


__all__ = ["Lender", "PoolExhausted"]
