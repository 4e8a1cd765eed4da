"""The in-memory reference store: the revision model of ``base`` written as plainly as possible.

It keeps every event in Python lists and answers reads by scanning them, so it is slow for long
histories and keeps nothing across restarts. Its job is to be obviously right: the conformance
suite runs against it like any other backend, which makes it an executable specification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import NotFound
from .base import (
    DAY_MICROS,
    AsOf,
    Change,
    Event,
    Item,
    NamespaceInfo,
    RollbackResult,
    Stats,
    Store,
    WriteResult,
    check_expected,
    check_limit,
    check_namespace_bytes,
    check_revision,
    check_value_size,
    entry_bytes,
    quota_after,
    to_micros,
)


@dataclass
class _Namespace:
    revision: int = 0
    oldest: int = 0
    commit_times: list[int] = field(default_factory=list)  # index i: time of revision i + 1
    events: dict[str, list[Event]] = field(default_factory=dict)  # per key, oldest first
    current: dict[str, Item] = field(default_factory=dict)
    quota_day: int = -1
    quota_used: int = 0
    # (key, revision) of a set that compaction made a key's oldest kept event -> the
    # (created_revision, created_at) of its incarnation, whose first event may be gone.
    created_before_floor: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    @property
    def live_bytes(self) -> int:
        return sum(entry_bytes(k, item.value) for k, item in self.current.items())


class MemoryStore(Store):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._namespaces: dict[str, _Namespace] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    # -- helpers -----------------------------------------------------------------------------

    def _ns(self, namespace: str) -> _Namespace:
        return self._namespaces.setdefault(namespace, _Namespace())

    def _commit_time(self, ns: _Namespace) -> int:
        now = self.clock()
        return max(now, ns.commit_times[-1]) if ns.commit_times else now

    def _count_write(self, ns: _Namespace, at: int) -> None:
        day = at // DAY_MICROS
        ns.quota_used = quota_after(
            self.limits, day=day, quota_day=ns.quota_day, quota_used=ns.quota_used, at=at
        )
        ns.quota_day = day

    def _item_at(self, ns: _Namespace, key: str, revision: int) -> Item | None:
        created: Event | None = None
        last: Event | None = None
        for event in ns.events.get(key, []):
            if event.revision > revision:
                break
            if event.op == "delete":
                created = None
            elif created is None:
                created = event
            last = event
        if last is None or last.op == "delete" or created is None or last.value is None:
            return None
        created_revision, created_at = ns.created_before_floor.get(
            (key, created.revision), (created.revision, created.at)
        )
        return Item(key, last.value, last.revision, created_revision, created_at, last.at)

    def _revision(self, ns: _Namespace, as_of: AsOf) -> int:
        if as_of is None:
            return ns.revision
        if isinstance(as_of, datetime):
            moment = to_micros(as_of)
            revision = sum(1 for t in ns.commit_times if t <= moment)
            return check_revision(revision, head=ns.revision, oldest=ns.oldest)
        return check_revision(as_of, head=ns.revision, oldest=ns.oldest)

    def _append(self, ns: _Namespace, changes: Sequence[Change], at: int) -> int:
        """Commit ``changes`` as one new revision and materialise them."""
        ns.revision += 1
        ns.commit_times.append(at)
        for change in changes:
            ns.events.setdefault(change.key, []).append(
                Event(ns.revision, change.key, change.op, change.value, at)
            )
            if change.op == "delete":
                ns.current.pop(change.key, None)
            else:
                assert change.value is not None
                old = ns.current.get(change.key)
                created_rev, created_at = (
                    (old.created_revision, old.created_at) if old else (ns.revision, at)
                )
                ns.current[change.key] = Item(
                    change.key, change.value, ns.revision, created_rev, created_at, at
                )
        return ns.revision

    # -- writes ------------------------------------------------------------------------------

    async def set(
        self, namespace: str, key: str, value: bytes, *, expected_version: int | None = None
    ) -> WriteResult:
        check_value_size(self.limits, len(value))
        ns = self._ns(namespace)
        old = ns.current.get(key)
        check_expected(expected_version, old.version if old else 0)
        before = ns.live_bytes
        after = before - (entry_bytes(key, old.value) if old else 0) + entry_bytes(key, value)
        check_namespace_bytes(self.limits, after, before)
        at = self._commit_time(ns)
        self._count_write(ns, at)
        revision = self._append(ns, [Change(key, "set", value)], at)
        return WriteResult(revision, at, ns.current[key].created_revision, len(value))

    async def delete(
        self, namespace: str, key: str, *, expected_version: int | None = None
    ) -> WriteResult:
        ns = self._ns(namespace)
        old = ns.current.get(key)
        if old is None:
            raise NotFound(
                f"Key {key!r} does not exist in namespace {namespace!r}.", code="key_not_found"
            )
        check_expected(expected_version, old.version)
        at = self._commit_time(ns)
        self._count_write(ns, at)
        revision = self._append(ns, [Change(key, "delete", None)], at)
        return WriteResult(revision, at, old.created_revision, 0)

    async def rollback(
        self,
        namespace: str,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
    ) -> RollbackResult:
        ns = self._ns(namespace)
        target = self._revision(ns, to)
        keys = sorted(ns.events) if key is None else [key]
        changes: list[Change] = []
        for k in keys:
            then = self._item_at(ns, k, target)
            now = ns.current.get(k)
            if (then.value if then else None) == (now.value if now else None):
                continue
            changes.append(Change(k, "set", then.value) if then else Change(k, "delete", None))
        if not changes or dry_run:
            return RollbackResult(ns.revision, changes, dry_run)
        before = ns.live_bytes
        after = before
        for change in changes:
            old = ns.current.get(change.key)
            after -= entry_bytes(change.key, old.value) if old else 0
            after += entry_bytes(change.key, change.value) if change.value is not None else 0
        check_namespace_bytes(self.limits, after, before)
        at = self._commit_time(ns)
        self._count_write(ns, at)
        return RollbackResult(self._append(ns, changes, at), changes, False)

    async def compact(self, namespace: str, *, before: int) -> int:
        ns = self._ns(namespace)
        check_revision(before, head=ns.revision, oldest=0)
        if before <= ns.oldest:
            return 0
        removed = 0
        for key, events in list(ns.events.items()):
            # Keep the newest event at or before `before` (it answers reads at `before`) unless
            # it is a tombstone, and everything after it.
            keep_from = 0
            for i, event in enumerate(events):
                if event.revision <= before:
                    keep_from = i if event.op == "set" else i + 1
            kept = events[keep_from:]
            if kept and keep_from and kept[0].op == "set":
                first = self._item_at(ns, key, kept[0].revision)
                assert first is not None
                ns.created_before_floor[(key, kept[0].revision)] = (
                    first.created_revision,
                    first.created_at,
                )
            removed += len(events) - len(kept)
            if kept:
                ns.events[key] = kept
            else:
                del ns.events[key]
        ns.oldest = before
        return removed

    # -- reads -------------------------------------------------------------------------------

    async def get(self, namespace: str, key: str, *, as_of: AsOf = None) -> Item | None:
        ns = self._namespaces.get(namespace) or _Namespace()
        if as_of is None:
            return ns.current.get(key)
        return self._item_at(ns, key, self._revision(ns, as_of))

    async def list(
        self,
        namespace: str,
        *,
        prefix: str | None = None,
        after: str | None = None,
        limit: int = 100,
        as_of: AsOf = None,
    ) -> Sequence[Item]:
        check_limit(limit)
        ns = self._namespaces.get(namespace) or _Namespace()
        revision = self._revision(ns, as_of)
        out: list[Item] = []
        for k in sorted(ns.events):
            if after is not None and k <= after:
                continue
            if prefix and not k.startswith(prefix):
                continue
            item = self._item_at(ns, k, revision)
            if item is not None:
                out.append(item)
                if len(out) == limit:
                    break
        return out

    async def history(
        self, namespace: str, key: str, *, before: int | None = None, limit: int = 100
    ) -> Sequence[Event]:
        check_limit(limit)
        ns = self._namespaces.get(namespace) or _Namespace()
        events = [
            e for e in reversed(ns.events.get(key, [])) if before is None or e.revision < before
        ]
        return events[:limit]

    async def info(self, namespace: str) -> NamespaceInfo:
        ns = self._namespaces.get(namespace) or _Namespace()
        return NamespaceInfo(
            namespace,
            ns.revision,
            len(ns.current),
            ns.live_bytes,
            ns.oldest,
            ns.commit_times[-1] if ns.commit_times else None,
        )

    async def resolve(self, namespace: str, as_of: int | datetime) -> int:
        return self._revision(self._namespaces.get(namespace) or _Namespace(), as_of)

    async def stats(self) -> Stats:
        spaces = [ns for ns in self._namespaces.values() if ns.current]
        return Stats(
            sum(len(ns.current) for ns in spaces),
            len(spaces),
            sum(ns.live_bytes for ns in spaces),
        )
