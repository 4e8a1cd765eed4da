"""The saver's operations, sans-I/O: generators of requests, as in ``botwire_client.core``.

Each operation is written once; ``BotWireSaver`` runs it through the sync or the async shell
of a ``Memory`` (whose ``_run`` / ``_arun`` only send requests), so the sync and async twins
cannot drift apart. Request counts (the point of the layout in ``layout``):

- ``put``: ONE atomic batch (the checkpoint record and the blobs of the channels whose
  version changed), plus one index write the first time this saver sees a run in a thread.
- ``put_writes``: ONE batch (a repeat of a regular write is kept as first written, as
  LangGraph's savers do; only then a second batch without the repeats).
- ``get_tuple``: one snapshot page (the record and its writes, newest first) and, when the
  checkpoint has channel values, one multi-get of its blobs read at the same revision:
  two requests whatever the thread's length.
- ``list``: the same two requests per page of checkpoints.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from botwire_client import core
from botwire_client.core import Op, Request
from botwire_client.errors import ConflictError, ServerError
from botwire_client.langgraph_saver import layout

RECORD_FORMAT = 1
# The first snapshot page of a "latest checkpoint" read: the record, its writes (usually
# none, or one per task), and a few older entries at most. A longer group takes more pages.
LATEST_PAGE = 8
LIST_PAGE = 100
# A batch body stays well below the server's 16 MiB batch limit.
BATCH_BYTES = 4 * 1024 * 1024


# -- values ----------------------------------------------------------------------------------


def pack(serde: SerializerProtocol, value: Any) -> list[str]:
    """A value as LangGraph's serializer writes it, as JSON: ``[type, base64 bytes]``."""
    type_, data = serde.dumps_typed(value)
    return [type_, base64.b64encode(data).decode("ascii")]


def unpack(serde: SerializerProtocol, stored: Any) -> Any:
    try:
        type_, data = stored
        raw = base64.b64decode(data, validate=True)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise ServerError(
            f"A stored checkpoint value is not in the saver's format ({exc}); was the key "
            "written by something other than BotWireSaver?"
        ) from exc
    return serde.loads_typed((str(type_), raw))


# -- requests the core does not have -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One snapshot page: every key with ``prefix``, in key order, read at ``revision``."""

    revision: int
    values: dict[str, Any]
    next_cursor: str | None


def cursor_after(key: str) -> str:
    """A snapshot cursor that starts right after ``key``.

    The server's cursors are ``s:<last key>``, base64url without padding
    (``botwire_server.http.params.make_cursor``); ``list(before=...)`` starts its first page
    there, so a page of older checkpoints costs one request however deep it starts.
    tests/test_langgraph_saver.py reads a page this way against a real server.
    """
    return base64.urlsafe_b64encode(f"s:{key}".encode()).decode().rstrip("=")


def snapshot_page_op(
    namespace: str, prefix: str, limit: int, cursor: str | None, as_of: int | None
) -> Op[Page]:
    params = {"prefix": prefix, "limit": str(limit)}
    if cursor:
        params["cursor"] = cursor
    if as_of is not None:
        params["as_of"] = str(as_of)
    req = Request("GET", core._path("namespaces", namespace, "snapshot"), params=params)
    data = core._ok((yield req), req)
    values = data.get("values") or {}
    return Page(
        revision=int(data["revision"]),
        values={k: values[k] for k in sorted(values)},
        next_cursor=data.get("next_cursor") or None,
    )


