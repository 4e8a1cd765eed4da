"""Random operation sequences against every backend, each answer compared with a tiny model.

The model is plain dicts and lists: the full state after every revision, each key's events
(with the run and agent of their commit), and the commit times; runs interleave with plain
writes, batches, rollbacks and reverts, and each revert is checked against PRODUCT.md
section 9 restated here from scratch. It knows nothing of the stores' code, so a backend and
the reference store cannot share a mistake unnoticed.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from backends import BACKENDS, open_store
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from botwire_server.errors import (
    BatchConflict,
    Conflict,
    FutureRevision,
    InvalidInput,
    NotFound,
    RevisionCompacted,
)
from botwire_server.settings import Limits
from botwire_server.storage.base import (
    Change,
    Event,
    Item,
    Provenance,
    Skipped,
    Store,
    Write,
)

T = TypeVar("T")

NS = "model"
KEYS = ["a", "b", "c", "a/x", "é"]
VALUES = [b"1", b'"x"', b"[]", b'{"a":1}', b"null", b"2.5"]
START = 1_769_860_800_000_000  # 2026-01-31T12:00:00Z in microseconds

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
runs = st.sampled_from([None, None, "r1", "r2", "r3"])


def meta(run: str | None) -> Provenance:
    """The provenance a write of ``run`` carries (a plain write: none)."""
    return Provenance(run=run, agent=None if run is None else f"agent-{run}")


# A point in time: None (now), a revision (some out of range), or ("t", i, d): the commit time
# of revision i (clamped to the head) shifted by d microseconds.
as_ofs = st.one_of(
    st.none(),
    st.integers(-1, 40),
    st.tuples(st.just("t"), st.integers(0, 40), st.sampled_from([-1, 0, 1])),
)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


@dataclass(frozen=True)
class MItem:
    value: bytes
    version: int
    created_revision: int
    created_at: int
    updated_at: int
    expires_at: int | None = None


def alive(state: dict[str, MItem], at: int) -> dict[str, MItem]:
    """The keys of a stored state that are visible at time ``at`` (TTL not yet passed)."""
    return {k: m for k, m in state.items() if m.expires_at is None or at < m.expires_at}


def moment(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


class StoreMachine(RuleBasedStateMachine):
    backend = "memory"
    directory = Path(".")
    counter = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        # The model.
        self.states: list[dict[str, MItem]] = [{}]  # states[r]: the namespace after revision r
        self.times: list[int] = []  # times[r - 1]: commit time of revision r
        self.events: dict[str, list[Event]] = {}  # per key, oldest first
        self.floor = 0
        # The store, opened on this machine's own event loop.
        path = self.directory / f"example{next(self.counter)}"
        path.mkdir()
        limits = Limits(writes_per_day=0, namespace_max_bytes=0, value_max_bytes=0)
        self.context = open_store(self.backend, path, limits=limits, clock=self.clock)
        self.store: Store = self.run(self.context.__aenter__())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def attempt(self, coro: Coroutine[Any, Any, T]) -> T | Exception:
        try:
            return self.run(coro)
        except Exception as exc:  # compared with the model's expectation by the caller
            return exc

    def teardown(self) -> None:
        try:
            self.run(self.context.__aexit__(None, None, None))
        finally:
            self.loop.close()

    # -- the model ------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        return len(self.states) - 1

    def at(self) -> int:
        """The commit time the next commit gets."""
        return max(self.clock.now, self.times[-1]) if self.times else self.clock.now

    def commit(
        self,
        changes: list[tuple[str, bytes | None]],
        *,
        expiry: dict[str, int | None] | None = None,
        op: str | None = None,
        run: str | None = None,
    ) -> tuple[int, int]:
        at = self.at()
        revision = self.head + 1
        old, new = alive(self.states[-1], at), dict(self.states[-1])
        for key, value in changes:
            kind = op or ("set" if value is not None else "delete")
            expires = (expiry or {}).get(key)
            agent = None if run is None else f"agent-{run}"
            self.events.setdefault(key, []).append(
                Event(revision, key, kind, value, at, expires, None, run, agent)  # type: ignore[arg-type]
            )
            if value is None:
                del new[key]
            else:
                before = old.get(key)
                created = (before.created_revision, before.created_at) if before else (revision, at)
                new[key] = MItem(value, revision, created[0], created[1], at, expires)
        self.states.append(new)
        self.times.append(at)
        return revision, at

    def visible(self, revision: int) -> dict[str, MItem]:
        """The namespace as a read at ``revision`` sees it (TTLs judged at its commit time)."""
        return alive(self.states[revision], self.times[revision - 1] if revision else 0)

    def now(self) -> dict[str, MItem]:
        return alive(self.states[-1], self.clock.now)

    def instant(self, as_of: tuple[str, int, int]) -> int:
        """The microsecond a ("t", i, d) point in time stands for."""
        _, index, shift = as_of
        index = min(index, len(self.times))
        return (self.times[index - 1] if index else START) + shift

    def expect_revision(self, as_of: Any) -> int | type[Exception]:
        """The revision ``as_of`` denotes, or the error a store must raise."""
        if as_of is None:
            return self.head
        if isinstance(as_of, tuple):
            revision = sum(1 for t in self.times if t <= self.instant(as_of))
        else:
            revision = as_of
        if revision < 0:
            return InvalidInput
        if revision > self.head:
            return FutureRevision
        if revision < self.floor:
            return RevisionCompacted
        return revision

    def to_store(self, as_of: Any) -> int | datetime | None:
        if isinstance(as_of, tuple):
            return moment(self.instant(as_of))
        return as_of  # type: ignore[no-any-return]

    @staticmethod
    def item(key: str, m: MItem | None) -> Item | None:
        if m is None:
            return None
        return Item(
            key, m.value, m.version, m.created_revision, m.created_at, m.updated_at, m.expires_at
        )

    # -- writes ---------------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        assert self.run(self.store.info(NS)).revision == 0

    def tick(self, step_ms: int) -> None:
        self.clock.now += step_ms * 1000

    @rule(
        key=keys,
        value=values,
        step_ms=st.integers(-2000, 5000),
        ttl_ms=st.one_of(st.none(), st.integers(1, 8000)),
        run=runs,
    )
    def set_key(
        self, key: str, value: bytes, step_ms: int, ttl_ms: int | None, run: str | None
    ) -> None:
        self.tick(step_ms)
        ttl = None if ttl_ms is None else ttl_ms * 1000
        result = self.run(self.store.set(NS, key, value, ttl=ttl, meta=meta(run)))
        expires = None if ttl is None else self.at() + ttl
        revision, at = self.commit([(key, value)], expiry={key: expires}, run=run)
        assert (result.revision, result.at, result.bytes) == (revision, at, len(value))
        assert result.created_revision == self.states[-1][key].created_revision
        assert result.expires_at == expires

    @rule(
        ops=st.lists(
            st.tuples(
                keys,
                st.sampled_from(["set", "delete", "check"]),
                st.sampled_from(["none", "right", "wrong"]),
                values,
                st.one_of(st.none(), st.integers(1, 8000)),
            ),
            min_size=1,
            max_size=4,
            unique_by=lambda op: op[0],
        ),
        step_ms=st.integers(0, 3000),
        run=runs,
    )
    def batch(
        self, ops: list[tuple[str, str, str, bytes, int | None]], step_ms: int, run: str | None
    ) -> None:
        self.tick(step_ms)
        at = self.at()
        seen = alive(self.states[-1], at)
        writes: list[Write] = []
        conflicts: list[tuple[int, str, int]] = []
        for index, (key, op, mode, value, ttl_ms) in enumerate(ops):
            version = seen[key].version if key in seen else 0
            expected = {"none": None, "right": version, "wrong": version + 2}[mode]
            if op == "check" and expected is None:
                expected = version
            ttl = ttl_ms * 1000 if ttl_ms is not None and op == "set" else None
            writes.append(
                Write(
                    op=op,  # type: ignore[arg-type]
                    key=key,
                    value=value if op == "set" else None,
                    expected_version=expected,
                    ttl=ttl,
                )
            )
            if (expected is not None and expected != version) or (op == "delete" and not version):
                conflicts.append((index, key, version))
        outcome = self.attempt(self.store.commit(NS, writes, meta(run)))
        if conflicts:
            assert isinstance(outcome, BatchConflict), outcome
            assert outcome.conflicts == conflicts
            return
        assert not isinstance(outcome, Exception), outcome
        changes = [(w.key, w.value) for w in writes if w.op != "check"]
        if not changes:
            assert (outcome.written, outcome.revision) == (False, self.head)
            return
        expiry = {w.key: at + w.ttl for w in writes if w.ttl is not None}
        revision, _ = self.commit(changes, expiry=expiry, run=run)  # type: ignore[arg-type]
        assert (outcome.written, outcome.revision) == (True, revision)
        assert [r.version for r in outcome.results] == [
            revision if w.op != "check" else (seen[w.key].version if w.key in seen else 0)
            for w in writes
        ]

    @rule(step_ms=st.integers(0, 6000))
    def sweep(self, step_ms: int) -> None:
        self.tick(step_ms)
        due = self.run(self.store.due_expiries())
        state = self.states[-1]
        expected = sorted(
            (m.expires_at, k)
            for k, m in state.items()
            if m.expires_at is not None and m.expires_at <= self.clock.now
        )
        assert sorted((state[k].expires_at, k) for ns, k, _ in due if ns == NS) == expected
        mine = [(k, v) for ns, k, v in due if ns == NS]
        if not mine:
            return
        writes = [Write(op="expire", key=k, expected_version=v) for k, v in mine]
        outcome = self.run(self.store.commit(NS, writes))
        revision, _ = self.commit([(k, None) for k, _ in mine], op="expire")
        assert (outcome.written, outcome.revision) == (True, revision)

    @rule(
        after=st.integers(0, 40),
        limit=st.integers(1, 5),
        prefix=st.one_of(st.none(), st.sampled_from(["a", "é", "z"])),
    )
    def change_feed(self, after: int, limit: int, prefix: str | None) -> None:
        outcome = self.attempt(self.store.changes(NS, after=after, limit=limit, prefix=prefix))
        if after > self.head:
            assert isinstance(outcome, FutureRevision), outcome
            return
        if after < self.floor:
            assert isinstance(outcome, RevisionCompacted), outcome
            return
        assert not isinstance(outcome, Exception), outcome
        upto = min(self.head, after + limit)
        expected = sorted(
            (
                e
                for events in self.events.values()
                for e in events
                if after < e.revision <= upto and (not prefix or e.key.startswith(prefix))
            ),
            key=lambda e: (e.revision, e.key),
        )
        assert (outcome.head, outcome.next_after, outcome.events) == (self.head, upto, expected)

    @rule(key=keys, value=values, right=st.booleans(), wrong=st.sampled_from([0, 1, 7]), run=runs)
    def set_key_cas(self, key: str, value: bytes, right: bool, wrong: int, run: str | None) -> None:
        current = alive(self.states[-1], self.at()).get(key)
        version = current.version if current else 0
        expected = version if right or wrong == version else wrong
        if expected == version and not right:
            expected = version + 1
        outcome = self.attempt(
            self.store.set(NS, key, value, expected_version=expected, meta=meta(run))
        )
        if expected != version:
            assert isinstance(outcome, Conflict), outcome
            assert outcome.current_version == version
            return
        assert not isinstance(outcome, Exception), outcome
        revision, at = self.commit([(key, value)], run=run)
        assert (outcome.revision, outcome.at) == (revision, at)

    @rule(key=keys, mode=st.sampled_from(["none", "right", "wrong"]), run=runs)
    def delete_key(self, key: str, mode: str, run: str | None) -> None:
        current = alive(self.states[-1], self.at()).get(key)
        version = current.version if current else 0
        expected = {"none": None, "right": version, "wrong": version + 3}[mode]
        outcome = self.attempt(
            self.store.delete(NS, key, expected_version=expected, meta=meta(run))
        )
        if current is None:
            assert isinstance(outcome, NotFound), outcome
        elif mode == "wrong":
            assert isinstance(outcome, Conflict), outcome
            assert outcome.current_version == version
        else:
            assert not isinstance(outcome, Exception), outcome
            revision, at = self.commit([(key, None)], run=run)
            assert (outcome.revision, outcome.at) == (revision, at)
            assert outcome.created_revision == current.created_revision

    @rule(
        to=as_ofs.filter(lambda a: a is not None),
        key=st.one_of(st.none(), keys),
        dry_run=st.booleans(),
        step_ms=st.integers(-2000, 5000),
        run=runs,
    )
    def roll_back(
        self, to: Any, key: str | None, dry_run: bool, step_ms: int, run: str | None
    ) -> None:
        self.tick(step_ms)
        target = self.expect_revision(to)
        outcome = self.attempt(
            self.store.rollback(NS, self.to_store(to), key=key, dry_run=dry_run, meta=meta(run))
        )
        if not isinstance(target, int):
            assert isinstance(outcome, target), outcome
            return
        assert not isinstance(outcome, Exception), outcome
        # TTLs are judged at the rollback's commit time; a value whose TTL has passed by then
        # would be absent at once: not restored.
        then = alive(self.visible(target), self.at())
        now = alive(self.states[-1], self.at())
        candidates = sorted(set(then) | set(now)) if key is None else [key]
        changes: list[tuple[str, bytes | None]] = []
        expiry: dict[str, int | None] = {}
        for k in candidates:
            was = then[k].value if k in then else None
            if was != (now[k].value if k in now else None):
                changes.append((k, was))
                expiry[k] = then[k].expires_at if k in then else None
        expected = [Change(k, "set" if v is not None else "delete", v) for k, v in changes]
        assert outcome.changes == expected
        assert outcome.dry_run == dry_run
        if dry_run or not changes:
            assert outcome.revision == self.head
            return
        revision, _ = self.commit(changes, expiry=expiry, run=run)
        assert outcome.revision == revision

    @rule(
        undone=st.sampled_from(["r1", "r2", "r3", "never"]),
        run=runs,
        dry_run=st.booleans(),
        step_ms=st.integers(0, 5000),
    )
    def revert(self, undone: str, run: str | None, dry_run: bool, step_ms: int) -> None:
        """PRODUCT.md section 9: every key the run touched gets its value from just before
        the run's first write to it, unless anyone else wrote it after that write."""
        self.tick(step_ms)
        target = undone
        outcome = self.run(self.store.revert_run(NS, target, dry_run=dry_run, meta=meta(run)))
        at = self.at()
        now = alive(self.states[-1], at)
        changes: list[tuple[str, bytes | None]] = []
        expiry: dict[str, int | None] = {}
        skipped: list[Skipped] = []
        for key in sorted(self.events):
            mine = [e.revision for e in self.events[key] if e.run == target]
            if not mine:
                continue
            first = mine[0]
            by_others = any(
                e.revision > first and e.op != "expire" and e.run != target
                for e in self.events[key]
            )
            current = now[key].version if key in now else 0
            if by_others:
                skipped.append(Skipped(key, "written_by_others", current))
                continue
            if first - 1 < self.floor:
                skipped.append(Skipped(key, "history_compacted", current))
                continue
            then = alive(self.visible(first - 1), at)
            was = then[key].value if key in then else None
            if was != (now[key].value if key in now else None):
                changes.append((key, was))
                expiry[key] = then[key].expires_at if key in then else None
        expected = [Change(k, "set" if v is not None else "delete", v) for k, v in changes]
        assert (outcome.changes, outcome.skipped, outcome.dry_run) == (expected, skipped, dry_run)
        if dry_run or not changes:
            assert outcome.revision == self.head
            return
        revision, _ = self.commit(changes, expiry=expiry, run=run)
        assert outcome.revision == revision

    @rule(run=runs, dry_run=st.booleans(), step_ms=st.integers(0, 5000))
    def revert_latest_run(self, run: str | None, dry_run: bool, step_ms: int) -> None:
        """Revert the run of the newest event that has one: its keys are then seldom
        written by others since, so the restoring half of the rule is exercised often."""
        newest = max(
            (e for events in self.events.values() for e in events if e.run is not None),
            key=lambda e: e.revision,
            default=None,
        )
        if newest is not None and newest.run is not None:
            self.revert(newest.run, run, dry_run, step_ms)

    @rule(name=st.sampled_from(["r1", "r2", "r3"]), limit=st.integers(1, 4))
    def run_events(self, name: str, limit: int) -> None:
        target = name
        outcome = list(self.run(self.store.run_events(NS, target, limit=limit)))
        expected = sorted(
            (e for events in self.events.values() for e in events if e.run == target),
            key=lambda e: (e.revision, e.key),
        )
        assert outcome == expected[:limit]
        if outcome:
            last = outcome[-1]
            rest = self.run(self.store.run_events(NS, target, after=(last.revision, last.key)))
            assert outcome + list(rest) == expected[: len(outcome) + len(rest)]

    @precondition(lambda self: self.head > 0)
    @rule(before=st.integers(0, 40))
    def compact_history(self, before: int) -> None:
        outcome = self.attempt(self.store.compact(NS, before=before))
        if before > self.head:
            assert isinstance(outcome, FutureRevision), outcome
            return
        assert not isinstance(outcome, Exception), outcome
        removed = 0
        if before > self.floor:
            for key, events in list(self.events.items()):
                at_floor = [i for i, e in enumerate(events) if e.revision <= before]
                if at_floor:
                    i = at_floor[-1]
                    keep_from = i if events[i].op == "set" else i + 1  # tombstone, expiry
                    removed += keep_from
                    self.events[key] = events[keep_from:]
            self.floor = before
        assert outcome == removed

    # -- reads ----------------------------------------------------------------------------------

    @rule(key=keys, as_of=as_ofs)
    def get_key(self, key: str, as_of: Any) -> None:
        revision = self.expect_revision(as_of)
        outcome = self.attempt(self.store.get(NS, key, as_of=self.to_store(as_of)))
        if not isinstance(revision, int):
            assert isinstance(outcome, revision), outcome
            return
        state = self.now() if as_of is None else self.visible(revision)
        assert outcome == self.item(key, state.get(key))

    @rule(
        prefix=st.one_of(st.none(), st.sampled_from(["", "a", "a/", "é", "z"])),
        after=st.one_of(st.none(), keys, st.just("a0")),
        limit=st.integers(1, 4),
        as_of=as_ofs,
    )
    def list_keys(self, prefix: str | None, after: str | None, limit: int, as_of: Any) -> None:
        revision = self.expect_revision(as_of)
        outcome = self.attempt(
            self.store.list(NS, prefix=prefix, after=after, limit=limit, as_of=self.to_store(as_of))
        )
        if not isinstance(revision, int):
            assert isinstance(outcome, revision), outcome
            return
        state = self.now() if as_of is None else self.visible(revision)
        expected = [
            self.item(k, state[k])
            for k in sorted(state)
            if (after is None or k > after) and (not prefix or k.startswith(prefix))
        ][:limit]
        assert not isinstance(outcome, Exception), outcome
        assert list(outcome) == expected

    @rule(key=keys, before=st.one_of(st.none(), st.integers(0, 40)), limit=st.integers(1, 5))
    def key_history(self, key: str, before: int | None, limit: int) -> None:
        outcome = self.run(self.store.history(NS, key, before=before, limit=limit))
        expected = [
            e for e in reversed(self.events.get(key, [])) if before is None or e.revision < before
        ][:limit]
        assert list(outcome) == expected

    @invariant()
    def current_state_matches(self) -> None:
        info = self.run(self.store.info(NS))
        state = self.states[-1]
        size = sum(len(k.encode()) + len(m.value) for k, m in state.items())
        assert (info.revision, info.keys, info.bytes) == (self.head, len(state), size)
        assert info.oldest_revision == self.floor
        assert info.updated_at == (self.times[-1] if self.times else None)
        listed = self.run(self.store.list(NS, limit=1000))
        visible = self.now()
        assert list(listed) == [self.item(k, visible[k]) for k in sorted(visible)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_matches_the_model(backend: str, tmp_path: Path) -> None:
    machine = type(
        f"StoreMachine_{backend}",
        (StoreMachine,),
        {"backend": backend, "directory": tmp_path, "counter": itertools.count()},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        ),
    )
