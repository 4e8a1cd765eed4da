"""The service layer: every verb the server offers, between its transports and the store.

The HTTP routes decode a request, call ONE verb here and encode its result; the MCP server, the
web inspector and the framework adapters call the same verbs in process. So a verb takes and
returns plain typed values (names as given, values as encoded JSON ``bytes``, TTLs in seconds)
and raises the errors of ``botwire_server.errors``. What lives here:

- name validation (every namespace and key a verb receives),
- the shape rules of requests that the store does not own (1-1000 ops or keys, TTL in seconds
  converted to the store's microseconds),
- pagination over the store's 1000-row reads (``Page.more``),
- the watch hub and the expiry sweeper, which run beside the store for the server's lifetime,
- access control: every verb takes the request's ``Principal`` (``botwire_server.auth``) first
  and checks it (``_allow``) before it reads or writes anything; no route decides.

The rules of a commit (conditions, value and namespace sizes, quotas) live in the store
(``storage/base.py``), once per database; this layer does not restate them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Generic, Literal, TypeVar

import msgspec

from . import auth, naming, provenance
from .auth import Access, Authenticator, Grant, Principal
from .channels import Channels, refuse_reserved
from .errors import InvalidInput, NotFound
from .expiry import Sweeper
from .metrics import Metrics
from .retention import Retention
from .settings import Settings
from .storage.base import (
    MAX_OPS,
    MICROS,
    NO_PROVENANCE,
    AsOf,
    Changes,
    Committed,
    Event,
    Item,
    NamespaceInfo,
    Provenance,
    RevertResult,
    RollbackResult,
    Selected,
    Stats,
    Store,
    TokenRecord,
    Write,
    WriteResult,
    key_not_found,
)
from .watch import Hub, Watch

T = TypeVar("T")

# A TTL longer than a century is surely a mistake (and would overflow some timestamps).
MAX_TTL_SECONDS = 100 * 365 * 86_400
MAX_KEYS = 1000


class BatchOp(msgspec.Struct, frozen=True, kw_only=True):
    """One op of ``Service.batch``: ``set`` (``value``: encoded JSON; ``ttl``: seconds),
    ``delete`` or ``check`` (``expected_version`` required)."""

    op: Literal["set", "delete", "check"]
    key: str
    value: bytes | None = None
    expected_version: int | None = None
    ttl: float | None = None


class Page(msgspec.Struct, Generic[T], frozen=True):
    """Rows of one page; ``more``: whether rows follow it; ``revision``: the revision read
    (the head for a current read)."""

    rows: Sequence[T]
    more: bool
    revision: int = 0


def ttl_micros(ttl: float | None) -> int | None:
    """A TTL in seconds as the store's microseconds (at least 1)."""
    if ttl is None:
        return None
    if not 0 < ttl <= MAX_TTL_SECONDS:  # also refuses NaN and infinity
        raise InvalidInput(
            f"ttl must be a number of seconds > 0 and at most {MAX_TTL_SECONDS} (100 years).",
            code="invalid_body",
        )
    return max(1, round(ttl * MICROS))


def _count(what: str, n: int, limit: int) -> None:
    if not 1 <= n <= limit:
        raise InvalidInput(
            f"A request holds 1 to {limit} {what}; this one holds {n}.", code="invalid_body"
        )


async def _page(
    fetch: Callable[[int], Awaitable[Sequence[T]]],
    probe: Callable[[T], Awaitable[Sequence[object]]],
    limit: int,
) -> tuple[Sequence[T], bool]:
    """One page of ``limit`` rows and whether more follow, so that a cursor is only handed out
    when a next page exists. Stores serve at most 1000 rows a call, hence the probe for a full
    page."""
    if limit < 1000:
        rows = await fetch(limit + 1)
        return rows[:limit], len(rows) > limit
    rows = await fetch(limit)
    return rows, len(rows) == limit and len(await probe(rows[-1])) > 0


def _allow(who: Principal, namespace: str, access: Access) -> str:
    """The one access check of a namespace verb: the validated name, or ``Forbidden``.
    Reserved namespaces (identities, channels) take writes only through their own verbs."""
    ns = naming.namespace(namespace)
    who.require(ns, access)
    if access == "write":
        refuse_reserved(ns)
    return ns


MAX_TOKEN_NAME = 200