def namespaces_op(prefix: str) -> Op[list[str]]:
    """Every namespace whose name starts with ``prefix``, in name order."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        params = {"prefix": prefix, "limit": "1000"}
        if cursor:
            params["cursor"] = cursor
        req = Request("GET", "/namespaces", params=params)
        data = core._ok((yield req), req)
        found.extend(str(row["namespace"]) for row in data["namespaces"])
        cursor = data.get("next_cursor")
        if not cursor:
            return found


@dataclass
class Writes:
    """The writes of one batch-to-be, split into batches the server takes."""

    namespace: str
    sets: list[tuple[str, Any, int | None]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    def set(self, key: str, value: Any, expected_version: int | None = None) -> None:
        self.sets.append((key, value, expected_version))

    def delete(self, key: str) -> None:
        self.deletes.append(key)


def commit_op(writes: Writes, run_id: str | None) -> Op[None]:
    """Commit ``writes``: ONE atomic batch when it fits (any checkpoint does), else several,
    sets before deletes, each atomic on its own.

    Provenance: this is the one place where every write of the saver leaves. ``run_id`` is
    the LangGraph run that caused it (``metadata["run_id"]`` of a checkpoint, the config's
    run of a write); it goes on these batches as ``BotWire-Run``, so history, the change feed
    and ``Memory.revert_run`` see which run wrote what.
    """
    meta = core.WriteMeta(str(run_id), None, None, None) if run_id else core.NO_META
    batches: list[core.BatchOps] = []
    current = core.BatchOps(writes.namespace, meta)
    size = 0
    for key, value, expected in writes.sets:
        # Sizing by the base64 text is enough: the values are [type, base64] pairs or records.
        weight = len(key) + _weight(value) + 64
        if len(current.ops) >= core.BATCH_LIMIT or (current.ops and size + weight > BATCH_BYTES):
            batches.append(current)
            current, size = core.BatchOps(writes.namespace, meta), 0
        current.set(key, value, expected, None)
        size += weight
    for key in writes.deletes:
        if len(current.ops) >= core.BATCH_LIMIT:
            batches.append(current)
            current = core.BatchOps(writes.namespace, meta)
        current.delete(key, None)
    if current.ops:
        batches.append(current)
    for batch in batches:
        yield from batch.commit_op()


def _weight(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(_weight(v) for v in value) + 4
    if isinstance(value, dict):
        return sum(len(str(k)) + _weight(v) for k, v in value.items()) + 4
    return 16


# -- configs ---------------------------------------------------------------------------------


def thread_of(config: RunnableConfig) -> str:
    conf = config.get("configurable") or {}
    if conf.get("thread_id") is None:
        raise ValueError(
            'BotWireSaver needs a thread: pass config={"configurable": {"thread_id": ...}}.'
        )
    return str(conf["thread_id"])


def tuple_config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


# -- put and put_writes ----------------------------------------------------------------------


def put_op(
    serde: SerializerProtocol,
    namespace: str,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    run_index: tuple[str, str] | None,
) -> Op[RunnableConfig]:
    """Store a checkpoint and the blobs of its changed channels as ONE batch.

    ``run_index``: (runs namespace, key) to write first, so ``delete_for_runs`` can find this
    thread; the index may name a thread that holds no checkpoint of the run, never the
    reverse."""
    thread_id = thread_of(config)
    conf = config["configurable"]
    checkpoint_ns = str(conf.get("checkpoint_ns") or "")
    parent_id = conf.get("checkpoint_id")
    skeleton = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    values = checkpoint["channel_values"]
    run_id = metadata.get("run_id")
    run = None if run_id is None else str(run_id)
    record = {
        "format": RECORD_FORMAT,
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint["id"],
        "parent_checkpoint_id": parent_id,
        "ts": checkpoint.get("ts"),
        "run_id": run,
        "step": metadata.get("step"),
        "source": metadata.get("source"),
        "checkpoint": pack(serde, skeleton),
        "metadata": pack(serde, metadata),
    }
    if run_index is not None:
        runs_ns, index_key = run_index
        yield from commit_op(
            _single(runs_ns, index_key, {"thread_id": thread_id, "namespace": namespace}),
            run,
        )
    writes = Writes(namespace)
    # Only the channels whose version changed get a blob, as LangGraph's own savers do; a
    # channel without a value at its new version (it was cleared) needs none: reads skip it.
    for channel, version in new_versions.items():
        if channel in values:
            writes.set(
                layout.blob_key(checkpoint_ns, channel, version), pack(serde, values[channel])
            )
    writes.set(layout.checkpoint_key(checkpoint_ns, checkpoint["id"]), record)
    yield from commit_op(writes, run)
    return tuple_config(thread_id, checkpoint_ns, checkpoint["id"])


def _single(namespace: str, key: str, value: Any) -> Writes:
    writes = Writes(namespace)
    writes.set(key, value)
    return writes


def put_writes_op(
    serde: SerializerProtocol,
    namespace: str,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> Op[None]:
    """Store a task's writes, one key each. A regular write that is already stored (same
    task, same index) stays as first written; a special one (error, interrupt, resume,
    scheduled) is replaced: LangGraph's rule (``WRITES_IDX_MAP``)."""
    conf = config["configurable"]
    checkpoint_ns = str(conf.get("checkpoint_ns") or "")
    checkpoint_id = str(conf["checkpoint_id"])
    run_id = (config.get("metadata") or {}).get("run_id")
    ops: list[tuple[str, Any, int | None]] = []
    for idx, (channel, value) in enumerate(writes):
        slot = WRITES_IDX_MAP.get(channel, idx)
        stored = {
            "task_id": task_id,
            "idx": slot,
            "channel": channel,
            "task_path": task_path,
            "value": pack(serde, value),
        }
        key = layout.write_key(checkpoint_ns, checkpoint_id, task_id, slot)
        ops.append((key, stored, 0 if slot >= 0 else None))
    while ops:
        batch = Writes(namespace, sets=list(ops))
        try:
            yield from commit_op(batch, None if run_id is None else str(run_id))
            return
        except ConflictError as exc:
            taken = {c.key for c in exc.conflicts}
            if not taken:
                raise
            ops = [op for op in ops if op[0] not in taken]


