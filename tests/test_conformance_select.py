"""The filtered listing (``Store.select``) on every backend: the filter rules of
``botwire_server.filters``, numbers compared as numbers, nested fields, offset and limit, one
revision, expired keys left out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from backends import FakeClock

from botwire_server.errors import InvalidInput
from botwire_server.storage.base import MICROS, Store, Write

NS = "ns"

DOCS: dict[str, Any] = {
    "a": {"kind": "note", "score": 1, "user": {"name": "ada", "age": 36}, "tags": ["x", "y"]},
    "b": {"kind": "note", "score": 2.5, "user": {"name": "bob", "age": 7}},
    "c": {"kind": "task", "score": 10, "done": True},
    "d": {"kind": "task", "score": "10", "done": False},
    "e": {"kind": "note", "score": 1.0, "at": "2026-11-02T10:00:00Z"},
    "f": [1, 2, 3],
    "g": None,
}


async def load(store: Store) -> int:
    writes = [Write(op="set", key=k, value=json.dumps(v).encode()) for k, v in sorted(DOCS.items())]
    return (await store.commit(NS, writes)).revision


async def keys(store: Store, where: dict[str, Any] | None, **kw: Any) -> list[str]:
    return [i.key for i in (await store.select(NS, where=where, **kw)).items]


# (filter, the keys it selects); one test loads the documents once and runs every case.
CASES: list[tuple[dict[str, Any] | None, list[str]]] = [
    (None, ["a", "b", "c", "d", "e", "f", "g"]),
    ({"kind": "note"}, ["a", "b", "e"]),
    ({"kind": {"$eq": "task"}}, ["c", "d"]),
    ({"kind": {"$ne": "note"}}, ["c", "d"]),  # f and g are no objects: they match nothing
    ({"score": 1}, ["a", "e"]),  # 1 equals 1.0
    ({"score": {"$gt": 1}}, ["b", "c"]),  # "10" is a string: no match against a number
    ({"score": {"$gte": 1, "$lt": 10}}, ["a", "b", "e"]),
    ({"score": {"$lte": 2.5}}, ["a", "b", "e"]),
    ({"score": {"$gt": "1"}}, ["d"]),  # strings compare as strings
    ({"user": {"name": "ada"}}, ["a"]),  # nested path
    ({"user": {"age": {"$gte": 18}}}, ["a"]),
    ({"tags": ["x", "y"]}, ["a"]),
    ({"tags": ["x"]}, []),
    ({"done": True}, ["c"]),
    ({"done": 1}, []),  # true is not 1
    ({"missing": None}, ["a", "b", "c", "d", "e"]),  # an absent field counts as null
    ({"missing": {"$ne": 3}}, ["a", "b", "c", "d", "e"]),
    ({"at": {"$gte": "2026-11-01"}}, ["e"]),
    ({"kind": "note", "score": {"$gt": 1}}, ["b"]),
]


async def test_filter_rules(store: Store) -> None:
    await load(store)
    for where, expected in CASES:
        assert await keys(store, where, limit=100) == expected, where


async def test_offset_limit_and_more(store: Store) -> None:
    revision = await load(store)
    page = await store.select(NS, where={"kind": {"$ne": "x"}}, offset=1, limit=2)
    assert [i.key for i in page.items] == ["b", "c"]
    assert (page.skipped, page.more, page.revision) == (1, True, revision)
    page = await store.select(NS, where={"kind": "note"}, offset=2, limit=2)
    assert ([i.key for i in page.items], page.skipped, page.more) == (["e"], 2, False)
    page = await store.select(NS, where={"kind": "note"}, offset=5, limit=2)
    assert (page.items, page.skipped, page.more) == ([], 3, False)
    assert await keys(store, {"kind": "note"}, prefix="b") == ["b"]


async def test_a_past_revision_and_items_carry_their_metadata(store: Store) -> None:
    revision = await load(store)
    await store.set(NS, "a", b'{"kind":"task"}')
    assert await keys(store, {"kind": "note"}) == ["b", "e"]
    past = await store.select(NS, where={"kind": "note"}, as_of=revision)
    assert [(i.key, i.version, i.created_revision) for i in past.items] == [
        ("a", revision, revision),
        ("b", revision, revision),
        ("e", revision, revision),
    ]
    assert json.loads(past.items[0].value) == DOCS["a"]


async def test_many_pages_of_the_store(store: Store) -> None:
    writes = [
        Write(op="set", key=f"k{i:04d}", value=json.dumps({"n": i}).encode()) for i in range(1000)
    ]
    await store.commit(NS, writes)
    await store.commit(NS, [Write(op="set", key="k9999", value=b'{"n": 1500}')])
    assert await keys(store, {"n": {"$gte": 998}}, limit=10) == ["k0998", "k0999", "k9999"]
    page = await store.select(NS, where={"n": {"$gte": 500}}, offset=499, limit=3)
    assert ([i.key for i in page.items], page.skipped) == (["k0999", "k9999"], 499)


async def test_expired_keys_are_left_out(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    await store.commit(NS, [Write(op="set", key="t", value=b'{"a":1}', ttl=10 * MICROS)])
    await store.set(NS, "u", b'{"a":1}')
    assert await keys(store, {"a": 1}) == ["t", "u"]
    clock.advance(11)
    assert await keys(store, {"a": 1}) == ["u"]


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ({"a": {"$regex": "x"}}, "unknown operator '$regex'"),
        ({"$gt": 1}, "the top level names fields"),
        ({"a": {"$gt": None}}, "$gt needs a number or a string"),
    ],
)
async def test_a_bad_filter_is_refused(store: Store, where: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.select(NS, where=where)
    assert words in str(caught.value)
    assert caught.value.code == "invalid_body"
