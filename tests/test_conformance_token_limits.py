"""Per-token limits (issue 10, item 6), run for every backend: a token's daily writes and the
live bytes of the values it last wrote are counted across all its namespaces, so spreading
writes over new namespaces does not escape them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from backends import FakeClock, OpenStore

from botwire_server.errors import Conflict, NotFound, PayloadTooLarge, QuotaExceeded
from botwire_server.settings import Limits
from botwire_server.storage.base import MICROS, Provenance, Recorded, Write

A = Provenance(actor="a", actor_id="tok_a")
B = Provenance(actor="b", actor_id="tok_b")


def limits(writes: int = 0, max_bytes: int = 0) -> Limits:
    return Limits(
        writes_per_day=0,
        namespace_max_bytes=0,
        value_max_bytes=0,
        token_writes_per_day=writes,
        token_max_bytes=max_bytes,
    )


async def test_a_token_at_its_daily_limit_is_refused_in_any_namespace(
    make_store: OpenStore,
) -> None:
    clock = FakeClock(datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    async with make_store(limits=limits(writes=4), clock=clock) as store:
        await store.set("n1", "a", b"1", meta=A)
        await store.set("n2", "a", b"1", meta=A)
        with pytest.raises(Conflict):  # refused: counts nothing
            await store.set("n1", "a", b"2", expected_version=0, meta=A)
        with pytest.raises(NotFound):  # refused: counts nothing
            await store.delete("n3", "zzz", meta=A)
        await store.commit("n3", [Write(op="check", key="x", expected_version=0)], meta=A)
        await store.delete("n2", "a", meta=A)
        await store.rollback("n2", 1, meta=A)  # a rollback counts one, as for the namespace
        clock.advance(0.5)
        with pytest.raises(QuotaExceeded) as exc:
            await store.set("never-written", "a", b"1", meta=A)
        assert exc.value.code == "token_quota_exceeded"
        assert exc.value.retry_after == 3600  # to midnight UTC, rounded up
        assert exc.value.message == (
            "This token has used its 4 writes for today (UTC), across all its namespaces; "
            "retry after 3600 seconds."
        )
        assert await store.head("never-written") == 0
        # Another token, and writes without a token, are not affected.
        await store.set("never-written", "a", b"1", meta=B)
        await store.set("never-written", "b", b"1")
        assert await store.head("never-written") == 2
        clock.advance(3599.5)  # midnight UTC: a new day
        await store.set("never-written", "c", b"1", meta=A)
        assert await store.head("never-written") == 3


async def test_expiries_do_not_count_against_a_token(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
    async with make_store(limits=limits(writes=2), clock=clock) as store:
        await store.set("n", "a", b"1", ttl=MICROS, meta=A)
        clock.advance(2)
        done = await store.commit("n", [Write(op="expire", key="a")], meta=A)
        assert done.written
        await store.set("m", "a", b"1", meta=A)  # the second write of the day
        with pytest.raises(QuotaExceeded):
            await store.set("m", "b", b"1", meta=A)


async def test_bytes_move_between_tokens_and_are_freed(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
    async with make_store(limits=limits(max_bytes=10), clock=clock) as store:
        await store.set("n1", "k", b"1234", meta=A)  # A: 5 bytes
        await store.set("n2", "k", b"1234", meta=A)  # A: 10 bytes, across namespaces
        with pytest.raises(PayloadTooLarge) as exc:
            await store.set("n3", "k", b"1", meta=A)  # would be 12
        assert exc.value.code == "token_storage_full"
        assert exc.value.extra["limit"] == 10
        assert exc.value.message == (
            "This token's values would hold 12 bytes across its namespaces, over its limit "
            "of 10. Delete keys it wrote or store smaller values."
        )
        assert await store.head("n3") == 0
        await store.set("n3", "k", b"1", meta=B)  # another token has its own bytes
        await store.set("n3", "j", b"1")  # no token: not counted
        # B overwrites A's value: the bytes move to B, A has room again.
        await store.set("n1", "k", b"12", meta=B)  # B: 2 + 3 = 5
        await store.set("n4", "k", b"1234", meta=A)  # A: 10 again
        with pytest.raises(PayloadTooLarge):
            await store.set("n5", "kk", b"12345", meta=B)  # B would be 12
        # A delete by anyone frees the owner's bytes.
        await store.delete("n2", "k", meta=B)  # A: 5
        await store.set("n6", "k", b"1234", meta=A)  # A: 10
        with pytest.raises(PayloadTooLarge):
            await store.set("n7", "k", b"", meta=A)
        # Shrinking is always allowed, and an overwrite by the owner counts the new size.
        await store.set("n6", "k", b"1", meta=A)  # A: 7
        await store.set("n7", "k", b"12", meta=A)  # A: 10
        # An expiry frees the owner's bytes.
        await store.set("n8", "k", b"1", ttl=MICROS, meta=B)  # B: 5 + 2 = 7
        clock.advance(2)
        done = await store.commit("n8", [Write(op="expire", key="k")])
        assert done.written
        await store.set("n9", "kk", b"123", meta=B)  # B: 5 + 5 = 10
        with pytest.raises(PayloadTooLarge):
            await store.set("n9", "k", b"", meta=B)


async def test_a_batch_counts_its_writes_and_a_refused_one_nothing(make_store: OpenStore) -> None:
    async with make_store(limits=limits(writes=3)) as store:
        two = [Write(op="set", key="a", value=b"1"), Write(op="set", key="b", value=b"1")]
        check = Write(op="check", key="zz", expected_version=0)
        await store.commit("n1", [*two, check], meta=A)  # 2 writes; the check counts nothing
        with pytest.raises(QuotaExceeded) as exc:
            await store.commit("n2", two, meta=A)  # would be 4: refused whole
        assert exc.value.code == "token_quota_exceeded"
        assert await store.head("n2") == 0
        await store.set("n2", "a", b"1", meta=A)  # the third
        with pytest.raises(QuotaExceeded):
            await store.set("n3", "a", b"1", meta=A)


async def test_a_restore_frees_the_bytes_of_the_values_it_replaces(make_store: OpenStore) -> None:
    clock = FakeClock(datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
    async with make_store(limits=limits(max_bytes=10), clock=clock) as store:
        await store.set("n1", "k", b"1234", meta=A)  # A: 5
        await store.set("n2", "k", b"1234", meta=A)  # A: 10
        with pytest.raises(PayloadTooLarge):
            await store.set("n3", "k", b"1", meta=A)
        at = clock()
        # An import over n1's key: the restored value belongs to no token.
        await store.restore(
            "n1", [Recorded(revision=2, at=at, key="k", op="set", value=b"9", created_revision=1)]
        )
        assert (await store.get("n1", "k")).value == b"9"  # type: ignore[union-attr]
        await store.set("n3", "k", b"1234", meta=A)  # A: 10 again
        # Replacing n2 whole frees all of A's values there.
        await store.restore(
            "n2",
            [Recorded(revision=1, at=at, key="z", op="set", value=b"1", created_revision=1)],
            replace=True,
        )
        await store.set("n4", "k", b"1234", meta=A)  # A: 10 again
        with pytest.raises(PayloadTooLarge):
            await store.set("n5", "k", b"1", meta=A)