# -- reading ---------------------------------------------------------------------------------


@dataclass
class Group:
    """A checkpoint record and its writes, as one snapshot page (or several) returned them."""

    key: str
    record: Mapping[str, Any]
    writes: list[Mapping[str, Any]] = field(default_factory=list)
    skeleton: dict[str, Any] = field(default_factory=dict)  # the checkpoint, once decoded


@dataclass
class Reader:
    """Turns snapshot pages into ``CheckpointTuple``s: groups entries, applies the filters,
    fetches the blobs of a page's checkpoints with one multi-get."""

    serde: SerializerProtocol
    namespace: str
    thread_id: str | None  # None: take it from each record (listing every thread)
    filter: Mapping[str, Any] | None = None
    before_id: str | None = None  # a filter, when the listing could not start after it
    only_id: str | None = None

    def groups(self, values: Mapping[str, Any], open_group: Group | None) -> list[Group]:
        """The page's groups, in order; the first may continue ``open_group``."""
        out: list[Group] = [open_group] if open_group is not None else []
        for key, value in values.items():
            if layout.is_write_key(key):
                if out and layout.record_key_of_write(key) == out[-1].key:
                    out[-1].writes.append(value)
                # else: writes whose checkpoint is not stored (never put, or deleted)
            elif isinstance(value, dict) and value.get("format") == RECORD_FORMAT:
                out.append(Group(key, value))
        return out

    def keep(self, group: Group) -> tuple[Group, CheckpointMetadata] | None:
        record = group.record
        if self.thread_id is not None and record.get("thread_id") != self.thread_id:
            raise ServerError(
                f"The namespace {self.namespace!r} holds the checkpoints of thread "
                f"{record.get('thread_id')!r}, not of {self.thread_id!r}; two thread ids "
                "share a hashed namespace name. Use shorter thread ids."
            )
        if self.before_id is not None and str(record["checkpoint_id"]) >= self.before_id:
            return None
        if self.only_id is not None and str(record["checkpoint_id"]) != self.only_id:
            return None
        metadata: CheckpointMetadata = unpack(self.serde, record["metadata"])
        if self.filter and not all(metadata.get(k) == v for k, v in self.filter.items()):
            return None
        return group, metadata

    def blob_keys(self, group: Group) -> dict[str, str]:
        """channel -> blob key, for every channel the checkpoint has a version of."""
        group.skeleton = skeleton = dict(unpack(self.serde, group.record["checkpoint"]))
        ns = str(group.record["checkpoint_ns"])
        return {
            ch: layout.blob_key(ns, ch, version)
            for ch, version in skeleton["channel_versions"].items()
        }

    def tuples_op(
        self, kept: list[tuple[Group, CheckpointMetadata]], revision: int
    ) -> Op[list[CheckpointTuple]]:
        wanted = [(group, meta, self.blob_keys(group)) for group, meta in kept]
        keys = sorted({key for _, _, blobs in wanted for key in blobs.values()})
        found = (yield from core.items_many_op(self.namespace, keys, revision)) if keys else {}
        return [self._tuple(group, meta, blobs, found) for group, meta, blobs in wanted]

    def _tuple(
        self,
        group: Group,
        metadata: CheckpointMetadata,
        blobs: Mapping[str, str],
        found: Mapping[str, Any],
    ) -> CheckpointTuple:
        record = group.record
        thread_id = str(record["thread_id"])
        checkpoint_ns = str(record["checkpoint_ns"])
        skeleton = dict(group.skeleton)
        skeleton["channel_values"] = {
            ch: unpack(self.serde, found[key].value) for ch, key in blobs.items() if key in found
        }
        parent = record.get("parent_checkpoint_id")
        ordered = sorted(
            group.writes,
            key=lambda w: writes_sort_key(str(w["task_path"]), str(w["task_id"]), int(w["idx"])),
        )
        pending: list[PendingWrite] = [
            (str(w["task_id"]), str(w["channel"]), unpack(self.serde, w["value"])) for w in ordered
        ]
        checkpoint: Checkpoint = skeleton  # type: ignore[assignment]
        return CheckpointTuple(
            config=tuple_config(thread_id, checkpoint_ns, str(record["checkpoint_id"])),
            checkpoint=checkpoint,
            metadata=metadata,
            parent_config=(tuple_config(thread_id, checkpoint_ns, str(parent)) if parent else None),
            pending_writes=pending,
        )


