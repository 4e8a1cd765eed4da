"""The storage contract of the one write pipeline, run for every backend: atomic batches with
conditions, TTL with deterministic visibility and expire events, the change feed, multi-get and
commit listeners. Each test states one rule of ``botwire_server.storage.base``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from backends import FakeClock, OpenStore

from botwire_server.errors import (
    BatchConflict,
    Conflict,
    FutureRevision,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RevisionCompacted,
)
from botwire_server.settings import Limits
from botwire_server.storage.base import MICROS, Change, Event, Store, Write

NS = "ns"
S = MICROS  # one second in microseconds


def put(key: str, value: bytes, **kw: int | None) -> Write:
    return Write(op="set", key=key, value=value, **kw)  # type: ignore[arg-type]


async def values(store: Store, as_of: int | None = None) -> dict[str, bytes]:
    return {i.key: i.value for i in await store.list(NS, limit=1000, as_of=as_of)}


# -- batches ---------------------------------------------------------------------------------------


async def test_a_batch_is_one_revision(store: Store) -> None:
    await store.set(NS, "old", b"0")
    done = await store.commit(NS, [put("a", b"1"), put("b", b"2"), Write(op="delete", key="old")])
    assert (done.revision, done.written) == (2, True)
    assert [(r.key, r.version) for r in done.results] == [("a", 2), ("b", 2), ("old", 2)]
    assert await values(store) == {"a": b"1", "b": b"2"}
    assert await values(store, 1) == {"old": b"0"}
    assert await store.head(NS) == 2
    info = await store.info(NS)
    assert (info.keys, info.bytes) == (2, 4)
    feed = await store.changes(NS)
    assert [(e.revision, e.key, e.op) for e in feed.events] == [
        (1, "old", "set"),
        (2, "a", "set"),
        (2, "b", "set"),
        (2, "old", "delete"),
    ]


async def test_a_failed_condition_writes_nothing(store: Store) -> None:
    await store.set(NS, "a", b"1")
    await store.set(NS, "b", b"2")
    with pytest.raises(BatchConflict) as exc:
        await store.commit(
            NS,
            [
                put("a", b"x", expected_version=1),
                put("b", b"y", expected_version=1),  # b is at 2
                Write(op="check", key="c", expected_version=3),  # c is absent
                Write(op="delete", key="d"),  # d is absent
            ],
        )
    assert exc.value.conflicts == [(1, "b", 2), (2, "c", 0), (3, "d", 0)]
    body = exc.value.body()
    assert (body["status"], body["code"]) == (409, "batch_conflict")
    assert body["conflicts"][0] == {"index": 1, "key": "b", "current_version": 2}
    assert await store.head(NS) == 2
    assert await values(store) == {"a": b"1", "b": b"2"}
    assert [e.revision for e in await store.history(NS, "a")] == [1]


async def test_checks_guard_other_keys(store: Store) -> None:
    await store.set(NS, "config", b"1")
    done = await store.commit(
        NS, [Write(op="check", key="config", expected_version=1), put("derived", b"2")]
    )
    assert [(r.key, r.version) for r in done.results] == [("config", 1), ("derived", 2)]
    await store.set(NS, "config", b"3")
    with pytest.raises(BatchConflict) as exc:
        await store.commit(
            NS, [Write(op="check", key="config", expected_version=1), put("derived", b"4")]
        )
    assert exc.value.conflicts == [(0, "config", 3)]
    absent = await store.commit(
        NS, [Write(op="check", key="nothing", expected_version=0), put("x", b"1")]
    )
    assert absent.results[0].version == 0


async def test_a_batch_of_checks_writes_nothing(store: Store) -> None:
    await store.set(NS, "a", b"1")
    done = await store.commit(NS, [Write(op="check", key="a", expected_version=1)])
    assert (done.revision, done.written) == (1, False)
    assert await store.head(NS) == 1
    assert (await store.changes(NS)).events[-1].revision == 1


async def test_batch_shape_is_checked(store: Store) -> None:
    with pytest.raises(InvalidInput):
        await store.commit(NS, [])
    with pytest.raises(InvalidInput):
        await store.commit(NS, [put("a", b"1"), Write(op="delete", key="a")])
    with pytest.raises(InvalidInput):
        await store.commit(NS, [Write(op="check", key="a")])
    with pytest.raises(InvalidInput):
        await store.commit(NS, [Write(op="set", key="a")])
    with pytest.raises(InvalidInput):
        await store.commit(NS, [put("a", b"1", ttl=0)])
    assert await store.head(NS) == 0


async def test_batch_counts_each_write_against_the_quota(make_store: OpenStore) -> None:
    async with make_store(limits=Limits(writes_per_day=5, namespace_max_bytes=0)) as store:
        await store.commit(NS, [put("a", b"1"), put("b", b"1"), put("c", b"1")])
        with pytest.raises(QuotaExceeded):
            await store.commit(NS, [put("d", b"1"), put("e", b"1"), put("f", b"1")])
        assert await store.head(NS) == 1
        # Checks are free; two more writes fit exactly.
        await store.commit(
            NS, [put("d", b"1"), put("e", b"1"), Write(op="check", key="a", expected_version=1)]
        )
        with pytest.raises(QuotaExceeded):
            await store.set(NS, "g", b"1")


async def test_batch_respects_the_namespace_size(make_store: OpenStore) -> None:
    async with make_store(limits=Limits(writes_per_day=0, namespace_max_bytes=10)) as store:
        await store.set(NS, "a", b"12345")  # 6 bytes
        with pytest.raises(PayloadTooLarge):
            await store.commit(NS, [put("b", b"123"), put("c", b"1")])  # 6 + 4 + 2
        assert await store.head(NS) == 1
        # Shrinking one key while growing another fits.
        await store.commit(NS, [put("a", b"1"), put("b", b"123")])
        assert (await store.info(NS)).bytes == 6


async def test_concurrent_batches_stay_atomic(store: Store) -> None:
    async def move(i: int) -> int:
        while True:
            a = await store.get(NS, "a")
            b = await store.get(NS, "b")
            assert a is not None and b is not None
            try:
                done = await store.commit(
                    NS,
                    [
                        put("a", str(int(a.value) - 1).encode(), expected_version=a.version),
                        put("b", str(int(b.value) + 1).encode(), expected_version=b.version),
                    ],
                )
                return done.revision
            except BatchConflict:
                await asyncio.sleep(0)

    await store.commit(NS, [put("a", b"100"), put("b", b"0")])
    revisions = await asyncio.gather(*(move(i) for i in range(20)))
    assert sorted(revisions) == list(range(2, 22))
    final = await store.get_many(NS, ["a", "b"])
    assert {k: v.value for k, v in final[1].items() if v} == {"a": b"80", "b": b"20"}
    for revision in range(1, 22):
        snap = await values(store, revision)
        assert int(snap["a"]) + int(snap["b"]) == 100


# -- TTL -------------------------------------------------------------------------------------------


async def test_ttl_visibility_now_and_as_of(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    w = await store.set(NS, "k", b"1", ttl=10 * S)
    assert w.expires_at == w.at + 10 * S
    item = await store.get(NS, "k")
    assert item is not None and item.expires_at == w.at + 10 * S
    clock.advance(9.999999)
    assert await store.get(NS, "k") is not None
    clock.advance(0.000001)  # T == expires_at: gone
    assert await store.get(NS, "k") is None
    assert await values(store) == {}
    assert (await store.get_many(NS, ["k"]))[1] == {"k": None}
    # As of revision 1 the key is visible: R's commit time is before the expiry.
    then = await store.get(NS, "k", as_of=1)
    assert then is not None and then.value == b"1"
    await store.set(NS, "other", b"x")  # revision 2, committed after the expiry
    assert await store.get(NS, "k", as_of=2) is None
    assert await values(store, 2) == {"other": b"x"}
    assert await values(store, 1) == {"k": b"1"}


async def test_an_expired_key_is_absent_for_writes(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    await store.set(NS, "k", b"1", ttl=5 * S)
    clock.advance(6)
    with pytest.raises(NotFound):
        await store.delete(NS, "k")
    with pytest.raises(Conflict) as exc:
        await store.set(NS, "k", b"2", expected_version=1)
    assert exc.value.current_version == 0
    reborn = await store.set(NS, "k", b"3", expected_version=0)
    assert (reborn.revision, reborn.created_revision) == (2, 2)
    info = await store.info(NS)
    assert (info.keys, info.bytes) == (1, 2)


async def test_a_plain_set_clears_the_ttl(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    await store.set(NS, "k", b"1", ttl=5 * S)
    w = await store.set(NS, "k", b"2")
    assert w.expires_at is None and w.created_revision == 1
    clock.advance(60)
    item = await store.get(NS, "k")
    assert item is not None and item.expires_at is None and item.value == b"2"
    assert await store.due_expiries() == []


async def test_the_sweeper_appends_expire_events(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    await store.set(NS, "a", b"1", ttl=5 * S)
    await store.set(NS, "b", b"2", ttl=10 * S)
    await store.set("other", "c", b"3", ttl=1 * S)
    await store.set(NS, "keep", b"4")
    assert await store.due_expiries() == []
    clock.advance(6)
    due = await store.due_expiries()
    assert due == [("other", "c", 1), (NS, "a", 1)]
    done = await store.commit(NS, [Write(op="expire", key="a", expected_version=1)])
    assert (done.revision, done.written) == (4, True)
    history = await store.history(NS, "a")
    assert [(e.revision, e.op, e.value) for e in history] == [(4, "expire", None), (1, "set", b"1")]
    assert await store.get(NS, "a", as_of=4) is None
    info = await store.info(NS)
    assert (info.keys, info.revision) == (2, 4)
    # An expiry that is no longer due (the key was rewritten) or stale is skipped.
    await store.set(NS, "b", b"20", ttl=100 * S)
    skipped = await store.commit(NS, [Write(op="expire", key="b", expected_version=2)])
    assert (skipped.written, skipped.revision) == (False, 5)
    gone = await store.commit(NS, [Write(op="expire", key="a")])
    assert gone.written is False
    assert [e.op for e in (await store.changes(NS, after=3)).events] == ["expire", "set"]


async def test_expiries_do_not_count_against_the_quota(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 1, 31, 12, tzinfo=UTC))
    limits = Limits(writes_per_day=1, namespace_max_bytes=0)
    async with make_store(limits=limits, clock=clock) as store:
        await store.set(NS, "k", b"1", ttl=S)
        clock.advance(2)
        done = await store.commit(NS, [Write(op="expire", key="k")])
        assert done.written
        with pytest.raises(QuotaExceeded):
            await store.set(NS, "k", b"2")


async def test_rollback_restores_a_value_with_its_expiry(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    w = await store.set(NS, "k", b"1", ttl=100 * S)
    await store.set(NS, "k", b"2")
    result = await store.rollback(NS, 1)
    assert result.revision == 3
    item = await store.get(NS, "k")
    assert item is not None and item.value == b"1" and item.expires_at == w.expires_at
    # A key whose value at the target has expired by now is absent at the target's state
    # only if it had expired then; here it was visible then and is restored, then expires.
    clock.advance(101)
    assert await store.get(NS, "k") is None


# -- the change feed -------------------------------------------------------------------------------


async def test_change_feed_pages_by_revisions(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    at = []
    for i in range(5):
        clock.advance(1)
        at.append((await store.set(NS, f"k{i % 2}", str(i).encode())).at)
    await store.delete(NS, "k0")
    page = await store.changes(NS, after=0, limit=2)
    assert (page.head, page.next_after) == (6, 2)
    assert page.events == [
        Event(1, "k0", "set", b"0", at[0]),
        Event(2, "k1", "set", b"1", at[1]),
    ]
    page = await store.changes(NS, after=page.next_after, limit=3)
    assert [e.revision for e in page.events] == [3, 4, 5]
    page = await store.changes(NS, after=page.next_after, limit=3)
    assert [(e.revision, e.op, e.value) for e in page.events] == [(6, "delete", None)]
    assert page.next_after == 6
    empty = await store.changes(NS, after=6)
    assert (empty.events, empty.next_after, empty.head) == ([], 6, 6)
    assert (await store.changes("never")).events == []


async def test_change_feed_prefix_and_bounds(store: Store) -> None:
    await store.commit(NS, [put("user:1", b"1"), put("user:2", b"2"), put("bot:1", b"3")])
    await store.set(NS, "bot:2", b"4")
    await store.set(NS, "user:1", b"5")
    page = await store.changes(NS, prefix="user:")
    assert [(e.revision, e.key) for e in page.events] == [
        (1, "user:1"),
        (1, "user:2"),
        (3, "user:1"),
    ]
    assert page.next_after == 3
    with pytest.raises(FutureRevision):
        await store.changes(NS, after=4)
    with pytest.raises(InvalidInput):
        await store.changes(NS, after=-1)
    with pytest.raises(InvalidInput):
        await store.changes(NS, limit=1001)


async def test_change_feed_after_compaction(store: Store) -> None:
    for i in range(4):
        await store.set(NS, "k", str(i).encode())
    await store.compact(NS, before=2)
    with pytest.raises(RevisionCompacted) as exc:
        await store.changes(NS, after=1)
    assert exc.value.oldest_revision == 2
    page = await store.changes(NS, after=2)
    assert [e.revision for e in page.events] == [3, 4]


# -- multi-get and listeners -----------------------------------------------------------------------


async def test_get_many_reads_one_revision(store: Store) -> None:
    await store.commit(NS, [put("a", b"1"), put("b", b"2")])
    await store.set(NS, "a", b"3")
    revision, items = await store.get_many(NS, ["a", "b", "c"])
    assert revision == 2
    assert {k: (v.value, v.version) if v else None for k, v in items.items()} == {
        "a": (b"3", 2),
        "b": (b"2", 1),
        "c": None,
    }
    revision, items = await store.get_many(NS, ["a", "c"], as_of=1)
    assert revision == 1
    assert items["a"] is not None and items["a"].value == b"1" and items["c"] is None
    with pytest.raises(FutureRevision):
        await store.get_many(NS, ["a"], as_of=3)


async def test_listeners_hear_every_commit(store: Store) -> None:
    heard: list[tuple[str, int]] = []
    store.add_listener(lambda ns, revision: heard.append((ns, revision)))
    await store.set(NS, "a", b"1")
    await store.commit(NS, [put("b", b"1"), put("c", b"1")])
    await store.rollback(NS, 1)
    with pytest.raises(Conflict):
        await store.set(NS, "a", b"2", expected_version=5)
    await store.commit(NS, [Write(op="check", key="a", expected_version=1)])
    deadline = asyncio.get_running_loop().time() + 5
    while [h for h in heard if h[0] == NS][-1:] != [(NS, 3)]:
        assert asyncio.get_running_loop().time() < deadline, heard
        await asyncio.sleep(0.01)
    own = sorted({h for h in heard if h[0] == NS})
    assert own == [(NS, 1), (NS, 2), (NS, 3)]


async def test_rollback_sees_keys_expired_without_an_event(
    clocked: tuple[Store, FakeClock],
) -> None:
    store, clock = clocked
    await store.set(NS, "short", b"1", ttl=5 * S)  # revision 1
    await store.set(NS, "long", b"2", ttl=100 * S)  # revision 2
    await store.set(NS, "long", b"3", ttl=100 * S)  # revision 3
    clock.advance(10)  # "short" has expired; the sweeper has not run
    # Rolling back to 2 restores "long"; "short", expired since, stays absent: restoring it
    # with its expiry would make it absent at once, so it is not written.
    result = await store.rollback(NS, 2)
    assert result.changes == [Change("long", "set", b"2")]
    assert await values(store) == {"long": b"2"}
    # An unswept expired key with a live value at the target is found without a later event.
    await store.set(NS, "k", b"x", ttl=100 * S)  # revision 5
    await store.set(NS, "k", b"y", ttl=1 * S)  # revision 6
    clock.advance(2)  # "k" expired, no event after revision 6
    result = await store.rollback(NS, 5)
    assert result.changes == [Change("k", "set", b"x")]
    item = await store.get(NS, "k")
    assert item is not None and item.value == b"x"


async def test_a_set_after_an_unswept_expiry_starts_a_new_incarnation(
    clocked: tuple[Store, FakeClock],
) -> None:
    store, clock = clocked
    await store.set(NS, "k", b"1", ttl=S)  # revision 1
    clock.advance(1)  # expired at the next commit's time, no expire event
    w = await store.set(NS, "k", b"2")  # revision 2: a new incarnation
    assert w.created_revision == 2
    for as_of in (None, 2):
        item = await store.get(NS, "k", as_of=as_of)
        assert item is not None and (item.created_revision, item.created_at) == (2, w.at)
    listed = await store.list(NS, as_of=2)
    assert [(i.key, i.created_revision) for i in listed] == [("k", 2)]
