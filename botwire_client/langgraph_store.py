"""``BotWireStore``: LangGraph's long-term memory store (``langgraph.store.base.BaseStore``) on
a BotWire server, with versions, history and undo of every item.

Each LangGraph namespace tuple is one BotWire namespace (``botwire_client.tuple_names`` has the
injective mapping: ``("users", "ada")`` -> ``lg:users/ada``), so a token grant on ``lg:users/ada*``
covers one user, and each item is one key holding its JSON value. A list of ops becomes few
requests: the reads go first (as in LangGraph's ``InMemoryStore``), every ``GetOp`` of one
namespace in one multi-get (``POST /namespaces/{ns}/get``), each ``SearchOp`` as one namespace
listing plus one filtered listing (``POST /namespaces/{ns}/query``, the filter evaluated by the
server) per namespace it needs; then the ``PutOp`` of each namespace as ONE atomic batch
(``POST /namespaces/{ns}/batch``; a batch of deletes first reads which keys exist, one multi-get).

Order: ``search`` returns items by namespace (tuple order), then by stored key (code point
order); ``list_namespaces`` in tuple order, as LangGraph's stores do. A namespace is listed
while it holds at least one item. TTLs are minutes, as in LangGraph; a read with
``refresh_ttl`` rewrites each item it returned that has a TTL (a conditional batch per
namespace; a concurrent write wins), so the refresh is a new version in the item's history.

The extras only BotWire has, keyed like LangGraph items::

    store.history(("users", "ada"), "prefs")        # every version, newest first
    store.get_at(("users", "ada"), "prefs", 12)     # the item as it was at revision 12
    store.rollback(("users", "ada"), 12, key="prefs")   # undo: one new revision
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)

from botwire_client import core, tuple_names
from botwire_client import models as bw
from botwire_client.core import Op as Operation
from botwire_client.errors import ConflictError, InvalidRequest
from botwire_client.memory import Memory
from botwire_client.query import namespaces_op, query_op

MAX_CAS_ATTEMPTS = 20


class BotWireStore(BaseStore):
    """A LangGraph ``BaseStore`` on a BotWire server; see the module docstring.

    ``base_url`` and ``token`` as for ``Memory`` (``BOTWIRE_URL``, ``BOTWIRE_TOKEN``); ``root``:
    the first part of every BotWire namespace this store uses (``lg`` -> ``lg:users/ada``);
    ``ttl``: LangGraph's ``TTLConfig`` (``default_ttl`` minutes, ``refresh_on_read``).
    ``memory``: a ``Memory`` to share its connections (its namespace is not used).
    """

    supports_ttl = True

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        root: str = tuple_names.DEFAULT_ROOT,
        ttl: TTLConfig | None = None,
        memory: Memory | None = None,
    ) -> None:
        if not root or ":" in root or "/" in root:
            raise InvalidRequest(f"root must be a non-empty name without ':' or '/', not {root!r}")
        self.root = root
        self.ttl_config = ttl
        self.memory = memory if memory is not None else Memory(root, base_url, token=token)

    def __repr__(self) -> str:
        return f"BotWireStore(base_url={self.memory.base_url!r}, root={self.root!r})"

    # -- names -------------------------------------------------------------------------------

    def namespace_name(self, namespace: tuple[str, ...]) -> str:
        """The BotWire namespace that holds ``namespace``'s items."""
        return tuple_names.namespace_name(self.root, _checked(namespace))

    # -- BaseStore ---------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self.memory._run(self._batch_op(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self.memory._arun(self._batch_op(list(ops)))

    def _batch_op(self, ops: list[Op]) -> Operation[list[Result]]:
        for op in ops:
            _check_op(op)
        results: list[Result] = [None] * len(ops)
        refresh: dict[str, dict[str, bw.Item]] = defaultdict(dict)
        gets: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                gets[op.namespace].append(i)
        for namespace, indexes in gets.items():
            name = self.namespace_name(namespace)
            keys = [tuple_names.key_name(ops[i].key) for i in indexes]  # type: ignore[union-attr]
            found = yield from core.items_many_op(name, keys, None)
            for i, key in zip(indexes, keys, strict=True):
                item = found.get(key)
                if item is not None:
                    results[i] = _item(namespace, item)
                    if ops[i].refresh_ttl and item.expires_at is not None:  # type: ignore[union-attr]
                        refresh[name][key] = item
        for i, op in enumerate(ops):
            if isinstance(op, SearchOp):
                found_items = yield from self._search_op(op)
                results[i] = [_search_item(ns, item) for ns, item in found_items]
                if op.refresh_ttl:
                    for ns, item in found_items:
                        if item.expires_at is not None:
                            refresh[self.namespace_name(ns)][item.key] = item
            elif isinstance(op, ListNamespacesOp):
                results[i] = yield from self._list_namespaces_op(op)
        for name, items in refresh.items():
            yield from _refresh_op(name, items)
        puts: dict[tuple[str, ...], dict[str, PutOp]] = defaultdict(dict)
        for op in ops:
            if isinstance(op, PutOp):
                puts[op.namespace][tuple_names.key_name(op.key)] = op  # the last one wins
        for namespace, by_key in puts.items():
            yield from _put_op(self.namespace_name(namespace), by_key)
        return results

    def _search_op(self, op: SearchOp) -> Operation[list[tuple[tuple[str, ...], bw.Item]]]:
        if op.query:
            raise InvalidRequest(
                "BotWireStore has no semantic index, so search(query=...) cannot rank by "
                "meaning; search with filter= (evaluated by the server) or without a query."
            )
        if op.limit < 0 or op.offset < 0:
            raise InvalidRequest("search needs limit >= 0 and offset >= 0.")
        prefix = op.namespace_prefix
        names = yield from self._namespaces_op(prefix)
        found: list[tuple[tuple[str, ...], bw.Item]] = []
        offset = op.offset
        for namespace, name in names:
            if len(found) >= op.limit:
                break
            page = yield from query_op(
                name, op.filter, offset=offset, limit=min(op.limit - len(found), 1000)
            )
            offset -= page.skipped
            seen = page.skipped + len(page.items)
            found.extend((namespace, item) for item in page.items)
            while page.more and len(found) < op.limit:
                # More matches than one page (1000) holds: the next ones, at the same revision.
                page = yield from query_op(
                    name,
                    op.filter,
                    offset=seen,
                    limit=min(op.limit - len(found), 1000),
                    as_of=page.revision,
                )
                seen += len(page.items)
                found.extend((namespace, item) for item in page.items)
        return found

    def _namespaces_op(
        self, prefix: tuple[str, ...]
    ) -> Operation[list[tuple[tuple[str, ...], str]]]:
        """The namespaces holding items whose tuple starts with ``prefix``, in tuple order."""
        entries = yield from namespaces_op(tuple_names.labels_prefix(self.root, prefix))
        out = []
        for entry in entries:
            labels = tuple_names.namespace_tuple(self.root, entry.namespace)
            if labels is not None and entry.keys > 0 and labels[: len(prefix)] == prefix:
                out.append((labels, entry.namespace))
        out.sort()
        return out

    def _list_namespaces_op(self, op: ListNamespacesOp) -> Operation[list[tuple[str, ...]]]:
        conditions = op.match_conditions or ()
        fixed: tuple[str, ...] = ()
        for condition in conditions:
            if condition.match_type == "prefix":
                for label in condition.path:
                    if label == "*":
                        break
                    fixed += (label,)
                break
        names = yield from self._namespaces_op(fixed)
        spaces = [ns for ns, _ in names if all(_matches(c, ns) for c in conditions)]
        if op.max_depth is not None:
            spaces = sorted({ns[: op.max_depth] for ns in spaces})
        return spaces[op.offset : op.offset + op.limit]

    # -- the extras: versions, history, undo -------------------------------------------------

    def history(
        self, namespace: tuple[str, ...], key: str, *, limit: int | None = 100
    ) -> list[bw.Event]:
        """The item's events (set, delete, expire), newest first: every version it had."""
        return self.memory._run(self._history_op(namespace, key, limit))

    async def ahistory(
        self, namespace: tuple[str, ...], key: str, *, limit: int | None = 100
    ) -> list[bw.Event]:
        return await self.memory._arun(self._history_op(namespace, key, limit))

    def get_at(self, namespace: tuple[str, ...], key: str, as_of: int | datetime) -> Item | None:
        """The item as it was at revision ``as_of`` of its namespace (or at a time)."""
        return self.memory._run(self._get_at_op(namespace, key, as_of))

    async def aget_at(
        self, namespace: tuple[str, ...], key: str, as_of: int | datetime
    ) -> Item | None:
        return await self.memory._arun(self._get_at_op(namespace, key, as_of))

    def head(self, namespace: tuple[str, ...]) -> int:
        """The namespace's current revision: note it before a change to undo it later."""
        return self.memory._run(core.head_op(self.namespace_name(namespace)))

    async def ahead(self, namespace: tuple[str, ...]) -> int:
        return await self.memory._arun(core.head_op(self.namespace_name(namespace)))

    def rollback(
        self,
        namespace: tuple[str, ...],
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
    ) -> bw.RollbackResult:
        """Undo: make the namespace (or one item) what it was at ``to``, as ONE new revision."""
        return self.memory._run(self._rollback_op(namespace, to, key, dry_run))

    async def arollback(
        self,
        namespace: tuple[str, ...],
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
    ) -> bw.RollbackResult:
        return await self.memory._arun(self._rollback_op(namespace, to, key, dry_run))

    def _history_op(
        self, namespace: tuple[str, ...], key: str, limit: int | None
    ) -> Operation[list[bw.Event]]:
        return core.history_op(self.namespace_name(namespace), tuple_names.key_name(key), limit)

    def _get_at_op(
        self, namespace: tuple[str, ...], key: str, as_of: int | datetime
    ) -> Operation[Item | None]:
        found = yield from core.item_op(
            self.namespace_name(namespace), tuple_names.key_name(key), as_of
        )
        return None if found is None else _item(namespace, found, key)

    def _rollback_op(
        self, namespace: tuple[str, ...], to: int | datetime, key: str | None, dry_run: bool
    ) -> Operation[bw.RollbackResult]:
        k = None if key is None else tuple_names.key_name(key)
        return core.rollback_op(self.namespace_name(namespace), to, k, dry_run)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self.memory.close()

    async def aclose(self) -> None:
        await self.memory.aclose()


