"""The storage contract of provenance, runs, revert and idempotency (PRODUCT.md section 9), run
for every backend. Each test states one rule of ``botwire_server.storage.base``."""

from __future__ import annotations

import pytest
from backends import FakeClock

from botwire_server.errors import IdempotencyKeyReused
from botwire_server.storage.base import (
    MICROS,
    Change,
    Committed,
    Idempotency,
    Provenance,
    Skipped,
    Store,
    Write,
)

NS = "ns"
S = MICROS


def by(run: str | None, *, actor: str | None = None, idem: Idempotency | None = None) -> Provenance:
    return Provenance(
        actor=actor,
        actor_id="tok1" if actor else None,
        run=run,
        agent="ag",
        reason=f"because {run}",
        idempotency=idem,
    )


async def state(store: Store) -> dict[str, bytes]:
    return {i.key: i.value for i in await store.list(NS, limit=1000)}


# -- metadata ----------------------------------------------------------------------------------


async def test_every_event_of_a_commit_carries_its_provenance(store: Store) -> None:
    await store.set(NS, "old", b"0")  # no provenance: nulls
    meta = Provenance(actor="ci-bot", actor_id="abc", run="r1", agent="planner", reason="plan")
    await store.commit(
        NS, [Write(op="set", key="a", value=b"1"), Write(op="set", key="b", value=b"2")], meta
    )
    await store.delete(NS, "old", meta=meta)
    feed = await store.changes(NS)
    stamps = [(e.revision, e.key, e.actor, e.run, e.agent, e.reason) for e in feed.events]
    assert stamps == [
        (1, "old", None, None, None, None),
        (2, "a", "ci-bot", "r1", "planner", "plan"),
        (2, "b", "ci-bot", "r1", "planner", "plan"),
        (3, "old", "ci-bot", "r1", "planner", "plan"),
    ]
    (newest, oldest) = await store.history(NS, "old")
    assert (newest.op, newest.run, newest.actor) == ("delete", "r1", "ci-bot")
    assert (oldest.run, oldest.actor) == (None, None)


async def test_run_events_oldest_first_and_paged(store: Store) -> None:
    await store.set(NS, "x", b"1", meta=by("r1"))
    await store.set(NS, "y", b"1", meta=by("r2"))
    await store.commit(
        NS, [Write(op="set", key="b", value=b"2"), Write(op="set", key="a", value=b"2")], by("r1")
    )
    await store.set(NS, "x", b"3", meta=by("r1"))
    events = await store.run_events(NS, "r1")
    assert [(e.revision, e.key) for e in events] == [(1, "x"), (3, "a"), (3, "b"), (4, "x")]
    assert all(e.run == "r1" for e in events)
    page = await store.run_events(NS, "r1", limit=2)
    rest = await store.run_events(NS, "r1", after=(page[-1].revision, page[-1].key))
    assert [(e.revision, e.key) for e in [*page, *rest]] == [(1, "x"), (3, "a"), (3, "b"), (4, "x")]
    assert await store.run_events(NS, "nobody") == []
    assert await store.run_events("other", "r1") == []


# -- revert -------------------------------------------------------------------------------------


async def test_revert_worked_example(store: Store) -> None:
    await store.set(NS, "a", b"0")
    await store.commit(
        NS, [Write(op="set", key="a", value=b"1"), Write(op="set", key="b", value=b"1")], by("X")
    )
    await store.set(NS, "c", b"1", meta=by("X"))
    await store.set(NS, "b", b"2", meta=by("Y"))
    await store.set(NS, "a", b"2", meta=by("X"))

    dry = await store.revert_run(NS, "X", dry_run=True)
    assert (dry.revision, dry.dry_run) == (5, True)
    assert dry.changes == [Change("a", "set", b"0"), Change("c", "delete", None)]
    assert dry.skipped == [Skipped("b", "written_by_others", 4)]
    assert await store.head(NS) == 5

    done = await store.revert_run(NS, "X", meta=by("U", actor="alice"))
    assert (done.revision, done.dry_run) == (6, False)
    assert done.changes == dry.changes and done.skipped == dry.skipped
    assert await state(store) == {"a": b"0", "b": b"2"}
    feed = await store.changes(NS, after=5)
    assert {(e.key, e.op, e.run, e.actor) for e in feed.events} == {
        ("a", "set", "U", "alice"),
        ("c", "delete", "U", "alice"),
    }

    # Reverting X again: U wrote its keys since, so they are left alone now.
    again = await store.revert_run(NS, "X")
    assert again.changes == [] and again.revision == 6
    assert [s.key for s in again.skipped] == ["a", "b", "c"]
    # The revert of the revert restores what X left.
    undo = await store.revert_run(NS, "U")
    assert undo.revision == 7 and undo.skipped == []
    assert await state(store) == {"a": b"2", "b": b"2", "c": b"1"}


async def test_revert_restores_a_deleted_key_and_nothing_for_an_unknown_run(store: Store) -> None:
    await store.set(NS, "k", b'"v"')
    await store.delete(NS, "k", meta=by("bad"))
    result = await store.revert_run(NS, "bad")
    assert result.changes == [Change("k", "set", b'"v"')] and result.revision == 3
    assert (await state(store)) == {"k": b'"v"'}
    nothing = await store.revert_run(NS, "never")
    assert (nothing.revision, nothing.changes, nothing.skipped) == (3, [], [])
    assert await store.head(NS) == 3


