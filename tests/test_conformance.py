"""The storage contract, written against ``Store`` only and run for every backend.

Each test states one rule of ``botwire_server.storage.base``; the in-memory reference store and
every real backend must answer identically.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from backends import FakeClock, OpenStore

from botwire_server.errors import (
    Conflict,
    FutureRevision,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RevisionCompacted,
)
from botwire_server.settings import Limits
from botwire_server.storage.base import (
    MICROS,
    Change,
    Item,
    Stats,
    Store,
    WriteResult,
)

NS = "ns"


def dt(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


async def snapshot(
    store: Store, namespace: str, as_of: int | datetime | None = None
) -> dict[str, bytes]:
    items = await store.list(namespace, limit=1000, as_of=as_of)
    return {item.key: item.value for item in items}


# -- the worked example ----------------------------------------------------------------------------


async def test_worked_example(store: Store) -> None:
    a1 = await store.set(NS, "a", b"1")
    assert (a1.revision, a1.created_revision, a1.bytes) == (1, 1, 1)
    b2 = await store.set(NS, "b", b"2")
    assert (b2.revision, b2.created_revision) == (2, 2)
    a3 = await store.set(NS, "a", b"3", expected_version=1)
    assert (a3.revision, a3.created_revision) == (3, 1)
    with pytest.raises(Conflict) as conflict:
        await store.set(NS, "a", b"4", expected_version=1)
    assert conflict.value.current_version == 3
    assert conflict.value.body()["current_version"] == 3
    assert await store.head(NS) == 3
    d4 = await store.delete(NS, "b")
    assert (d4.revision, d4.created_revision, d4.bytes) == (4, 2, 0)
    b5 = await store.set(NS, "b", b"5")
    assert (b5.revision, b5.created_revision) == (5, 5)

    result = await store.rollback(NS, 2)
    assert result.revision == 6
    assert result.dry_run is False
    assert result.changes == [Change("a", "set", b"1"), Change("b", "set", b"2")]

    a = await store.get(NS, "a")
    b = await store.get(NS, "b")
    assert a is not None and b is not None
    assert (a.value, a.version, a.created_revision) == (b"1", 6, 1)
    assert (b.value, b.version, b.created_revision) == (b"2", 6, 5)

    then = await store.get(NS, "a", as_of=2)
    assert then is not None and then.value == b"1"
    assert await store.get(NS, "b", as_of=4) is None
    history = await store.history(NS, "b")
    assert [(e.revision, e.op, e.value) for e in history] == [
        (6, "set", b"2"),
        (5, "set", b"5"),
        (4, "delete", None),
        (2, "set", b"2"),
    ]

    again = await store.rollback(NS, 6)
    assert (again.revision, again.changes) == (6, [])
    assert await store.head(NS) == 6


# -- versions and created_revision ----------------------------------------------------------------


async def test_item_fields_follow_the_incarnation(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    first = await store.set(NS, "k", b'"x"')
    clock.advance(1)
    second = await store.set(NS, "k", b'"y"')
    item = await store.get(NS, "k")
    assert item == Item("k", b'"y"', 2, 1, first.at, second.at)
    clock.advance(1)
    await store.delete(NS, "k")
    assert await store.get(NS, "k") is None
    clock.advance(1)
    reborn = await store.set(NS, "k", b'"z"')
    assert reborn.created_revision == 4
    assert await store.get(NS, "k") == Item("k", b'"z"', 4, 4, reborn.at, reborn.at)
    # The old incarnation is still readable at its revisions.
    assert await store.get(NS, "k", as_of=2) == Item("k", b'"y"', 2, 1, first.at, second.at)
    assert await store.get(NS, "k", as_of=3) is None


async def test_namespaces_are_independent(store: Store) -> None:
    await store.set("one", "k", b"1")
    await store.set("one", "k", b"2")
    w = await store.set("two", "k", b"3")
    assert w.revision == 1
    assert (await store.info("one")).revision == 2
    one = await store.get("one", "k")
    assert one is not None and one.value == b"2"


async def test_info_of_a_namespace_never_written(store: Store) -> None:
    info = await store.info("nothing")
    assert (info.revision, info.keys, info.bytes, info.oldest_revision) == (0, 0, 0, 0)
    assert info.updated_at is None
    assert await store.head("nothing") == 0
    assert await store.get("nothing", "k") is None
    assert await store.get("nothing", "k", as_of=0) is None
    assert await store.list("nothing") == []
    assert await store.history("nothing", "k") == []
    assert await store.resolve("nothing", 0) == 0


async def test_info_counts_live_keys_and_utf8_bytes(clocked: tuple[Store, FakeClock]) -> None:
    store, _ = clocked
    await store.set(NS, "é", b"12345")  # 2 bytes of key in UTF-8
    last = await store.set(NS, "b", b"1")
    await store.set(NS, "c", b"1")
    await store.delete(NS, "c")
    info = await store.info(NS)
    assert (info.revision, info.keys, info.bytes) == (4, 2, 2 + 5 + 1 + 1)
    assert info.updated_at is not None and info.updated_at >= last.at


# -- optimistic concurrency ------------------------------------------------------------------------


async def test_expected_version_zero_means_absent(store: Store) -> None:
    await store.set(NS, "k", b"1", expected_version=0)
    with pytest.raises(Conflict) as exc:
        await store.set(NS, "k", b"2", expected_version=0)
    assert exc.value.current_version == 1
    item = await store.get(NS, "k")
    assert item is not None and item.value == b"1"
    await store.delete(NS, "k")
    again = await store.set(NS, "k", b"3", expected_version=0)
    assert again.revision == 3


async def test_expected_version_n(store: Store) -> None:
    await store.set(NS, "k", b"1")
    await store.set(NS, "other", b"x")
    w = await store.set(NS, "k", b"2", expected_version=1)
    assert w.revision == 3
    with pytest.raises(Conflict) as exc:
        await store.set(NS, "k", b"3", expected_version=1)
    assert exc.value.current_version == 3
    with pytest.raises(Conflict) as absent:
        await store.set(NS, "missing", b"3", expected_version=2)
    assert absent.value.current_version == 0
    # Nothing was written by either conflict.
    assert await store.head(NS) == 3
    assert [e.revision for e in await store.history(NS, "k")] == [3, 1]
    assert await store.history(NS, "missing") == []
    assert await store.get(NS, "missing") is None


async def test_negative_expected_version_is_invalid(store: Store) -> None:
    await store.set(NS, "k", b"1")
    with pytest.raises(InvalidInput):
        await store.set(NS, "k", b"2", expected_version=-1)
    assert await store.head(NS) == 1


async def test_delete_with_expected_version(store: Store) -> None:
    await store.set(NS, "k", b"1")
    with pytest.raises(Conflict) as exc:
        await store.delete(NS, "k", expected_version=7)
    assert exc.value.current_version == 1
    with pytest.raises(Conflict):
        await store.delete(NS, "k", expected_version=0)
    assert await store.head(NS) == 1
    w = await store.delete(NS, "k", expected_version=1)
    assert w.revision == 2


@pytest.mark.parametrize("expected", [None, 0, 1, 5])
async def test_delete_of_an_absent_key_is_not_found(store: Store, expected: int | None) -> None:
    await store.set(NS, "other", b"1")
    with pytest.raises(NotFound) as exc:
        await store.delete(NS, "k", expected_version=expected)
    assert exc.value.code == "key_not_found"
    await store.set(NS, "k", b"1")
    await store.delete(NS, "k")
    with pytest.raises(NotFound):
        await store.delete(NS, "k", expected_version=expected)
    assert await store.head(NS) == 3


# -- history ---------------------------------------------------------------------------------------


async def test_history_pages_newest_first(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    times = []
    for i in range(7):
        clock.advance(1)
        if i == 3:
            times.append((await store.delete(NS, "k")).at)
        else:
            times.append((await store.set(NS, "k", str(i).encode())).at)
        await store.set(NS, "noise", str(i).encode())
    events = await store.history(NS, "k")
    assert [e.revision for e in events] == [13, 11, 9, 7, 5, 3, 1]
    assert [e.at for e in events] == times[::-1]
    assert events[3].op == "delete" and events[3].value is None
    assert [e.value for e in events if e.op == "set"] == [b"6", b"5", b"4", b"2", b"1", b"0"]
    assert all(e.key == "k" for e in events)

    page = await store.history(NS, "k", limit=3)
    assert [e.revision for e in page] == [13, 11, 9]
    page = await store.history(NS, "k", before=page[-1].revision, limit=3)
    assert [e.revision for e in page] == [7, 5, 3]
    page = await store.history(NS, "k", before=page[-1].revision, limit=3)
    assert [e.revision for e in page] == [1]
    assert await store.history(NS, "k", before=1) == []
    assert [e.revision for e in await store.history(NS, "k", before=8)] == [7, 5, 3, 1]


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_page_limits_are_checked(store: Store, limit: int) -> None:
    with pytest.raises(InvalidInput):
        await store.history(NS, "k", limit=limit)
    with pytest.raises(InvalidInput):
        await store.list(NS, limit=limit)


# -- point-in-time reads ---------------------------------------------------------------------------


async def test_as_of_every_revision(store: Store) -> None:
    ops: list[tuple[str, str, bytes | None]] = [
        ("set", "a", b"1"),
        ("set", "b", b"2"),
        ("delete", "a", None),
        ("set", "c", b"3"),
        ("set", "a", b"4"),
        ("set", "b", b"5"),
        ("delete", "c", None),
    ]
    expected: list[dict[str, bytes]] = [{}]
    state: dict[str, bytes] = {}
    for op, key, value in ops:
        if op == "set":
            assert value is not None
            await store.set(NS, key, value)
            state[key] = value
        else:
            await store.delete(NS, key)
            del state[key]
        expected.append(dict(state))
    for revision, want in enumerate(expected):
        assert await snapshot(store, NS, revision) == want
        for key in "abc":
            item = await store.get(NS, key, as_of=revision)
            assert (item.value if item else None) == want.get(key)
        assert await store.resolve(NS, revision) == revision
    assert await snapshot(store, NS) == expected[-1]


async def test_as_of_a_timestamp(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    start = clock.now
    clock.advance(10)
    w1 = await store.set(NS, "k", b"1")
    clock.advance(10)
    w2 = await store.set(NS, "k", b"2")
    await store.set(NS, "k", b"3")  # same microsecond as revision 2
    clock.advance(10)
    await store.set(NS, "k", b"4")

    assert await store.resolve(NS, dt(start)) == 0
    assert await store.get(NS, "k", as_of=dt(start)) is None
    assert await store.resolve(NS, dt(w1.at)) == 1
    assert await store.resolve(NS, dt(w1.at + 5 * MICROS)) == 1
    assert await store.resolve(NS, dt(w2.at - 1)) == 1
    assert await store.resolve(NS, dt(w2.at)) == 3
    item = await store.get(NS, "k", as_of=dt(w2.at))
    assert item is not None and item.value == b"3"
    assert await snapshot(store, NS, dt(w1.at)) == {"k": b"1"}
    # Any timezone denotes the same instant.
    plus_two = dt(w1.at).astimezone(timezone(timedelta(hours=2)))
    assert await store.resolve(NS, plus_two) == 1
    # A moment after the last commit is the head.
    assert await store.resolve(NS, dt(clock.now + 1000 * MICROS)) == 4


async def test_naive_datetime_is_invalid(store: Store) -> None:
    await store.set(NS, "k", b"1")
    naive = datetime(2026, 1, 1, 12, 0)
    with pytest.raises(InvalidInput) as exc:
        await store.get(NS, "k", as_of=naive)
    assert exc.value.code == "invalid_parameter"
    with pytest.raises(InvalidInput):
        await store.list(NS, as_of=naive)
    with pytest.raises(InvalidInput):
        await store.resolve(NS, naive)
    with pytest.raises(InvalidInput):
        await store.rollback(NS, naive)
    assert await store.head(NS) == 1


async def test_future_revision(store: Store) -> None:
    await store.set(NS, "k", b"1")
    with pytest.raises(FutureRevision) as exc:
        await store.get(NS, "k", as_of=2)
    assert exc.value.extra["head"] == 1
    with pytest.raises(FutureRevision):
        await store.list(NS, as_of=2)
    with pytest.raises(FutureRevision):
        await store.resolve(NS, 5)
    with pytest.raises(FutureRevision):
        await store.rollback(NS, 2)
    with pytest.raises(FutureRevision):
        await store.get("never-written", "k", as_of=1)
    with pytest.raises(InvalidInput):
        await store.get(NS, "k", as_of=-1)
    assert await store.head(NS) == 1


# -- compaction ------------------------------------------------------------------------------------


async def test_compaction(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    plan: list[tuple[str, str, bytes | None]] = [
        ("set", "a", b"1"),
        ("set", "a", b"2"),
        ("set", "b", b"3"),
        ("delete", "b", None),
        ("set", "a", b"5"),
        ("set", "c", b"6"),
        ("set", "d", b"7"),
        ("set", "c", b"8"),
        ("delete", "d", None),
    ]
    times = []
    for op, key, value in plan:
        clock.advance(1)
        if op == "set":
            assert value is not None
            times.append((await store.set(NS, key, value)).at)
        else:
            times.append((await store.delete(NS, key)).at)
    before_items = {r: await store.list(NS, as_of=r) for r in range(5, 10)}
    before_gets = {r: await store.get(NS, "a", as_of=r) for r in range(5, 10)}

    # Floor 5: a keeps set@5 (its newest event <= 5) and nothing older; b's newest event <= 5 is
    # a tombstone, so b loses everything; c, d have nothing <= 5.
    removed = await store.compact(NS, before=5)
    assert removed == 4  # a@1, a@2, b@3, b@4
    info = await store.info(NS)
    assert info.oldest_revision == 5
    for r in range(5, 10):
        assert await store.list(NS, as_of=r) == before_items[r]
        assert await store.get(NS, "a", as_of=r) == before_gets[r]
    with pytest.raises(RevisionCompacted) as exc:
        await store.get(NS, "a", as_of=4)
    assert exc.value.oldest_revision == 5
    with pytest.raises(RevisionCompacted):
        await store.list(NS, as_of=0)
    with pytest.raises(RevisionCompacted):
        await store.resolve(NS, dt(times[2]))
    with pytest.raises(RevisionCompacted):
        await store.get(NS, "a", as_of=dt(times[0] - 1))
    with pytest.raises(RevisionCompacted):
        await store.rollback(NS, 3)
    assert await store.resolve(NS, dt(times[4])) == 5
    assert [e.revision for e in await store.history(NS, "a")] == [5]
    assert await store.history(NS, "b") == []
    # Current state is untouched.
    a = await store.get(NS, "a")
    assert a is not None and (a.value, a.version, a.created_revision) == (b"5", 5, 1)
    assert await store.compact(NS, before=3) == 0
    assert await store.compact(NS, before=5) == 0
    with pytest.raises(FutureRevision):
        await store.compact(NS, before=10)
    # Floor 9: c keeps set@8, d's tombstone@9 and set@7 go, a keeps set@5.
    assert await store.compact(NS, before=9) == 3  # c@6, d@7, d@9
    assert (await store.info(NS)).oldest_revision == 9
    assert await snapshot(store, NS, 9) == {"a": b"5", "c": b"8"}
    # Writes continue above the floor and a rollback to the floor works.
    await store.set(NS, "a", b"10")
    result = await store.rollback(NS, 9)
    assert result.changes == [Change("a", "set", b"5")]
    assert await snapshot(store, NS) == {"a": b"5", "c": b"8"}


# -- list ------------------------------------------------------------------------------------------


async def test_list_prefix_after_limit(store: Store) -> None:
    # Code point order: "z" (U+007A) sorts before "é" (U+00E9).
    keys = ["a", "a/1", "a/2", "a/3", "ab", "b", "b/1", "z", "é", "éa"]
    for key in reversed(keys):
        await store.set(NS, key, b"1")
    await store.set(NS, "a/gone", b"x")
    await store.delete(NS, "a/gone")
    assert [i.key for i in await store.list(NS)] == keys
    assert [i.key for i in await store.list(NS, prefix="a/")] == ["a/1", "a/2", "a/3"]
    assert [i.key for i in await store.list(NS, prefix="a")] == ["a", "a/1", "a/2", "a/3", "ab"]
    assert [i.key for i in await store.list(NS, prefix="é")] == ["é", "éa"]
    assert [i.key for i in await store.list(NS, prefix="a/", after="a/1")] == ["a/2", "a/3"]
    assert [i.key for i in await store.list(NS, prefix="b", after="a")] == ["b", "b/1"]
    assert await store.list(NS, prefix="a/", after="a/3") == []
    assert await store.list(NS, prefix="q") == []
    assert [i.key for i in await store.list(NS, after="b/1")] == ["z", "é", "éa"]
    assert [i.key for i in await store.list(NS, limit=2)] == ["a", "a/1"]
    # Paging with after walks every key exactly once.
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await store.list(NS, after=after, limit=3)
        if not page:
            break
        seen += [i.key for i in page]
        after = page[-1].key
    assert seen == keys
    listed = await store.list(NS, prefix="a/2")
    assert listed == [await store.get(NS, "a/2")]


async def test_list_prefix_any_unicode(store: Store) -> None:
    # Code point order across the planes; prefixes ending in the last code point, in the one
    # before the surrogates, and holding astral characters.
    top, before_surrogates = "\U0010ffff", "\ud7ff"
    keys = sorted(
        [
            "user:1",
            "user:2",
            "user;",
            "a" + before_surrogates,
            "a" + before_surrogates + "x",
            "a\ue000",
            "🙂",
            "🙂a",
            "🙂" + top,
            "🙃",
            top,
            top + "a",
            top + top,
            "x" + top,
            "x" + top + "y",
            "y",
        ]
    )
    for key in reversed(keys):
        await store.set(NS, key, b"1")

    async def listed(prefix: str, after: str | None = None, as_of: int | None = None) -> list[str]:
        return [i.key for i in await store.list(NS, prefix=prefix, after=after, as_of=as_of)]

    assert [i.key for i in await store.list(NS)] == keys
    assert await listed("user:") == ["user:1", "user:2"]
    low = "a" + before_surrogates
    assert await listed(low) == [low, low + "x"]
    assert await listed("🙂") == ["🙂", "🙂a", "🙂" + top]
    assert await listed(top) == [top, top + "a", top + top]
    assert await listed(top + top) == [top + top]
    assert await listed("x" + top) == ["x" + top, "x" + top + "y"]
    assert await listed("🙂", after="🙂a") == ["🙂" + top]
    assert await listed(top, after=top) == [top + "a", top + top]
    head = await store.head(NS)
    assert await listed(top, as_of=head) == [top, top + "a", top + top]
    assert await listed("🙂", as_of=head, after="🙂") == ["🙂a", "🙂" + top]


async def test_list_as_of(store: Store) -> None:
    for i in range(5):
        await store.set(NS, f"k{i}", b"1")  # revisions 1..5
    await store.delete(NS, "k1")  # 6
    await store.set(NS, "k0", b"2")  # 7
    await store.set(NS, "j", b"3")  # 8
    at5 = await store.list(NS, as_of=5)
    assert [(i.key, i.value, i.version) for i in at5] == [(f"k{i}", b"1", i + 1) for i in range(5)]
    at7 = await store.list(NS, as_of=7, prefix="k", after="k0", limit=2)
    assert [i.key for i in at7] == ["k2", "k3"]
    at7_all = await store.list(NS, as_of=7)
    k0 = at7_all[0]
    assert (k0.key, k0.value, k0.version, k0.created_revision) == ("k0", b"2", 7, 1)
    assert await store.list(NS, as_of=0) == []
    assert await store.list(NS, as_of=8) == await store.list(NS)


# -- rollback --------------------------------------------------------------------------------------


async def test_rollback_whole_namespace(store: Store) -> None:
    await store.set(NS, "keep", b"1")  # 1
    await store.set(NS, "changed", b"1")  # 2
    await store.set(NS, "deleted", b"1")  # 3
    await store.set(NS, "changed", b"2")  # 4
    await store.delete(NS, "deleted")  # 5
    await store.set(NS, "new", b"1")  # 6
    await store.set(NS, "same", b"1")  # 7
    await store.delete(NS, "same")  # 8
    result = await store.rollback(NS, 3)
    assert result.revision == 9
    assert result.changes == [
        Change("changed", "set", b"1"),
        Change("deleted", "set", b"1"),
        Change("new", "delete", None),
    ]
    assert await snapshot(store, NS) == {"keep": b"1", "changed": b"1", "deleted": b"1"}
    restored = await store.get(NS, "deleted")
    assert restored is not None and restored.created_revision == 9
    changed = await store.get(NS, "changed")
    assert changed is not None and (changed.version, changed.created_revision) == (9, 2)
    history = await store.history(NS, "new")
    assert [(e.revision, e.op) for e in history] == [(9, "delete"), (6, "set")]
    assert [e.revision for e in await store.history(NS, "keep")] == [1]
    assert [e.revision for e in await store.history(NS, "same")] == [8, 7]
    info = await store.info(NS)
    assert (info.keys, info.bytes) == (3, (4 + 1) + (7 + 1) + (7 + 1))


async def test_rollback_one_key(store: Store) -> None:
    await store.set(NS, "a", b"1")
    await store.set(NS, "b", b"1")
    await store.set(NS, "a", b"2")
    await store.set(NS, "b", b"2")
    result = await store.rollback(NS, 2, key="a")
    assert (result.revision, result.changes) == (5, [Change("a", "set", b"1")])
    assert await snapshot(store, NS) == {"a": b"1", "b": b"2"}
    gone = await store.rollback(NS, 0, key="b")
    assert (gone.revision, gone.changes) == (6, [Change("b", "delete", None)])
    nothing = await store.rollback(NS, 0, key="never")
    assert (nothing.revision, nothing.changes) == (6, [])
    assert await store.head(NS) == 6


async def test_rollback_dry_run_writes_nothing(store: Store) -> None:
    await store.set(NS, "a", b"1")
    await store.set(NS, "a", b"2")
    await store.set(NS, "b", b"1")
    result = await store.rollback(NS, 1, dry_run=True)
    assert result.dry_run is True
    assert result.revision == 3
    assert result.changes == [Change("a", "set", b"1"), Change("b", "delete", None)]
    assert await store.head(NS) == 3
    assert await snapshot(store, NS) == {"a": b"2", "b": b"1"}
    assert len(await store.history(NS, "a")) == 2
    noop = await store.rollback(NS, 3, dry_run=True)
    assert (noop.revision, noop.changes, noop.dry_run) == (3, [], True)


async def test_rollback_of_a_rollback(store: Store) -> None:
    await store.set(NS, "a", b"1")
    await store.set(NS, "a", b"2")
    await store.set(NS, "b", b"3")
    first = await store.rollback(NS, 1)
    assert first.revision == 4
    assert await snapshot(store, NS) == {"a": b"1"}
    second = await store.rollback(NS, 3)
    assert second.revision == 5
    assert second.changes == [Change("a", "set", b"2"), Change("b", "set", b"3")]
    assert await snapshot(store, NS) == {"a": b"2", "b": b"3"}
    assert await snapshot(store, NS, 4) == {"a": b"1"}


async def test_rollback_by_timestamp(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    clock.advance(1)
    w = await store.set(NS, "a", b"1")
    clock.advance(60)
    await store.set(NS, "a", b"2")
    result = await store.rollback(NS, dt(w.at + 30 * MICROS))
    assert result.changes == [Change("a", "set", b"1")]
    assert result.revision == 3


async def test_rollback_of_an_empty_namespace(store: Store) -> None:
    result = await store.rollback("empty", 0)
    assert (result.revision, result.changes) == (0, [])
    assert (await store.info("empty")).revision == 0


# -- limits ----------------------------------------------------------------------------------------


async def test_writes_per_day_quota(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    limits = Limits(writes_per_day=4, namespace_max_bytes=0, value_max_bytes=0)
    async with make_store(limits=limits, clock=clock) as store:
        await store.set(NS, "a", b"1")
        await store.set(NS, "b", b"1")
        with pytest.raises(Conflict):
            await store.set(NS, "a", b"2", expected_version=0)  # refused: does not count
        with pytest.raises(NotFound):
            await store.delete(NS, "zzz")  # refused: does not count
        assert (await store.rollback(NS, 2)).changes == []  # no-op: does not count
        assert (await store.rollback(NS, 0, dry_run=True)).changes  # dry run: does not count
        await store.delete(NS, "b")
        await store.rollback(NS, 2, key="b")  # a rollback is one write
        assert await store.head(NS) == 4
        clock.advance(0.5)
        with pytest.raises(QuotaExceeded) as exc:
            await store.set(NS, "c", b"1")
        # 23:00:00.5 -> midnight is 3599.5 s away, rounded up.
        assert exc.value.retry_after == 3600
        assert exc.value.body()["retry_after"] == 3600
        assert exc.value.code == "write_quota_exceeded"
        with pytest.raises(QuotaExceeded):
            await store.delete(NS, "a")
        with pytest.raises(QuotaExceeded):
            await store.rollback(NS, 0)
        assert await store.head(NS) == 4
        # Another namespace has its own quota.
        await store.set("other", "a", b"1")
        clock.advance(3599.5)  # exactly midnight UTC: a new day
        await store.set(NS, "c", b"1")
        assert await store.head(NS) == 5


async def test_quota_retry_after_is_at_least_one_second(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC))
    limits = Limits(writes_per_day=1, namespace_max_bytes=0, value_max_bytes=0)
    async with make_store(limits=limits, clock=clock) as store:
        await store.set(NS, "a", b"1")
        with pytest.raises(QuotaExceeded) as exc:
            await store.set(NS, "a", b"2")
        assert exc.value.retry_after == 1


async def test_namespace_max_bytes(make_store: OpenStore) -> None:
    limits = Limits(writes_per_day=0, namespace_max_bytes=10, value_max_bytes=0)
    async with make_store(limits=limits) as store:
        await store.set(NS, "a", b"1234")  # 5 bytes
        await store.set(NS, "b", b"123")  # 9 bytes
        with pytest.raises(PayloadTooLarge) as exc:
            await store.set(NS, "c", b"12")  # would be 12
        assert exc.value.code == "namespace_full"
        assert exc.value.extra["limit"] == 10
        await store.set(NS, "b", b"1234")  # exactly 10: allowed
        await store.set(NS, "a", b"1")  # shrinking: allowed
        await store.set("other", "k", b"123456789")  # namespaces are separate
        assert (await store.info(NS)).bytes == 7
        await store.set(NS, "c", b"12")  # 10 again
        with pytest.raises(PayloadTooLarge):
            await store.rollback(NS, 3, key="a")  # would restore a=1234: 13 bytes
        await store.delete(NS, "b")  # deletes are always allowed
        assert (await store.info(NS)).bytes == 5
        assert await store.head(NS) == 6


async def test_value_max_bytes(make_store: OpenStore) -> None:
    async with make_store(limits=Limits(0, 0, 4)) as store:
        await store.set(NS, "k", b"1234")
        with pytest.raises(PayloadTooLarge) as exc:
            await store.set(NS, "k", b"12345")
        assert exc.value.code == "value_too_large"
        assert exc.value.extra["limit"] == 4
        assert await store.head(NS) == 1


async def test_default_limits_apply(store: Store) -> None:
    with pytest.raises(PayloadTooLarge):
        await store.set(NS, "k", b"1" * (store.limits.value_max_bytes + 1))


# -- stats and time --------------------------------------------------------------------------------


async def test_stats(store: Store) -> None:
    assert await store.stats() == Stats(0, 0, 0)
    await store.set("one", "a", b"12")
    await store.set("one", "bb", b"1")
    await store.set("two", "c", b"1")
    await store.set("three", "d", b"1")
    await store.delete("three", "d")
    stats = await store.stats()
    assert (stats.total_entries, stats.total_namespaces, stats.total_bytes) == (3, 2, 3 + 3 + 2)


async def test_timestamps_never_go_backwards(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    first = await store.set(NS, "k", b"1")
    clock.advance(-3600)
    second = await store.set(NS, "k", b"2")
    clock.advance(-1)
    third = await store.delete(NS, "k")
    assert first.at == second.at == third.at
    clock.advance(7200)
    fourth = await store.set(NS, "k", b"3")
    assert fourth.at == clock.now
    ats = [e.at for e in await store.history(NS, "k")]
    assert ats == sorted(ats, reverse=True)
    # Another namespace follows the clock as it is.
    clock.advance(-7200)
    other = await store.set("other", "k", b"1")
    assert other.at == clock.now


# -- concurrency -----------------------------------------------------------------------------------


async def test_concurrent_sets_get_gap_free_revisions(store: Store) -> None:
    results = await asyncio.gather(*(store.set(NS, f"k{i}", b"1") for i in range(64)))
    assert sorted(r.revision for r in results) == list(range(1, 65))
    assert (await store.info(NS)).keys == 64


async def test_concurrent_cas_increments(store: Store) -> None:
    await store.set(NS, "counter", b"0")

    async def increment() -> int:
        attempts = 0
        while True:
            attempts += 1
            item = await store.get(NS, "counter")
            assert item is not None
            try:
                await store.set(
                    NS, "counter", str(int(item.value) + 1).encode(), expected_version=item.version
                )
                return attempts
            except Conflict:
                await asyncio.sleep(0)

    attempts = await asyncio.gather(*(increment() for _ in range(64)))
    item = await store.get(NS, "counter")
    assert item is not None and item.value == b"64"
    assert await store.head(NS) == 65
    assert len(await store.history(NS, "counter", limit=1000)) == 65
    assert min(attempts) >= 1


async def test_a_refused_op_does_not_fail_its_neighbours(store: Store) -> None:
    await store.set(NS, "taken", b"1")
    ops = [
        store.set(NS, "a", b"1"),
        store.set(NS, "taken", b"2", expected_version=0),
        store.set(NS, "b", b"1"),
        store.delete(NS, "absent"),
        store.set(NS, "c", b"1", expected_version=0),
        store.rollback(NS, 99),
        store.set(NS, "d", b"1"),
    ]
    results = await asyncio.gather(*ops, return_exceptions=True)
    assert isinstance(results[1], Conflict)
    assert isinstance(results[3], NotFound)
    assert isinstance(results[5], FutureRevision)
    good = [r for i, r in enumerate(results) if i not in (1, 3, 5)]
    assert all(isinstance(r, WriteResult) for r in good)
    assert sorted(r.revision for r in good if isinstance(r, WriteResult)) == [2, 3, 4, 5]
    assert await snapshot(store, NS) == {"taken": b"1", "a": b"1", "b": b"1", "c": b"1", "d": b"1"}
    assert await store.head(NS) == 5


async def test_limits_hold_exactly_under_concurrency(make_store: OpenStore) -> None:
    async with make_store(limits=Limits(writes_per_day=10, namespace_max_bytes=0)) as store:
        results = await asyncio.gather(
            *(store.set(NS, f"k{i}", b"1") for i in range(30)), return_exceptions=True
        )
        assert sum(isinstance(r, WriteResult) for r in results) == 10
        assert sum(isinstance(r, QuotaExceeded) for r in results) == 20
        assert await store.head(NS) == 10
    async with make_store(limits=Limits(writes_per_day=0, namespace_max_bytes=50)) as store:
        results = await asyncio.gather(
            *(store.set(NS, f"k{i:02d}", b"12") for i in range(30)), return_exceptions=True
        )
        # Each entry is 3 + 2 = 5 bytes: exactly ten fit.
        assert sum(isinstance(r, WriteResult) for r in results) == 10
        assert all(
            isinstance(r, PayloadTooLarge) for r in results if not isinstance(r, WriteResult)
        )
        assert (await store.info(NS)).bytes == 50
