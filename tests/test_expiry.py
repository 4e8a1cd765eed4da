"""The expiry sweeper (``botwire_server.expiry``) against every storage backend, on a clock the
test moves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from backends import FakeClock

from botwire_server.expiry import Sweeper, sweep
from botwire_server.storage.base import MICROS, Store


async def test_sweep_appends_expire_events_per_namespace(
    clocked: tuple[Store, FakeClock],
) -> None:
    store, clock = clocked
    heads: list[tuple[str, int]] = []
    store.add_listener(lambda ns, head: heads.append((ns, head)))
    await store.set("a", "k1", b"1", ttl=10 * MICROS)
    await store.set("a", "k2", b"2", ttl=10 * MICROS)
    await store.set("a", "keep", b"3")
    await store.set("b", "k", b"4", ttl=20 * MICROS)
    assert await sweep(store) == 0  # nothing due yet: nothing written
    assert await store.head("a") == 3
    clock.advance(11)
    assert await sweep(store) == 2
    # One commit for both keys of namespace a; b is not due yet.
    assert await store.head("a") == 4 and await store.head("b") == 1
    feed = await store.changes("a", after=3)
    assert [(e.revision, e.key, e.op, e.value) for e in feed.events] == [
        (4, "k1", "expire", None),
        (4, "k2", "expire", None),
    ]
    assert heads[-1] == ("a", 4)
    assert (await store.info("a")).keys == 1
    clock.advance(10)
    assert await sweep(store) == 1
    assert [e.op for e in await store.history("b", "k")] == ["expire", "set"]
    assert await sweep(store) == 0


async def test_sweep_goes_on_while_pages_are_full(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    for i in range(5):
        await store.set("ns", f"k{i}", b"1", ttl=MICROS)
    clock.advance(2)
    assert await sweep(store, limit=2) == 5
    assert (await store.info("ns")).keys == 0
    assert await store.head("ns") == 5 + 3  # pages of 2, 2 and 1 keys: three commits


async def test_a_rewritten_key_is_not_expired(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    await store.set("ns", "k", b"1", ttl=MICROS)
    clock.advance(2)
    await store.set("ns", "k", b"2")  # a new incarnation without TTL
    assert await sweep(store) == 0
    assert (await store.get("ns", "k")) is not None
    assert await store.head("ns") == 2


class FlakyStore:
    """Fails the first ``failures`` calls of ``due_expiries``, then reports nothing due."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def due_expiries(self, *, limit: int = 1000) -> Sequence[tuple[str, str, int]]:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError("database went away")
        return []

    async def purge_idempotency(self, *, now: int, limit: int = 1000) -> int:
        return 0

    def clock(self) -> int:
        return 0


async def test_the_sweeper_logs_errors_and_keeps_going(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(failures=2)
    sweeper = Sweeper(store, interval=0.01)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="botwire_server.expiry"):
        sweeper.start()
        for _ in range(200):
            if store.calls >= 4:
                break
            await asyncio.sleep(0.01)
        await sweeper.stop()
    assert store.calls >= 4
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["The expiry sweep failed; it is retried in 0.01 s."] * 2
    calls = store.calls
    await asyncio.sleep(0.05)
    assert store.calls == calls  # stopped
