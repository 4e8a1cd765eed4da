"""The PostgreSQL store: the revision model of ``base`` for many server processes on one database.

Several stateless servers share one PostgreSQL database. They agree on everything through it:

Ordering. A write transaction first locks its namespace's row in ``namespaces``
(``SELECT ... FOR UPDATE``; the row is created by ``INSERT ... ON CONFLICT DO NOTHING`` on the
first write). The row holds the head revision, the live size and the day's write count, so the
lock serialises every writer of one namespace, in every process, and the next revision, the
``expected_version`` check and the quota are all decided under it. Writers to different
namespaces never wait for each other.

Why revisions must follow commit order, and not merely be unique: a reader that has seen
revision N (a ``GET`` answered with version N, a snapshot at head N) must never afterwards see
a commit with a revision below N appear. Were revisions handed out by a sequence outside the
lock, writer A could take 7, writer B take 8 and commit first; a reader would then see head 8,
read "as of 8" without A's write, and later find A's revision 7 inserted underneath: the state
"as of 8" would have changed after the fact, point-in-time reads would not be repeatable, and a
rollback to 8 computed before A committed would restore a state that never existed. Holding the
namespace row lock from "read head" to COMMIT makes the order in which revisions are assigned
the order in which they become visible.

A second subtlety: after waiting for the lock, ``SELECT ... FOR UPDATE`` returns the newest
version of the locked row, but columns joined in from other tables would come from the
statement's older snapshot. The key's current row is therefore read by a separate statement
after the lock is held (READ COMMITTED takes a fresh snapshot per statement).

Time. Commit times come from the application's clock (``clock``, injectable for tests), not the
database's: the conformance suite drives a fake clock, and the rule "never backwards within a
namespace" is enforced under the row lock as ``max(now, last_at)``, which also absorbs clock
skew between replicas. Run replicas with synchronised clocks (NTP); a replica whose clock runs
ahead drags the namespace's commit times forward, never backward.

Failures. Driver and OS errors are translated in exactly one place
(``postgres_errors.translate``): unreachable, lost or refused connections, timeouts and statement
timeouts become ``Unavailable`` (503), a full disk ``DiskFull`` (507); a lock wait past
``lock_timeout`` or no free connection within the acquire timeout become ``Unavailable`` that
says "overloaded", never "unreachable". Connects and pool acquisition have short timeouts so
that requests fail fast during an outage. When a connection turns out to be dead before anything
was committed, the pool's connections are expired and the operation is retried once on a fresh
connection, so the first requests after PostgreSQL comes back succeed instead of each meeting
one dead pooled connection. A connection lost during COMMIT (or while a write statement, which
commits by itself, was running) is not retried: the write may have been applied, and the error
says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from ..errors import BatchConflict, BotWireServerError, InvalidInput, Unavailable
from ..settings import Limits, Settings
from . import postgres_sql as queries
from .base import (
    DAY_MICROS,
    NO_PROVENANCE,
    Applied,
    AsOf,
    Changes,
    Clock,
    Committed,
    Current,
    Event,
    EventOp,
    Item,
    NamespaceInfo,
    Provenance,
    Recorded,
    RevertResult,
    RollbackResult,
    Stats,
    Store,
    StoredOutcome,
    TokenRecord,
    Usage,
    Write,
    check_after,
    check_limit,
    check_namespace_bytes,
    check_revision,
    check_token_bytes,
    decoded,
    outcome_of,
    owned_bytes,
    plan_restore,
    quota_after,
    replay,
    revert_writes,
    rollback_writes,
    system_clock,
    to_micros,
    token_quota_exceeded,
    visible,
)
from .migrations import migration_files
from .postgres_errors import CommitLost, connection_lost, not_applied, translate
from .postgres_groups import GetGroup, Head, Outcome, Plain, Queued, WriteWork
from .postgres_pool import Lender

T = TypeVar("T")
R = TypeVar("R", Committed, RollbackResult, RevertResult)
Work = Callable[[Any], Awaitable[T]]

# pg_advisory_lock key held while migrating ("botwire" in ASCII), so that servers starting at
# once on an empty database apply each migration exactly once.
MIGRATION_LOCK = 0x626F7477697265

SET, DELETE, EXPIRE, CHECK = 1, 2, 3, 4
_CODES = {"set": SET, "delete": DELETE, "expire": EXPIRE, "check": CHECK}
# Most writes one group commit applies in one statement. A group of sets and deletes is one
# round trip whatever its size; this bounds how long it holds the namespace row lock.
MAX_GROUP = 256
# Most gets one grouped read answers with one statement.
MAX_READ_GROUP = 128
# Status codes of the botwire_commit function (migrations/postgres/0003_commit_function.sql).
# 6 and 7: the writer's token is over its bytes or its day's writes (migration 0006).
_DONE, _CONFLICT, _FULL, _QUOTA, _REFUSED, _TOKEN_FULL, _TOKEN_QUOTA = 0, 1, 3, 4, 5, 6, 7
_OPS: dict[int, EventOp] = {SET: "set", DELETE: "delete", EXPIRE: "expire"}


async def _reset(conn: Any) -> None:
    """Return a connection to the pool without asyncpg's default reset round trip: the store
    keeps no session state (no SET, LISTEN or session advisory lock on pooled connections)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _settle(future: asyncio.Future[None], *_: Any) -> None:
    if not future.done():
        future.set_result(None)


def _event(row: Any, key: str) -> Event:
    return Event(
        row["revision"],
        key,
        _OPS[row["op"]],
        row["value"],
        row["at"],
        row["expires_at"],
        row["actor"],
        row["run"],
        row["agent"],
        row["reason"],
    )


