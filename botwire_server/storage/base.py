"""The storage contract: an append-only event log per namespace, materialised into current values.

The revision model
==================

Each namespace has a *revision*, 0 while it has never been written. Every committed write
operation (a set, a delete, a rollback) appends its event(s) under the next revision, so
revisions are gap-free and follow commit order. A key's *version* is the revision of its last
write; its *created_revision* is the revision that created its current incarnation. A delete
appends a tombstone and removes the key from the current table; its history stays.

A worked example, namespace ``ns`` (``at`` is the server's commit time)::

    op                          rev  event log (ns)               current table
    set a=1                     1    1: set a=1                   a=1 (v1,c1)
    set b=2                     2    2: set b=2                   a=1 (v1,c1) b=2 (v2,c2)
    set a=3 expected_version=1  3    3: set a=3                   a=3 (v3,c1) b=2 (v2,c2)
    set a=4 expected_version=1  -    (conflict: current_version=3) unchanged
    delete b                    4    4: delete b (tombstone)      a=3 (v3,c1)
    set b=5                     5    5: set b=5                   a=3 (v3,c1) b=5 (v5,c5)
    rollback to 2               6    6: set a=1, set b=2          a=1 (v6,c1) b=2 (v6,c5)

    get a as_of=2 -> 1   get b as_of=4 -> absent   history b -> 6 set, 5 set, 4 delete, 2 set
    rollback to 6 (nothing differs) -> writes nothing, result revision 6

A point-in-time read of key ``k`` at revision ``R`` is one index seek: the event of ``k`` with the
greatest revision ``<= R``; the key exists at ``R`` when that event is a set. A timestamp ``T``
reads at the last revision committed at or before ``T`` (0 when none). ``R`` above the head raises
``FutureRevision``; ``R`` below the namespace's compaction floor raises ``RevisionCompacted``.

Rollback to ``R`` compares, for every key written after ``R``, its current value with its value at
``R`` and appends ONE revision holding a set or a tombstone for each key that differs. Values are
compared as their stored JSON text: the rollback restores exactly the bytes that were stored.

Values cross this interface as encoded JSON (``bytes``); the store never decodes them.
Timestamps are integers, microseconds since the Unix epoch, UTC, and never go backwards within
a namespace (a commit takes ``max(now, previous commit time)``).

Limits (per namespace, 0 = unlimited) are enforced inside the write transaction so they hold
exactly under any concurrency: at most ``writes_per_day`` committed writes per UTC day (a write
that changes nothing, or is refused, does not count) and at most ``namespace_max_bytes`` of live
data, counted as ``len(key) + len(value)`` over the current table.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

import msgspec

from ..errors import (
    Conflict,
    FutureRevision,
    InvalidInput,
    PayloadTooLarge,
    QuotaExceeded,
    RevisionCompacted,
)
from ..settings import Limits

AsOf = int | datetime | None
Op = Literal["set", "delete"]
Clock = Callable[[], int]

MICROS = 1_000_000
DAY_MICROS = 86_400 * MICROS


def system_clock() -> int:
    """Microseconds since the Unix epoch."""
    return time.time_ns() // 1000


class Item(msgspec.Struct, frozen=True):
    """A key as it stands at some revision. ``value`` is the stored JSON text."""

    key: str
    value: bytes
    version: int
    created_revision: int
    created_at: int
    updated_at: int

    @property
    def size(self) -> int:
        return len(self.value)


class Event(msgspec.Struct, frozen=True):
    """One entry of a key's history. ``value`` is None for a delete."""

    revision: int
    key: str
    op: Op
    value: bytes | None
    at: int


class WriteResult(msgspec.Struct, frozen=True):
    """A committed set or delete."""

    revision: int
    at: int
    created_revision: int
    bytes: int


class Change(msgspec.Struct, frozen=True):
    """One key a rollback sets back (``op="set"``, ``value`` restored) or removes."""

    key: str
    op: Op
    value: bytes | None


class RollbackResult(msgspec.Struct, frozen=True):
    """``revision`` is the new head, or the unchanged head when nothing differed or dry_run."""

    revision: int
    changes: list[Change]
    dry_run: bool


class NamespaceInfo(msgspec.Struct, frozen=True):
    namespace: str
    revision: int
    keys: int
    bytes: int
    oldest_revision: int
    updated_at: int | None


class Stats(msgspec.Struct, frozen=True):
    total_entries: int
    total_namespaces: int
    total_bytes: int


