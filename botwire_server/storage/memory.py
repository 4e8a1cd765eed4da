"""The in-memory reference store: the revision model of ``base`` written as plainly as possible.

It keeps every event in Python lists and answers reads by scanning them, so it is slow for long
histories and keeps nothing across restarts. Its job is to be obviously right: the conformance
suite runs against it like any other backend, which makes it an executable specification.
Writes go through ``base.plan_commit``, the one home of the commit rules outside PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import msgspec

from ..errors import InvalidInput
from .base import (
    NO_PROVENANCE,
    AsOf,
    Changes,
    Committed,
    Current,
    Event,
    Item,
    NamespaceInfo,
    NsState,
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
    to_micros,
    tokens_of,
    visible,
)

R = TypeVar("R", Committed, RollbackResult, RevertResult)


@dataclass
class _Namespace:
    state: NsState = field(default_factory=NsState)
    commit_times: list[int] = field(default_factory=list)  # index i: time of revision i + 1
    events: dict[str, list[Event]] = field(default_factory=dict)  # per key, oldest first
    log: list[Event] = field(default_factory=list)  # every kept event, in commit order
    current: dict[str, Item] = field(default_factory=dict)  # stored rows, expired or not
    # (key, revision) of each kept set event -> the (created_revision, created_at) of the
    # incarnation it belongs to, decided by plan_commit when it was written (an expired key
    # set again starts a new incarnation without a tombstone in between).
    created: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    runs: dict[str, list[Event]] = field(default_factory=dict)  # the run index, oldest first
    outcomes: dict[str, StoredOutcome] = field(default_factory=dict)  # idempotency key -> outcome
    owners: dict[str, str] = field(default_factory=dict)  # key -> the token that last wrote it

    @property
    def revision(self) -> int:
        return self.state.revision

    def time_of(self, revision: int) -> int:
        return self.commit_times[revision - 1] if revision else 0


class MemoryStore(Store):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._namespaces: dict[str, _Namespace] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._usage: dict[str, TokenState] = {}  # token id -> its usage (per-token limits)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    # -- helpers -----------------------------------------------------------------------------

    def _ns(self, namespace: str) -> _Namespace:
        return self._namespaces.setdefault(namespace, _Namespace())

    def _peek(self, namespace: str) -> _Namespace:
        return self._namespaces.get(namespace) or _Namespace()

    def _item_at(self, ns: _Namespace, key: str, revision: int) -> Item | None:
        last: Event | None = None
        for event in ns.events.get(key, []):
            if event.revision > revision:
                break
            last = event
        if last is None or last.op != "set" or last.value is None:
            return None
        if not visible(last.expires_at, ns.time_of(revision)):
            return None
        created_revision, created_at = ns.created[(key, last.revision)]
        return Item(
            key, last.value, last.revision, created_revision, created_at, last.at, last.expires_at
        )

    def _now_item(self, ns: _Namespace, key: str) -> Item | None:
        return self._alive(ns, key, self.clock())

    @staticmethod
    def _alive(ns: _Namespace, key: str, moment: int) -> Item | None:
        item = ns.current.get(key)
        return item if item is not None and visible(item.expires_at, moment) else None

    def _revision(self, ns: _Namespace, as_of: AsOf) -> int:
        if as_of is None:
            return ns.revision
        if isinstance(as_of, datetime):
            moment = to_micros(as_of)
            revision = sum(1 for t in ns.commit_times if t <= moment)
            return check_revision(revision, head=ns.revision, oldest=ns.state.oldest)
        return check_revision(as_of, head=ns.revision, oldest=ns.state.oldest)

    def _store(self, namespace: str, ns: _Namespace, plan: Plan) -> Committed:
        """Write ``plan`` (from ``plan_commit``) into the namespace."""
        if plan.events:
            ns.commit_times.append(plan.at)
            meta = plan.meta
            for p in plan.events:
                event = Event(
                    plan.revision,
                    p.key,
                    p.op,
                    p.value,
                    plan.at,
                    p.expires_at,
                    meta.actor,
                    meta.run,
                    meta.agent,
                    meta.reason,
                )
                ns.events.setdefault(p.key, []).append(event)
                ns.log.append(event)
                if meta.run is not None:
                    ns.runs.setdefault(meta.run, []).append(event)
                if p.op == "set":
                    assert p.value is not None
                    ns.created[(p.key, plan.revision)] = (p.created_revision, p.created_at)
                    ns.current[p.key] = Item(
                        p.key,
                        p.value,
                        plan.revision,
                        p.created_revision,
                        p.created_at,
                        plan.at,
                        p.expires_at,
                    )
                    if meta.actor_id is None:
                        ns.owners.pop(p.key, None)
                    else:
                        ns.owners[p.key] = meta.actor_id
                else:
                    ns.current.pop(p.key, None)
                    ns.owners.pop(p.key, None)
            ns.state = plan.ns
            self._usage.update(plan.tokens)
            self.notify(namespace, plan.revision)
        return plan.committed()

    def _rows(self, ns: _Namespace, keys: Sequence[str]) -> dict[str, Current | None]:
        rows: dict[str, Current | None] = {}
        for key in keys:
            item = ns.current.get(key)
            rows[key] = (
                None
                if item is None
                else Current(
                    item.value,
                    item.version,
                    item.created_revision,
                    item.created_at,
                    item.expires_at,
                    ns.owners.get(key),
                )
            )
        return rows

    def _tokens_for(
        self, rows: Mapping[str, Current | None], meta: Provenance
    ) -> dict[str, TokenState]:
        return {t: self._usage[t] for t in tokens_of(rows, meta) if t in self._usage}

    # -- writes ------------------------------------------------------------------------------

    def _idempotent(
        self, ns: _Namespace, meta: Provenance, kind: type[R], work: Callable[[], R]
    ) -> R:
        """``work()``, or the outcome stored for ``meta``'s idempotency key (base.replay)."""
        idem = meta.idempotency
        if idem is None:
            return work()
        found = replay(ns.outcomes.get(idem.key), idem, max(self.clock(), ns.state.last_at))
        if found is not None:
            return decoded(found, kind)
        result = work()
        ns.outcomes[idem.key] = outcome_of(idem, result, max(self.clock(), ns.state.last_at))
        return result

    async def _commit(self, namespace: str, writes: Sequence[Write], meta: Provenance) -> Committed:
        ns = self._ns(namespace)

        def work() -> Committed:
            rows = self._rows(ns, [w.key for w in writes])
            tokens = self._tokens_for(rows, meta)
            plan = plan_commit(
                self.limits, ns.state, writes, rows, self.clock(), meta=meta, tokens=tokens
            )
            return self._store(namespace, ns, plan)

        return self._idempotent(ns, meta, Committed, work)

    async def rollback(
        self,
        namespace: str,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RollbackResult:
        ns = self._ns(namespace)
        return self._idempotent(
            ns, meta, RollbackResult, lambda: self._rollback(namespace, ns, to, key, dry_run, meta)
        )

    def _rollback(
        self,
        namespace: str,
        ns: _Namespace,
        to: int | datetime,
        key: str | None,
        dry_run: bool,
        meta: Provenance,
    ) -> RollbackResult:
        target = self._revision(ns, to)
        keys = sorted(ns.events) if key is None else [key]
        # "Now" is the commit time the rollback gets, at which plan_commit judges TTLs too.
        at = max(self.clock(), ns.state.last_at)
        changes, writes = rollback_writes(
            keys,
            lambda k: self._item_at(ns, k, target),
            lambda k: self._alive(ns, k, at),
            at,
        )
        if not changes or dry_run:
            return RollbackResult(ns.revision, changes, dry_run)
        rows = self._rows(ns, [w.key for w in writes])
        tokens = self._tokens_for(rows, meta)
        plan = plan_commit(
            self.limits, ns.state, writes, rows, at, cost=1, meta=meta, tokens=tokens
        )
        return RollbackResult(self._store(namespace, ns, plan).revision, changes, False)

    async def revert_run(
        self,
        namespace: str,
        run: str,
        *,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RevertResult:
        ns = self._ns(namespace)

        def work() -> RevertResult:
            touched: dict[str, int] = {}
            for event in ns.runs.get(run, []):
                touched.setdefault(event.key, event.revision)

            def others(key: str, first: int) -> bool:
                return any(
                    e.revision > first and e.op != "expire" and e.run != run
                    for e in ns.events.get(key, [])
                )

            at = max(self.clock(), ns.state.last_at)
            changes, skipped, writes = revert_writes(
                touched,
                others,
                lambda k, first: self._item_at(ns, k, first - 1),
                lambda k: self._alive(ns, k, at),
                at,
                ns.state.oldest,
            )
            if not changes or dry_run:
                return RevertResult(ns.revision, changes, skipped, dry_run)
            rows = self._rows(ns, [w.key for w in writes])
            tokens = self._tokens_for(rows, meta)
            plan = plan_commit(
                self.limits, ns.state, writes, rows, at, cost=1, meta=meta, tokens=tokens
            )
            return RevertResult(self._store(namespace, ns, plan).revision, changes, skipped, False)

        return self._idempotent(ns, meta, RevertResult, work)

    async def run_events(
        self, namespace: str, run: str, *, after: tuple[int, str] | None = None, limit: int = 100
    ) -> Sequence[Event]:
        check_limit(limit)
        events = sorted(self._peek(namespace).runs.get(run, []), key=lambda e: (e.revision, e.key))
        if after is not None:
            events = [e for e in events if (e.revision, e.key) > after]
        return events[:limit]

    async def purge_idempotency(self, *, now: int, limit: int = 1000) -> int:
        purged = 0
        for ns in self._namespaces.values():
            for key in [k for k, o in ns.outcomes.items() if o.expires_at <= now]:
                if purged == limit:
                    return purged
                del ns.outcomes[key]
                purged += 1
        return purged

    async def compact(self, namespace: str, *, before: int) -> int:
        ns = self._ns(namespace)
        check_revision(before, head=ns.revision, oldest=0)
        if before <= ns.state.oldest:
            return 0
        removed = 0
        for key, events in list(ns.events.items()):
            # Keep the newest event at or before `before` (it answers reads at `before`) unless
            # it is a tombstone or an expiry, and everything after it.
            keep_from = 0
            for i, event in enumerate(events):
                if event.revision <= before:
                    keep_from = i if event.op == "set" else i + 1
            kept = events[keep_from:]
            for gone in events[:keep_from]:
                ns.created.pop((key, gone.revision), None)
            removed += len(events) - len(kept)
            if kept:
                ns.events[key] = kept
            else:
                del ns.events[key]
        kept_ids = {(e.key, e.revision) for events in ns.events.values() for e in events}
        ns.log = [e for e in ns.log if (e.key, e.revision) in kept_ids]
        for run, events in list(ns.runs.items()):
            ns.runs[run] = [e for e in events if (e.key, e.revision) in kept_ids]
        ns.state.oldest = before
        return removed

    async def dump(
        self, namespace: str, *, after: tuple[int, str] = (-1, ""), limit: int = 1000
    ) -> Sequence[Recorded]:
        check_limit(limit)
        ns = self._peek(namespace)
        out: list[Recorded] = []
        for e in sorted(ns.log, key=lambda e: (e.revision, e.key)):
            if (e.revision, e.key) <= after:
                continue
            created = ns.created.get((e.key, e.revision), (0, 0))
            out.append(
                Recorded(
                    revision=e.revision,
                    at=e.at,
                    key=e.key,
                    op=e.op,
                    value=e.value,
                    expires_at=e.expires_at,
                    created_revision=created[0],
                    created_at=created[1],
                    actor=e.actor,
                    run=e.run,
                    agent=e.agent,
                    reason=e.reason,
                )
            )
            if len(out) == limit:
                break
        return out

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
        ns = _Namespace() if replace else self._ns(namespace)
        for e in events:
            kept = ns.events.get(e.key)
            if kept and kept[-1].revision >= e.revision:
                raise InvalidInput(
                    f"Event {e.key!r} at revision {e.revision} is stored already.",
                    code="invalid_body",
                )
        rows = self._rows(ns, sorted({e.key for e in events}))
        state, after = plan_restore(
            ns.state, events, rows, head=head, head_at=head_at, oldest=oldest
        )
        # The replaced rows' bytes leave their tokens (all of them when replacing).
        old = self._namespaces.get(namespace) if replace else ns
        gone = self._rows(old, sorted(old.current if replace else rows)) if old else {}
        for token, size in owned_bytes(gone).items():
            use = self._usage.get(token)
            if use is not None:
                self._usage[token] = TokenState(use.day, use.writes, max(0, use.live_bytes - size))
        for e in events:
            # commit_times[i] is the time of revision i + 1; revisions that a compaction
            # removed entirely keep the time of the one before them.
            while len(ns.commit_times) < e.revision:
                ns.commit_times.append(
                    e.at
                    if len(ns.commit_times) == e.revision - 1
                    else (ns.commit_times[-1] if ns.commit_times else 0)
                )
            event = Event(
                e.revision, e.key, e.op, e.value, e.at, e.expires_at,
                e.actor, e.run, e.agent, e.reason,
            )  # fmt: skip
            ns.events.setdefault(e.key, []).append(event)
            ns.log.append(event)
            if e.run is not None:
                ns.runs.setdefault(e.run, []).append(event)
            if e.op == "set":
                ns.created[(e.key, e.revision)] = (e.created_revision, e.created_at)
        while len(ns.commit_times) < state.revision:
            ns.commit_times.append(head_at)
        for key, row in after.items():
            ns.owners.pop(key, None)  # restored values belong to no token
            if row is None:
                ns.current.pop(key, None)
            else:
                last = ns.events[key][-1]
                ns.current[key] = Item(
                    key,
                    row.value,
                    row.version,
                    row.created_revision,
                    row.created_at,
                    last.at,
                    row.expires_at,
                )
        ns.state = state
        self._namespaces[namespace] = ns
        if events or head:
            self.notify(namespace, state.revision)
        return state.revision

    async def due_expiries(self, *, limit: int = 1000) -> Sequence[tuple[str, str, int]]:
        now = self.clock()
        due = [
            (item.expires_at, name, item.key, item.version)
            for name, ns in self._namespaces.items()
            for item in ns.current.values()
            if item.expires_at is not None and item.expires_at <= now
        ]
        due.sort()
        return [(name, key, version) for _, name, key, version in due[:limit]]

    # -- reads -------------------------------------------------------------------------------

    async def get(self, namespace: str, key: str, *, as_of: AsOf = None) -> Item | None:
        ns = self._peek(namespace)
        if as_of is None:
            return self._now_item(ns, key)
        return self._item_at(ns, key, self._revision(ns, as_of))

    async def get_many(
        self, namespace: str, keys: Sequence[str], *, as_of: AsOf = None
    ) -> tuple[int, dict[str, Item | None]]:
        ns = self._peek(namespace)
        if as_of is None:
            return ns.revision, {k: self._now_item(ns, k) for k in keys}
        revision = self._revision(ns, as_of)
        return revision, {k: self._item_at(ns, k, revision) for k in keys}

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
        ns = self._peek(namespace)
        revision = self._revision(ns, as_of)
        out: list[Item] = []
        for k in sorted(ns.events):
            if after is not None and k <= after:
                continue
            if prefix and not k.startswith(prefix):
                continue
            item = self._now_item(ns, k) if as_of is None else self._item_at(ns, k, revision)
            if item is not None:
                out.append(item)
                if len(out) == limit:
                    break
        return out

    async def history(
        self, namespace: str, key: str, *, before: int | None = None, limit: int = 100
    ) -> Sequence[Event]:
        check_limit(limit)
        ns = self._peek(namespace)
        events = [
            e for e in reversed(ns.events.get(key, [])) if before is None or e.revision < before
        ]
        return events[:limit]

    async def changes(
        self, namespace: str, *, after: int = 0, limit: int = 100, prefix: str | None = None
    ) -> Changes:
        check_limit(limit)
        ns = self._peek(namespace)
        check_after(after, head=ns.revision, oldest=ns.state.oldest)
        upto = min(ns.revision, after + limit)
        events = [
            e
            for e in ns.log
            if after < e.revision <= upto and (not prefix or e.key.startswith(prefix))
        ]
        events.sort(key=lambda e: (e.revision, e.key))
        return Changes(ns.revision, events, upto)

    async def info(self, namespace: str) -> NamespaceInfo:
        ns = self._peek(namespace)
        state = ns.state
        return NamespaceInfo(
            namespace,
            state.revision,
            state.live_keys,
            state.live_bytes,
            state.oldest,
            ns.commit_times[-1] if ns.commit_times else None,
        )

    async def resolve(self, namespace: str, as_of: int | datetime) -> int:
        return self._revision(self._peek(namespace), as_of)

    async def stats(self) -> Stats:
        spaces = [ns.state for ns in self._namespaces.values() if ns.state.live_keys]
        return Stats(
            sum(s.live_keys for s in spaces),
            len(spaces),
            sum(s.live_bytes for s in spaces),
        )

    async def list_namespaces(
        self, *, prefix: str | None = None, after: str | None = None, limit: int = 100
    ) -> Sequence[NamespaceInfo]:
        limit = check_limit(limit)
        names = sorted(
            name
            for name, ns in self._namespaces.items()
            if ns.revision
            and (not prefix or name.startswith(prefix))
            and (after is None or name > after)
        )
        return [await self.info(name) for name in names[:limit]]

    async def create_token(self, token: TokenRecord) -> None:
        if token.id in self._tokens:
            raise InvalidInput(f"A token with id {token.id!r} exists already.")
        self._tokens[token.id] = token

    async def get_token(self, token_id: str) -> TokenRecord | None:
        return self._tokens.get(token_id)

    async def list_tokens(self) -> Sequence[TokenRecord]:
        return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))

    async def revoke_token(self, token_id: str, *, at: int) -> TokenRecord | None:
        token = self._tokens.get(token_id)
        if token is not None and token.revoked_at is None:
            token = self._tokens[token_id] = msgspec.structs.replace(token, revoked_at=at)
        return token

    async def touch_token(self, token_id: str, *, at: int) -> None:
        token = self._tokens.get(token_id)
        if token is not None:
            self._tokens[token_id] = msgspec.structs.replace(token, last_used_at=at)


__all__ = ["MemoryStore"]
