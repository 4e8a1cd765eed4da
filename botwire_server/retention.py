"""Retention: ``BOTWIRE_RETENTION`` compacts history older than a duration, in the background.

Every ``BOTWIRE_RETENTION_INTERVAL`` seconds a pass visits each namespace and computes its
*cutoff revision*: the last revision committed at or before ``now - retention`` (the store's
``resolve``). It then compacts the namespace up to that revision with the existing
``Store.compact`` verb, which keeps every read at or after the floor exact and never touches a
current value; ``oldest_revision`` rises, and reads below it answer ``410 revision_compacted``.

Small transactions: a floor far ahead of the namespace's is reached in steps of ``STEP``
revisions, one compaction (one short transaction) each, with a pause between them of at least
``YIELD_RATIO`` times the step's own duration, so that writes queued meanwhile go first and
keep most of the writer's time (on SQLite they share the one writer with the steps). Several
servers on one PostgreSQL database may run passes at once: a compaction to a floor already
reached removes nothing. An error is logged and the pass is retried at the next interval.

Worked example, retention 1 h, now 12:00: namespace ``n`` has revisions 1..500 committed before
10:59 and 501..700 after 11:00. The cutoff is 500; with a step of 100 the pass compacts to 100,
200, ... 500, pausing between steps. ``GET /memory/n/k?as_of=499`` is then ``410``,
``as_of=500`` reads as before, and every key keeps its current value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from .errors import BotWireServerError
from .periodic import Periodic
from .storage.base import MICROS, Store

logger = logging.getLogger("botwire_server.retention")

STEP = 500  # revisions compacted per transaction
PAUSE = 0.01  # seconds between two steps, at least
# A pause is also at least this many times the step before it took: the steps hold the
# writer (SQLite) or the namespace lock (PostgreSQL) a quarter of the time at most.
YIELD_RATIO = 3.0


async def compact_namespace(
    store: Store, namespace: str, cutoff: int, *, step: int = STEP, pause: float = PAUSE
) -> int:
    """Raise ``namespace``'s floor to the revision committed at or before ``cutoff``
    (microseconds), ``step`` revisions per compaction. Returns the events removed."""
    try:
        target = await store.resolve(namespace, datetime.fromtimestamp(cutoff / MICROS, tz=UTC))
    except BotWireServerError:  # the cutoff lies below the floor already: nothing to do
        return 0
    removed = 0
    floor = (await store.info(namespace)).oldest_revision
    while floor < target:
        floor = min(target, floor + step)
        started = time.perf_counter()
        removed += await store.compact(namespace, before=floor)
        if floor < target:
            took = time.perf_counter() - started
            await asyncio.sleep(max(pause, took * YIELD_RATIO) if pause else 0)
    return removed


async def retain(store: Store, retention: float, *, step: int = STEP, pause: float = PAUSE) -> int:
    """One pass over every namespace. Returns the events removed."""
    cutoff = store.clock() - round(retention * MICROS)
    removed = 0
    after: str | None = None
    while page := await store.list_namespaces(after=after, limit=1000):
        for info in page:
            if info.updated_at is not None and info.revision > info.oldest_revision:
                removed += await compact_namespace(
                    store, info.namespace, cutoff, step=step, pause=pause
                )
        after = page[-1].namespace
    return removed


class Retention(Periodic):
    """Runs ``retain`` every ``interval`` seconds in a background task (``start`` /
    ``stop``)."""

    logger = logger
    what = "retention pass"

    def __init__(self, store: Store, *, retention: float, interval: float) -> None:
        super().__init__(interval=interval)
        self.store = store
        self.retention = retention

    async def round(self) -> None:
        removed = await retain(self.store, self.retention)
        if removed:
            logger.info("Retention compacted %d events.", removed)
