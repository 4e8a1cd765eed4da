"""The expiry sweeper: appends the ``expire`` events of keys whose TTL has passed.

A key is invisible from its ``expires_at`` on whether or not it has been swept (the store's
visibility rule); the sweep makes the expiry part of the log, so that history and the change
feed (and watchers) see it, and frees the key's bytes. Every ``interval`` seconds a round takes
``store.due_expiries(limit=1000)``, commits one ``expire`` write per key, one commit per
namespace, and goes on at once while full pages come back. An expire write names the version it
saw; the store skips it when the key has been written or swept meanwhile, so several servers
sweeping one PostgreSQL database at once do no harm. An error is logged and the round is
retried at the next interval: the sweeper never stops the server. Each round also purges
stored idempotent outcomes whose time to live has passed (``Store.purge_idempotency``).
"""

from __future__ import annotations

import asyncio
import logging

from .storage.base import Store, Write

logger = logging.getLogger("botwire_server.expiry")

PAGE = 1000
# Pages swept back to back before the round yields to the next interval, so that a flood of
# expiries cannot monopolise the writer.
MAX_PAGES_PER_ROUND = 100


async def sweep(store: Store, *, limit: int = PAGE, max_pages: int = MAX_PAGES_PER_ROUND) -> int:
    """One round: commit the expiries that are due. Returns the number of keys examined."""
    examined = 0
    for _ in range(max_pages):
        due = await store.due_expiries(limit=limit)
        by_namespace: dict[str, dict[str, Write]] = {}
        for namespace, key, version in due:
            writes = by_namespace.setdefault(namespace, {})
            writes[key] = Write(op="expire", key=key, expected_version=version)
        for namespace, writes in by_namespace.items():
            await store.commit(namespace, list(writes.values()))
        examined += len(due)
        if len(due) < limit:
            break
    for _ in range(max_pages):
        if await store.purge_idempotency(now=store.clock(), limit=limit) < limit:
            break
    return examined


class Sweeper:
    """Runs ``sweep`` every ``interval`` seconds in a background task (``start`` / ``stop``)."""

    def __init__(self, store: Store, *, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await sweep(self.store)
            except Exception:  # CancelledError (stop) is not an Exception: it ends the loop
                logger.exception("The expiry sweep failed; it is retried in %s s.", self.interval)
            await asyncio.sleep(self.interval)
