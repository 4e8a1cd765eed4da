"""``BotWireSaver``: a LangGraph checkpointer whose threads live on a BotWire server.

::

    from botwire.langgraph import BotWireSaver

    graph = builder.compile(checkpointer=BotWireSaver())   # BOTWIRE_URL, else 127.0.0.1:8000
    graph.invoke(inputs, {"configurable": {"thread_id": "user-42"}})

Each thread is one BotWire namespace (``layout`` draws the keys); every method is an
operation of ``ops`` run through a ``Memory``'s sync or async shell.
"""

from __future__ import annotations

import builtins
import random
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from botwire_client.core import Op, T
from botwire_client.langgraph_saver import layout, ops
from botwire_client.memory import Memory

STRATEGIES = ("keep_latest", "delete")


class BotWireSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints, channel values and pending writes on a BotWire server.

    ``base_url``: the argument, else ``BOTWIRE_URL``, else ``http://127.0.0.1:8000``;
    ``token``: the argument, else ``BOTWIRE_TOKEN``, as for ``Memory``. ``serde``: LangGraph's
    serializer (``JsonPlusSerializer`` by default; an ``EncryptedSerializer`` encrypts every
    stored checkpoint, metadata, channel value and write). ``prefix`` starts the name of every
    namespace the saver writes (``langgraph/threads/``: a token granted
    ``langgraph/threads/*`` covers them all).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        serde: SerializerProtocol | None = None,
        prefix: str = layout.DEFAULT_PREFIX,
        memory: Memory | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.prefix = prefix
        self.runs_namespace = layout.runs_namespace(prefix)
        # The Memory is only a shell that sends requests: every operation names its namespace.
        self.memory = memory or Memory(self.runs_namespace, base_url, token=token)
        self._lock = threading.Lock()
        self._indexed: set[tuple[str, str]] = set()  # (run, thread namespace) written

    def __repr__(self) -> str:
        return f"BotWireSaver(base_url={self.memory.base_url!r}, prefix={self.prefix!r})"

    def namespace(self, thread_id: str) -> str:
        """The BotWire namespace that holds ``thread_id`` (see ``layout``)."""
        return layout.thread_namespace(self.prefix, str(thread_id))

    # -- the shells ------------------------------------------------------------------------

    def _run(self, op: Op[T]) -> T:
        return self.memory._run(op)

    async def _arun(self, op: Op[T]) -> T:
        return await self.memory._arun(op)

    # -- reads -----------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run(self._get_tuple_op(config))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._arun(self._get_tuple_op(config))

    def _get_tuple_op(self, config: RunnableConfig) -> Op[CheckpointTuple | None]:
        namespace = self.namespace(ops.thread_of(config))
        return ops.get_tuple_op(self.serde, namespace, config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (per checkpoint namespace), a page at a time. Without a
        thread in ``config``, every thread of the saver's prefix."""
        left = limit
        for namespace, thread_id in self._scopes(config):
            listing = ops.listing_for(
                self.serde, namespace, thread_id, config, filter=filter, before=before, limit=left
            )
            while not listing.done:
                for tup in self._run(listing.page_op()):
                    yield tup
                    if left is not None:
                        left -= 1
            if left is not None and left <= 0:
                return

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        left = limit
        thread = self._thread_scope(config)
        scopes = thread or [(ns, None) for ns in await self._arun(self._threads_op())]
        for namespace, thread_id in scopes:
            listing = ops.listing_for(
                self.serde, namespace, thread_id, config, filter=filter, before=before, limit=left
            )
            while not listing.done:
                for tup in await self._arun(listing.page_op()):
                    yield tup
                    if left is not None:
                        left -= 1
            if left is not None and left <= 0:
                return

    def _scopes(self, config: RunnableConfig | None) -> builtins.list[tuple[str, str | None]]:
        thread = self._thread_scope(config)
        return thread or [(ns, None) for ns in self._run(self._threads_op())]

    def _thread_scope(
        self, config: RunnableConfig | None
    ) -> builtins.list[tuple[str, str | None]] | None:
        """The thread of ``config``, or None: every thread of the prefix."""
        if config is None or (config.get("configurable") or {}).get("thread_id") is None:
            return None
        thread_id = ops.thread_of(config)
        return [(self.namespace(thread_id), thread_id)]

    def _threads_op(self) -> Op[builtins.list[str]]:
        found = yield from ops.namespaces_op(self.prefix)
        return [ns for ns in found if ns != self.runs_namespace]

    # -- writes ----------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._run(self._put_op(config, checkpoint, metadata, new_versions))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._arun(self._put_op(config, checkpoint, metadata, new_versions))

    def _put_op(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Op[RunnableConfig]:
        namespace = self.namespace(ops.thread_of(config))
        full = get_serializable_checkpoint_metadata(config, metadata)
        run_id = full.get("run_id")
        if run_id is None:
            return ops.put_op(self.serde, namespace, config, checkpoint, full, new_versions, None)
        return self._indexed_put_op(namespace, str(run_id), config, checkpoint, full, new_versions)

    def _indexed_put_op(
        self,
        namespace: str,
        run_id: str,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Op[RunnableConfig]:
        # The run index is written once per run and thread by this saver (the first put).
        seen = (run_id, namespace)
        with self._lock:
            fresh = seen not in self._indexed
            self._indexed.add(seen)
        index = (self.runs_namespace, layout.run_index_key(run_id, namespace)) if fresh else None
        try:
            return (
                yield from ops.put_op(
                    self.serde, namespace, config, checkpoint, metadata, new_versions, index
                )
            )
        except BaseException:
            if fresh:
                with self._lock:
                    self._indexed.discard(seen)
            raise

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self._put_writes_op(config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._arun(self._put_writes_op(config, writes, task_id, task_path))

    def _put_writes_op(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Op[None]:
        if get_checkpoint_id(config) is None:
            raise ValueError("put_writes needs the config of a stored checkpoint (checkpoint_id).")
        namespace = self.namespace(ops.thread_of(config))
        return ops.put_writes_op(self.serde, namespace, config, writes, task_id, task_path)

    # -- deleting, copying, pruning ----------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and blob of the thread (its history stays in the
        namespace's event log, as for any BotWire delete)."""
        self._run(ops.delete_thread_op(self.namespace(thread_id)))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(ops.delete_thread_op(self.namespace(thread_id)))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs (``metadata["run_id"]``), in every
        thread, with their writes and the blobs no other checkpoint uses."""
        self._run(self._delete_for_runs_op(run_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._arun(self._delete_for_runs_op(run_ids))

    def _delete_for_runs_op(self, run_ids: Sequence[str]) -> Op[None]:
        if not run_ids:
            return
        index = yield from ops.runs_of_op(self.runs_namespace, run_ids)
        runs_by_thread: dict[str, set[str]] = {}
        for run_id, keys in index.items():
            for key in keys:
                runs_by_thread.setdefault(key.split("/", 1)[1], set()).add(run_id)
        for namespace, runs in runs_by_thread.items():

            def drop(records: Any, runs: set[str] = runs) -> set[str]:
                return {k for k, r in records.items() if r.get("run_id") in runs}

            yield from ops.remove_checkpoints_op(self.serde, namespace, drop)
        stale = [key for keys in index.values() for key in keys]
        yield from ops.commit_op(ops.Writes(self.runs_namespace, deletes=stale), None)
        with self._lock:
            self._indexed = {seen for seen in self._indexed if seen[0] not in index}

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of one thread into another."""
        self._run(self._copy_thread_op(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._arun(self._copy_thread_op(source_thread_id, target_thread_id))

    def _copy_thread_op(self, source_thread_id: str, target_thread_id: str) -> Op[None]:
        target = self.namespace(target_thread_id)
        runs = yield from ops.copy_thread_op(
            self.namespace(source_thread_id), target, str(target_thread_id)
        )
        if runs:
            index = ops.Writes(self.runs_namespace)
            for run_id in runs:
                index.set(layout.run_index_key(run_id, target), {"namespace": target})
            yield from ops.commit_op(index, None)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep only the newest checkpoint of each checkpoint namespace (with
        its writes and the blobs it uses); ``delete``: delete the threads. Do not prune
        threads of graphs with LangGraph's (beta) ``DeltaChannel``: their values are rebuilt
        from older checkpoints' writes."""
        self._run(self._prune_op(thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._arun(self._prune_op(thread_ids, strategy))

    def _prune_op(self, thread_ids: Sequence[str], strategy: str) -> Op[None]:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}.")
        for thread_id in thread_ids:
            namespace = self.namespace(thread_id)
            if strategy == "delete":
                yield from ops.delete_thread_op(namespace)
            else:

                def drop(records: Any) -> set[str]:
                    return set(records) - ops.keep_latest(records)

                yield from ops.remove_checkpoints_op(self.serde, namespace, drop)

    # -- versions --------------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions that sort as strings, as LangGraph's SQLite and Postgres savers make them:
        a zero-padded counter, then a random fraction."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"
