"""The SQLite backend: one file in WAL mode, one writer connection with group commit.

Writes
======

Every write (set, delete, rollback, compact) becomes an operation queued with a future. One
writer task takes everything queued, hops to a worker thread ONCE, and runs the whole batch in
one ``BEGIN IMMEDIATE`` transaction on a dedicated ``sqlite3`` connection::

    BEGIN IMMEDIATE
      ... set a ...                    (reads, checks, then writes)
      ... set b: CAS conflict ...      refused before it wrote anything -> only b fails
      ... delete c ...
    COMMIT                              (synchronous=FULL: on disk before any future resolves)

Every refusal (version conflict, quota, namespace bytes, missing key, bad revision) is checked
before an operation writes its first row, so a refused operation leaves nothing to undo and needs
no savepoint: a set costs four statements (read the current row, insert the revision, the event
and the current row). Only a statement failing midway (disk full, I/O error) could leave an
operation half written; then the whole transaction is rolled back and the batch runs again with a
savepoint around each operation, so that only the failing operation fails.

While a batch commits, new operations queue for the next one. Each operation reads the state
left by the operations before it in the same transaction, so limits, versions and revisions hold
exactly under any concurrency, and revisions follow commit order because there is one writer.

Reads
=====

WAL lets readers run beside the writer without waiting for it. Primary-key reads (current
``get``, ``info``, ``resolve``, a point-in-time ``get``) run synchronously on the event loop with
a plain autocommit connection: a seek costs microseconds, less than a thread hop. Page reads
and scans (``list``, ``history``, ``stats``) run in a worker thread on pooled connections. Every
read uses autocommit statements or a short explicit transaction, so no stale snapshot is ever
left open.

A point-in-time read never replays the log: the key at ``R`` is one seek on the index
``events_by_key (namespace, key, revision)`` and one on the event's row; a list at ``R`` walks
the distinct keys with next-key seeks and does one seek per key; a timestamp becomes a revision
through ``revisions_by_time``. The events table itself is in commit order (migration 0002): a
batch's new events share a few pages at its end instead of dirtying one page per key written.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread

from ..errors import BotWireServerError, InvalidInput, Unavailable
from ..settings import Limits
from .base import (
    NO_PROVENANCE,
    AsOf,
    Changes,
    Clock,
    Committed,
    Current,
    Event,
    Item,
    NamespaceInfo,
    Plan,
    Provenance,
    Recorded,
    RevertResult,
    RollbackResult,
    Stats,
    Store,
    StoredOutcome,
    TokenRecord,
    TokenState,
    Usage,
    Write,
    check_after,
    check_limit,
    check_revision,
    decoded,
    outcome_of,
    owned_bytes,
    plan_commit,
    plan_restore,
    replay,
    revert_writes,
    rollback_writes,
    system_clock,
    to_micros,
    tokens_of,
    visible,
)
from .migrations import migration_files
from .sqlite_sql import (
    CODES,
    CURRENT_COLUMNS,
    EVENT_COLUMNS,
    OPS,
    Moment,
    NsRow,
    connect,
    current_item,
    event,
    item_at,
    list_at,
    list_current,
    ns_row,
    prefix_end,
    resolve,
    split_statements,
    translate,
    translated,
)

T = TypeVar("T")
R = TypeVar("R", Committed, RollbackResult, RevertResult)


def sqlite_path(url: str) -> Path:
    """``sqlite:///./data/x.db`` -> ``./data/x.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``;
    anything without the scheme is a plain file path."""
    for scheme in ("sqlite:///", "sqlite://"):
        if url.startswith(scheme):
            return Path(url[len(scheme) :])
    return Path(url)


# Only keys written after a rollback's target can differ from their state at it. Without the
# hint the planner prefers walking the primary key (keys come out sorted), which reads every
# event of the namespace instead of only those after the target.
GET_CURRENT = f"SELECT {CURRENT_COLUMNS} FROM current WHERE namespace = ? AND key = ?"
GET_ROW = (
    "SELECT value, version, created_revision, created_at, expires_at, token_id FROM current"
    " WHERE namespace = ? AND key = ?"
)
KEYS_OWNED = "SELECT key FROM current WHERE namespace = ? AND token_id IS NOT NULL"
GET_USAGE = "SELECT quota_day, writes, live_bytes FROM token_usage WHERE token_id = ?"

CHANGED_SINCE = (
    "SELECT key FROM events INDEXED BY events_by_revision WHERE namespace = ? AND revision > ?"
)
# The keys a run wrote, each with the revision of its first write (the run index).
RUN_KEYS = (
    "SELECT key, min(revision) FROM events INDEXED BY events_by_run"
    " WHERE namespace = ? AND run = ? GROUP BY key"
)
# Whether anyone but the run wrote the key after its first write (expiries are no writes).
WRITTEN_BY_OTHERS = (
    "SELECT 1 FROM events INDEXED BY events_by_key WHERE namespace = ? AND key = ?"
    " AND revision > ? AND op <> 3 AND run IS NOT ? LIMIT 1"
)
GET_OUTCOME = (
    "SELECT fingerprint, status, result, expires_at FROM idempotency"
    " WHERE namespace = ? AND key = ?"
)
OUTCOME_FIELDS = ("fingerprint", "status", "result", "expires_at")

# A key can also differ from its state at the target without a later event: its TTL passed
# and the sweeper has not yet appended its expire event.
EXPIRED_UNSWEPT = (
    "SELECT key FROM current WHERE namespace = ? AND expires_at IS NOT NULL AND expires_at <= ?"
)


# Store.dump: one page in (revision, key) order, on the index events_by_revision.
DUMP = (
    "SELECT revision, key, op, value, created_revision, created_at, at, expires_at,"
    " actor, run, agent, reason FROM events INDEXED BY events_by_revision WHERE namespace = ?"
    " AND (revision > ? OR (revision = ? AND key > ?)) ORDER BY revision, key LIMIT ?"
)
LAST_EVENT_OF_KEY = (
    "SELECT revision FROM events WHERE namespace = ? AND key = ? ORDER BY revision DESC LIMIT 1"
)
RESTORE_TABLES = (
    ("events", "namespace"),
    ("revisions", "namespace"),
    ("current", "namespace"),
    ("namespaces", "name"),
)


class _OpFailed(Exception):
    """A statement of an op failed in a batch run without savepoints."""


class _Batch:
    """One write transaction. Namespace rows are read once per batch and written back once at
    its end: an op updates the cached row only after every statement of it succeeded, so an op
    rolled back to its savepoint leaves no trace here either."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._rows: dict[str, NsRow] = {}
        self._dirty: set[str] = set()
        self.heads: dict[str, int] = {}  # namespaces this transaction wrote -> their new head

    def ns(self, namespace: str) -> NsRow:
        row = self._rows.get(namespace)
        if row is None:
            row = self._rows[namespace] = ns_row(self.conn, namespace)
        return row

    def put(self, namespace: str, row: NsRow) -> None:
        self._rows[namespace] = row
        self._dirty.add(namespace)

    def flush(self) -> None:
        for name in self._dirty:
            row = self._rows[name]
            self.conn.execute(
                "INSERT INTO namespaces (name, revision, oldest_revision, live_keys, live_bytes,"
                " last_at, quota_day, quota_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET revision = excluded.revision,"
                " oldest_revision = excluded.oldest_revision, live_keys = excluded.live_keys,"
                " live_bytes = excluded.live_bytes, last_at = excluded.last_at,"
                " quota_day = excluded.quota_day, quota_used = excluded.quota_used",
                (name, row.revision, row.oldest, row.live_keys, row.live_bytes, row.last_at)
                + (row.quota_day, row.quota_used),
            )


