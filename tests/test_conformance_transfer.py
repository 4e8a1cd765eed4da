"""``Store.dump`` and ``Store.restore`` (export / import), on every backend: a namespace written
back from its dump reads the same as the original, event for event, at every revision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from backends import FakeClock, OpenStore
from transfer_util import copy_namespace, dump_all, picture

from botwire_server.errors import InvalidInput, RevisionCompacted
from botwire_server.expiry import sweep
from botwire_server.storage.base import MICROS, Provenance, Recorded, Store, Write

NS = "team/notes"
# The PostgreSQL stores of one test share a database: the copy goes to a namespace of its own.
COPY = "team/copy"
RUN = Provenance(actor="alice", actor_id="t1", run="run-7", agent="planner", reason="plan")


async def _history(store: Store, clock: FakeClock) -> None:
    """Sets, an overwrite, a delete, a batch, TTLs swept and unswept, a re-created key, a
    rollback, then a compaction that keeps sets below its floor."""
    for step, (key, value) in enumerate([("a", b"1"), ("b", b'"two"'), ("a", b"3")]):
        clock.advance(1 + step)
        await store.set(NS, key, value)
    clock.advance(1)
    await store.delete(NS, "b", meta=Provenance(actor="ops", reason="cleanup"))
    clock.advance(1)
    await store.commit(
        NS,
        [
            Write(op="set", key="c", value=b"[1,2]", ttl=5 * MICROS),
            Write(op="set", key="d", value=b"{}", ttl=500 * MICROS),
            Write(op="set", key="b", value=b"null"),
        ],
        RUN,
    )
    clock.advance(10)
    assert await sweep(store) == 1  # c expires: an expire event
    await store.set(NS, "c", b"7")  # a new incarnation
    clock.advance(1)
    await store.rollback(NS, 3)
    clock.advance(1)
    await store.set(NS, "e", b"9", ttl=1 * MICROS)
    clock.advance(5)  # e expired, not swept: still a current row
    await store.set(NS, "a", b"11")
    await store.compact(NS, before=4)


async def test_a_restored_namespace_reads_like_the_original(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    async with make_store(clock=clock) as source, make_store(clock=clock) as target:
        await _history(source, clock)
        head = await source.head(NS)
        # Pages of 2 events: a revision's events (the batch) span pages.
        assert await copy_namespace(source, target, NS, into=COPY, page=2) == head
        revisions = range(4, head + 1)
        assert await picture(target, COPY, revisions) == await picture(source, NS, revisions)
        assert await dump_all(target, COPY) == await dump_all(source, NS)
        assert (await source.dump(NS, limit=1))[0].revision < 4  # a set kept below the floor
        with pytest.raises(RevisionCompacted):
            await target.get(COPY, "a", as_of=3)
        # Provenance travels with each event, and the run index with it.
        ran = await target.run_events(COPY, "run-7")
        assert ran == await source.run_events(NS, "run-7")
        assert [(e.key, e.actor, e.agent, e.reason) for e in ran] == [
            (k, "alice", "planner", "plan") for k in ("b", "c", "d")
        ]
        # Both go on the same way: same revision, same incarnations, same expiries swept.
        clock.advance(1000)
        assert [await sweep(s) for s in (source, target)] in ([1, 1], [2, 0])  # e, twice
        for store, name in ((source, NS), (target, COPY)):
            await store.set(name, "a", b"12", expected_version=head)
        later = [head + 2]
        assert await picture(target, COPY, later) == await picture(source, NS, later)


async def test_restore_refuses_events_already_stored_and_replace_starts_over(
    make_store: OpenStore,
) -> None:
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    async with make_store(clock=clock) as source, make_store(clock=clock) as target:
        await _history(source, clock)
        await copy_namespace(source, target, NS, into=COPY)
        before = await picture(target, COPY, [5])
        events = await dump_all(source, NS)
        with pytest.raises(InvalidInput) as refused:
            await target.restore(COPY, events)
        assert "is stored already" in str(refused.value)
        assert await picture(target, COPY, [5]) == before  # nothing written
        # Out of order: refused before anything is written.
        with pytest.raises(InvalidInput):
            await target.restore("other", list(reversed(events[:3])))
        assert (await target.info("other")).revision == 0
        # Idempotent: the same import again with replace reads the same.
        await copy_namespace(source, target, NS, into=COPY)
        assert await picture(target, COPY, [5]) == before
        # Replace forgets what was there, also keys the import does not have.
        await target.set(COPY, "zz", b"1")
        await copy_namespace(source, target, NS, into=COPY)
        assert await target.get(COPY, "zz") is None
        assert await picture(target, COPY, [5]) == before


async def test_restore_of_a_fully_compacted_namespace_keeps_its_head(
    make_store: OpenStore,
) -> None:
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    async with make_store(clock=clock) as source, make_store(clock=clock) as target:
        await source.set(NS, "a", b"1")
        clock.advance(1)
        await source.delete(NS, "a")
        await source.compact(NS, before=2)
        assert await dump_all(source, NS) == []
        assert await copy_namespace(source, target, NS, into=COPY) == 2
        assert await picture(target, COPY, [2]) == await picture(source, NS, [2])
        assert (await target.set(COPY, "a", b"3")).revision == 3


async def test_dump_pages_in_revision_then_key_order(store: Store) -> None:
    await store.commit(NS, [Write(op="set", key=k, value=b"1") for k in "cab"])
    await store.set(NS, "a", b"2")
    rows = await dump_all(store, NS, page=1)
    assert [(r.revision, r.key, r.created_revision) for r in rows] == [
        (1, "a", 1),
        (1, "b", 1),
        (1, "c", 1),
        (2, "a", 1),
    ]
    assert rows[0] == Recorded(
        revision=1,
        at=rows[0].at,
        key="a",
        op="set",
        value=b"1",
        created_revision=1,
        created_at=rows[0].at,
    )
    assert await store.dump(NS, after=(2, "a")) == []
    assert await store.dump("never-written") == []
