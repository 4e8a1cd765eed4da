"""``Memory``: the sync and async shells around the sans-I/O core.

Every public method is a one-liner that hands an operation from ``botwire_client.core`` to
``_run`` (sync, one shared ``httpx.Client``) or ``_arun`` (async, one ``httpx.AsyncClient`` per
event loop). The sync twin and the async twin therefore take the same arguments and return the
same results by construction; ``tests/test_client_api.py`` checks their signatures match.

Why one ``AsyncClient`` per event loop: an ``httpx.AsyncClient``'s pooled connections belong to
the loop that opened them. A module-level ``Memory`` used by ``asyncio.run(handler())`` once per
invocation (the serverless pattern) meets a new loop each time. Each loop's client is closed by
that loop's own shutdown (``asyncio.run`` closes async generators before closing the loop, and a
tiny generator per client does the closing), so nothing leaks and no socket outlives its loop.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Generator, Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import httpx

from botwire_client import core, feed
from botwire_client.batch import AsyncBatch, Batch
from botwire_client.core import Op, Request, Response, RetryPolicy, T
from botwire_client.feed import AsyncEventStream, EventStream
from botwire_client.models import Event, Item, RevertResult, RollbackResult

DEFAULT_TIMEOUT = 10.0
USER_AGENT = "botwire-client/0.1"

AsOf = int | datetime | None
TTL = float | timedelta | None


class Memory:
    """Persistent, versioned key-value memory in one namespace of a BotWire server.

    ``base_url``: the argument, else ``BOTWIRE_URL`` (read now), else ``http://127.0.0.1:8000``.
    ``token``: the argument, else ``BOTWIRE_TOKEN`` (read now), else none; sent as
    ``Authorization: Bearer`` on every request (needed when the server runs with tokens).
    ``run`` and ``agent``: sent with every write (``BotWire-Run``, ``BotWire-Agent``), so the
    server records on behalf of which run and agent each event was written; ``revert_run``
    undoes a run. Every write method also takes ``reason=`` (why, up to 256 characters) and
    ``idempotency_key=`` (a retry with the same key gets the first outcome and writes
    nothing; such writes are also retried after a lost reply). Safe to share between threads;
    usable from any number of event loops.
    """

    def __init__(
        self,
        namespace: str,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 5,
        page_size: int = core.PAGE_LIMIT,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        run: str | None = None,
        agent: str | None = None,
    ) -> None:
        self.namespace = core.check_namespace(namespace)
        self.run = None if run is None else core.check_run(run)
        self.agent = agent
        core.WriteMeta(agent=agent).headers()  # checks the agent now, not at the first write
        from_env = os.environ.get("BOTWIRE_URL")
        url = base_url or from_env or core.DEFAULT_URL
        source = "base_url" if base_url else "BOTWIRE_URL"
        self.base_url = core.check_base_url(url, source)
        self._token = core.check_token(token or os.environ.get("BOTWIRE_TOKEN") or None)
        self.timeout = timeout
        self.retry = RetryPolicy(retries=retries)
        if not 1 <= page_size <= core.PAGE_LIMIT:
            raise ValueError(f"page_size must be between 1 and {core.PAGE_LIMIT}, not {page_size}")
        self.page_size = page_size
        self._transport = transport
        self._async_transport = async_transport
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._client_pid = 0
        self._loops: dict[asyncio.AbstractEventLoop, _LoopClient] = {}

    def __repr__(self) -> str:
        return f"Memory(namespace={self.namespace!r}, base_url={self.base_url!r})"

    def with_run(self, run: str | None) -> Memory:
        """A copy of this memory (same server, token and agent) whose writes belong to ``run``
        (None: to no run). It has its own connections; close it like any ``Memory``."""
        return Memory(
            self.namespace,
            self.base_url,
            token=self._token,
            timeout=self.timeout,
            retries=self.retry.retries,
            page_size=self.page_size,
            transport=self._transport,
            async_transport=self._async_transport,
            run=run,
            agent=self.agent,
        )

    def _meta(self, reason: str | None, idempotency_key: str | None) -> core.WriteMeta:
        return core.WriteMeta(self.run, self.agent, reason, idempotency_key)

    # -- values ------------------------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Any,
        *,
        expected_version: int | None = None,
        ttl: TTL = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Store ``value`` (any JSON) under ``key``; return its new version.

        ``expected_version``: ``0`` = the key must not exist, ``N`` = it must be at version N;
        otherwise nothing is written and ``ConflictError(.current_version)`` is raised.
        ``ttl``: seconds (or a ``timedelta``) until the key expires; a set without it keeps the
        key for good.
        """
        meta = self._meta(reason, idempotency_key)
        return self._run(core.set_op(self.namespace, key, value, expected_version, ttl, meta))

    async def aset(
        self,
        key: str,
        value: Any,
        *,
        expected_version: int | None = None,
        ttl: TTL = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        meta = self._meta(reason, idempotency_key)
        return await self._arun(
            core.set_op(self.namespace, key, value, expected_version, ttl, meta)
        )

    def get(self, key: str, default: Any = None, *, as_of: AsOf = None) -> Any:
        """The value under ``key`` (a stored ``None`` included), or ``default`` when absent."""
        return self._run(core.get_op(self.namespace, key, default, as_of))

    async def aget(self, key: str, default: Any = None, *, as_of: AsOf = None) -> Any:
        return await self._arun(core.get_op(self.namespace, key, default, as_of))

    def item(self, key: str, *, as_of: AsOf = None) -> Item | None:
        """The value with its version and timestamps, or ``None`` when the key is absent."""
        return self._run(core.item_op(self.namespace, key, as_of))

    async def aitem(self, key: str, *, as_of: AsOf = None) -> Item | None:
        return await self._arun(core.item_op(self.namespace, key, as_of))

    def exists(self, key: str, *, as_of: AsOf = None) -> bool:
        """Whether ``key`` is present (``"k" in memory`` asks the same)."""
        return self._run(core.exists_op(self.namespace, key, as_of))

    async def aexists(self, key: str, *, as_of: AsOf = None) -> bool:
        return await self._arun(core.exists_op(self.namespace, key, as_of))

    def __contains__(self, key: object) -> bool:
        return self.exists(str(key))

    def delete(
        self,
        key: str,
        *,
        expected_version: int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Delete ``key``; ``False`` when it was absent."""
        meta = self._meta(reason, idempotency_key)
        return self._run(core.delete_op(self.namespace, key, expected_version, meta))

    async def adelete(
        self,
        key: str,
        *,
        expected_version: int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        meta = self._meta(reason, idempotency_key)
        return await self._arun(core.delete_op(self.namespace, key, expected_version, meta))

    def get_many(self, keys: Iterable[str], *, as_of: AsOf = None) -> dict[str, Any]:
        """``{key: value}`` for the present ones of ``keys``, all read at ONE revision; an
        absent key is left out (a stored ``None`` is kept). Any number of keys: past 1000, the
        requests are split and every one reads the first one's revision."""
        return self._run(core.get_many_op(self.namespace, keys, as_of, self.page_size))

    async def aget_many(self, keys: Iterable[str], *, as_of: AsOf = None) -> dict[str, Any]:
        return await self._arun(core.get_many_op(self.namespace, keys, as_of, self.page_size))

    def items_many(self, keys: Iterable[str], *, as_of: AsOf = None) -> dict[str, Item]:
        """As ``get_many``, with each value's ``Item`` (version, timestamps, ``expires_at``)."""
        return self._run(core.items_many_op(self.namespace, keys, as_of, self.page_size))

    async def aitems_many(self, keys: Iterable[str], *, as_of: AsOf = None) -> dict[str, Item]:
        return await self._arun(core.items_many_op(self.namespace, keys, as_of, self.page_size))

    def batch(self, *, reason: str | None = None, idempotency_key: str | None = None) -> Batch:
        """Collect sets, deletes and checks, then commit them as ONE revision, or none: on a
        clean exit of ``with memory.batch() as b:``, or with ``b.commit()``. A failed
        condition raises ``ConflictError`` with ``.conflicts``; see ``botwire_client.batch``."""
        return Batch(self, self._meta(reason, idempotency_key))

    def abatch(
        self, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> AsyncBatch:
        return AsyncBatch(self, self._meta(reason, idempotency_key))

    # -- the namespace -----------------------------------------------------------------------

    def list_keys(self, prefix: str | None = None, *, as_of: AsOf = None) -> builtins.list[str]:
        """Every key (sorted, optionally with ``prefix``); pages through the server's list."""
        return self._run(core.list_keys_op(self.namespace, prefix, as_of, self.page_size))

    async def alist_keys(
        self, prefix: str | None = None, *, as_of: AsOf = None
    ) -> builtins.list[str]:
        return await self._arun(core.list_keys_op(self.namespace, prefix, as_of, self.page_size))

    # The seeds call all three names.
    list = list_keys
    keys = list_keys
    alist = alist_keys
    akeys = alist_keys

    def history(self, key: str, *, limit: int | None = 100) -> builtins.list[Event]:
        """The key's events, newest first; at most ``limit`` (``None``: all of them)."""
        return self._run(core.history_op(self.namespace, key, limit, self.page_size))

    async def ahistory(self, key: str, *, limit: int | None = 100) -> builtins.list[Event]:
        return await self._arun(core.history_op(self.namespace, key, limit, self.page_size))

    def head(self) -> int:
        """The namespace's current revision (0 when nothing was ever written)."""
        return self._run(core.head_op(self.namespace))

    async def ahead(self) -> int:
        return await self._arun(core.head_op(self.namespace))

    def snapshot(self, *, as_of: AsOf = None, prefix: str | None = None) -> dict[str, Any]:
        """Every key and its value, read at one revision (``as_of``, or the head)."""
        return self._run(core.snapshot_op(self.namespace, as_of, prefix, self.page_size))

    async def asnapshot(self, *, as_of: AsOf = None, prefix: str | None = None) -> dict[str, Any]:
        return await self._arun(core.snapshot_op(self.namespace, as_of, prefix, self.page_size))

    def rollback(
        self,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RollbackResult:
        """Make the namespace (or one ``key``) equal to its state at ``to`` with ONE new
        revision; history is kept, so a rollback can be rolled back too."""
        meta = self._meta(reason, idempotency_key)
        return self._run(core.rollback_op(self.namespace, to, key, dry_run, meta))

    async def arollback(
        self,
        to: int | datetime,
        *,
        key: str | None = None,
        dry_run: bool = False,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RollbackResult:
        meta = self._meta(reason, idempotency_key)
        return await self._arun(core.rollback_op(self.namespace, to, key, dry_run, meta))

    # -- runs --------------------------------------------------------------------------------

    def run_events(self, run: str) -> builtins.list[Event]:
        """Every event ``run`` wrote in this namespace, oldest first."""
        return self._run(core.run_events_op(self.namespace, run, self.page_size))

    async def arun_events(self, run: str) -> builtins.list[Event]:
        return await self._arun(core.run_events_op(self.namespace, run, self.page_size))

    def revert_run(
        self,
        run: str,
        *,
        dry_run: bool = False,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RevertResult:
        """Undo ``run`` with ONE new revision: each key it wrote gets the value it had just
        before the run's first write to it; keys others wrote since are left alone and
        listed in ``.skipped``. The revert itself belongs to this memory's ``run``."""
        meta = self._meta(reason, idempotency_key)
        return self._run(core.revert_run_op(self.namespace, run, dry_run, meta))

    async def arevert_run(
        self,
        run: str,
        *,
        dry_run: bool = False,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RevertResult:
        meta = self._meta(reason, idempotency_key)
        return await self._arun(core.revert_run_op(self.namespace, run, dry_run, meta))

    # -- the change feed and the watch --------------------------------------------------------

    def changes(self, after: int = 0, *, prefix: str | None = None) -> EventStream:
        """Every event after revision ``after`` (keys with ``prefix`` only), oldest first; pages
        internally and ends once it has covered the head it saw first."""
        return EventStream(
            self._changes(feed.Changes(self.namespace, after, prefix, self.page_size))
        )

    def achanges(self, after: int = 0, *, prefix: str | None = None) -> AsyncEventStream:
        plan = feed.Changes(self.namespace, after, prefix, self.page_size)
        return AsyncEventStream(self._achanges(plan))

    def watch(self, after: int | None = None, *, prefix: str | None = None) -> EventStream:
        """Every event after revision ``after`` (``None``: from now on), as it happens; never
        ends. After a dropped connection or a server restart it reconnects from the last revision
        delivered in full, with no event lost or repeated. ``close()`` it (or use ``with``) to
        close the connection."""
        return EventStream(self._watch(feed.Watch(self.namespace, after, prefix, self.retry)))

    def awatch(self, after: int | None = None, *, prefix: str | None = None) -> AsyncEventStream:
        return AsyncEventStream(self._awatch(feed.Watch(self.namespace, after, prefix, self.retry)))

    def _changes(self, plan: feed.Changes) -> Generator[Event, None, None]:
        while not plan.done:
            yield from self._run(plan.page_op())

    async def _achanges(self, plan: feed.Changes) -> AsyncGenerator[Event, None]:
        while not plan.done:
            for event in await self._arun(plan.page_op()):
                yield event

    def _watch(self, watch: feed.Watch) -> Generator[Event, None, None]:
        self._run(watch.start_op())
        client = self._sync_client()
        while True:
            request = watch.request()
            try:
                with client.stream(
                    request.method,
                    request.path,
                    timeout=self._watch_timeout(),
                    **_httpx_args(request),
                ) as r:
                    if r.status_code == 200:
                        watch.opened()
                        for line in r.iter_lines():
                            event = watch.feed(line)
                            if event is not None:
                                yield event
                        delay = watch.retry_delay()  # the server ended the stream
                    else:
                        delay = watch.refused(Response(r.status_code, r.headers, r.read()), request)
            except httpx.TransportError as exc:  # includes the read timeout of a dead connection
                delay = watch.retry_delay()
                if delay is None:
                    raise core.unreachable(self.base_url, request, exc) from exc
            time.sleep(delay or 0.0)

    async def _awatch(self, watch: feed.Watch) -> AsyncGenerator[Event, None]:
        await self._arun(watch.start_op())
        client = await self._async_client()
        while True:
            request = watch.request()
            try:
                async with client.stream(
                    request.method,
                    request.path,
                    timeout=self._watch_timeout(),
                    **_httpx_args(request),
                ) as r:
                    if r.status_code == 200:
                        watch.opened()
                        async for line in r.aiter_lines():
                            event = watch.feed(line)
                            if event is not None:
                                yield event
                        delay = watch.retry_delay()
                    else:
                        body = await r.aread()
                        delay = watch.refused(Response(r.status_code, r.headers, body), request)
            except httpx.TransportError as exc:
                delay = watch.retry_delay()
                if delay is None:
                    raise core.unreachable(self.base_url, request, exc) from exc
            await asyncio.sleep(delay or 0.0)

    def _watch_timeout(self) -> httpx.Timeout:
        # Connecting keeps the usual timeout; reading waits past the server's 15 s keepalive.
        return httpx.Timeout(self.timeout, read=feed.WATCH_READ_TIMEOUT)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync connections. (Each event loop's connections close with the loop, or
        with ``aclose()`` called in it.)"""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._client_pid == os.getpid():
            client.close()

    async def aclose(self) -> None:
        """Close the running loop's connections and the sync ones."""
        entry = self._loops.get(asyncio.get_running_loop())
        if entry is not None:
            await entry.closer.aclose()
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the shells --------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "headers": {
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
                **({"Authorization": f"Bearer {self._token}"} if self._token else {}),
            },
        }

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            # A forked child must not share its parent's sockets: it opens its own pool.
            if self._client is None or self._client_pid != os.getpid():
                self._client = httpx.Client(transport=self._transport, **self._options())
                self._client_pid = os.getpid()
                # A Memory dropped (or alive at exit) without close() still closes its sockets.
                weakref.finalize(self, _close_quietly, self._client, self._client_pid)
            return self._client

    def _run(self, op: Op[T]) -> T:
        client = self._sync_client()
        try:
            request = next(op)
            while True:
                request = op.send(self._send(client, request))
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            op.close()

    def _send(self, client: httpx.Client, request: Request) -> Response:
        attempt = 0
        while True:
            try:
                r = client.request(request.method, request.path, **_httpx_args(request))
            except httpx.TransportError as exc:
                delay = self.retry.after_error(request, attempt, exc)
                if delay is None:
                    raise core.unreachable(self.base_url, request, exc) from exc
            else:
                response = Response(r.status_code, r.headers, r.content)
                delay = self.retry.after_response(request, attempt, response)
                if delay is None:
                    return response
            time.sleep(delay)
            attempt += 1

    async def _async_client(self) -> httpx.AsyncClient:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "The async methods of Memory run on an asyncio event loop (asyncio.run, "
                "uvloop, anyio's asyncio backend); outside one, use the sync methods."
            ) from None
        with self._lock:
            entry = self._loops.get(loop)
            if entry is not None and entry.pid == os.getpid():
                return entry.client
            for old in [lp for lp in self._loops if lp.is_closed()]:
                del self._loops[old]  # a loop closed without shutting down its generators
            client = httpx.AsyncClient(transport=self._async_transport, **self._options())
            entry = _LoopClient(client, self._closer(loop, client))
            self._loops[loop] = entry
        # First iteration registers the generator with this loop, whose shutdown
        # (asyncio.run, asyncio.Runner) then runs its `finally`: the client closes in its loop.
        await anext(entry.closer)
        return client

    async def _closer(
        self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                entry = self._loops.get(loop)
                if entry is not None and entry.client is client:
                    del self._loops[loop]
            await client.aclose()

    async def _arun(self, op: Op[T]) -> T:
        client = await self._async_client()
        try:
            request = next(op)
            while True:
                request = op.send(await self._asend(client, request))
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            op.close()

    async def _asend(self, client: httpx.AsyncClient, request: Request) -> Response:
        attempt = 0
        while True:
            try:
                r = await client.request(request.method, request.path, **_httpx_args(request))
            except httpx.TransportError as exc:
                delay = self.retry.after_error(request, attempt, exc)
                if delay is None:
                    raise core.unreachable(self.base_url, request, exc) from exc
            else:
                response = Response(r.status_code, r.headers, r.content)
                delay = self.retry.after_response(request, attempt, response)
                if delay is None:
                    return response
            await asyncio.sleep(delay)
            attempt += 1


class _LoopClient:
    __slots__ = ("client", "closer", "pid")

    def __init__(self, client: httpx.AsyncClient, closer: AsyncGenerator[None, None]) -> None:
        self.client = client
        self.closer = closer
        self.pid = os.getpid()


def _close_quietly(client: httpx.Client, pid: int) -> None:
    if pid == os.getpid():
        client.close()


def _httpx_args(request: Request) -> dict[str, Any]:
    args: dict[str, Any] = {}
    headers = dict(request.headers)
    if request.params:
        args["params"] = request.params
    if request.has_body:
        args["content"] = json.dumps(request.json, separators=(",", ":"), allow_nan=False)
        headers["Content-Type"] = "application/json"
    if headers:
        args["headers"] = headers
    return args