class SQLiteStore(Store):
    # Page reads (lists, history, snapshots) in worker threads at once. Each pooled connection
    # keeps its own page cache (up to 2 MiB), so the bound also bounds memory: without it the
    # pool grew with the number of page reads ever in flight together.
    READ_THREADS = 4

    def __init__(
        self, path: Path | str, *, limits: Limits | None = None, clock: Clock = system_clock
    ) -> None:
        super().__init__(limits=limits, clock=clock)
        self.path = Path(path)
        self.batches_committed = 0  # transactions the writer committed; group commit keeps it low
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None  # event loop thread only
        self._pool: list[sqlite3.Connection] = []  # idle connections for threaded reads
        self._reading = 0  # threaded reads in flight (GET /metrics)
        self._read_slots = asyncio.Semaphore(self.READ_THREADS)
        self._queue: list[tuple[Callable[[_Batch], Any], asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._write_limiter: anyio.CapacityLimiter | None = None
        self._closing = False

    # -- life cycle ------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        return await anyio.to_thread.run_sync(self._migrate)

    def _migrate(self) -> list[str]:
        applied: list[str] = []
        with translated(self.path):
            conn = connect(self.path, writer=True)
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
                )
                for name, sql in migration_files("sqlite"):
                    # The check runs inside the write lock, so two processes migrating the same
                    # file at once apply each migration exactly once.
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        done = conn.execute(
                            "SELECT 1 FROM schema_migrations WHERE name = ?", (name,)
                        ).fetchone()
                        if not done:
                            for statement in split_statements(sql):
                                conn.execute(statement)
                            conn.execute(
                                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                                (name, system_clock()),
                            )
                            applied.append(name)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
            finally:
                conn.close()
        return applied

    async def open(self) -> None:
        with translated(self.path):
            writer = connect(self.path, writer=True)
            try:
                self._reader = connect(self.path, writer=False)
            except BaseException:
                writer.close()
                raise
            self._writer = writer
        self._closing = False
        # The writer's own thread token: pages read in worker threads must never make a
        # batch wait for a free thread.
        self._write_limiter = anyio.CapacityLimiter(1)
        self._wake = asyncio.Event()  # bound to the loop that opens the store
        self._read_slots = asyncio.Semaphore(self.READ_THREADS)
        self._writer_task = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._writer_task is not None:
            await self._writer_task  # drains every queued write first
            self._writer_task = None
        for conn in [self._writer, self._reader, *self._pool]:
            if conn is not None:
                conn.close()
        self._writer = self._reader = None
        self._pool.clear()

    def usage(self) -> Usage:
        return Usage(
            queue_depth=len(self._queue),
            pool_used=self._reading,
            pool_idle=len(self._pool),
            pool_max=self.READ_THREADS,
        )

    async def ping(self) -> None:
        with translated(self.path):
            self._read_conn().execute("SELECT count(*) FROM schema_migrations").fetchone()

    # -- the writer ---------------------------------------------------------------------------

    async def _submit(self, op: Callable[[_Batch], T]) -> T:
        if self._closing or self._writer_task is None:
            raise Unavailable(
                "The server is shutting down and accepts no more writes.", code="shutting_down"
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        self._wake.set()
        return cast(T, await future)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                if self._closing:
                    return
                continue
            batch, self._queue = self._queue, []
            try:
                outcomes, heads = await anyio.to_thread.run_sync(
                    self._run_batch, [op for op, _ in batch], limiter=self._write_limiter
                )
            except Exception as exc:  # the whole batch failed; nothing of it committed
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                self._wake.set()
                continue
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # the caller gave up waiting; the write stands regardless
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            for namespace, head in heads.items():
                self.notify(namespace, head)
            self._wake.set()  # operations queued meanwhile form the next batch

    def _run_batch(
        self, ops: list[Callable[[_Batch], Any]]
    ) -> tuple[list[tuple[bool, Any]], dict[str, int]]:
        """Run in a worker thread: every op in one transaction. Ops raise refusals before their
        first write, so none needs a savepoint unless a statement fails midway; then the batch
        runs again with one savepoint per op."""
        conn = self._writer
        if conn is None:
            raise Unavailable("The SQLite store is closed.", code="shutting_down")
        with translated(self.path):
            try:
                outcomes, heads = self._transaction(conn, ops, savepoints=False)
            except _OpFailed:
                outcomes, heads = self._transaction(conn, ops, savepoints=True)
        self.batches_committed += 1
        return outcomes, heads

    def _transaction(
        self, conn: sqlite3.Connection, ops: list[Callable[[_Batch], Any]], *, savepoints: bool
    ) -> tuple[list[tuple[bool, Any]], dict[str, int]]:
        outcomes: list[tuple[bool, Any]] = []
        batch = _Batch(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                if not savepoints:
                    try:
                        outcomes.append((True, op(batch)))
                    except BotWireServerError as exc:  # refused before writing anything
                        outcomes.append((False, exc))
                    except sqlite3.Error as exc:  # maybe half written: undo it all, retry
                        raise _OpFailed from exc
                    continue
                conn.execute("SAVEPOINT op")
                heads = dict(batch.heads)
                try:
                    outcomes.append((True, op(batch)))
                except (BotWireServerError, sqlite3.Error) as exc:
                    if not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back: fail the batch
                    conn.execute("ROLLBACK TO op")
                    batch.heads = heads
                    if isinstance(exc, sqlite3.Error):
                        exc = translate(exc, self.path)
                    outcomes.append((False, exc))
                conn.execute("RELEASE op")
            batch.flush()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes, batch.heads

    # -- write operations (run inside the batch transaction) ----------------------------------

    @staticmethod
    def _rows(
        conn: sqlite3.Connection, namespace: str, keys: Sequence[str]
    ) -> dict[str, Current | None]:
        """The current rows of ``keys`` as stored (expired or not)."""
        rows: dict[str, Current | None] = {}
        for key in keys:
            row = conn.execute(GET_ROW, (namespace, key)).fetchone()
            rows[key] = None if row is None else Current(bytes(row[0]), *row[1:])
        return rows

    @staticmethod
    def _usage(
        conn: sqlite3.Connection, rows: Mapping[str, Current | None], meta: Provenance
    ) -> dict[str, TokenState]:
        """The usage rows of the tokens a commit may change (``base.tokens_of``)."""
        usage: dict[str, TokenState] = {}
        for token in tokens_of(rows, meta):
            row = conn.execute(GET_USAGE, (token,)).fetchone()
            if row is not None:
                usage[token] = TokenState(*row)
        return usage

    def _store_plan(self, batch: _Batch, namespace: str, plan: Plan) -> Committed:
        """Write ``plan`` (from ``base.plan_commit``): the revision, its events, the current
        rows and the namespace row. Statements only: every rule was applied by the plan."""
        if not plan.events:
            return plan.committed()
        conn, revision, at = batch.conn, plan.revision, plan.at
        conn.execute(
            "INSERT INTO revisions (namespace, revision, at) VALUES (?, ?, ?)",
            (namespace, revision, at),
        )
        meta = plan.meta
        stamp = (meta.actor, meta.run, meta.agent, meta.reason)
        conn.executemany(
            "INSERT INTO events (namespace, key, revision, op, value, created_revision,"
            " created_at, at, expires_at, actor, run, agent, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (namespace, p.key, revision, CODES[p.op], p.value, p.created_revision)
                + (p.created_at, at, p.expires_at)
                + stamp
                for p in plan.events
            ],
        )
        removed = [(namespace, p.key) for p in plan.events if p.op != "set"]
        if removed:
            conn.executemany("DELETE FROM current WHERE namespace = ? AND key = ?", removed)
        stored = [
            (namespace, p.key, p.value, revision, p.created_revision, p.created_at, at)
            + (p.expires_at, meta.actor_id)
            for p in plan.events
            if p.op == "set"
        ]
        if stored:
            conn.executemany(
                "INSERT INTO current (namespace, key, value, version, created_revision,"
                " created_at, updated_at, expires_at, token_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,"
                " version = excluded.version, created_revision = excluded.created_revision,"
                " created_at = excluded.created_at, updated_at = excluded.updated_at,"
                " expires_at = excluded.expires_at, token_id = excluded.token_id",
                stored,
            )
        if plan.tokens:
            conn.executemany(
                "INSERT INTO token_usage (token_id, quota_day, writes, live_bytes)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (token_id) DO UPDATE SET"
                " quota_day = excluded.quota_day, writes = excluded.writes,"
                " live_bytes = excluded.live_bytes",
                [(t, u.day, u.writes, u.live_bytes) for t, u in sorted(plan.tokens.items())],
            )
        batch.put(namespace, plan.ns)
        batch.heads[namespace] = revision
        return plan.committed()

    def _idempotent(
        self, namespace: str, meta: Provenance, kind: type[R], op: Callable[[_Batch], R]
    ) -> Callable[[_Batch], R]:
        """``op``, or the outcome stored for ``meta``'s idempotency key (``base.replay``); a
        new outcome is stored in the same transaction as ``op``'s writes."""
        idem = meta.idempotency
        if idem is None:
            return op

        def idempotent(batch: _Batch) -> R:
            conn = batch.conn
            row = conn.execute(GET_OUTCOME, (namespace, idem.key)).fetchone()
            stored = (
                None
                if row is None
                else StoredOutcome(**dict(zip(OUTCOME_FIELDS, row, strict=True)))
            )
            now = max(self.clock(), batch.ns(namespace).last_at)
            found = replay(stored, idem, now)
            if found is not None:
                return decoded(found, kind)
            result = op(batch)
            out = outcome_of(idem, result, max(now, batch.ns(namespace).last_at))
            conn.execute(
                "INSERT INTO idempotency (namespace, key, fingerprint, status, result, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, status = excluded.status,"
                " result = excluded.result, expires_at = excluded.expires_at",
                (namespace, idem.key, out.fingerprint, out.status, out.result, out.expires_at),
            )
            return result

        return idempotent

    def _op_commit(
        self, namespace: str, writes: Sequence[Write], meta: Provenance
    ) -> Callable[[_Batch], Committed]:
        def op(batch: _Batch) -> Committed:
            rows = self._rows(batch.conn, namespace, [w.key for w in writes])
            ns = batch.ns(namespace)
            usage = self._usage(batch.conn, rows, meta)
            plan = plan_commit(self.limits, ns, writes, rows, self.clock(), meta=meta, tokens=usage)
            return self._store_plan(batch, namespace, plan)

        return self._idempotent(namespace, meta, Committed, op)

    def _op_revert(
        self, namespace: str, run: str, dry_run: bool, meta: Provenance
    ) -> Callable[[_Batch], RevertResult]:
        def op(batch: _Batch) -> RevertResult:
            conn = batch.conn
            ns = batch.ns(namespace)
            now = max(self.clock(), ns.last_at)
            touched = {key: first for key, first in conn.execute(RUN_KEYS, (namespace, run))}

            def others(key: str, first: int) -> bool:
                return (
                    conn.execute(WRITTEN_BY_OTHERS, (namespace, key, first, run)).fetchone()
                    is not None
                )

            def current(k: str) -> Item | None:
                row = conn.execute(GET_CURRENT, (namespace, k)).fetchone()
                item = current_item(row) if row else None
                return item if item is not None and visible(item.expires_at, now) else None

            changes, skipped, writes = revert_writes(
                touched,
                others,
                lambda k, first: item_at(conn, namespace, k, first - 1),
                current,
                now,
                ns.oldest,
            )
            if not changes or dry_run:
                return RevertResult(ns.revision, changes, skipped, dry_run)
            rows = self._rows(conn, namespace, [w.key for w in writes])
            usage = self._usage(conn, rows, meta)
            plan = plan_commit(self.limits, ns, writes, rows, now, cost=1, meta=meta, tokens=usage)
            revision = self._store_plan(batch, namespace, plan).revision
            return RevertResult(revision, changes, skipped, False)

        return self._idempotent(namespace, meta, RevertResult, op)

    def _op_rollback(
        self,
        namespace: str,
        to: int | datetime,
        key: str | None,
        dry_run: bool,
        meta: Provenance,
    ) -> Callable[[_Batch], RollbackResult]:
        def op(batch: _Batch) -> RollbackResult:
            conn = batch.conn
            ns = batch.ns(namespace)
            target = resolve(conn, namespace, ns, to)
            # "Now" is the commit time the rollback gets, at which plan_commit judges TTLs too.
            now = max(self.clock(), ns.last_at)
            if key is not None:
                keys = [key]
            else:
                changed = {row[0] for row in conn.execute(CHANGED_SINCE, (namespace, target))}
                changed.update(row[0] for row in conn.execute(EXPIRED_UNSWEPT, (namespace, now)))
                keys = sorted(changed)
            moment = Moment(conn, namespace, target)

            def current(k: str) -> Item | None:
                row = conn.execute(GET_CURRENT, (namespace, k)).fetchone()
                item = current_item(row) if row else None
                return item if item is not None and visible(item.expires_at, now) else None

            changes, writes = rollback_writes(
                keys, lambda k: item_at(conn, namespace, k, target, moment), current, now
            )
            if not changes or dry_run:
                return RollbackResult(ns.revision, changes, dry_run)
            rows = self._rows(conn, namespace, [w.key for w in writes])
            usage = self._usage(conn, rows, meta)
            plan = plan_commit(self.limits, ns, writes, rows, now, cost=1, meta=meta, tokens=usage)
            return RollbackResult(self._store_plan(batch, namespace, plan).revision, changes, False)

        return self._idempotent(namespace, meta, RollbackResult, op)

    def _op_compact(self, namespace: str, before: int) -> Callable[[_Batch], int]:
        def op(batch: _Batch) -> int:
            ns = batch.ns(namespace)
            check_revision(before, head=ns.revision, oldest=0)
            if before <= ns.oldest:
                return 0
            # Keep each key's newest event at or before the floor when it is a set (it answers
            # reads at the floor) and everything after it; a tombstone or an expiry there
            # answers "absent", which a missing event answers as well. The revisions rows stay:
            # they map times below the floor to revisions, which then raise RevisionCompacted.
            cursor = batch.conn.execute(
                "DELETE FROM events AS e WHERE e.namespace = :ns AND e.revision <= :floor AND ("
                " e.op <> 1 OR e.revision < (SELECT f.revision FROM events AS f"
                "  WHERE f.namespace = :ns AND f.key = e.key AND f.revision <= :floor"
                "  ORDER BY f.revision DESC LIMIT 1))",
                {"ns": namespace, "floor": before},
            )
            batch.put(namespace, replace(ns, oldest=before))
            return cursor.rowcount

        return op

    def _op_restore(
        self,
        namespace: str,
        events: Sequence[Recorded],
        replace: bool,
        finish: tuple[int, int, int],
    ) -> Callable[[_Batch], int]:
        head, head_at, oldest = finish

        def op(batch: _Batch) -> int:
            conn = batch.conn
            # The replaced rows' bytes leave their tokens (all of them when replacing).
            keys = sorted({e.key for e in events})
            every = [r[0] for r in conn.execute(KEYS_OWNED, (namespace,))] if replace else []
            freed = owned_bytes(self._rows(conn, namespace, sorted({*keys, *every})))
            if replace:
                for table, column in RESTORE_TABLES:
                    conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (namespace,))
                batch.put(namespace, NsRow())
            for e in events:
                stored = conn.execute(LAST_EVENT_OF_KEY, (namespace, e.key)).fetchone()
                if stored is not None and stored[0] >= e.revision:
                    raise InvalidInput(
                        f"Event {e.key!r} at revision {e.revision} is stored already.",
                        code="invalid_body",
                    )
            conn.executemany(
                "UPDATE token_usage SET live_bytes = max(0, live_bytes - ?) WHERE token_id = ?",
                [(size, token) for token, size in sorted(freed.items())],
            )
            ns = batch.ns(namespace)
            state, after = plan_restore(
                ns,
                events,
                self._rows(conn, namespace, keys),
                head=head,
                head_at=head_at,
                oldest=oldest,
            )
            times = {e.revision: e.at for e in events}
            if head > max(times, default=0):
                times[head] = head_at
            conn.executemany(
                "INSERT INTO revisions (namespace, revision, at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(namespace, revision, at) for revision, at in times.items()],
            )
            conn.executemany(
                "INSERT INTO events (namespace, key, revision, op, value, created_revision,"
                " created_at, at, expires_at, actor, run, agent, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (namespace, e.key, e.revision, CODES[e.op], e.value, e.created_revision)
                    + (e.created_at, e.at, e.expires_at, e.actor, e.run, e.agent, e.reason)
                    for e in events
                ],
            )
            updated = {e.key: e.at for e in events}
            conn.executemany(
                "DELETE FROM current WHERE namespace = ? AND key = ?",
                [(namespace, k) for k, row in after.items() if row is None],
            )
            conn.executemany(
                "INSERT INTO current (namespace, key, value, version, created_revision,"
                " created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,"
                " version = excluded.version, created_revision = excluded.created_revision,"
                " created_at = excluded.created_at, updated_at = excluded.updated_at,"
                " expires_at = excluded.expires_at, token_id = NULL",  # no token's bytes
                [
                    (namespace, k, r.value, r.version, r.created_revision, r.created_at)
                    + (updated[k], r.expires_at)
                    for k, r in after.items()
                    if r is not None
                ],
            )
            batch.put(namespace, state)
            if events or head:
                batch.heads[namespace] = state.revision
            return state.revision

        return op

    async def _commit(self, namespace: str, writes: Sequence[Write], meta: Provenance) -> Committed:
        return await self._submit(self._op_commit(namespace, writes, meta))

    async def dump(
        self, namespace: str, *, after: tuple[int, str] = (-1, ""), limit: int = 1000
    ) -> Sequence[Recorded]:
        check_limit(limit)

        def work(conn: sqlite3.Connection) -> list[Recorded]:
            rows = conn.execute(DUMP, (namespace, after[0], after[0], after[1], limit))
            return [
                Recorded(
                    revision=revision,
                    at=at,
                    key=key,
                    op=OPS[op],
                    value=None if value is None else bytes(value),
                    expires_at=expires_at,
                    created_revision=created_revision if op == 1 else 0,
                    created_at=created_at if op == 1 else 0,
                    actor=actor,
                    run=run,
                    agent=agent,
                    reason=reason,
                )
                for (
                    revision, key, op, value, created_revision, created_at, at, expires_at,
                    actor, run, agent, reason,
                ) in rows
            ]  # fmt: skip

        return await self._in_thread(work)

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
        return await self._submit(
            self._op_restore(namespace, list(events), replace, (head, head_at, oldest))
        )

    async def rollback(
        self,
        namespace: str,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RollbackResult:
        if isinstance(to, datetime):
            to_micros(to)  # a naive datetime is the caller's error, before any queueing
        return await self._submit(self._op_rollback(namespace, to, key, dry_run, meta))

    async def revert_run(
        self,
        namespace: str,
        run: str,
        *,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RevertResult:
        return await self._submit(self._op_revert(namespace, run, dry_run, meta))

    async def run_events(
        self, namespace: str, run: str, *, after: tuple[int, str] | None = None, limit: int = 100
    ) -> Sequence[Event]:
        check_limit(limit)
        revision, key = after if after is not None else (0, "")

        def work(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events INDEXED BY events_by_run"
                " WHERE namespace = ? AND run = ? AND (revision > ? OR (revision = ? AND key > ?))"
                " ORDER BY revision, key LIMIT ?",
                (namespace, run, revision, revision, key, limit),
            )
            return [event(row) for row in rows]

        return await self._in_thread(work)

    async def purge_idempotency(self, *, now: int, limit: int = 1000) -> int:
        def op(batch: _Batch) -> int:
            cursor = batch.conn.execute(
                "DELETE FROM idempotency WHERE (namespace, key) IN (SELECT namespace, key"
                " FROM idempotency WHERE expires_at <= ? LIMIT ?)",
                (now, limit),
            )
            return cursor.rowcount

        return await self._submit(op)

    async def compact(self, namespace: str, *, before: int) -> int:
        return await self._submit(self._op_compact(namespace, before))

    async def due_expiries(self, *, limit: int = 1000) -> Sequence[tuple[str, str, int]]:
        now = self.clock()

        def work(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
            rows = conn.execute(
                "SELECT namespace, key, version FROM current INDEXED BY current_by_expiry"
                " WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?",
                (now, limit),
            )
            return [(ns, key, version) for ns, key, version in rows]

        return await self._in_thread(work)

    # -- reads --------------------------------------------------------------------------------

    def _read_conn(self) -> sqlite3.Connection:
        if self._reader is None:
            raise Unavailable("The SQLite store is not open.", code="database_unavailable")
        return self._reader

    @contextlib.contextmanager
    def _snapshot(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A short read transaction: several statements see one committed state."""
        with translated(self.path):
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    async def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        self._read_conn()  # refuse when closed
        async with self._read_slots:
            conn = self._pool.pop() if self._pool else None
            self._reading += 1

            def run() -> T:
                nonlocal conn
                with translated(self.path):
                    if conn is None:
                        conn = connect(self.path, writer=False)
                with self._snapshot(conn):
                    return work(conn)

            try:
                return await anyio.to_thread.run_sync(run)
            finally:
                self._reading -= 1
                if conn is not None:
                    if self._reader is None:
                        conn.close()  # closed meanwhile
                    else:
                        self._pool.append(conn)

    async def get(self, namespace: str, key: str, *, as_of: AsOf = None) -> Item | None:
        conn = self._read_conn()
        if as_of is None:
            # The busiest read: a constant statement text (sqlite3 caches the prepared
            # statement by it) and a plain try instead of the translating context manager.
            try:
                row = conn.execute(GET_CURRENT, (namespace, key)).fetchone()
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc
            if row is None or (row[6] is not None and row[6] <= self.clock()):
                return None
            return current_item(row)
        with self._snapshot(conn):
            revision = resolve(conn, namespace, ns_row(conn, namespace), as_of)
            return item_at(conn, namespace, key, revision)

    async def get_many(
        self, namespace: str, keys: Sequence[str], *, as_of: AsOf = None
    ) -> tuple[int, dict[str, Item | None]]:
        now = self.clock()

        def work(conn: sqlite3.Connection) -> tuple[int, dict[str, Item | None]]:
            ns = ns_row(conn, namespace)
            items: dict[str, Item | None] = {}
            if as_of is None:
                for key in keys:
                    row = conn.execute(GET_CURRENT, (namespace, key)).fetchone()
                    item = current_item(row) if row else None
                    items[key] = item if item and visible(item.expires_at, now) else None
                return ns.revision, items
            revision = resolve(conn, namespace, ns, as_of)
            moment = Moment(conn, namespace, revision)
            for key in keys:
                items[key] = item_at(conn, namespace, key, revision, moment)
            return revision, items

        return await self._in_thread(work)

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
        if isinstance(as_of, datetime):
            to_micros(as_of)
        low, strict = (prefix or "", False)
        if after is not None and after >= low:
            low, strict = after, True
        high = prefix_end(prefix) if prefix else None
        now = self.clock()

        def work(conn: sqlite3.Connection) -> list[Item]:
            if as_of is None:
                return list_current(conn, namespace, low, strict, high, limit, now)
            ns = ns_row(conn, namespace)
            revision = resolve(conn, namespace, ns, as_of)
            return list_at(conn, namespace, low, strict, high, limit, revision)

        return await self._in_thread(work)

    async def history(
        self, namespace: str, key: str, *, before: int | None = None, limit: int = 100
    ) -> Sequence[Event]:
        check_limit(limit)
        ceiling = before if before is not None else 2**62

        def work(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events"
                " WHERE namespace = ? AND key = ? AND revision < ? ORDER BY revision DESC LIMIT ?",
                (namespace, key, ceiling, limit),
            )
            return [event(row) for row in rows]

        return await self._in_thread(work)

    async def changes(
        self, namespace: str, *, after: int = 0, limit: int = 100, prefix: str | None = None
    ) -> Changes:
        check_limit(limit)
        high = prefix_end(prefix) if prefix else None

        def work(conn: sqlite3.Connection) -> Changes:
            ns = ns_row(conn, namespace)
            check_after(after, head=ns.revision, oldest=ns.oldest)
            upto = min(ns.revision, after + limit)
            sql = (
                f"SELECT {EVENT_COLUMNS} FROM events"
                " INDEXED BY events_by_revision"
                " WHERE namespace = ? AND revision > ? AND revision <= ?"
            )
            args: list[Any] = [namespace, after, upto]
            if prefix:
                sql += " AND key >= ?"
                args.append(prefix)
                if high is not None:
                    sql += " AND key < ?"
                    args.append(high)
            sql += " ORDER BY revision, key"
            events = [event(row) for row in conn.execute(sql, args)]
            return Changes(ns.revision, events, upto)

        return await self._in_thread(work)

    async def info(self, namespace: str) -> NamespaceInfo:
        conn = self._read_conn()
        with translated(self.path):
            ns = ns_row(conn, namespace)
        return NamespaceInfo(
            namespace,
            ns.revision,
            ns.live_keys,
            ns.live_bytes,
            ns.oldest,
            ns.last_at if ns.revision else None,
        )

    async def resolve(self, namespace: str, as_of: int | datetime) -> int:
        conn = self._read_conn()
        with self._snapshot(conn):
            return resolve(conn, namespace, ns_row(conn, namespace), as_of)

    async def stats(self) -> Stats:
        def work(conn: sqlite3.Connection) -> Stats:
            # A scan of every namespace row: in a thread, not on the event loop.
            row = conn.execute(
                "SELECT coalesce(sum(live_keys), 0), count(*) FILTER (WHERE live_keys > 0),"
                " coalesce(sum(live_bytes), 0) FROM namespaces"
            ).fetchone()
            return Stats(row[0], row[1], row[2])

        return await self._in_thread(work)

    async def list_namespaces(
        self, *, prefix: str | None = None, after: str | None = None, limit: int = 100
    ) -> Sequence[NamespaceInfo]:
        limit = check_limit(limit)

        def work(conn: sqlite3.Connection) -> list[NamespaceInfo]:
            rows = conn.execute(
                "SELECT name, revision, live_keys, live_bytes, oldest_revision, last_at"
                " FROM namespaces WHERE revision > 0 AND name > ? AND substr(name, 1, ?) = ?"
                " ORDER BY name LIMIT ?",
                (after or "", len(prefix or ""), prefix or "", limit),
            )
            return [NamespaceInfo(*row) for row in rows]

        return await self._in_thread(work)

    # -- tokens -------------------------------------------------------------------------------

    async def create_token(self, token: TokenRecord) -> None:
        def op(batch: _Batch) -> None:
            conn = batch.conn
            if conn.execute("SELECT 1 FROM tokens WHERE id = ?", (token.id,)).fetchone():
                raise InvalidInput(f"A token with id {token.id!r} exists already.")
            conn.execute(
                f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _token_row(token),
            )

        await self._submit(op)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        conn = self._read_conn()
        with translated(self.path):
            row = conn.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
        return None if row is None else TokenRecord(**dict(zip(_TOKEN_FIELDS, row, strict=True)))

    async def list_tokens(self) -> Sequence[TokenRecord]:
        def work(conn: sqlite3.Connection) -> list[TokenRecord]:
            rows = conn.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
            ).fetchall()
            return [TokenRecord(**dict(zip(_TOKEN_FIELDS, row, strict=True))) for row in rows]

        return await self._in_thread(work)

    async def revoke_token(self, token_id: str, *, at: int) -> TokenRecord | None:
        def op(batch: _Batch) -> None:
            batch.conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, token_id),
            )

        await self._submit(op)
        return await self.get_token(token_id)

    async def touch_token(self, token_id: str, *, at: int) -> None:
        def op(batch: _Batch) -> None:
            batch.conn.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (at, token_id))

        await self._submit(op)


_TOKEN_FIELDS = TokenRecord.__struct_fields__
_TOKEN_COLUMNS = ", ".join(_TOKEN_FIELDS)


def _token_row(token: TokenRecord) -> tuple[Any, ...]:
    return tuple(getattr(token, name) for name in _TOKEN_FIELDS)
