"""Agent identities and channels (``botwire_server.channels``) on every backend, through the
service verbs: gap-free entry ids, oldest-first paging that never skips an entry (ties of one
microsecond included), the 0.2.1 types and size limit, quotas, grants and token binding."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
import pytest
from backends import FakeClock, OpenStore

from botwire_server import channels as ch
from botwire_server.auth import OPEN, Grant, Principal
from botwire_server.channels import Channels
from botwire_server.errors import (
    Exists,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
)
from botwire_server.service import Service
from botwire_server.settings import Limits, Settings
from botwire_server.storage.base import Store


def token(id: str, *grants: tuple[str, str]) -> Principal:
    return Principal(id, id, [Grant(p, a) for p, a in grants])  # type: ignore[arg-type]


def data(value: object) -> bytes:
    return msgspec.json.encode(value)


async def ids(c: Channels, name: str, **kw: object) -> list[int]:
    entries, _ = await c.messages(OPEN, name, **kw)  # type: ignore[arg-type]
    return [e.id for e in entries]


async def test_identities_and_a_channel(store: Store) -> None:
    c = Channels(store, tokens=False)
    alice = await c.register(OPEN, "alice", description="trader", capabilities=["trading"])
    await c.register(OPEN, "bob", capabilities=["news"])
    assert (await c.lookup(OPEN, "alice")).description == "trader"
    with pytest.raises(NotFound) as missing:
        await c.lookup(OPEN, "carol")
    assert missing.value.code == "agent_not_found"
    assert [a.name for a in await c.search(OPEN)] == ["alice", "bob"]
    assert [a.name for a in await c.search(OPEN, capability="TRADING")] == ["alice"]
    assert [a.name for a in await c.search(OPEN, query="trad")] == ["alice"]
    again = await c.register(OPEN, "alice", description="quant")
    assert again.registered_at == alice.registered_at and again.description == "quant"

    await c.create(OPEN, "trading", "alice")
    with pytest.raises(Exists):
        await c.create(OPEN, "trading", "bob")
    await c.join(OPEN, "trading", "bob")
    await c.join(OPEN, "trading", "bob")  # again: no change
    assert [m.agent_id for m in await c.members(OPEN, "trading")] == ["alice", "bob"]
    with pytest.raises(NotFound) as no_channel:
        await c.post(OPEN, "nope", "alice", "signal", data(1))
    assert no_channel.value.code == "channel_not_found"
    with pytest.raises(InvalidInput) as unregistered:
        await c.post(OPEN, "trading", "carol", "signal", data(1))
    assert unregistered.value.code == "agent_not_registered"

    posted = [
        await c.post(OPEN, "trading", agent, kind, data({"i": i}))
        for i, (agent, kind) in enumerate(
            [("alice", "signal"), ("bob", "alert"), ("alice", "signal"), ("bob", "data")]
        )
    ]
    assert [e.id for e in posted] == [1, 2, 3, 4]  # gap-free, the channel namespace's revisions
    assert await store.head(ch.channel_namespace("trading")) == 4
    entries, head = await c.messages(OPEN, "trading", limit=2)
    assert [e.id for e in entries] == [1, 2] and head == 4  # the OLDEST two
    assert msgspec.json.decode(entries[1].data) == {"i": 1}
    assert await ids(c, "trading", since=entries[1].timestamp) == [3, 4]
    assert await ids(c, "trading", after=3) == [4]
    assert await ids(c, "trading", kind="signal") == [1, 3]
    assert await ids(c, "trading", kind="signal", after=1) == [3]
    assert [(r.name, n) for r, n in await c.list_channels(OPEN)] == [("trading", 4)]

    # The channel's change feed is the channel.
    feed = await store.changes(ch.channel_namespace("trading"))
    assert [(e.revision, e.key) for e in feed.events] == [
        (1, "signal"),
        (2, "alert"),
        (3, "signal"),
        (4, "data"),
    ]

    with pytest.raises(InvalidInput) as bad_type:
        await c.post(OPEN, "trading", "alice", "gossip", data(1))
    assert bad_type.value.code == "invalid_type"
    exactly = data("x" * (ch.ENTRY_MAX_BYTES - 2))
    assert (await c.post(OPEN, "trading", "alice", "data", exactly)).id == 5
    with pytest.raises(PayloadTooLarge) as too_big:
        await c.post(OPEN, "trading", "alice", "data", data("x" * (ch.ENTRY_MAX_BYTES - 1)))
    assert too_big.value.code == "entry_too_large"
    with pytest.raises(InvalidInput):
        await c.create(OPEN, "no spaces", "alice")


async def test_paging_never_ends_inside_a_tie(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 11, 1, tzinfo=UTC))
    async with make_store(clock=clock) as store:
        c = Channels(store, tokens=False)
        await c.register(OPEN, "a")
        await c.create(OPEN, "t", "a")
        for i in range(7):
            if i in (2, 5):
                clock.advance(0.001)  # entries 1-2, 3-5, 6-7 share a timestamp each
            await c.post(OPEN, "t", "a", "data", data(i))
        first, _ = await c.messages(OPEN, "t", limit=1)
        assert [e.id for e in first] == [1, 2]  # the whole tie
        second, _ = await c.messages(OPEN, "t", since=first[-1].timestamp, limit=1)
        assert [e.id for e in second] == [3, 4, 5]
        third, _ = await c.messages(OPEN, "t", since=second[-1].timestamp, limit=5)
        assert [e.id for e in third] == [6, 7]
        assert await ids(c, "t", since=third[-1].timestamp) == []


async def test_posts_count_against_the_channel_quota(make_store: OpenStore) -> None:
    # (The directory namespace counts too: each create writes the channel and its creator.)
    async with make_store(limits=Limits(writes_per_day=4)) as store:
        c = Channels(store, tokens=False)
        await c.register(OPEN, "a")
        await c.create(OPEN, "q", "a")
        for i in range(4):
            await c.post(OPEN, "q", "a", "status", data(i))
        with pytest.raises(QuotaExceeded):
            await c.post(OPEN, "q", "a", "status", data(4))
        assert await ids(c, "q") == [1, 2, 3, 4]
        await c.create(OPEN, "other", "a")  # another channel, its own namespace and quota
        assert (await c.post(OPEN, "other", "a", "status", data(0))).id == 1


async def test_grants_and_token_binding(store: Store) -> None:
    c = Channels(store, tokens=True)
    one = token("one", ("botwire:agents", "write"), ("botwire:channel:*", "write"))
    two = token("two", ("botwire:agents", "write"), ("botwire:channel:t", "write"))
    reader = token("reader", ("botwire:agents", "read"), ("botwire:channel:t", "read"))
    admin = token("admin", ("*", "admin"))
    await c.register(one, "alice")
    await c.register(two, "bob")
    with pytest.raises(Forbidden):
        await c.register(two, "alice")  # bound to token one
    with pytest.raises(Forbidden):
        await c.register(reader, "carol")  # registering needs write
    await c.register(admin, "alice", description="fixed by the operator")
    assert (await c.lookup(reader, "alice")).description == "fixed by the operator"

    await c.create(one, "t", "alice")
    with pytest.raises(Forbidden):
        await c.create(two, "u", "bob")  # two may write channel t only
    with pytest.raises(Forbidden):
        await c.join(two, "t", "alice")  # two may not act as alice
    await c.join(two, "t", "bob")
    assert (await c.post(two, "t", "bob", "signal", data(1))).id == 1
    with pytest.raises(Forbidden):
        await c.post(reader, "t", "bob", "signal", data(1))
    assert await ids(c, "t") == [1]
    assert [e.id for e in (await c.messages(reader, "t"))[0]] == [1]
    with pytest.raises(Forbidden):
        await c.messages(token("none", ("x", "read")), "t")
    await c.create(one, "secret", "alice")
    assert [r.name for r, _ in await c.list_channels(reader)] == ["t"]


async def test_memory_verbs_refuse_reserved_namespaces(store: Store) -> None:
    service = Service(store, Settings())
    with pytest.raises(InvalidInput) as refused:
        await service.set(OPEN, "botwire:channel:t", "k", b"1")
    assert refused.value.code == "reserved_namespace"
    with pytest.raises(InvalidInput):
        await service.rollback(OPEN, "botwire:agents", 0)
    assert await store.head("botwire:channel:t") == 0
    await service.set(OPEN, "botwire-not-reserved", "k", b"1")  # only the "botwire:" prefix


async def test_concurrent_posts_get_distinct_timestamps(store: Store) -> None:
    """0.2.1's polling watch drops an entry whose timestamp equals the previous one's; posts
    racing into one channel (a group commit on PostgreSQL) must still get distinct times."""
    c = Channels(store, tokens=False)
    await c.register(OPEN, "a")
    await c.create(OPEN, "race", "a")
    posted = await asyncio.gather(*(c.post(OPEN, "race", "a", "data", data(i)) for i in range(40)))
    by_id = sorted(posted, key=lambda e: e.id)
    assert [e.id for e in by_id] == list(range(1, 41))
    stamps = [e.timestamp for e in by_id]
    assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False)), stamps
    assert c._posting == {}  # nothing left behind once no post runs
