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

import logging

from .periodic import Periodic
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


class Sweeper(Periodic):
    """Runs ``sweep`` every ``interval`` seconds in a background task (``start`` / ``stop``)."""

    logger = logger
    what = "expiry sweep"

    def __init__(self, store: Store, *, interval: float) -> None:
        super().__init__(interval=interval)
        self.store = store

    async def round(self) -> None:
        await sweep(self.store)