async def create_token(
    store: Store, name: str, grants: Sequence[Grant], *, expires_in: float | None
) -> tuple[TokenRecord, str]:
    """Store a new token (for the admin route and the CLI): (its record, the full token)."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_TOKEN_NAME or any(ord(c) < 0x20 for c in name):
        raise InvalidInput(
            f"A token name is 1-{MAX_TOKEN_NAME} characters without control characters.",
            code="invalid_body",
        )
    checked = auth.check_grants(grants)
    if expires_in is not None and not 0 < expires_in <= MAX_TTL_SECONDS:
        raise InvalidInput(
            f"expires_in must be a number of seconds > 0 and at most {MAX_TTL_SECONDS}.",
            code="invalid_body",
        )
    now = store.clock()
    for _ in range(3):
        token_id, token = auth.new_token()
        record = TokenRecord(
            id=token_id,
            name=name,
            secret_hash=auth.hash_secret(token.rsplit("_", 1)[1]),
            grants=auth.encode_grants(checked),
            created_at=now,
            expires_at=None if expires_in is None else now + round(expires_in * MICROS),
        )
        try:
            await store.create_token(record)
        except InvalidInput:  # an id drawn twice (1 in 2**60): draw again
            continue
        return record, token
    raise AssertionError("unreachable")


class Service:
    """The verbs of BotWire Server over one open ``Store``.

    ``start`` (in the application's lifespan, after the store opened) attaches the watch hub
    and starts the expiry sweeper; ``close`` stops both, ending every watch stream, before the
    store closes. Watches work without ``start`` when the hub is attached (``attach``)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.limits = settings.limits
        self.hub = Hub(store)
        self.sweeper = Sweeper(store, interval=settings.expiry_interval)
        self.auth = Authenticator(store, settings)
        self.channels = Channels(store, tokens=self.auth.enabled)
        self.metrics = Metrics(store, self.hub)
        self.retention = (
            None
            if settings.retention is None
            else Retention(
                store, retention=settings.retention, interval=settings.retention_interval
            )
        )

    # -- life cycle ----------------------------------------------------------------------------

    def attach(self) -> None:
        """Start following the store's commits for watchers (and the metrics)."""
        self.hub.open()
        if self.settings.metrics_on:
            self.metrics.attach()

    def start(self) -> None:
        self.attach()
        self.sweeper.start()
        if self.retention is not None:
            self.retention.start()

    def end_streams(self) -> None:
        """End every watch stream now (shutdown has begun); new watches are refused."""
        self.hub.close()

    async def close(self) -> None:
        self.hub.close()
        self.metrics.detach()
        await self.sweeper.stop()
        if self.retention is not None:
            await self.retention.stop()

    # -- writes ----------------------------------------------------------------------------

    async def set(
        self,
        who: Principal,
        namespace: str,
        key: str,
        value: bytes,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        meta: Provenance = NO_PROVENANCE,
    ) -> WriteResult:
        """Set ``key`` to ``value`` (encoded JSON); ``ttl``: seconds until it expires. Every
        write verb takes ``meta``, the write's context as received (``provenance.request``),
        and stamps it with ``who`` (``_stamp``)."""
        ns = _allow(who, namespace, "write")
        k = naming.key(key)
        return await self.store.set(
            ns,
            k,
            value,
            expected_version=expected_version,
            ttl=ttl_micros(ttl),
            meta=self._stamp(who, meta),
        )

    def _stamp(self, who: Principal, meta: Provenance) -> Provenance:
        return provenance.stamp(who, meta, ttl_seconds=self.settings.idempotency_ttl)

    async def delete(
        self,
        who: Principal,
        namespace: str,
        key: str,
        *,
        expected_version: int | None = None,
        meta: Provenance = NO_PROVENANCE,
    ) -> WriteResult:
        ns = _allow(who, namespace, "write")
        k = naming.key(key)
        return await self.store.delete(
            ns, k, expected_version=expected_version, meta=self._stamp(who, meta)
        )

    async def batch(
        self,
        who: Principal,
        namespace: str,
        ops: Sequence[BatchOp],
        *,
        meta: Provenance = NO_PROVENANCE,
    ) -> Committed:
        """Commit ``ops`` (1-1000, each key once) as ONE revision, or raise ``BatchConflict``
        listing every failed condition and write nothing."""
        ns = _allow(who, namespace, "write")
        _count("ops", len(ops), MAX_OPS)
        writes = [
            Write(
                op=op.op,
                key=naming.key(op.key),
                value=op.value,
                expected_version=op.expected_version,
                ttl=ttl_micros(op.ttl),
            )
            for op in ops
        ]
        return await self.store.commit(ns, writes, self._stamp(who, meta))

    async def rollback(
        self,
        who: Principal,
        namespace: str,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RollbackResult:
        ns = _allow(who, namespace, "write")
        k = None if key is None else naming.key(key)
        return await self.store.rollback(
            ns, to, key=k, dry_run=dry_run, meta=self._stamp(who, meta)
        )

    async def revert_run(
        self,
        who: Principal,
        namespace: str,
        run: str,
        *,
        dry_run: bool = False,
        meta: Provenance = NO_PROVENANCE,
    ) -> RevertResult:
        """Undo what ``run`` wrote in ONE revision, leaving keys others wrote since alone
        (PRODUCT.md section 9; the rule: ``storage.base.revert_writes``)."""
        ns = _allow(who, namespace, "write")
        r = provenance.run_id(run)
        return await self.store.revert_run(ns, r, dry_run=dry_run, meta=self._stamp(who, meta))

    async def run_events(
        self,
        who: Principal,
        namespace: str,
        run: str,
        *,
        after: tuple[int, str] | None = None,
        limit: int = 100,
    ) -> Page[Event]:
        """The events ``run`` wrote, oldest first, after the (revision, key) ``after``."""
        ns = _allow(who, namespace, "read")
        r = provenance.run_id(run)
        store = self.store
        events, more = await _page(
            lambda n: store.run_events(ns, r, after=after, limit=n),
            lambda last: store.run_events(ns, r, after=(last.revision, last.key), limit=1),
            limit,
        )
        return Page(events, more)

    async def compact(self, who: Principal, namespace: str, *, before: int) -> tuple[int, int]:
        """Forget history before ``before``: (events removed, the oldest readable revision)."""
        ns = _allow(who, namespace, "admin")
        removed = await self.store.compact(ns, before=before)
        return removed, (await self.store.info(ns)).oldest_revision

    # -- reads -----------------------------------------------------------------------------

    async def get(self, who: Principal, namespace: str, key: str, *, as_of: AsOf = None) -> Item:
        """The key now or at ``as_of``; ``NotFound`` (key_not_found) when absent."""
        ns = _allow(who, namespace, "read")
        k = naming.key(key)
        item = await self.store.get(ns, k, as_of=as_of)
        if item is None:
            raise key_not_found(ns, k)
        return item

    async def get_many(
        self, who: Principal, namespace: str, keys: Sequence[str], *, as_of: AsOf = None
    ) -> tuple[int, dict[str, Item | None]]:
        """1-1000 keys read at ONE revision: (that revision, key -> item or None)."""
        ns = _allow(who, namespace, "read")
        _count("keys", len(keys), MAX_KEYS)
        return await self.store.get_many(ns, [naming.key(k) for k in keys], as_of=as_of)

    async def list_keys(
        self,
        who: Principal,
        namespace: str,
        *,
        prefix: str | None = None,
        after: str | None = None,
        limit: int = 100,
        as_of: AsOf = None,
    ) -> Page[Item]:
        """Keys in key order after ``after``; ``revision``: the head, or the revision read."""
        ns = _allow(who, namespace, "read")
        store = self.store
        # A current listing reads the current table; a past one reads at the resolved revision.
        revision = await store.head(ns) if as_of is None else await store.resolve(ns, as_of)
        read_at = None if as_of is None else revision
        items, more = await _page(
            lambda n: store.list(ns, prefix=prefix, after=after, limit=n, as_of=read_at),
            lambda last: store.list(ns, prefix=prefix, after=last.key, limit=1, as_of=read_at),
            limit,
        )
        return Page(items, more, revision)

    async def snapshot(
        self,
        who: Principal,
        namespace: str,
        *,
        prefix: str | None = None,
        after: str | None = None,
        limit: int = 1000,
        as_of: AsOf = None,
    ) -> Page[Item]:
        """Items at ONE revision (the head, or ``as_of``) in key order after ``after``."""
        ns = _allow(who, namespace, "read")
        store = self.store
        # Every page reads at one fixed revision, so the pages of a snapshot agree.
        revision = await store.head(ns) if as_of is None else await store.resolve(ns, as_of)
        items, more = await _page(
            lambda n: store.list(ns, prefix=prefix, after=after, limit=n, as_of=revision),
            lambda last: store.list(ns, prefix=prefix, after=last.key, limit=1, as_of=revision),
            limit,
        )
        return Page(items, more, revision)

    async def select(
        self,
        who: Principal,
        namespace: str,
        *,
        where: dict[str, object] | None = None,
        prefix: str | None = None,
        offset: int = 0,
        limit: int = 10,
        as_of: AsOf = None,
    ) -> Selected:
        """The filtered listing (``Store.select``): matching items at one revision, in key
        order, after skipping ``offset`` matches; ``limit`` 1-1000."""
        ns = _allow(who, namespace, "read")
        _count("items a page", limit, 1000)
        if offset < 0:
            raise InvalidInput("offset must be >= 0.", code="invalid_body")
        if prefix:
            naming.prefix(prefix)
        return await self.store.select(
            ns, where=where, prefix=prefix or None, offset=offset, limit=limit, as_of=as_of
        )

    async def history(
        self,
        who: Principal,
        namespace: str,
        key: str,
        *,
        before: int | None = None,
        limit: int = 100,
    ) -> Page[Event]:
        """A key's events, newest first, with revisions below ``before``."""
        ns = _allow(who, namespace, "read")
        k = naming.key(key)
        store = self.store
        events, more = await _page(
            lambda n: store.history(ns, k, before=before, limit=n),
            lambda last: store.history(ns, k, before=last.revision, limit=1),
            limit,
        )
        return Page(events, more)

    async def changes(
        self,
        who: Principal,
        namespace: str,
        *,
        after: int = 0,
        limit: int = 100,
        prefix: str | None = None,
    ) -> Changes:
        """The change feed: events of revisions (after, after + limit], oldest first."""
        ns = _allow(who, namespace, "read")
        return await self.store.changes(ns, after=after, limit=limit, prefix=prefix)

    async def watch(
        self, who: Principal, namespace: str, *, after: int | None = None, prefix: str | None = None
    ) -> Watch:
        """Follow the feed from ``after`` (None: the current head). Errors of the first read
        (``RevisionCompacted``, ``FutureRevision``) are raised here, before any event."""
        ns = _allow(who, namespace, "read")
        return await self.hub.watch(ns, after=after, prefix=prefix)

    async def info(self, who: Principal, namespace: str) -> NamespaceInfo:
        ns = _allow(who, namespace, "read")
        return await self.store.info(ns)

    async def stats(self, who: Principal) -> Stats:
        who.require_global_admin("read GET /stats/memory")
        return await self.store.stats()

    async def list_namespaces(
        self,
        who: Principal,
        *,
        prefix: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> Page[NamespaceInfo]:
        """Namespaces ever written, in name order after ``after``: only those ``who`` may
        read, so a listing reveals nothing else."""
        rows: list[NamespaceInfo] = []
        cursor = after
        while True:
            page = await self.store.list_namespaces(prefix=prefix, after=cursor, limit=1000)
            for info in page:
                if who.may(info.namespace, "read"):
                    if len(rows) == limit:
                        return Page(rows, True)
                    rows.append(info)
            if len(page) < 1000:
                return Page(rows, False)
            cursor = page[-1].namespace

    # -- tokens ------------------------------------------------------------------------------

    async def create_token(
        self, who: Principal, name: str, grants: Sequence[Grant], *, expires_in: float | None
    ) -> tuple[TokenRecord, str]:
        """A new token: (its record, the full token, shown only now)."""
        who.require_global_admin("manage tokens")
        return await create_token(self.store, name, grants, expires_in=expires_in)

    async def list_tokens(self, who: Principal) -> Sequence[TokenRecord]:
        who.require_global_admin("manage tokens")
        return await self.store.list_tokens()

    async def revoke_token(self, who: Principal, token_id: str) -> TokenRecord:
        who.require_global_admin("manage tokens")
        record = await self.store.revoke_token(token_id, at=self.store.clock())
        if record is None:
            raise NotFound(f"No token has id {token_id!r}.", code="token_not_found")
        self.auth.forget(token_id)
        return record

    async def still_valid(self, who: Principal) -> bool:
        return await self.auth.still_valid(who)

    def metrics_text(self, who: Principal) -> bytes:
        """The Prometheus exposition (``GET /metrics``): admin on ``*`` or the metrics token."""
        if not self.settings.metrics_on:
            raise NotFound(
                "Metrics are off on this server (BOTWIRE_METRICS=off).", code="route_not_found"
            )
        if who is not auth.METRICS_READER:
            who.require_global_admin("read GET /metrics")
        return self.metrics.exposition()

    async def ping(self) -> None:
        await self.store.ping()


__all__ = ["BatchOp", "Page", "Service", "create_token", "ttl_micros"]
