"""Comparing two stores event for event (the export/import tests): every history, snapshots
at chosen revisions and the change feed, as plain values that compare with ``==``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from botwire_server.storage.base import Event, Item, Recorded, Store


async def dump_all(store: Store, namespace: str, *, page: int = 1000) -> list[Recorded]:
    out: list[Recorded] = []
    after = (-1, "")
    while rows := await store.dump(namespace, after=after, limit=page):
        out.extend(rows)
        after = (rows[-1].revision, rows[-1].key)
    return out


async def copy_namespace(
    source: Store, target: Store, namespace: str, *, into: str | None = None, page: int = 1000
) -> int:
    """What ``botwire import`` does with what ``botwire export`` wrote, in process (into the
    namespace ``into``, default the same name)."""
    info = await source.info(namespace)
    after = (-1, "")
    first = True
    while rows := await source.dump(namespace, after=after, limit=page):
        await target.restore(into or namespace, rows, replace=first)
        first = False
        after = (rows[-1].revision, rows[-1].key)
    return await target.restore(
        into or namespace,
        [],
        replace=first,
        head=info.revision,
        head_at=info.updated_at or 0,
        oldest=info.oldest_revision,
    )


async def picture(
    store: Store, namespace: str, revisions: Iterable[int], *, keys: Iterable[str] | None = None
) -> dict[str, Any]:
    """Everything a client can read of ``namespace``: info, the change feed from the floor,
    every key's history, and a snapshot (keys, values, versions, incarnations, expiries) at
    each of ``revisions``."""
    info = await store.info(namespace)
    feed: list[Event] = []
    after = info.oldest_revision
    while after < info.revision:
        changes = await store.changes(namespace, after=after, limit=1000)
        feed.extend(changes.events)
        after = changes.next_after
    names = sorted(set(keys or ()) | {e.key for e in await dump_all(store, namespace)})
    histories: dict[str, list[Event]] = {}
    for key in names:
        events: list[Event] = []
        before = None
        while page := await store.history(namespace, key, before=before, limit=1000):
            events.extend(page)
            before = page[-1].revision
        histories[key] = events
    snapshots: dict[int, list[Item]] = {}
    for revision in revisions:
        items: list[Item] = []
        last = None
        while rows := await store.list(namespace, as_of=revision, after=last, limit=1000):
            items.extend(rows)
            last = rows[-1].key
        snapshots[revision] = items
    return {
        "info": msgspec.structs.replace(info, namespace=""),
        "feed": feed,
        "histories": histories,
        "snapshots": snapshots,
        "current": [await store.get(namespace, k) for k in names],
    }