class Store(abc.ABC):
    """One event-sourced key-value store. Every backend passes ``tests/test_conformance.py``.

    Names are validated by the caller (the HTTP layer); a store accepts any non-empty string.
    Errors are those of ``botwire_server.errors``: ``Conflict``, ``QuotaExceeded``,
    ``PayloadTooLarge`` (code ``namespace_full``), ``FutureRevision``, ``RevisionCompacted``,
    ``InvalidInput``, ``Unavailable``, ``DiskFull``.
    """

    def __init__(self, *, limits: Limits | None = None, clock: Clock = system_clock) -> None:
        self.limits = limits or Limits()
        self.clock = clock

    # -- life cycle ------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied. Idempotent."""
        return []

    @abc.abstractmethod
    async def open(self) -> None:
        """Open connections. Call ``migrate`` first on a fresh database."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish or refuse queued writes, then release every connection."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the database answers; raise ``Unavailable`` otherwise."""

    # -- writes ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def set(
        self, namespace: str, key: str, value: bytes, *, expected_version: int | None = None
    ) -> WriteResult:
        """Append a set event and make ``value`` current.

        ``expected_version``: None writes unconditionally; 0 requires the key to be absent;
        N > 0 requires its version to be N. On mismatch raises ``Conflict`` and writes nothing.
        """

    @abc.abstractmethod
    async def delete(
        self, namespace: str, key: str, *, expected_version: int | None = None
    ) -> WriteResult:
        """Append a tombstone. Raises ``NotFound`` when the key is absent (whatever
        ``expected_version`` says), ``Conflict`` on a version mismatch."""

    @abc.abstractmethod
    async def rollback(
        self,
        namespace: str,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
    ) -> RollbackResult:
        """Make the current state (of one key, or all) equal to the state as of ``to`` by
        appending one revision. Nothing differs, or ``dry_run``: nothing is written."""

    @abc.abstractmethod
    async def compact(self, namespace: str, *, before: int) -> int:
        """Forget history that no read at a revision ``>= before`` needs; reads below ``before``
        then raise ``RevisionCompacted``. Returns the number of events removed."""

    # -- reads -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def get(self, namespace: str, key: str, *, as_of: AsOf = None) -> Item | None:
        """The key at ``as_of`` (default: now), or None when absent then."""

    @abc.abstractmethod
    async def list(
        self,
        namespace: str,
        *,
        prefix: str | None = None,
        after: str | None = None,
        limit: int = 100,
        as_of: AsOf = None,
    ) -> Sequence[Item]:
        """Up to ``limit`` keys present at ``as_of``, in key order, strictly after ``after``."""

    @abc.abstractmethod
    async def history(
        self, namespace: str, key: str, *, before: int | None = None, limit: int = 100
    ) -> Sequence[Event]:
        """Up to ``limit`` events of ``key``, newest first, with revision < ``before``."""

    @abc.abstractmethod
    async def info(self, namespace: str) -> NamespaceInfo:
        """The namespace's head revision and live size (all zero when never written)."""

    async def head(self, namespace: str) -> int:
        return (await self.info(namespace)).revision

    @abc.abstractmethod
    async def resolve(self, namespace: str, as_of: int | datetime) -> int:
        """The revision ``as_of`` denotes; raises ``FutureRevision``/``RevisionCompacted``."""

    @abc.abstractmethod
    async def stats(self) -> Stats:
        """Totals over every namespace: live keys, namespaces holding keys, live bytes."""


# -- rules every backend shares --------------------------------------------------------------


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidInput(
            "A point in time must carry a timezone (for example 2026-01-31T12:00:00Z).",
            code="invalid_parameter",
        )
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


def check_revision(revision: int, *, head: int, oldest: int) -> int:
    """Validate an explicit revision against a namespace's readable range ``[oldest, head]``."""
    if revision < 0:
        raise InvalidInput("A revision is an integer >= 0.", code="invalid_parameter")
    if revision > head:
        raise FutureRevision(revision, head)
    if revision < oldest:
        raise RevisionCompacted(revision, oldest)
    return revision


def check_expected(expected: int | None, current_version: int) -> None:
    if expected is None:
        return
    if expected < 0:
        raise InvalidInput("expected_version is an integer >= 0.", code="invalid_parameter")
    if expected != current_version:
        raise Conflict(expected, current_version)


def quota_after(limits: Limits, *, day: int, quota_day: int, quota_used: int, at: int) -> int:
    """The namespace's write count for ``day`` after one more write, or ``QuotaExceeded``."""
    used = quota_used if quota_day == day else 0
    if limits.writes_per_day and used >= limits.writes_per_day:
        retry_after = max(1, -(-((day + 1) * DAY_MICROS - at) // MICROS))
        raise QuotaExceeded(limits.writes_per_day, retry_after)
    return used + 1


def check_namespace_bytes(limits: Limits, new_total: int, old_total: int) -> None:
    """Refuse a write that grows the namespace past its limit (shrinking is always allowed)."""
    if (
        limits.namespace_max_bytes
        and new_total > limits.namespace_max_bytes
        and new_total > old_total
    ):
        raise PayloadTooLarge(
            f"This namespace would hold {new_total} bytes, over its limit of "
            f"{limits.namespace_max_bytes}. Delete keys or store smaller values.",
            code="namespace_full",
            limit=limits.namespace_max_bytes,
        )


def check_value_size(limits: Limits, size: int) -> None:
    if limits.value_max_bytes and size > limits.value_max_bytes:
        raise PayloadTooLarge(
            f"The value is {size} bytes, over the limit of {limits.value_max_bytes} bytes.",
            limit=limits.value_max_bytes,
        )


def entry_bytes(key: str, value: bytes) -> int:
    return len(key.encode()) + len(value)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000.", code="invalid_parameter")
    return limit
