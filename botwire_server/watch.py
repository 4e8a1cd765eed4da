"""Watching a namespace: the hub that wakes watchers after each commit.

One ``Hub`` per server listens to the store (``Store.add_listener``). Each watched namespace
has a ``_Channel``: the highest head the listener reported and an ``asyncio.Event`` that the
listener sets (and replaces) after each commit, waking every watcher of that namespace at once.
A watcher (``Watch``) then reads the change feed from its position until it is caught up, and
waits again; an idle watcher costs no database read. Watchers at the same position with the
same prefix share one read of each page (``Hub._read``), so one commit seen by 1,000 watchers
costs one feed read, not 1,000.

Why a watcher cannot miss a commit: the listener raises the channel's ``head`` synchronously,
on the event loop, before it wakes anyone. A watcher compares its position with that head and
starts waiting with no ``await`` in between, so a commit notified before the comparison makes
it read again and a commit notified after it sets the event it waits on. The channel exists
before the watcher's first read, so no commit falls between the two.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .storage.base import Changes, Store

PAGE = 1000  # revisions per read of the feed (the store's largest page)


class WatchClosed(Exception):
    """The hub closed (the server is shutting down): the watch has ended."""


@dataclass(slots=True)
class _Channel:
    head: int = 0
    watchers: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self, head: int | None = None) -> None:
        if head is not None and head > self.head:
            self.head = head
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class Hub:
    """The watchers of one store, woken by its commit listener."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.closed = True
        self._channels: dict[str, _Channel] = {}
        self._reads: dict[tuple[str, int, str | None], asyncio.Future[Changes]] = {}

    def open(self) -> None:
        if self.closed:
            self.closed = False
            self.store.add_listener(self._notify)

    def close(self) -> None:
        """Detach from the store and end every watch."""
        if not self.closed:
            self.closed = True
            self.store.remove_listener(self._notify)
        for channel in self._channels.values():
            channel.wake()

    @property
    def watchers(self) -> int:
        return sum(c.watchers for c in self._channels.values())

    def _notify(self, namespace: str, head: int) -> None:
        channel = self._channels.get(namespace)
        if channel is not None:
            channel.wake(head)

    async def watch(self, namespace: str, *, after: int | None, prefix: str | None) -> Watch:
        """A watch of ``namespace`` from ``after`` (None: the head). The first page is read
        here, so that a compacted or future ``after`` raises before any event is sent."""
        if self.closed:
            raise WatchClosed()
        channel = self._channels.get(namespace)
        if channel is None:
            channel = self._channels[namespace] = _Channel()
        channel.watchers += 1
        try:
            if after is None:
                first = None
                after = await self.store.head(namespace)
                head = after
            else:
                first = await self._read(namespace, after, prefix)
                head = first.head
        except BaseException:
            self._leave(namespace, channel)
            raise
        return Watch(self, namespace, channel, after, prefix, first, head)

    def _leave(self, namespace: str, channel: _Channel) -> None:
        channel.watchers -= 1
        if channel.watchers == 0 and self._channels.get(namespace) is channel:
            del self._channels[namespace]

    async def _read(self, namespace: str, after: int, prefix: str | None) -> Changes:
        """One page of the feed; concurrent identical reads share one store call."""
        key = (namespace, after, prefix)
        read = self._reads.get(key)
        if read is None:
            read = asyncio.ensure_future(
                self.store.changes(namespace, after=after, limit=PAGE, prefix=prefix)
            )
            self._reads[key] = read

            def done(future: asyncio.Future[Changes]) -> None:
                if self._reads.get(key) is future:
                    del self._reads[key]
                if not future.cancelled():
                    future.exception()  # retrieved: every waiter may have gone

            read.add_done_callback(done)
        # A watcher that leaves mid-read must not cancel the read the others wait for.
        return await asyncio.shield(read)


class Watch:
    """A position in a namespace's feed that follows new commits. ``next`` returns the next
    page of events after the position; ``close`` when done (``async with`` does it)."""

    def __init__(
        self,
        hub: Hub,
        namespace: str,
        channel: _Channel,
        after: int,
        prefix: str | None,
        first: Changes | None,
        head: int,
    ) -> None:
        self.hub = hub
        self.namespace = namespace
        self.prefix = prefix
        self.position = after
        self._channel = channel
        self._pending = first
        self._head = head
        self._closed = False

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.hub._leave(self.namespace, self._channel)

    async def next(self, timeout: float) -> Changes | None:
        """The next page holding events (every event of each revision it covers, oldest
        first), or None when ``timeout`` seconds pass without one. Raises ``WatchClosed``
        once the hub closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        channel = self._channel
        while True:
            if self.hub.closed or self._closed:
                raise WatchClosed()
            page = self._pending
            self._pending = None
            if page is None and self.position < max(self._head, channel.head):
                page = await self.hub._read(self.namespace, self.position, self.prefix)
            if page is not None:
                self._head = max(self._head, page.head)
                self.position = page.next_after
                if page.events:
                    return page
                continue
            # Caught up: no await between the head comparison above and the wait below.
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):  # no task per wait, unlike wait_for
                    await channel.changed.wait()
            except TimeoutError:
                return None