async def test_revert_interleaved_runs_on_one_key(store: Store) -> None:
    await store.set(NS, "k", b"0", meta=by("A"))
    await store.set(NS, "k", b"1", meta=by("B"))
    await store.set(NS, "k", b"2", meta=by("A"))
    a = await store.revert_run(NS, "A", dry_run=True)
    assert a.changes == [] and a.skipped == [Skipped("k", "written_by_others", 3)]
    b = await store.revert_run(NS, "B")
    assert b.changes == [] and b.skipped == [Skipped("k", "written_by_others", 3)]
    assert await store.head(NS) == 3
    # Once A is undone by a plain rollback of the last write, B's write is the last: B's
    # revert still refuses, since A wrote after B's first write (history, not the present).
    await store.rollback(NS, 2)
    later = await store.revert_run(NS, "B", dry_run=True)
    assert later.skipped == [Skipped("k", "written_by_others", 4)]


async def test_revert_of_ttl_writes(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    await store.set(NS, "t", b"old", ttl=10 * S)  # before the run, with a TTL
    await store.set(NS, "t", b"new", meta=by("R"))
    await store.set(NS, "u", b"tmp", ttl=5 * S, meta=by("R"))
    clock.advance(20)  # "old" would have expired by now; "tmp" has expired
    result = await store.revert_run(NS, "R")
    # t: its value before the run has expired, so t goes; u is absent already.
    assert result.changes == [Change("t", "delete", None)]
    assert await state(store) == {}


async def test_revert_is_idempotent_with_a_key(store: Store) -> None:
    await store.set(NS, "k", b"1", meta=by("R"))
    idem = Idempotency(key="t:rev", fingerprint="f1")
    first = await store.revert_run(NS, "R", meta=by(None, idem=idem))
    await store.set(NS, "k", b"2", meta=by("R"))
    second = await store.revert_run(NS, "R", meta=by(None, idem=idem))
    assert first == second and first.revision == 2
    assert await store.head(NS) == 3


# -- idempotency ----------------------------------------------------------------------------------


async def test_a_retry_gets_the_first_outcome_and_writes_nothing(store: Store) -> None:
    idem = Idempotency(key="t:k1", fingerprint="f1")
    first = await store.set(NS, "k", b"1", meta=Provenance(idempotency=idem))
    again = await store.set(NS, "k", b"1", meta=Provenance(idempotency=idem))
    assert first == again and first.revision == 1
    assert await store.head(NS) == 1
    with pytest.raises(IdempotencyKeyReused) as reused:
        await store.set(
            NS, "k", b"2", meta=Provenance(idempotency=Idempotency(key="t:k1", fingerprint="f2"))
        )
    assert reused.value.status == 422 and reused.value.code == "idempotency_key_reused"
    # Keys are per namespace.
    other = await store.set("ns2", "k", b"1", meta=Provenance(idempotency=idem))
    assert other.revision == 1
    assert await store.head(NS) == 1


async def test_idempotent_batch_and_rollback(store: Store) -> None:
    writes = [Write(op="set", key="a", value=b"1"), Write(op="set", key="b", value=b"2")]
    meta = Provenance(run="r", idempotency=Idempotency(key="b1", fingerprint="x"))
    first = await store.commit(NS, writes, meta)
    assert isinstance(first, Committed)
    assert await store.commit(NS, writes, meta) == first
    rb_meta = Provenance(idempotency=Idempotency(key="rb", fingerprint="y"))
    rolled = await store.rollback(NS, 0, meta=rb_meta)
    assert rolled.revision == 2
    await store.set(NS, "a", b"3")
    assert await store.rollback(NS, 0, meta=rb_meta) == rolled
    assert await state(store) == {"a": b"3"}


async def test_refused_writes_store_no_outcome(store: Store) -> None:
    meta = Provenance(idempotency=Idempotency(key="c", fingerprint="f"))
    await store.set(NS, "k", b"1")
    with pytest.raises(Exception) as refused:
        await store.set(NS, "k", b"2", expected_version=0, meta=meta)
    assert getattr(refused.value, "status", None) == 409
    done = await store.set(NS, "k", b"2", expected_version=1, meta=meta)
    assert done.revision == 2


async def test_outcomes_expire_and_are_purged(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    idem = Idempotency(key="k", fingerprint="f", ttl=60 * S)
    await store.set(NS, "k", b"1", meta=Provenance(idempotency=idem))
    clock.advance(30)
    assert (await store.set(NS, "k", b"1", meta=Provenance(idempotency=idem))).revision == 1
    assert await store.purge_idempotency(now=clock()) == 0
    clock.advance(31)
    # Expired: the key is free again (even for another request) and the write happens.
    other = Idempotency(key="k", fingerprint="g", ttl=60 * S)
    assert (await store.set(NS, "k", b"2", meta=Provenance(idempotency=other))).revision == 2
    clock.advance(61)
    assert await store.purge_idempotency(now=clock()) == 1
    assert await store.purge_idempotency(now=clock()) == 0