class Listing:
    """The state of one ``list`` (or ``get_tuple``) over one thread namespace: where the next
    snapshot page starts, the group a page ended inside, how many tuples are still wanted."""

    def __init__(
        self,
        reader: Reader,
        prefix: str,
        *,
        start_after: str | None = None,
        limit: int | None = None,
        page: int = LIST_PAGE,
    ) -> None:
        self.reader = reader
        self.prefix = prefix
        self.cursor = None if start_after is None else cursor_after(start_after)
        self.limit = limit
        self.page = page
        self.revision: int | None = None
        self.open_group: Group | None = None
        self.done = limit is not None and limit <= 0

    def page_op(self) -> Op[list[CheckpointTuple]]:
        """The next page's tuples (possibly none); sets ``done`` after the last one."""
        page = yield from snapshot_page_op(
            self.reader.namespace, self.prefix, self.page, self.cursor, self.revision
        )
        self.revision = page.revision
        groups = self.reader.groups(page.values, self.open_group)
        self.open_group = None
        if page.next_cursor is not None and groups:
            self.open_group = groups.pop()  # its writes may go on in the next page
        self.cursor = page.next_cursor
        kept: list[tuple[Group, CheckpointMetadata]] = []
        for group in groups:
            if self.limit is not None and len(kept) >= self.limit:
                break
            chosen = self.reader.keep(group)
            if chosen is not None:
                kept.append(chosen)
        if self.limit is not None:
            self.limit -= len(kept)
        if page.next_cursor is None or (self.limit is not None and self.limit <= 0):
            self.done = True
        # A later page reads more once the first group needs one: the latest checkpoint's
        # page is small (LATEST_PAGE); the rest of a long group comes in full pages.
        self.page = LIST_PAGE
        if not kept:
            return []
        return (yield from self.reader.tuples_op(kept, page.revision))


def get_tuple_op(
    serde: SerializerProtocol, namespace: str, config: RunnableConfig
) -> Op[CheckpointTuple | None]:
    thread_id = thread_of(config)
    conf = config["configurable"]
    checkpoint_ns = str(conf.get("checkpoint_ns") or "")
    checkpoint_id = conf.get("checkpoint_id")
    reader = Reader(serde, namespace, thread_id)
    if checkpoint_id:
        prefix = layout.checkpoint_key(checkpoint_ns, str(checkpoint_id))
        listing = Listing(reader, prefix, limit=1, page=LATEST_PAGE)
    else:
        listing = Listing(reader, layout.checkpoints_prefix(checkpoint_ns), limit=1)
        listing.page = LATEST_PAGE
    while not listing.done:
        found = yield from listing.page_op()
        if found:
            return found[0]
    return None