def _item(row: Any) -> Item:
    return Item(
        row["key"],
        row["value"],
        row["version"],
        row["created_revision"],
        row["created_at"],
        row["updated_at"],
        row["expires_at"],
    )


class PostgresStore(Store):
    """A ``Store`` on PostgreSQL through an asyncpg pool. See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        settings: Settings | None = None,
        limits: Limits | None = None,
        clock: Clock = system_clock,
        connect_timeout: float = 5.0,
        acquire_timeout: float = 10.0,
        group_commit: bool = True,
    ) -> None:
        self.settings = settings or Settings(database_url=url)
        super().__init__(limits=limits or self.settings.limits, clock=clock)
        self.url = url
        self.connect_timeout = connect_timeout
        self.acquire_timeout = acquire_timeout
        self.group_commit = group_commit
        self._pool: Any = None
        self._lender: Lender | None = None
        # Group commit: writes waiting for their namespace, and the task committing them.
        self._queues: dict[str, list[Queued | Plain]] = {}
        self._committers: dict[str, asyncio.Task[None]] = {}
        # Grouped gets: the group still taking keys while it waits for a connection.
        self._get_group: GetGroup | None = None
        self._read_tasks: set[asyncio.Task[None]] = set()  # referenced while they run
        # Commits of other server processes reach the listeners through LISTEN on a
        # connection of its own (see _listen).
        self._listen_task: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def _server_settings(self) -> dict[str, str]:
        ms = self.settings.statement_timeout_ms
        out = {"application_name": "botwire"}
        if ms:
            out["statement_timeout"] = str(ms)
            # A write first waits for its namespace's row lock, which other servers' groups of
            # writes hold in turn. Giving up on that wait a little before the statement timeout
            # tells "too much contention, retry" apart from "a statement ran too long".
            out["lock_timeout"] = str(max(1, ms * 4 // 5))
            # A server that stalls inside a transaction would hold its namespace's row lock;
            # PostgreSQL ends such a session instead of letting every writer queue behind it.
            out["idle_in_transaction_session_timeout"] = str(max(2 * ms, 10_000))
        return out

    def _command_timeout(self) -> float | None:
        # A client-side bound for when the network eats packets and the server-side statement
        # timeout can never be reported back.
        ms = self.settings.statement_timeout_ms
        return ms / 1000 + self.connect_timeout if ms else None

    async def migrate(self) -> list[str]:
        async def work() -> list[str]:
            conn = await asyncpg.connect(
                self.url,
                timeout=self.connect_timeout,
                # Told apart from the pool's connections in pg_stat_activity.
                server_settings={"application_name": "botwire-migrate"},
            )
            try:
                # Session lock: a second server starting at the same moment waits here, then
                # finds every migration applied.
                await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
                try:
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " name text PRIMARY KEY,"
                        " applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                    applied = {
                        r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")
                    }
                    done: list[str] = []
                    for name, sql in migration_files("postgres"):
                        if name in applied:
                            continue
                        async with conn.transaction():
                            await conn.execute(sql)
                            await conn.execute(
                                "INSERT INTO schema_migrations (name) VALUES ($1)", name
                            )
                        done.append(name)
                    return done
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
            finally:
                await conn.close()

        try:
            return await work()
        except Exception as exc:
            raise self._translate(exc) from exc

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.settings.pool_min,
                max_size=self.settings.pool_max,
                timeout=self.connect_timeout,
                command_timeout=self._command_timeout(),
                server_settings=self._server_settings(),
                reset=_reset,
            )
        except Exception as exc:
            raise self._translate(exc) from exc
        self._lender = Lender(self._pool, acquire_timeout=self.acquire_timeout)
        self._listen_task = asyncio.create_task(self._listen(), name="postgres-listen")

    async def _listen(self) -> None:
        """Relay ``NOTIFY botwire_commits`` (sent by ``botwire_commit`` at every commit, from
        any server process) to the listeners, reconnecting after any failure. Notifications
        sent while this connection is down are not replayed: watchers also re-read the feed
        at every keep-alive, so a lost notification delays an event, never loses it."""

        def relay(conn: Any, pid: int, channel: str, payload: str) -> None:
            head, _, namespace = payload.partition(" ")
            self.notify(namespace, int(head))

        delay = 0.1
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(
                    self.url,
                    timeout=self.connect_timeout,
                    server_settings={"application_name": "botwire-listen"},
                )
                lost = asyncio.get_running_loop().create_future()
                conn.add_termination_listener(functools.partial(_settle, lost))
                await conn.add_listener("botwire_commits", relay)
                delay = 0.1
                await lost
            except asyncio.CancelledError:
                if conn is not None:
                    await asyncio.shield(conn.close(timeout=2))
                raise
            except Exception:
                pass
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_task
            self._listen_task = None
        # Queued writes are finished, not dropped: their callers are waiting for an answer.
        if self._committers:
            await asyncio.gather(*self._committers.values(), return_exceptions=True)
        pool, self._pool = self._pool, None
        lender, self._lender = self._lender, None
        if pool is None:
            return
        if lender is not None:
            await lender.close()
        try:
            # Waits for operations in flight to release their connections.
            await asyncio.wait_for(pool.close(), self.settings.shutdown_timeout)
        except (TimeoutError, Exception):
            pool.terminate()

    def usage(self) -> Usage:
        pool, lender = self._pool, self._lender
        if pool is None or lender is None:
            return Usage()
        idle = pool.get_idle_size() + lender.idle
        return Usage(
            queue_depth=sum(len(q) for q in self._queues.values()),
            pool_used=max(0, pool.get_size() - idle),
            pool_idle=idle,
            pool_max=pool.get_max_size(),
        )

    async def ping(self) -> None:
        await self._run(lambda conn: conn.fetchval("SELECT 1"), transaction=False)

    # -- the one place that talks to the pool -----------------------------------------------

    def _translate(self, exc: BaseException) -> BaseException:
        return translate(exc, statement_timeout_ms=self.settings.statement_timeout_ms)

    async def _run(
        self,
        work: Work[T],
        *,
        transaction: bool = True,
        isolation: str = "read_committed",
        readonly: bool = False,
        commits: bool = False,
    ) -> T:
        """Run ``work(conn)`` (in a transaction unless told otherwise), translating errors and
        retrying once on a fresh connection when the connection died before COMMIT.
        ``commits``: ``work`` is one statement that writes and commits on its own (no
        transaction), so a connection lost once it was sent may have applied it."""
        lender = self._lender
        if lender is None:
            raise Unavailable("The PostgreSQL store is not open.", code="shutting_down")
        for attempt in (1, 2):
            committing = False
            try:
                conn = await lender.lend()
                broken = True
                try:
                    if not transaction:
                        committing = commits
                        result = await work(conn)
                    else:
                        async with conn.transaction(isolation=isolation, readonly=readonly):
                            result = await work(conn)
                            committing = True
                    broken = False
                    return result
                except BotWireServerError:
                    broken = False
                    raise
                finally:
                    await lender.give_back(conn, broken=broken)
            except BotWireServerError:
                raise
            except Exception as exc:
                if committing and connection_lost(exc) and not (commits and not_applied(exc)):
                    raise self._translate(CommitLost()) from exc
                if attempt == 1 and connection_lost(exc):
                    # Every pooled connection probably died with this one (a PostgreSQL
                    # restart, a cut network): replace them all, then retry once.
                    await lender.expire()
                    continue
                raise self._translate(exc) from exc
        raise AssertionError("unreachable")

    async def _read(self, work: Work[T]) -> T:
        """A read: ONE statement, outside any transaction (a statement sees one snapshot), so
        one round trip. Reads that must agree with the head resolve it in the same statement."""
        return await self._run(work, transaction=False)

    # -- writes ------------------------------------------------------------------------------
    #
    # Commits (sets, deletes, batches, expiries) are applied by the ``botwire_commit`` function
    # (migration 0003): one statement that takes the namespace row lock, applies a whole group
    # of commits, each as one revision or none, with the rules of ``base`` ("One verb
    # writes"), and commits: ONE round trip per group. ``_outcome`` turns its status codes into
    # results and errors; nothing here restates a rule.
    #
    # Rollback and compaction (rare, and needing Python between statements) are
    # ``work(conn, head)``: run in a transaction holding the namespace's row lock, with
    # ``head`` the namespace row. A rollback computes its writes there and commits them through
    # the same function, inside that transaction.
    #
    # Group commit: commits to one namespace that arrive while its previous group is under way
    # queue up in this process (they hold no connection while they wait) and are applied
    # together, in arrival order; each still gets its own revision, and each caller its own
    # result or error. A namespace's writes are serialised by the row lock anyway, so a round
    # trip per commit would make them wait for each other's flush; measured numbers are in the
    # README.

    async def _write(self, namespace: str, work: WriteWork, *, creates: bool = True) -> Any:
        if not self.group_commit:
            apply = functools.partial(
                self._apply, namespace=namespace, works=[work], creates=creates
            )
            (outcome,) = await self._run(apply)
            return outcome.unwrap()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(namespace, Queued(work, creates, future))
        return await future

    async def _commit(self, namespace: str, writes: Sequence[Write], meta: Provenance) -> Committed:
        if meta.idempotency is not None:
            # The outcome is stored in the commit's transaction, under the namespace lock.
            async def work(conn: Any, head: Head) -> Committed:
                async def commit() -> Committed:
                    args = self._commit_args(namespace, [writes], metas=[meta])
                    return self._outcome(writes, await conn.fetch(queries.COMMIT, *args))

                return await self._idempotent(conn, namespace, head, meta, Committed, commit)

            done: Committed = await self._write(namespace, work)
            if done.written:
                self.notify(namespace, done.revision)
            return done
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        plain = Plain(writes, future, meta)
        if not self.group_commit:
            (outcome,) = await self._apply_plain(namespace, [plain])
            result: Committed = outcome.unwrap()
            return result
        self._enqueue(namespace, plain)
        result = await future
        return result

    async def _idempotent(
        self,
        conn: Any,
        namespace: str,
        head: Head,
        meta: Provenance,
        kind: type[R],
        run: Callable[[], Awaitable[R]],
    ) -> R:
        """``run()``, or the outcome stored for ``meta``'s idempotency key (``base.replay``),
        inside the caller's transaction, which holds the namespace's row lock: a new outcome
        commits with the write, and replicas see one order of each key's requests."""
        idem = meta.idempotency
        if idem is None:
            return await run()
        row = await conn.fetchrow(queries.GET_OUTCOME, namespace, idem.key)
        now = max(self.clock(), head.last_at)
        found = replay(None if row is None else StoredOutcome(**dict(row.items())), idem, now)
        if found is not None:
            return decoded(found, kind)
        result = await run()
        out = outcome_of(idem, result, max(self.clock(), now))
        await conn.execute(
            queries.PUT_OUTCOME,
            namespace,
            idem.key,
            out.fingerprint,
            out.status,
            out.result,
            out.expires_at,
        )
        return result

    def _enqueue(self, namespace: str, queued: Queued | Plain) -> None:
        self._queues.setdefault(namespace, []).append(queued)
        if namespace not in self._committers:
            # A task of its own, not the caller's: a caller that goes away (a client that
            # disconnects) cancels only its own wait, never the writes grouped with it.
            self._committers[namespace] = asyncio.create_task(self._commit_groups(namespace))

    async def _commit_groups(self, namespace: str) -> None:
        try:
            while queue := self._queues.get(namespace):
                # The longest run of plain commits at the head of the queue (up to MAX_GROUP
                # writes) goes in one statement; a rollback or compaction goes alone. Arrival
                # order is kept.
                n = size = 0
                while n < len(queue) and isinstance(queue[n], Plain):
                    item = queue[n]
                    assert isinstance(item, Plain)
                    if n and size + len(item.writes) > MAX_GROUP:
                        break
                    size += len(item.writes)
                    n += 1
                taken = queue[: n or 1]
                del queue[: n or 1]
                group = [q for q in taken if not q.future.done()]
                if not group:
                    continue
                try:
                    if n:
                        plains = [q for q in group if isinstance(q, Plain)]
                        outcomes = await self._apply_plain(namespace, plains)
                    else:
                        works = [q for q in group if isinstance(q, Queued)]
                        apply = functools.partial(
                            self._apply,
                            namespace=namespace,
                            works=[q.work for q in works],
                            creates=any(q.creates for q in works),
                        )
                        outcomes = await self._run(apply)
                except Exception as exc:  # the whole transaction failed: every write in it
                    for q in group:
                        if not q.future.done():
                            q.future.set_exception(exc)
                    continue
                for q, outcome in zip(group, outcomes, strict=True):
                    if not q.future.done():
                        outcome.settle(q.future)
        finally:
            # No await between the loop's last (empty) look at the queue and here, so no write
            # can be queued without a committer.
            if not self._queues.get(namespace):
                self._queues.pop(namespace, None)
            del self._committers[namespace]

    def _commit_args(
        self,
        namespace: str,
        commits: Sequence[Sequence[Write]],
        cost: int | None = None,
        *,
        metas: Sequence[Provenance],
    ) -> tuple[Any, ...]:
        """The arguments of ``botwire_commit`` for ``commits`` (see migrations 0003, 0005, 0006),
        ``metas`` holding each commit's provenance."""
        writes = [(number, w) for number, ws in enumerate(commits, 1) for w in ws]
        limits = self.limits
        return (
            namespace,
            self.clock(),
            limits.writes_per_day or 0,
            limits.namespace_max_bytes or 0,
            [number for number, _ in writes],
            [_CODES[w.op] for _, w in writes],
            [w.key for _, w in writes],
            [w.value for _, w in writes],
            [len(w.key.encode()) for _, w in writes],
            [w.expected_version for _, w in writes],
            [w.ttl for _, w in writes],
            [w.expires_at for _, w in writes],
            [cost] * len(commits),
            [m.actor for m in metas],
            [m.actor_id for m in metas],
            [m.run for m in metas],
            [m.agent for m in metas],
            [m.reason for m in metas],
            limits.token_writes_per_day or 0,
            limits.token_max_bytes or 0,
        )

    async def _apply_plain(self, namespace: str, plains: Sequence[Plain]) -> list[Outcome]:
        """Apply a group of commits with one ``botwire_commit`` call (one round trip, its own
        implicit transaction)."""
        args = self._commit_args(
            namespace, [p.writes for p in plains], metas=[p.meta for p in plains]
        )
        rows = await self._run(
            lambda conn: conn.fetch(queries.COMMIT, *args), transaction=False, commits=True
        )
        outcomes = self._outcomes(namespace, [p.writes for p in plains], rows)
        self._notify_written(namespace, outcomes)
        return outcomes

    def _notify_written(self, namespace: str, outcomes: Sequence[Outcome]) -> None:
        heads = [o.result.revision for o in outcomes if o.error is None and o.result.written]
        if heads:
            self.notify(namespace, max(heads))

    def _outcomes(
        self, namespace: str, commits: Sequence[Sequence[Write]], rows: Sequence[Any]
    ) -> list[Outcome]:
        """Each commit's result or error from the function's rows (one per write, in order)."""
        outcomes: list[Outcome] = []
        at = 0
        for writes in commits:
            mine = rows[at : at + len(writes)]
            at += len(writes)
            try:
                outcomes.append(Outcome(self._outcome(writes, mine), None))
            except BotWireServerError as exc:
                outcomes.append(Outcome(None, exc))
        return outcomes

    def _outcome(self, writes: Sequence[Write], rows: Sequence[Any]) -> Committed:
        """The one place the function's status codes become results and errors. Refusals are
        raised by the checks the other stores use, so that their status, code and message
        are the same."""
        statuses = {row["w_status"] for row in rows}
        if _CONFLICT in statuses:
            raise BatchConflict(
                [
                    (index, w.key, row["w_detail"])
                    for index, (w, row) in enumerate(zip(writes, rows, strict=True))
                    if row["w_status"] == _CONFLICT
                ]
            )
        if _FULL in statuses:
            row = rows[0]
            check_namespace_bytes(self.limits, row["w_detail"], row["w_detail2"])
        if _QUOTA in statuses:
            at = rows[0]["w_at"]
            day = at // DAY_MICROS
            quota_after(
                self.limits, day=day, quota_day=day, quota_used=self.limits.writes_per_day, at=at
            )
        if _TOKEN_FULL in statuses:
            row = rows[0]
            check_token_bytes(self.limits, row["w_detail"], row["w_detail2"])
        if _TOKEN_QUOTA in statuses:
            raise token_quota_exceeded(self.limits, rows[0]["w_at"])
        if statuses != {_DONE}:
            raise AssertionError(f"botwire_commit returned the statuses {statuses}")
        results: list[Applied] = []
        revision = head = rows[0]["w_revision"]
        written = False
        for w, row in zip(writes, rows, strict=True):
            created = row["w_created"] or 0
            if row["w_detail"] is None:  # applied
                written = True
                revision = row["w_revision"]
                size = len(w.value) if w.op == "set" and w.value is not None else 0
                results.append(Applied(w.key, revision, created, size, row["w_expires"]))
            else:
                head = row["w_revision"]
                results.append(Applied(w.key, row["w_detail"], created, 0))
        return Committed(revision if written else head, rows[0]["w_at"], results, written)

    async def _apply(
        self, conn: Any, namespace: str, works: Sequence[WriteWork], creates: bool
    ) -> list[Outcome]:
        head = await self._lock(conn, namespace, create=creates) or Head()
        outcomes: list[Outcome] = []
        for work in works:
            try:
                outcomes.append(Outcome(await work(conn, head), None))
            except BotWireServerError as exc:
                outcomes.append(Outcome(None, exc))
        return outcomes

    async def _lock(self, conn: Any, namespace: str, *, create: bool) -> Head | None:
        row = await conn.fetchrow(queries.LOCK_HEAD, namespace)
        if row is None and create:
            await conn.execute(
                "INSERT INTO namespaces (name) VALUES ($1) ON CONFLICT DO NOTHING", namespace
            )
            row = await conn.fetchrow(queries.LOCK_HEAD, namespace)
        return None if row is None else Head(*row.values())

    async def rollback(
        self,
        namespace: str,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RollbackResult:
        async def work(conn: Any, head: Head) -> RollbackResult:
            return await self._idempotent(
                conn, namespace, head, meta, RollbackResult, lambda: roll(conn, head)
            )

        async def roll(conn: Any, head: Head) -> RollbackResult:
            target = await self._resolve(conn, namespace, to, head.revision, head.oldest)
            sql = queries.ROLLBACK_DIFF.format(key_filter="AND key = $4" if key is not None else "")
            # "Now" is the commit time the rollback gets (botwire_commit judges TTLs at it too).
            now = max(self.clock(), head.last_at)
            args = (namespace, target, now) + ((key,) if key is not None else ())
            rows = {row["key"]: row for row in await conn.fetch(sql, *args)}

            def item(row: Any, prefix: str) -> Item | None:
                value = row[f"{prefix}value"]
                if value is None:
                    return None
                return Item(row["key"], value, 0, 0, 0, 0, row[f"{prefix}expires_at"])

            changes, writes = rollback_writes(
                sorted(rows),
                lambda k: item(rows[k], "then_"),
                lambda k: item(rows[k], "cur_"),
                now,
            )
            if not changes or dry_run:
                return RollbackResult(head.revision, changes, dry_run)
            args = self._commit_args(namespace, [writes], cost=1, metas=[meta])
            result = self._outcome(writes, await conn.fetch(queries.COMMIT, *args))
            head.revision = result.revision
            head.last_at = result.at
            return RollbackResult(result.revision, changes, False)

        creates = meta.idempotency is not None  # the lock must exist to order the key's requests
        result: RollbackResult = await self._write(namespace, work, creates=creates)
        if result.changes and not result.dry_run:
            self.notify(namespace, result.revision)
        return result

    async def revert_run(
        self,
        namespace: str,
        run: str,
        *,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RevertResult:
        async def work(conn: Any, head: Head) -> RevertResult:
            return await self._idempotent(
                conn, namespace, head, meta, RevertResult, lambda: revert(conn, head)
            )

        async def revert(conn: Any, head: Head) -> RevertResult:
            # "Now" is the commit time the revert gets (botwire_commit judges TTLs at it too).
            now = max(self.clock(), head.last_at)
            rows = {r["key"]: r for r in await conn.fetch(queries.REVERT_DIFF, namespace, run, now)}

            def item(row: Any, prefix: str) -> Item | None:
                value = row[f"{prefix}value"]
                version = row["cur_version"] if prefix == "cur_" else 0
                if value is None:
                    return None
                return Item(row["key"], value, version, 0, 0, 0, row[f"{prefix}expires_at"])

            changes, skipped, writes = revert_writes(
                {k: r["first"] for k, r in rows.items()},
                lambda k, first: bool(rows[k]["others"]),
                lambda k, first: item(rows[k], "then_"),
                lambda k: item(rows[k], "cur_"),
                now,
                head.oldest,
            )
            if not changes or dry_run:
                return RevertResult(head.revision, changes, skipped, dry_run)
            args = self._commit_args(namespace, [writes], cost=1, metas=[meta])
            result = self._outcome(writes, await conn.fetch(queries.COMMIT, *args))
            head.revision = result.revision
            head.last_at = result.at
            return RevertResult(result.revision, changes, skipped, False)

        creates = meta.idempotency is not None
        result: RevertResult = await self._write(namespace, work, creates=creates)
        if result.changes and not result.dry_run:
            self.notify(namespace, result.revision)
        return result

    async def run_events(
        self, namespace: str, run: str, *, after: tuple[int, str] | None = None, limit: int = 100
    ) -> Sequence[Event]:
        check_limit(limit)
        revision, key = after if after is not None else (0, "")

        async def work(conn: Any) -> list[Event]:
            rows = await conn.fetch(queries.RUN_EVENTS, namespace, run, revision, key, limit)
            return [_event(r, r["key"]) for r in rows]

        return await self._read(work)

    async def purge_idempotency(self, *, now: int, limit: int = 1000) -> int:
        async def work(conn: Any) -> str:
            return str(await conn.execute(queries.PURGE_OUTCOMES, now, limit))

        status = await self._run(work, transaction=False, commits=True)
        return int(status.split()[-1])

    async def compact(self, namespace: str, *, before: int) -> int:
        async def work(conn: Any, head: Head) -> int:
            check_revision(before, head=head.revision, oldest=0)
            if before <= head.oldest:
                return 0
            status = await conn.execute(queries.COMPACT, namespace, before)
            await conn.execute(
                "UPDATE namespaces SET oldest_revision = $2 WHERE name = $1", namespace, before
            )
            head.oldest = before
            return int(status.split()[-1])

        removed: int = await self._write(namespace, work, creates=False)
        return removed

    async def dump(
        self, namespace: str, *, after: tuple[int, str] = (-1, ""), limit: int = 1000
    ) -> Sequence[Recorded]:
        check_limit(limit)

        async def work(conn: Any) -> list[Recorded]:
            rows = await conn.fetch(queries.DUMP, namespace, after[0], after[1], limit)
            return [
                Recorded(
                    revision=r["revision"],
                    at=r["at"],
                    key=r["key"],
                    op=_OPS[r["op"]],
                    value=r["value"],
                    expires_at=r["expires_at"],
                    created_revision=r["created_revision"] if r["op"] == SET else 0,
                    created_at=r["created_at"] if r["op"] == SET else 0,
                    actor=r["actor"],
                    run=r["run"],
                    agent=r["agent"],
                    reason=r["reason"],
                )
                for r in rows
            ]

        return await self._read(work)

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
        events = list(events)
        keys = sorted({e.key for e in events})

        async def work(conn: Any) -> int:
            # The replaced rows' bytes leave their tokens (all of them when replacing); the
            # token rows are locked in sorted order once the namespace is locked, as
            # botwire_commit does (migration 0006).
            owners = await conn.fetch(queries.OWNED_IN, namespace, keys, replace)
            freed = owned_bytes(
                {r["key"]: Current(r["value"], 0, 0, 0, None, r["token_id"]) for r in owners}
            )
            if replace:
                for table, column in queries.RESTORE_TABLES:
                    await conn.execute(f"DELETE FROM {table} WHERE {column} = $1", namespace)
            ns = await self._lock(conn, namespace, create=True) or Head()
            stored = await conn.fetch(queries.LAST_EVENTS_OF_KEYS, namespace, keys)
            last = {r["key"]: r["revision"] for r in stored}
            for e in events:
                if last.get(e.key, -1) >= e.revision:
                    raise InvalidInput(
                        f"Event {e.key!r} at revision {e.revision} is stored already.",
                        code="invalid_body",
                    )
            if freed:
                tokens = sorted(freed)
                await conn.execute(queries.LOCK_USAGE, tokens)
                await conn.execute(queries.FREE_USAGE, tokens, [freed[t] for t in tokens])
            rows = {
                r["key"]: Current(
                    r["value"],
                    r["version"],
                    r["created_revision"],
                    r["created_at"],
                    r["expires_at"],
                )
                for r in await conn.fetch(queries.CURRENT_OF_KEYS, namespace, keys)
            }
            state, after = plan_restore(
                ns,
                events,
                {k: rows.get(k) for k in keys},
                head=head,
                head_at=head_at,
                oldest=oldest,
            )
            times = {e.revision: e.at for e in events}
            if head > max(times, default=0):
                times[head] = head_at
            await conn.execute(
                queries.RESTORE_REVISIONS, namespace, list(times), list(times.values())
            )
            await conn.copy_records_to_table(
                "events",
                columns=[
                    "namespace",
                    "key",
                    "revision",
                    "op",
                    "value",
                    "created_revision",
                    "created_at",
                    "at",
                    "expires_at",
                    "actor",
                    "run",
                    "agent",
                    "reason",
                ],
                records=[
                    (
                        namespace,
                        e.key,
                        e.revision,
                        _CODES[e.op],
                        e.value,
                        e.created_revision,
                        e.created_at,
                        e.at,
                        e.expires_at,
                        e.actor,
                        e.run,
                        e.agent,
                        e.reason,
                    )
                    for e in events
                ],
            )
            updated = {e.key: e.at for e in events}
            gone = [k for k, row in after.items() if row is None]
            if gone:
                await conn.execute(
                    "DELETE FROM current WHERE namespace = $1 AND key = ANY($2::text[])",
                    namespace,
                    gone,
                )
            kept = [(k, r) for k, r in after.items() if r is not None]
            if kept:
                await conn.execute(
                    queries.UPSERT_CURRENT,
                    namespace,
                    [k for k, _ in kept],
                    [r.value for _, r in kept],
                    [r.version for _, r in kept],
                    [r.created_revision for _, r in kept],
                    [r.created_at for _, r in kept],
                    [updated[k] for k, _ in kept],
                    [r.expires_at for _, r in kept],
                )
            await conn.execute(
                "UPDATE namespaces SET revision = $2, oldest_revision = $3, live_keys = $4,"
                " live_bytes = $5, last_at = $6 WHERE name = $1",
                namespace,
                state.revision,
                state.oldest,
                state.live_keys,
                state.live_bytes,
                state.last_at,
            )
            return state.revision

        revision: int = await self._run(work)
        if events or head:
            self.notify(namespace, revision)
        return revision

    async def due_expiries(self, *, limit: int = 1000) -> Sequence[tuple[str, str, int]]:
        now = self.clock()

        async def work(conn: Any) -> list[tuple[str, str, int]]:
            rows = await conn.fetch(queries.DUE_EXPIRIES, now, limit)
            return [(r["namespace"], r["key"], r["version"]) for r in rows]

        return await self._read(work)

    # -- reads -------------------------------------------------------------------------------

    async def _resolve(
        self, conn: Any, namespace: str, as_of: int | datetime, head: int, oldest: int
    ) -> int:
        if isinstance(as_of, datetime):
            moment = to_micros(as_of)
            revision = await conn.fetchval(queries.REVISION_AT, namespace, moment) or 0
            return check_revision(revision, head=head, oldest=oldest)
        return check_revision(as_of, head=head, oldest=oldest)

    async def get(self, namespace: str, key: str, *, as_of: AsOf = None) -> Item | None:
        if as_of is None:
            lender = self._lender
            if lender is not None and not lender.available():
                return await self._grouped_get(namespace, key)

            async def now(conn: Any) -> Item | None:
                row = await conn.fetchrow(queries.CURRENT, namespace, key)
                return self._alive(_item(row)) if row else None

            return await self._read(now)

        # One statement: the head, the revision meant and the key's event there come from one
        # snapshot, without a transaction around several statements.
        moment = as_of

        async def then(conn: Any) -> Item | None:
            row = await conn.fetchrow(queries.GET_AT, namespace, *self._point(moment), key)
            check_revision(row["rev"], head=row["head"], oldest=row["oldest"])
            if row["op"] != SET or not visible(row["expires_at"], row["rat"]):
                return None
            return Item(
                key,
                row["value"],
                row["version"],
                row["created_revision"],
                row["created_at"],
                row["updated_at"],
                row["expires_at"],
            )

        return await self._read(then)

    def _alive(self, item: Item) -> Item | None:
        """``item`` when its TTL has not passed by now."""
        return item if visible(item.expires_at, self.clock()) else None

    async def get_many(
        self, namespace: str, keys: Sequence[str], *, as_of: AsOf = None
    ) -> tuple[int, dict[str, Item | None]]:
        keys = list(keys)
        if as_of is None:

            async def now(conn: Any) -> tuple[int, dict[str, Item | None]]:
                rows = await conn.fetch(queries.CURRENT_KEYS, namespace, keys)
                head = await conn.fetchval(queries.HEAD, namespace) if not rows else None
                items: dict[str, Item | None] = dict.fromkeys(keys)
                for row in rows:
                    head = row["head"]
                    if row["key"] is not None:
                        items[row["key"]] = self._alive(_item(row))
                return int(head or 0), items

            return await self._read(now)
        point = self._point(as_of)

        async def then(conn: Any) -> tuple[int, dict[str, Item | None]]:
            rows = await conn.fetch(queries.GET_MANY_AT, namespace, *point, keys)
            first = rows[0]
            revision = check_revision(first["rev"], head=first["head"], oldest=first["oldest"])
            items: dict[str, Item | None] = dict.fromkeys(keys)
            for row in rows:
                if row["key"] is None or row["op"] != SET:
                    continue
                if visible(row["expires_at"], row["rat"]):
                    items[row["key"]] = _item(row)
            return revision, items

        return await self._read(then)

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
        args: list[Any] = [namespace]
        where = ""
        if after is not None:
            args.append(after)
            where += f" AND key > ${len(args)}"
        if prefix:
            args.append(prefix)
            # The range lets the primary key index find the prefix; starts_with decides.
            where += f" AND key >= ${len(args)} AND starts_with(key, ${len(args)})"
        args.append(limit)
        limit_arg = f"${len(args)}"

        if as_of is None:
            args.append(self.clock())
            sql = (
                "SELECT key, value, version, created_revision, created_at, updated_at, expires_at"
                f" FROM current WHERE namespace = $1{where}"
                f" AND (expires_at IS NULL OR expires_at > ${len(args)})"
                f" ORDER BY key LIMIT {limit_arg}"
            )

            async def now(conn: Any) -> list[Item]:
                return [_item(row) for row in await conn.fetch(sql, *args)]

            return await self._read(now)

        # At a revision: walk the keys with one index seek each (a loose index scan, see
        # queries.LIST_AT), never the whole history; the revision is resolved and checked in
        # the same statement, so in the same snapshot.
        moment = as_of

        async def then(conn: Any) -> list[Item]:
            rows = await conn.fetch(
                queries.LIST_AT,
                namespace,
                *self._point(moment),
                after or "",
                prefix or "",
                limit,
            )
            (resolved,) = [row for row in rows if row["part"] == 0]
            check_revision(resolved["rev"], head=resolved["head"], oldest=resolved["oldest"])
            return [_item(row) for row in rows if row["part"] == 1]

        return await self._read(then)

    async def history(
        self, namespace: str, key: str, *, before: int | None = None, limit: int = 100
    ) -> Sequence[Event]:
        check_limit(limit)

        async def work(conn: Any) -> list[Event]:
            rows = await conn.fetch(
                f"SELECT revision, op, value, at, expires_at, {queries.PROVENANCE} FROM events"
                " WHERE namespace = $1 AND key = $2 AND ($3::bigint IS NULL OR revision < $3)"
                " ORDER BY revision DESC LIMIT $4",
                namespace,
                key,
                before,
                limit,
            )
            return [_event(r, key) for r in rows]

        return await self._read(work)

    async def changes(
        self, namespace: str, *, after: int = 0, limit: int = 100, prefix: str | None = None
    ) -> Changes:
        check_limit(limit)

        async def work(conn: Any) -> Changes:
            rows = await conn.fetch(queries.CHANGES, namespace, after, limit, prefix or "")
            head, oldest = rows[0]["head"], rows[0]["oldest"]
            check_after(after, head=head, oldest=oldest)
            events = [_event(r, r["key"]) for r in rows if r["key"] is not None]
            return Changes(head, events, min(head, after + limit))

        return await self._read(work)

    async def info(self, namespace: str) -> NamespaceInfo:
        async def work(conn: Any) -> NamespaceInfo:
            row = await conn.fetchrow(
                "SELECT revision, live_keys, live_bytes, oldest_revision, last_at"
                " FROM namespaces WHERE name = $1",
                namespace,
            )
            if row is None or row["revision"] == 0:
                return NamespaceInfo(namespace, 0, 0, 0, row["oldest_revision"] if row else 0, None)
            return NamespaceInfo(namespace, *row.values())

        return await self._read(work)

    # Grouped gets: while every connection is busy, a get would wait for one, then spend a whole
    # round trip (mostly system calls) on one key. Instead, gets that arrive meanwhile join one
    # group, which waits for a connection once and reads all its keys with one statement. A
    # group's snapshot is taken after each of its gets arrived and before any is answered, so
    # each still reads the present. With a connection free, a get runs alone, as before.

    async def _grouped_get(self, namespace: str, key: str) -> Item | None:
        future: asyncio.Future[Item | None] = asyncio.get_running_loop().create_future()
        group = self._get_group
        if group is None or len(group) >= MAX_READ_GROUP:
            group = self._get_group = []
            # A task of its own: a caller that goes away cancels only its own wait.
            task = asyncio.create_task(self._read_group(group))
            self._read_tasks.add(task)
            task.add_done_callback(self._read_tasks.discard)
        group.append((namespace, key, future))
        return await future

    async def _read_group(self, group: GetGroup) -> None:
        async def work(conn: Any) -> list[Any]:
            # The connection is ours: the group takes no more keys.
            if self._get_group is group:
                self._get_group = None
            return list(
                await conn.fetch(queries.CURRENT_MANY, [g[0] for g in group], [g[1] for g in group])
            )

        try:
            rows = await self._read(work)
        except Exception as exc:
            for _, _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            if self._get_group is group:
                self._get_group = None
        found = {row["i"]: row for row in rows}
        for i, (_, _, future) in enumerate(group, start=1):
            if not future.done():
                row = found.get(i)
                future.set_result(self._alive(_item(row)) if row is not None else None)

    @staticmethod
    def _point(as_of: int | datetime) -> tuple[int | None, int | None]:
        """The ($2, $3) arguments of queries.RESOLVE and GET_AT: a revision or a time."""
        if isinstance(as_of, datetime):
            return None, to_micros(as_of)
        return as_of, None

    async def resolve(self, namespace: str, as_of: int | datetime) -> int:
        async def work(conn: Any) -> int:
            row = await conn.fetchrow(queries.RESOLVE, namespace, *self._point(as_of))
            return check_revision(row["rev"], head=row["head"], oldest=row["oldest"])

        return await self._read(work)

    async def stats(self) -> Stats:
        async def work(conn: Any) -> Stats:
            row = await conn.fetchrow(
                "SELECT coalesce(sum(live_keys), 0)::bigint,"
                " count(*) FILTER (WHERE live_keys > 0),"
                " coalesce(sum(live_bytes), 0)::bigint FROM namespaces"
            )
            return Stats(*row.values())

        return await self._read(work)

    async def list_namespaces(
        self, *, prefix: str | None = None, after: str | None = None, limit: int = 100
    ) -> Sequence[NamespaceInfo]:
        limit = check_limit(limit)

        async def work(conn: Any) -> list[NamespaceInfo]:
            # left(name, n) = prefix rather than LIKE: a prefix may hold % and _.
            rows = await conn.fetch(
                "SELECT name, revision, live_keys, live_bytes, oldest_revision, last_at"
                " FROM namespaces WHERE revision > 0 AND name > $1"
                " AND left(name, $2) = $3 ORDER BY name LIMIT $4",
                after or "",
                len(prefix or ""),
                prefix or "",
                limit,
            )
            return [NamespaceInfo(*row.values()) for row in rows]

        return await self._read(work)

    # -- tokens -------------------------------------------------------------------------------

    async def create_token(self, token: TokenRecord) -> None:
        async def work(conn: Any) -> str:
            return str(
                await conn.execute(
                    f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    " ON CONFLICT (id) DO NOTHING",
                    *(getattr(token, name) for name in _TOKEN_FIELDS),
                )
            )

        status = await self._run(work, transaction=False, commits=True)
        if status.split()[-1] == "0":
            raise InvalidInput(f"A token with id {token.id!r} exists already.")

    async def get_token(self, token_id: str) -> TokenRecord | None:
        async def work(conn: Any) -> TokenRecord | None:
            row = await conn.fetchrow(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = $1", token_id
            )
            return None if row is None else TokenRecord(**dict(row.items()))

        return await self._read(work)

    async def list_tokens(self) -> Sequence[TokenRecord]:
        async def work(conn: Any) -> list[TokenRecord]:
            rows = await conn.fetch(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id")
            return [TokenRecord(**dict(row.items())) for row in rows]

        return await self._read(work)

    async def revoke_token(self, token_id: str, *, at: int) -> TokenRecord | None:
        async def work(conn: Any) -> None:
            await conn.execute(
                "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                token_id,
                at,
            )

        await self._run(work, transaction=False, commits=True)
        return await self.get_token(token_id)

    async def touch_token(self, token_id: str, *, at: int) -> None:
        async def work(conn: Any) -> None:
            await conn.execute("UPDATE tokens SET last_used_at = $2 WHERE id = $1", token_id, at)

        await self._run(work, transaction=False, commits=True)


_TOKEN_FIELDS = TokenRecord.__struct_fields__
_TOKEN_COLUMNS = ", ".join(_TOKEN_FIELDS)


__all__ = ["PostgresStore", "MIGRATION_LOCK"]
