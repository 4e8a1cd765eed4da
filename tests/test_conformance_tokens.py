"""The token verbs and ``list_namespaces`` of the storage contract, on every backend."""

from __future__ import annotations

from backends import FakeClock

from botwire_server.errors import InvalidInput
from botwire_server.storage.base import MICROS, Store, TokenRecord


def record(token_id: str, at: int, **fields: object) -> TokenRecord:
    return TokenRecord(
        id=token_id,
        name=f"name {token_id}",
        secret_hash="ab" * 32,
        grants='[{"namespaces":"team-a/*","access":"write"}]',
        created_at=at,
        **fields,  # type: ignore[arg-type]
    )


async def test_a_token_round_trips(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    assert await store.get_token("t1") is None
    t1 = record("t1", clock.now, expires_at=clock.now + 60 * MICROS)
    await store.create_token(t1)
    assert await store.get_token("t1") == t1
    try:
        await store.create_token(record("t1", clock.now))
    except InvalidInput as exc:
        assert "t1" in exc.message
    else:
        raise AssertionError("a second token with one id was stored")
    assert await store.get_token("t1") == t1


async def test_list_is_oldest_first_and_revoke_keeps_the_first_time(
    clocked: tuple[Store, FakeClock],
) -> None:
    store, clock = clocked
    await store.create_token(record("b", clock.now))
    clock.advance(1)
    await store.create_token(record("a", clock.now))
    assert [t.id for t in await store.list_tokens()] == ["b", "a"]
    revoked = await store.revoke_token("b", at=clock.now)
    assert revoked is not None and revoked.revoked_at == clock.now
    first = clock.now
    clock.advance(5)
    again = await store.revoke_token("b", at=clock.now)
    assert again is not None and again.revoked_at == first
    assert await store.revoke_token("nope", at=clock.now) is None
    listed = {t.id: t for t in await store.list_tokens()}
    assert listed["b"].revoked_at == first and listed["a"].revoked_at is None


async def test_touch_records_the_last_use(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    await store.create_token(record("t", clock.now))
    clock.advance(90)
    await store.touch_token("t", at=clock.now)
    got = await store.get_token("t")
    assert got is not None and got.last_used_at == clock.now
    await store.touch_token("absent", at=clock.now)  # no error, nothing stored
    assert await store.get_token("absent") is None


async def test_list_namespaces_pages_in_name_order(store: Store) -> None:
    for ns in ["team-b/x", "team-a/y", "team-a/x", "solo", "team-a%"]:
        await store.set(ns, "k", b'"v"')
    await store.set("team-a/x", "k2", b"12")
    names = [i.namespace for i in await store.list_namespaces()]
    assert names == ["solo", "team-a%", "team-a/x", "team-a/y", "team-b/x"]
    page = await store.list_namespaces(prefix="team-a/", limit=1)
    assert [(i.namespace, i.revision, i.keys) for i in page] == [("team-a/x", 2, 2)]
    assert page[0].bytes == len("k") + 3 + len("k2") + 2 and page[0].updated_at
    rest = await store.list_namespaces(prefix="team-a/", after="team-a/x")
    assert [i.namespace for i in rest] == ["team-a/y"]
    # A prefix is literal: % and _ are no wildcards.
    assert [i.namespace for i in await store.list_namespaces(prefix="team-a%")] == ["team-a%"]
    assert await store.list_namespaces(prefix="zzz") == []