def _checked(namespace: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(namespace, tuple):
        raise InvalidNamespaceError(f"A namespace is a tuple of strings, not {namespace!r}.")
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label or "\x00" in label:
            raise InvalidNamespaceError(
                f"Invalid namespace label {label!r} in {namespace!r}: labels are non-empty "
                "strings without '.' or NUL."
            )
    return namespace


def _check_op(op: Op) -> None:
    if isinstance(op, GetOp | PutOp):
        _checked(op.namespace)
        if isinstance(op, PutOp) and op.value is not None and not isinstance(op.value, Mapping):
            raise InvalidRequest(f"A LangGraph item's value is a dict, not {op.value!r}.")
    elif isinstance(op, SearchOp):
        _checked(op.namespace_prefix)
    elif isinstance(op, ListNamespacesOp):
        for condition in op.match_conditions or ():
            _checked(condition.path)
    else:
        raise InvalidRequest(f"Unknown store operation: {op!r}")


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = condition.path
    if len(namespace) < len(path):
        return False
    pairs = (
        zip(namespace, path, strict=False)
        if condition.match_type == "prefix"
        else zip(reversed(namespace), reversed(path), strict=False)
    )
    if condition.match_type not in ("prefix", "suffix"):
        raise InvalidRequest(f"Unknown match type {condition.match_type!r}.")
    return all(p == "*" or n == p for n, p in pairs)


def _item(namespace: tuple[str, ...], item: bw.Item, key: str | None = None) -> Item:
    return Item(
        value=item.value,
        key=tuple_names.key_of(item.key) if key is None else key,
        namespace=namespace,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _search_item(namespace: tuple[str, ...], item: bw.Item) -> SearchItem:
    return SearchItem(
        namespace=namespace,
        key=tuple_names.key_of(item.key),
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _refresh_op(name: str, items: Mapping[str, bw.Item]) -> Operation[None]:
    """Set each item again with the TTL it had, unless it changed since it was read."""
    ops = core.BatchOps(name)
    for key, item in items.items():
        assert item.expires_at is not None
        ttl = max(0.001, (item.expires_at - item.updated_at).total_seconds())
        ops.set(key, item.value, item.version, ttl)
    try:
        yield from ops.commit_op()
    except ConflictError:
        pass  # another writer changed an item meanwhile: its write set the TTL anew


def _put_op(name: str, by_key: Mapping[str, PutOp]) -> Operation[None]:
    """The puts of one namespace as one atomic batch (per 1000 ops). A delete in a batch needs
    the key to exist, so deletes first read which keys exist and pin their versions; a
    concurrent write makes the batch fail its condition, and it is built again."""
    deletes = [key for key, op in by_key.items() if op.value is None]
    for _attempt in range(MAX_CAS_ATTEMPTS):
        present = (yield from core.items_many_op(name, deletes, None)) if deletes else {}
        keys = [k for k, op in by_key.items() if op.value is not None or k in present]
        try:
            for start in range(0, len(keys), core.BATCH_LIMIT):
                ops = core.BatchOps(name)
                for key in keys[start : start + core.BATCH_LIMIT]:
                    op = by_key[key]
                    if op.value is None:
                        ops.delete(key, present[key].version)
                    else:
                        ttl = None if op.ttl is None else op.ttl * 60.0
                        ops.set(key, dict(op.value), None, ttl)
                if ops.ops:
                    yield from ops.commit_op()
            return
        except ConflictError:
            continue  # a key to delete changed or went away meanwhile: read again
    raise ConflictError(
        f"Could not apply the puts to {name!r}: its items kept changing during "
        f"{MAX_CAS_ATTEMPTS} attempts.",
        current_version=0,
    )
