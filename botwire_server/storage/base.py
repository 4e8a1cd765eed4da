"""The storage contract: an append-only event log per namespace, materialised into current values.

The revision model
==================

Each namespace has a *revision*, 0 while it has never been written. Every committed write
operation (a set, a delete, a batch, a rollback, an expiry) appends its event(s) under the next
revision, so revisions are gap-free and follow commit order. A key's *version* is the revision of
its last write; its *created_revision* is the revision that created its current incarnation. A
delete appends a tombstone and removes the key from the current table; its history stays.

A worked example, namespace ``ns`` (``at`` is the server's commit time)::

    op                          rev  event log (ns)               current table
    set a=1                     1    1: set a=1                   a=1 (v1,c1)
    set b=2                     2    2: set b=2                   a=1 (v1,c1) b=2 (v2,c2)
    set a=3 expected_version=1  3    3: set a=3                   a=3 (v3,c1) b=2 (v2,c2)
    set a=4 expected_version=1  -    (conflict: current_version=3) unchanged
    delete b                    4    4: delete b (tombstone)      a=3 (v3,c1)
    set b=5                     5    5: set b=5                   a=3 (v3,c1) b=5 (v5,c5)
    rollback to 2               6    6: set a=1, set b=2          a=1 (v6,c1) b=2 (v6,c5)
    batch [set c=7 ttl=10s,     7    7: set c=7 (expires at+10s), a=1 (v6,c1) b=2 (v6,c5)
           check a@6]                                             c=7 (v7,c7, expires)
    (10 s later, the sweeper)   8    8: expire c                  a=1 (v6,c1) b=2 (v6,c5)

    get a as_of=2 -> 1   get b as_of=4 -> absent   history b -> 6 set, 5 set, 4 delete, 2 set
    rollback to 6 (nothing differs) -> writes nothing, result revision 6

One verb writes
===============

Every write is a ``Write`` value (op, key, value, conditions, TTL) and a store commits a list of
them for one namespace as ONE revision (``commit``): ``set`` and ``delete`` are one-write commits,
a batch is a commit of many, a rollback computes its writes under the namespace's lock and
commits them, and the expiry sweeper commits ``expire`` writes. A new write option is one field
of ``Write`` plus each backend's storage of it.

The rules of a commit, and where each one lives:

- *Conditions* (``expected_version``; a delete needs the key; a ``check`` writes nothing): all
  are checked against the state before the commit; any failure refuses the whole commit with
  ``BatchConflict`` listing every failed write, and nothing is written.
- *Visibility*: a key with ``expires_at`` is present at time T only while T < ``expires_at``.
  A current read uses the clock; a read as of revision R uses R's commit time, so point-in-time
  reads stay exact. An expired key that the sweeper has not yet removed counts as absent for
  conditions (version 0) and for a new set (which starts a new incarnation).
- *Commit time*: ``max(now, previous commit time)``: never backwards within a namespace.
- *created_revision*: kept by a set of a present key, new otherwise.
- *Limits*: the namespace's live bytes may not grow past ``namespace_max_bytes``; the day's
  write count (one per set or delete, one per rollback, none for checks or expiries) may not
  pass ``writes_per_day``. A refused or empty commit counts nothing. The same count is spent
  on the writer's token (``Provenance.actor_id``), across all its namespaces, up to
  ``token_writes_per_day``; and the token that last set a value owns its bytes (a set by
  another token moves them, a delete or an expiry frees them), up to ``token_max_bytes``.

For the in-memory and SQLite stores these rules live in ONE Python function, ``plan_commit``
below: each backend only reads the rows it needs and stores the plan. PostgreSQL applies the
same rules inside the database, in the ``botwire_commit`` PL/pgSQL function (migration 0003),
so that a group of commits costs one round trip; its Python side restates none of them and maps
the function's refusal codes to the errors raised here, in one place (``postgres._outcome``).

A point-in-time read of key ``k`` at revision ``R`` is one index seek: the event of ``k`` with the
greatest revision ``<= R``; the key exists at ``R`` when that event is a set whose ``expires_at``
lies after R's commit time. A timestamp ``T`` reads at the last revision committed at or before
``T`` (0 when none). ``R`` above the head raises ``FutureRevision``; ``R`` below the namespace's
compaction floor raises ``RevisionCompacted``.

Rollback to ``R`` compares, for every key written after ``R``, its current value with its value at
``R`` and appends ONE revision holding a set or a tombstone for each key that differs. Values are
compared as their stored JSON text: the rollback restores exactly the bytes that were stored,
with the absolute expiry they had (a value whose TTL has passed since counts as absent).

Provenance, runs and revert
===========================

A commit carries ONE ``Provenance`` value (actor, the actor's token id, run, agent, reason,
idempotency key), stamped by the service and handed to ``commit`` (and to rollback and
revert); every event of the commit stores actor, run, agent and reason. Events with a run are
indexed by (namespace, run, revision), so ``run_events`` and ``revert_run`` never scan the log.

Revert of run ``X`` (``revert_writes``, shared by every backend): for each key ``X`` wrote,
let ``f`` be the revision of its first write by ``X``. If anyone else (another run, or a write
without a run) wrote the key after ``f``, it is skipped and reported; otherwise it gets its
value as of ``f - 1`` (a value whose TTL has passed by the revert's commit time counts as
absent, as in a rollback). All changes form ONE revision whose events carry the reverting
request's own provenance, so a revert done under run ``U`` is undone by reverting ``U``::

    rev  event                    run    revert X (dry run) at head 5
    1    set a=0                  -      a: first X write 2, nobody else after -> a=0
    2    set a=1, set b=1         X      b: X at 2, Y at 4 -> skipped (written_by_others, v4)
    3    set c=1                  X      c: created by X at 3 -> delete c
    4    set b=2                  Y
    5    set a=2                  X      (a's later writes are X's own: still a=0)

Idempotency
===========

A write may carry an ``Idempotency`` (key scoped by the service, request fingerprint, TTL).
Inside the transaction that would write, under the namespace's lock, the store looks the key
up (``replay``): an unexpired outcome with the same fingerprint is returned again and
nothing is written; another fingerprint raises ``IdempotencyKeyReused``; otherwise the write
runs and its outcome (``outcome_of``: status and encoded result) is stored in the SAME
transaction, so a crash between commit and reply leaves a retry safe. Refused writes store
nothing (they wrote nothing, so a retry is safe anyway). ``purge_idempotency`` forgets expired
outcomes; the expiry sweeper calls it.

The change feed (``changes``) is part of this contract: every event with a revision in
``(after, after + limit]``, oldest first, is what watchers, exports and replicas follow. After
each commit a store calls its listeners (``add_listener``) with the namespace and the new head;
the PostgreSQL store also calls them for commits made by other server processes.

Values cross this interface as encoded JSON (``bytes``); the store never decodes them.
Timestamps are integers, microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

import msgspec

from .. import filters
from ..errors import (
    BatchConflict,
    Conflict,
    FutureRevision,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RevisionCompacted,
)
from ..settings import Limits

AsOf = int | datetime | None
Op = Literal["set", "delete"]
EventOp = Literal["set", "delete", "expire"]
WriteOp = Literal["set", "delete", "check", "expire"]
Clock = Callable[[], int]
Listener = Callable[[str, int], None]
R = TypeVar("R")
Observer = Callable[[float, "Committed | None"], None]

MICROS = 1_000_000
DAY_MICROS = 86_400 * MICROS
MAX_OPS = 1000  # writes in one commit that callers may ask for (a rollback may write more)


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
    expires_at: int | None = None

    @property
    def size(self) -> int:
        return len(self.value)


class Event(msgspec.Struct, frozen=True):
    """One entry of the log. ``value`` is None for a delete or an expiry. ``actor``, ``run``,
    ``agent`` and ``reason``: the provenance of the commit that wrote it (None when absent,
    and for events written before migration 0005)."""

    revision: int
    key: str
    op: EventOp
    value: bytes | None
    at: int
    expires_at: int | None = None
    actor: str | None = None
    run: str | None = None
    agent: str | None = None
    reason: str | None = None


class Idempotency(msgspec.Struct, frozen=True, kw_only=True):
    """A write's idempotency key, as the service scoped it (see "Idempotency" above).

    ``key``: unique per namespace (the service prefixes the token's id); ``fingerprint``: a
    hash of the request, which a retry must repeat; ``ttl``: microseconds the outcome is kept
    after the commit."""

    key: str
    fingerprint: str
    ttl: int = DAY_MICROS


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    """The context of ONE commit, stamped by the service and passed to ``Store.commit`` (and
    to rollback and revert): who (``actor``, the token's name; ``actor_id``, its id, which
    reaches the commit so that a per-token rule can be checked inside it), on behalf of which
    ``run`` and ``agent``, and why (``reason``); plus the commit's idempotency key. Every
    event of the commit stores ``actor``, ``run``, ``agent`` and ``reason``."""

    actor: str | None = None
    actor_id: str | None = None
    run: str | None = None
    agent: str | None = None
    reason: str | None = None
    idempotency: Idempotency | None = None


NO_PROVENANCE = Provenance()


class StoredOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A stored idempotent outcome: the status and the encoded result of the first request
    (a store verb's result, from which the response body is rendered again)."""

    fingerprint: str
    status: int
    result: bytes
    expires_at: int


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """One retained event with everything needed to write it back elsewhere exactly
    (``Store.dump`` / ``Store.restore``): a set's ``created_revision`` and ``created_at`` are
    those of the incarnation it belongs to (0 for a delete or an expiry). ``actor``, ``run``,
    ``agent``, ``reason``: the event's provenance, restored as it was (the run index with it)."""

    revision: int
    at: int
    key: str
    op: EventOp
    value: bytes | None = None
    expires_at: int | None = None
    created_revision: int = 0
    created_at: int = 0
    actor: str | None = None
    run: str | None = None
    agent: str | None = None
    reason: str | None = None


class Write(msgspec.Struct, frozen=True, kw_only=True):
    """One operation of a commit.

    ``op``: ``set`` (``value`` required), ``delete``, ``check`` (writes nothing; its
    ``expected_version`` must hold) or ``expire`` (removes the key only if its TTL has passed
    at the commit time and, when given, its version is ``expected_version``; otherwise it is
    skipped, never a conflict). ``expected_version``: 0 = absent, N = at version N.
    ``ttl``: microseconds after the commit time at which a set's value expires;
    ``expires_at``: an absolute expiry instead (a rollback restores one).
    """

    op: WriteOp
    key: str
    value: bytes | None = None
    expected_version: int | None = None
    ttl: int | None = None
    expires_at: int | None = None


class Applied(msgspec.Struct, frozen=True):
    """One write's outcome in a commit. ``version``: the new revision for a set, delete or
    expiry; for a check (or a skipped expiry) the version it saw (0 = absent)."""

    key: str
    version: int
    created_revision: int
    bytes: int
    expires_at: int | None = None


class Committed(msgspec.Struct, frozen=True):
    """``revision`` is the new head, or the unchanged head when nothing was written."""

    revision: int
    at: int
    results: list[Applied]
    written: bool


class WriteResult(msgspec.Struct, frozen=True):
    """A committed set or delete."""

    revision: int
    at: int
    created_revision: int
    bytes: int
    expires_at: int | None = None


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


class Skipped(msgspec.Struct, frozen=True):
    """A key a revert left alone: ``reason`` (``written_by_others``: written after the run's
    first write to it by another run or without a run; ``history_compacted``: its state
    before the run is no longer kept) and its current version (0: absent)."""

    key: str
    reason: str
    current_version: int


class RevertResult(msgspec.Struct, frozen=True):
    """A run's revert: ``revision`` is the new head, or the unchanged head when nothing
    changed or ``dry_run``; ``changes`` the keys set back or removed; ``skipped`` the keys
    left alone."""

    revision: int
    changes: list[Change]
    skipped: list[Skipped]
    dry_run: bool


class Changes(msgspec.Struct, frozen=True):
    """A page of the change feed: the events of revisions ``(after, next_after]``."""

    head: int
    events: list[Event]
    next_after: int


class NamespaceInfo(msgspec.Struct, frozen=True):
    namespace: str
    revision: int
    keys: int
    bytes: int
    oldest_revision: int
    updated_at: int | None


class Selected(msgspec.Struct, frozen=True):
    """One page of a filtered listing (``Store.select``): the revision read, the matching
    items, how many matches the offset skipped, and whether more matches follow."""

    revision: int
    items: list[Item]
    skipped: int
    more: bool


class Stats(msgspec.Struct, frozen=True):
    total_entries: int
    total_namespaces: int
    total_bytes: int


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """How busy a store is right now (``GET /metrics``): writes queued for the writer, and the
    connections of its pool lent out, idle, and at most."""

    queue_depth: int = 0
    pool_used: int = 0
    pool_idle: int = 0
    pool_max: int = 0


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An API token as stored: never the secret, only its SHA-256 (hex). ``grants`` is JSON
    text, which the store keeps as it is (``botwire_server.auth`` reads it)."""

    id: str
    name: str
    secret_hash: str
    grants: str
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None


class Store(abc.ABC):
    """One event-sourced key-value store. Every backend passes ``tests/test_conformance.py``.

    Names are validated by the caller (the service layer); a store accepts any non-empty
    string. Errors are those of ``botwire_server.errors``: ``Conflict``, ``BatchConflict``,
    ``NotFound``, ``QuotaExceeded``, ``PayloadTooLarge`` (code ``namespace_full``),
    ``FutureRevision``, ``RevisionCompacted``, ``InvalidInput``, ``Unavailable``, ``DiskFull``.
    """

    def __init__(self, *, limits: Limits | None = None, clock: Clock = system_clock) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self._listeners: list[Listener] = []
        self._observers: list[Observer] = []

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

    # -- commit listeners ----------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(namespace, head)`` after every commit that wrote something (on the
        event loop; it must not block). Several calls for one revision, or one call for several
        revisions, are possible: a listener re-reads the feed from where it was."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def notify(self, namespace: str, revision: int) -> None:
        """Tell the listeners that ``namespace`` reached ``revision``. Backends call it."""
        for listener in list(self._listeners):
            listener(namespace, revision)

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(seconds, committed)`` after every ``commit`` (``committed`` None when
        it raised): the metrics' hook, written once here for every backend."""
        self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def usage(self) -> Usage:
        """Queue depth and pool use now; backends with a queue or a pool override it."""
        return Usage()

    # -- writes ------------------------------------------------------------------------------

    async def commit(
        self, namespace: str, writes: Sequence[Write], meta: Provenance = NO_PROVENANCE
    ) -> Committed:
        """Commit ``writes`` as ONE new revision, all or nothing (see "One verb writes"), each
        event stamped with ``meta``'s provenance.

        Raises ``BatchConflict`` when a condition fails, ``QuotaExceeded``, ``PayloadTooLarge``;
        then nothing is written. Commits that write nothing (only checks, skipped expiries)
        return the unchanged head with ``written=False``. With ``meta.idempotency``, a retry
        returns the first outcome and writes nothing (see "Idempotency")."""
        check_writes(self.limits, writes)
        if not self._observers:
            return await self._commit(namespace, writes, meta)
        started = time.perf_counter()
        committed: Committed | None = None
        try:
            committed = await self._commit(namespace, writes, meta)
        finally:
            seconds = time.perf_counter() - started
            for observer in list(self._observers):
                observer(seconds, committed)
        return committed

    @abc.abstractmethod
    async def _commit(self, namespace: str, writes: Sequence[Write], meta: Provenance) -> Committed:
        """Backend part of ``commit``: ``writes`` are already checked by ``check_writes``."""

    async def set(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        expected_version: int | None = None,
        ttl: int | None = None,
        meta: Provenance = NO_PROVENANCE,
    ) -> WriteResult:
        """Append a set event and make ``value`` current (a one-write commit).

        ``expected_version``: None writes unconditionally; 0 requires the key to be absent;
        N > 0 requires its version to be N. On mismatch raises ``Conflict`` and writes nothing.
        ``ttl``: microseconds until the value expires (None: never).
        """
        write = Write(op="set", key=key, value=value, expected_version=expected_version, ttl=ttl)
        try:
            done = await self.commit(namespace, [write], meta)
        except BatchConflict as exc:
            raise Conflict(expected_version or 0, exc.conflicts[0][2]) from None
        return _write_result(done)

    async def delete(
        self,
        namespace: str,
        key: str,
        *,
        expected_version: int | None = None,
        meta: Provenance = NO_PROVENANCE,
    ) -> WriteResult:
        """Append a tombstone. Raises ``NotFound`` when the key is absent (whatever
        ``expected_version`` says), ``Conflict`` on a version mismatch."""
        write = Write(op="delete", key=key, expected_version=expected_version)
        try:
            done = await self.commit(namespace, [write], meta)
        except BatchConflict as exc:
            current = exc.conflicts[0][2]
            if current == 0:
                raise key_not_found(namespace, key) from None
            raise Conflict(expected_version or 0, current) from None
        return _write_result(done)

    @abc.abstractmethod
    async def rollback(
        self,
        namespace: str,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RollbackResult:
        """Make the current state (of one key, or all) equal to the state as of ``to`` by
        appending one revision. Nothing differs, or ``dry_run``: nothing is written."""

    @abc.abstractmethod
    async def revert_run(
        self,
        namespace: str,
        run: str,
        *,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RevertResult:
        """Undo ``run`` in ONE new revision (see "Runs and revert"): every key it touched
        gets the value it had just before the run's first write to it, except keys that
        others wrote after that, which are skipped. Nothing to change, or ``dry_run``:
        nothing is written."""

    @abc.abstractmethod
    async def run_events(
        self, namespace: str, run: str, *, after: tuple[int, str] | None = None, limit: int = 100
    ) -> Sequence[Event]:
        """Up to ``limit`` events ``run`` wrote, oldest first (by revision, then key),
        strictly after the (revision, key) ``after``. Found through the run index, never by
        scanning the namespace's log."""

    @abc.abstractmethod
    async def purge_idempotency(self, *, now: int, limit: int = 1000) -> int:
        """Forget up to ``limit`` stored idempotent outcomes expired by ``now``; returns how
        many. (An expired outcome is never replayed, purged or not.)"""

    @abc.abstractmethod
    async def compact(self, namespace: str, *, before: int) -> int:
        """Forget history that no read at a revision ``>= before`` needs; reads below ``before``
        then raise ``RevisionCompacted``. Returns the number of events removed."""

    @abc.abstractmethod
    async def dump(
        self, namespace: str, *, after: tuple[int, str] = (-1, ""), limit: int = 1000
    ) -> Sequence[Recorded]:
        """Up to ``limit`` (1-1000) retained events of ``namespace`` ordered by (revision,
        key), strictly after ``after``; the events a compaction kept below the floor come
        first. Pages of it, with ``info``, are everything ``restore`` needs."""

    @abc.abstractmethod
    async def restore(
        self,
        namespace: str,
        events: Sequence[Recorded],
        *,
        replace: bool = False,
        head: int = 0,
        head_at: int = 0,
        oldest: int = 0,
    ) -> int:
        """Write ``events`` (from ``dump``, in its order) back exactly as recorded: the same
        revisions, times, expiries and incarnations, in ONE transaction; the current table and
        the namespace's size follow them (``plan_restore``). No condition, limit or quota
        applies: the log was valid where it was written. ``replace``: first forget everything
        of the namespace (events, revisions, current values). Then the head is raised to
        ``head`` (committed at ``head_at``) and the compaction floor to ``oldest`` when they
        are higher. An event at or below the head that is already stored, or out of order,
        raises ``InvalidInput`` and nothing is written. Returns the new head."""

    @abc.abstractmethod
    async def due_expiries(self, *, limit: int = 1000) -> Sequence[tuple[str, str, int]]:
        """Up to ``limit`` keys whose TTL has passed by the clock's now, as (namespace, key,
        version), soonest expiry first. The sweeper commits an ``expire`` write for each."""

    # -- reads -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def get(self, namespace: str, key: str, *, as_of: AsOf = None) -> Item | None:
        """The key at ``as_of`` (default: now), or None when absent then."""

    @abc.abstractmethod
    async def get_many(
        self, namespace: str, keys: Sequence[str], *, as_of: AsOf = None
    ) -> tuple[int, dict[str, Item | None]]:
        """Several keys read at ONE revision (the head, or the one ``as_of`` denotes): that
        revision and each key's item or None."""

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
    async def changes(
        self, namespace: str, *, after: int = 0, limit: int = 100, prefix: str | None = None
    ) -> Changes:
        """The change feed: every event with a revision in ``(after, after + limit]`` (capped
        at the head) whose key starts with ``prefix``, oldest first (by revision, then key).
        ``next_after`` is the last revision covered. ``after`` below the compaction floor
        raises ``RevisionCompacted``, above the head ``FutureRevision``."""

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

    @abc.abstractmethod
    async def list_namespaces(
        self, *, prefix: str | None = None, after: str | None = None, limit: int = 100
    ) -> Sequence[NamespaceInfo]:
        """Up to ``limit`` (at most 1000) namespaces ever written (revision > 0), in name
        order, strictly after ``after``, whose name starts with ``prefix``."""

    async def select(
        self,
        namespace: str,
        *,
        where: Mapping[str, object] | None = None,
        prefix: str | None = None,
        offset: int = 0,
        limit: int = 10,
        as_of: AsOf = None,
    ) -> Selected:
        """The filtered listing: in key order, the items present at ONE revision (the head, or
        ``as_of``) whose key starts with ``prefix`` and whose value matches the filter
        ``where`` (``botwire_server.filters`` holds its rules), skipping the first ``offset``
        matches and returning at most ``limit``. Raises ``InvalidInput`` for a bad filter.

        Every backend evaluates the filter here, over its own ``list`` at the pinned revision,
        in the server process (one home of the filter rules); a backend may override it with a
        query of its database that gives the same answers (``tests/test_conformance_select``).
        """
        matches = filters.compile_filter(where)
        if as_of is not None:
            revision = await self.resolve(namespace, as_of)
            return await self._select(namespace, matches, prefix, offset, limit, revision)
        # A current read leaves out keys whose TTL has passed, which only the current listing
        # knows (a past read judges expiry at that revision's commit time), so it reads the
        # current table page by page and checks that no commit landed meanwhile.
        for _attempt in range(5):
            head = await self.head(namespace)
            found = await self._select(namespace, matches, prefix, offset, limit, None)
            if await self.head(namespace) == head:
                break
        return Selected(head, found.items, found.skipped, found.more)

    async def _select(
        self,
        namespace: str,
        matches: filters.Matcher,
        prefix: str | None,
        offset: int,
        limit: int,
        revision: int | None,
    ) -> Selected:
        items: list[Item] = []
        skipped = 0
        after: str | None = None
        while True:
            page = await self.list(
                namespace, prefix=prefix, after=after, limit=1000, as_of=revision
            )
            for item in page:
                if not matches(msgspec.json.decode(item.value)):
                    continue
                if skipped < offset:
                    skipped += 1
                elif len(items) == limit:
                    return Selected(revision or 0, items, skipped, True)
                else:
                    items.append(item)
            if len(page) < 1000:
                return Selected(revision or 0, items, skipped, False)
            after = page[-1].key

    # -- tokens ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_token(self, token: TokenRecord) -> None:
        """Store a new token. Ids are random; one already taken raises ``InvalidInput``."""

    @abc.abstractmethod
    async def get_token(self, token_id: str) -> TokenRecord | None:
        """The token with this id (revoked and expired ones included), or None. One index
        seek: verification never scans."""

    @abc.abstractmethod
    async def list_tokens(self) -> Sequence[TokenRecord]:
        """Every token, revoked and expired ones included, oldest first."""

    @abc.abstractmethod
    async def revoke_token(self, token_id: str, *, at: int) -> TokenRecord | None:
        """Mark the token revoked at ``at`` (a second revocation keeps the first time);
        return it, or None when no token has this id."""

    @abc.abstractmethod
    async def touch_token(self, token_id: str, *, at: int) -> None:
        """Record that the token was used at ``at`` (callers do so at most once a minute)."""


def _write_result(done: Committed) -> WriteResult:
    (applied,) = done.results
    return WriteResult(
        applied.version, done.at, applied.created_revision, applied.bytes, applied.expires_at
    )


def key_not_found(namespace: str, key: str) -> NotFound:
    return NotFound(f"Key {key!r} does not exist in namespace {namespace!r}.", code="key_not_found")


# -- the rules of a commit (memory and SQLite; PostgreSQL: migrations/postgres/0003) ----------


@dataclass(slots=True)
class NsState:
    """A namespace's row: head, compaction floor, live size, last commit time, day's writes."""

    revision: int = 0
    oldest: int = 0
    live_keys: int = 0
    live_bytes: int = 0
    last_at: int = 0
    quota_day: int = -1
    quota_used: int = 0


class Current(msgspec.Struct, frozen=True):
    """A key's row in the current table as stored (it may have expired unswept)."""

    value: bytes
    version: int
    created_revision: int
    created_at: int
    expires_at: int | None = None
    token: str | None = None  # the id of the token that last wrote it (None: no token)


@dataclass(slots=True)
class TokenState:
    """A token's usage row (``token_usage``): its writes on UTC day ``day`` and the live bytes
    of the current values it last wrote, across all namespaces."""

    day: int = -1
    writes: int = 0
    live_bytes: int = 0


class Planned(msgspec.Struct, frozen=True):
    """One event a commit appends, with the key's current row after it (None: removed)."""

    key: str
    op: EventOp
    value: bytes | None
    created_revision: int
    created_at: int
    expires_at: int | None


@dataclass(slots=True)
class Plan:
    """What a commit writes: ``events`` under ``revision`` at ``at``, the namespace row after
    it (``ns``), and each write's outcome. ``events`` empty: nothing to write."""

    revision: int
    at: int
    events: list[Planned]
    ns: NsState
    results: list[Applied]
    meta: Provenance = NO_PROVENANCE  # stamped on every event
    # The usage rows of the tokens the commit changes, after it (store each one).
    tokens: dict[str, TokenState] = dataclasses.field(default_factory=dict)

    def committed(self) -> Committed:
        return Committed(self.revision, self.at, self.results, bool(self.events))


def visible(expires_at: int | None, moment: int) -> bool:
    """Whether a value with ``expires_at`` is present at time ``moment``."""
    return expires_at is None or moment < expires_at


def check_writes(limits: Limits, writes: Sequence[Write]) -> None:
    """The shape of a commit, checked before any backend sees it."""
    if not writes:
        raise InvalidInput("A batch needs at least one op.", code="invalid_body")
    seen: set[str] = set()
    for index, w in enumerate(writes):
        if w.key in seen:
            raise InvalidInput(
                f"Key {w.key!r} appears more than once in the batch (op {index}); "
                "a batch may touch each key once.",
                code="invalid_body",
            )
        seen.add(w.key)
        if w.expected_version is not None and w.expected_version < 0:
            raise InvalidInput("expected_version is an integer >= 0.", code="invalid_parameter")
        if w.op == "set":
            if w.value is None:
                raise InvalidInput(f"Op {index} (set) needs a value.", code="invalid_body")
            check_value_size(limits, len(w.value))
            if w.ttl is not None and w.ttl <= 0:
                raise InvalidInput("ttl must be a number of seconds > 0.", code="invalid_body")
        elif w.op == "check" and w.expected_version is None:
            raise InvalidInput(f"Op {index} (check) needs expected_version.", code="invalid_body")


def plan_commit(
    limits: Limits,
    ns: NsState,
    writes: Sequence[Write],
    current: Mapping[str, Current | None],
    now: int,
    *,
    cost: int | None = None,
    meta: Provenance = NO_PROVENANCE,
    tokens: Mapping[str, TokenState] | None = None,
) -> Plan:
    """Apply the commit rules to ``writes`` given the namespace row ``ns`` and the current
    rows of their keys. Raises ``BatchConflict``, ``PayloadTooLarge`` or ``QuotaExceeded``
    before anything is written. ``cost``: writes counted against the daily quota (default:
    one per set and delete; a rollback counts one). ``meta``: the commit's provenance.

    Per-token limits: ``meta.actor_id`` (the writer's token; None: no token, or the
    operator's admin token) spends the same count on its own daily quota and becomes the
    owner of the values it sets; a set, delete or expiry frees the old value's bytes from its
    owner (``Current.token``). ``tokens``: the usage rows of the writer and of those owners
    (missing: a fresh row); the rows after the commit come back in ``Plan.tokens``."""
    at = max(now, ns.last_at)  # commit times never go backwards
    revision = ns.revision + 1
    conflicts: list[tuple[int, str, int]] = []
    for index, w in enumerate(writes):
        row = current.get(w.key)
        seen = row.version if row is not None and visible(row.expires_at, at) else 0
        if w.op == "expire":
            continue
        if w.expected_version is not None and w.expected_version != seen:
            conflicts.append((index, w.key, seen))
        elif w.op == "delete" and seen == 0:
            conflicts.append((index, w.key, 0))
    if conflicts:
        raise BatchConflict(conflicts)

    live_bytes, live_keys = ns.live_bytes, ns.live_keys
    writer = meta.actor_id
    owned: dict[str, int] = {}  # token -> change of its live bytes
    events: list[Planned] = []
    results: list[Applied] = []
    counted = 0
    for w in writes:
        row = current.get(w.key)
        alive = row is not None and visible(row.expires_at, at)
        if w.op == "check" or (
            w.op == "expire"
            and (
                row is None
                or alive
                or (w.expected_version is not None and w.expected_version != row.version)
            )
        ):
            seen = row.version if row is not None and (alive or w.op == "expire") else 0
            results.append(Applied(w.key, seen, row.created_revision if alive and row else 0, 0))
            continue
        if row is not None:  # the stored row goes, expired or not
            live_bytes -= entry_bytes(w.key, row.value)
            live_keys -= 1
            if row.token is not None:
                owned[row.token] = owned.get(row.token, 0) - entry_bytes(w.key, row.value)
        if w.op == "set":
            assert w.value is not None
            live_bytes += entry_bytes(w.key, w.value)
            live_keys += 1
            if writer is not None:
                owned[writer] = owned.get(writer, 0) + entry_bytes(w.key, w.value)
            created = (row.created_revision, row.created_at) if alive and row else (revision, at)
            expires = at + w.ttl if w.ttl is not None else w.expires_at
            events.append(Planned(w.key, "set", w.value, created[0], created[1], expires))
            results.append(Applied(w.key, revision, created[0], len(w.value), expires))
            counted += 1
        else:
            assert row is not None
            events.append(Planned(w.key, w.op, None, row.created_revision, row.created_at, None))
            results.append(Applied(w.key, revision, row.created_revision, 0))
            counted += w.op == "delete"
    if not events:
        return Plan(ns.revision, at, [], ns, results, meta)
    check_namespace_bytes(limits, live_bytes, ns.live_bytes)
    day = at // DAY_MICROS
    quota_day, used = ns.quota_day, ns.quota_used
    spend = counted if cost is None else cost
    if spend:
        used = quota_after(limits, day=day, quota_day=quota_day, quota_used=used, at=at, cost=spend)
        quota_day = day
    after = NsState(revision, ns.oldest, live_keys, live_bytes, at, quota_day, used)
    usage = token_usage(limits, tokens or {}, writer, owned, spend, at)
    return Plan(revision, at, events, after, results, meta, usage)


def owned_bytes(rows: Mapping[str, Current | None]) -> dict[str, int]:
    """Each owning token's bytes among ``rows`` (keyed by key): what a restore that replaces
    these rows frees from those tokens (a restored value belongs to no token)."""
    out: dict[str, int] = {}
    for key, row in rows.items():
        if row is not None and row.token is not None:
            out[row.token] = out.get(row.token, 0) + entry_bytes(key, row.value)
    return out


def tokens_of(current: Mapping[str, Current | None], meta: Provenance) -> list[str]:
    """The tokens whose usage rows a commit may change, sorted: the writer and the owners of
    the rows it touches (``plan_commit``'s ``tokens``)."""
    ids = {row.token for row in current.values() if row is not None and row.token is not None}
    if meta.actor_id is not None:
        ids.add(meta.actor_id)
    return sorted(ids)


def token_usage(
    limits: Limits,
    tokens: Mapping[str, TokenState],
    writer: str | None,
    owned: Mapping[str, int],
    spend: int,
    at: int,
) -> dict[str, TokenState]:
    """The usage rows after a commit at ``at`` that ``writer`` makes, spending ``spend``
    writes and changing each token's live bytes by ``owned``; or ``QuotaExceeded`` /
    ``PayloadTooLarge`` when the writer passes its daily writes or grows past its bytes."""
    after: dict[str, TokenState] = {}
    for token, delta in owned.items():
        if delta:
            old = tokens.get(token) or TokenState()
            after[token] = TokenState(old.day, old.writes, max(0, old.live_bytes + delta))
    if writer is None:
        return after
    old = tokens.get(writer) or TokenState()
    mine = after.get(writer) or TokenState(old.day, old.writes, old.live_bytes)
    check_token_bytes(limits, mine.live_bytes, old.live_bytes)
    if spend:
        day = at // DAY_MICROS
        used = mine.writes if mine.day == day else 0
        if limits.token_writes_per_day and used + spend > limits.token_writes_per_day:
            raise token_quota_exceeded(limits, at)
        mine = TokenState(day, used + spend, mine.live_bytes)
    if mine != old:
        after[writer] = mine
    return after


def plan_restore(
    ns: NsState,
    events: Sequence[Recorded],
    current: Mapping[str, Current | None],
    *,
    head: int = 0,
    head_at: int = 0,
    oldest: int = 0,
) -> tuple[NsState, dict[str, Current | None]]:
    """The namespace row after ``Store.restore`` writes ``events``, and the current row of
    each key they touch (None: removed). ``current``: those keys' rows before. Raises
    ``InvalidInput`` for events out of order (revision, then key) or below the head."""
    rows: dict[str, Current | None] = dict(current)
    state = dataclasses.replace(ns)
    last: tuple[int, str] | None = None
    for e in events:
        if (last is not None and (e.revision, e.key) <= last) or e.revision < ns.revision:
            raise InvalidInput(
                f"Event {e.key!r} at revision {e.revision} is out of order or below the "
                f"namespace's head {ns.revision}.",
                code="invalid_body",
            )
        if e.op == "set" and e.value is None:
            raise InvalidInput(f"The set of {e.key!r} at {e.revision} has no value.")
        last = (e.revision, e.key)
        old = rows.get(e.key)
        if old is not None:
            state.live_keys -= 1
            state.live_bytes -= entry_bytes(e.key, old.value)
        if e.op == "set":
            assert e.value is not None
            rows[e.key] = Current(
                e.value, e.revision, e.created_revision, e.created_at, e.expires_at
            )
            state.live_keys += 1
            state.live_bytes += entry_bytes(e.key, e.value)
        else:
            rows[e.key] = None
        if e.revision >= state.revision:
            state.revision, state.last_at = e.revision, e.at
    if head > state.revision:
        state.revision, state.last_at = head, head_at
    state.oldest = max(state.oldest, oldest)
    return state, rows


def rollback_writes(
    keys: Sequence[str],
    then: Callable[[str], Item | None],
    now: Callable[[str], Item | None],
    moment: int,
) -> tuple[list[Change], list[Write]]:
    """The changes and writes that make each key's present state (``now``) its state at the
    target (``then``); keys whose value already matches are left alone. A value is restored
    with the absolute expiry it had, so one whose TTL has passed by ``moment`` (now) would be
    absent at once: it counts as absent and is not written."""
    changes: list[Change] = []
    writes: list[Write] = []
    for key in keys:
        was, cur = then(key), now(key)
        if was is not None and not visible(was.expires_at, moment):
            was = None
        if (was.value if was else None) == (cur.value if cur else None):
            continue
        if was is None:
            changes.append(Change(key, "delete", None))
            writes.append(Write(op="delete", key=key))
        else:
            changes.append(Change(key, "set", was.value))
            writes.append(Write(op="set", key=key, value=was.value, expires_at=was.expires_at))
    return changes, writes


def revert_writes(
    touched: Mapping[str, int],
    others: Callable[[str, int], bool],
    before: Callable[[str, int], Item | None],
    now: Callable[[str], Item | None],
    moment: int,
    oldest: int,
) -> tuple[list[Change], list[Skipped], list[Write]]:
    """The one home of the revert rule (PRODUCT.md section 9), for every backend.

    ``touched``: each key the run wrote -> the revision of its first write to it;
    ``others(key, first)``: whether anyone else (another run, or a write without a run) wrote
    ``key`` after ``first`` (expiries are not writes: the sweeper only carries out a TTL the
    writer set); ``before(key, first)``: the key as of revision ``first - 1``; ``now(key)``:
    the key as it stands (None: absent), both judged at ``moment``, the revert's commit time,
    as a rollback judges them. Keys written by others, or whose state before the run is
    compacted away (``first - 1 < oldest``), are skipped with their current version; the
    rest are restored like a rollback restores, each to its own revision."""
    skipped: list[Skipped] = []
    kept: list[str] = []
    targets: dict[str, int] = {}
    for key in sorted(touched):
        first = touched[key]
        reason = (
            "written_by_others"
            if others(key, first)
            else "history_compacted"
            if first - 1 < oldest
            else None
        )
        if reason is not None:
            cur = now(key)
            skipped.append(Skipped(key, reason, cur.version if cur is not None else 0))
        else:
            kept.append(key)
            targets[key] = first - 1
    changes, writes = rollback_writes(kept, lambda k: before(k, targets[k] + 1), now, moment)
    return changes, skipped, writes


def replay(found: StoredOutcome | None, idem: Idempotency, now: int) -> StoredOutcome | None:
    """The one home of the idempotency rule for every backend: the stored outcome to answer a
    retry with, None when the key is new (or its outcome expired), or
    ``IdempotencyKeyReused`` when the key came with another request."""
    if found is None or found.expires_at <= now:
        return None
    if found.fingerprint != idem.fingerprint:
        raise IdempotencyKeyReused()
    return found


def outcome_of(idem: Idempotency, result: msgspec.Struct, at: int) -> StoredOutcome:
    """The outcome a store keeps for ``idem`` after its write succeeded at ``at``."""
    return StoredOutcome(
        fingerprint=idem.fingerprint,
        status=200,
        result=msgspec.json.encode(result),
        expires_at=at + idem.ttl,
    )


def decoded(outcome: StoredOutcome, kind: type[R]) -> R:
    """A stored result as its type again."""
    return msgspec.json.decode(outcome.result, type=kind)


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


def quota_after(
    limits: Limits, *, day: int, quota_day: int, quota_used: int, at: int, cost: int = 1
) -> int:
    """The namespace's write count for ``day`` after ``cost`` more writes, or
    ``QuotaExceeded``."""
    used = quota_used if quota_day == day else 0
    if limits.writes_per_day and used + cost > limits.writes_per_day:
        retry_after = max(1, -(-((day + 1) * DAY_MICROS - at) // MICROS))
        raise QuotaExceeded(limits.writes_per_day, retry_after)
    return used + cost


def retry_after_midnight(at: int) -> int:
    """Whole seconds from ``at`` to the next midnight UTC, at least 1."""
    return max(1, -(-((at // DAY_MICROS + 1) * DAY_MICROS - at) // MICROS))


def token_quota_exceeded(limits: Limits, at: int) -> QuotaExceeded:
    """The refusal of a write at ``at`` by a token that has used its daily writes."""
    return QuotaExceeded(limits.token_writes_per_day, retry_after_midnight(at), token=True)


def check_token_bytes(limits: Limits, new_total: int, old_total: int) -> None:
    """Refuse a write that grows its token's live bytes past its limit (shrinking is always
    allowed)."""
    if limits.token_max_bytes and new_total > limits.token_max_bytes and new_total > old_total:
        raise PayloadTooLarge(
            f"This token's values would hold {new_total} bytes across its namespaces, "
            f"over its limit of {limits.token_max_bytes}. Delete keys it wrote or store "
            "smaller values.",
            code="token_storage_full",
            limit=limits.token_max_bytes,
        )


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


def check_after(after: int, *, head: int, oldest: int) -> int:
    """Validate a change feed's ``after`` against the namespace's feed ``[oldest, head]``."""
    if after < 0:
        raise InvalidInput("after is a revision >= 0.", code="invalid_parameter")
    if after > head:
        raise FutureRevision(after, head)
    if after < oldest:
        raise RevisionCompacted(after, oldest)
    return after