def listing_for(
    serde: SerializerProtocol,
    namespace: str,
    thread_id: str | None,
    config: RunnableConfig | None,
    *,
    filter: Mapping[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> Listing:
    conf = (config or {}).get("configurable") or {}
    checkpoint_ns = conf.get("checkpoint_ns")
    checkpoint_id = conf.get("checkpoint_id")
    before_id = ((before or {}).get("configurable") or {}).get("checkpoint_id")
    reader = Reader(serde, namespace, thread_id, filter=filter)
    if checkpoint_ns is not None and checkpoint_id:
        exact = layout.checkpoint_key(str(checkpoint_ns), str(checkpoint_id))
        return Listing(reader, exact, limit=limit)
    if checkpoint_ns is not None:
        start = None
        if before_id:
            start = layout.after_checkpoint(str(checkpoint_ns), str(before_id))
        prefix = layout.checkpoints_prefix(str(checkpoint_ns))
        return Listing(reader, prefix, start_after=start, limit=limit)
    # Every checkpoint namespace of the thread in one listing; `before` and an id filter the
    # records there, since each namespace's checkpoints have their own order.
    reader.before_id = str(before_id) if before_id else None
    reader.only_id = str(checkpoint_id) if checkpoint_id else None
    return Listing(reader, layout.checkpoints_prefix(None), limit=limit)


# -- deleting, copying, pruning ----------------------------------------------------------------


def keys_op(namespace: str, prefix: str) -> Op[list[str]]:
    return (yield from core.list_keys_op(namespace, prefix, None))


def records_op(namespace: str, keys: Iterable[str]) -> Op[dict[str, Mapping[str, Any]]]:
    items = yield from core.items_many_op(namespace, keys, None)
    return {
        key: item.value
        for key, item in items.items()
        if isinstance(item.value, dict) and item.value.get("format") == RECORD_FORMAT
    }


def delete_thread_op(namespace: str) -> Op[None]:
    """Every key of the thread: records first (a reader then sees the thread end, not a
    checkpoint without its blobs), then writes and blobs."""
    keys = yield from keys_op(namespace, "")
    records = [k for k in keys if k.startswith("c/") and not layout.is_write_key(k)]
    rest = [k for k in keys if k not in set(records)]
    writes = Writes(namespace, deletes=records + rest)
    yield from commit_op(writes, None)


def _referenced_blobs(serde: SerializerProtocol, records: Iterable[Mapping[str, Any]]) -> set[str]:
    out: set[str] = set()
    for record in records:
        skeleton = unpack(serde, record["checkpoint"])
        ns = str(record["checkpoint_ns"])
        out.update(layout.blob_key(ns, ch, v) for ch, v in skeleton["channel_versions"].items())
    return out


def remove_checkpoints_op(
    serde: SerializerProtocol,
    namespace: str,
    drop: Callable[[Mapping[str, Mapping[str, Any]]], set[str]],
) -> Op[None]:
    """Delete the checkpoints whose keys ``drop(records by key)`` returns, with their writes,
    and every blob no remaining checkpoint refers to (blobs are shared between checkpoints)."""
    keys = yield from keys_op(namespace, "")
    record_keys = [k for k in keys if k.startswith("c/") and not layout.is_write_key(k)]
    if not record_keys:
        return
    records = yield from records_op(namespace, record_keys)
    dropped = drop(records)
    if not dropped:
        return
    kept = [r for k, r in records.items() if k not in dropped]
    referenced = _referenced_blobs(serde, kept)
    deletes = sorted(dropped)
    deletes += [
        k for k in keys if layout.is_write_key(k) and layout.record_key_of_write(k) in dropped
    ]
    deletes += [k for k in keys if k.startswith(layout.BLOBS_PREFIX) and k not in referenced]
    yield from commit_op(Writes(namespace, deletes=deletes), None)


def keep_latest(keys: Iterable[str]) -> set[str]:
    """The newest record key of each checkpoint namespace (the smallest key: ids reversed)."""
    newest: dict[str, str] = {}
    for key in sorted(keys):
        ns_part = key[: key.rindex("/")]
        newest.setdefault(ns_part, key)
    return set(newest.values())


def copy_thread_op(source: str, target: str, target_thread_id: str) -> Op[list[str]]:
    """Copy every checkpoint, write and blob of ``source`` into ``target`` (the records get
    the target's thread id); return the run ids of the copied checkpoints."""
    values = yield from core.snapshot_op(source, None, None)
    if not values:
        return []
    writes = Writes(target)
    records: list[tuple[str, Any]] = []
    runs: set[str] = set()
    for key, value in values.items():
        if isinstance(value, dict) and value.get("format") == RECORD_FORMAT:
            records.append((key, {**value, "thread_id": target_thread_id}))
            if value.get("run_id"):
                runs.add(str(value["run_id"]))
        elif key.startswith(("c/", layout.BLOBS_PREFIX)):
            writes.set(key, value)
    # Blobs and writes go before the records: a record is only visible with its blobs.
    for key, record in records:
        writes.set(key, record)
    yield from commit_op(writes, None)
    return sorted(runs)


def runs_of_op(runs_ns: str, run_ids: Sequence[str]) -> Op[dict[str, list[str]]]:
    """run id -> the index keys that name its threads."""
    out: dict[str, list[str]] = {}
    for run_id in dict.fromkeys(str(r) for r in run_ids):
        out[run_id] = yield from keys_op(runs_ns, layout.run_index_prefix(run_id))
    return out
