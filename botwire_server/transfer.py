"""Export and import with history: the JSON Lines format of ``botwire export`` / ``import``.

A file holds, for each namespace, one ``namespace`` line and then its retained events in
(revision, key) order, the sets a compaction kept below its floor first::

    {"type":"namespace","namespace":"notes","revision":7,"oldest_revision":0,"updated_at":...}
    {"type":"event","namespace":"notes","revision":1,"at":1764620103123456,"key":"a",
     "op":"set","value":{"x":1},"expires_at":null,"ttl":null,"created_revision":1,
     "created_at":1764620103123456,"actor":null,"run":null,"agent":null,"reason":null}

Times are integers, microseconds since the Unix epoch (UTC), as the store keeps them; ``value``
is the stored JSON itself (``null`` for a delete or an expiry: ``op`` tells them apart from a set
of ``null``); ``ttl`` is ``expires_at - at`` in seconds, for reading (``expires_at`` is what is
restored); ``actor``, ``run``, ``agent`` and ``reason`` are the event's provenance, ``null``
where the store keeps none. The ``namespace`` line's ``revision`` and ``updated_at`` are the
head and its time when the export of that namespace began: events committed later are left
out, so each namespace is a consistent prefix of its log.

Export streams: one page of 1000 events at a time is read (``Store.dump``), written and
forgotten, so memory stays constant whatever the size. Import writes each page with
``Store.restore`` (one transaction per page) and raises the head and the compaction floor to the
``namespace`` line's values at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Literal

import msgspec

from .errors import InvalidInput
from .storage.base import MICROS, Recorded, Store

PAGE = 1000
PROGRESS_SECONDS = 2.0
Existing = Literal["refuse", "skip", "replace"]


class NamespaceLine(msgspec.Struct, tag="namespace", tag_field="type", kw_only=True):
    namespace: str
    revision: int
    oldest_revision: int
    updated_at: int | None


class EventLine(msgspec.Struct, tag="event", tag_field="type", kw_only=True):
    namespace: str
    revision: int
    at: int
    key: str
    op: Literal["set", "delete", "expire"]
    value: msgspec.Raw
    expires_at: int | None = None
    ttl: float | None = None
    created_revision: int = 0
    created_at: int = 0
    actor: str | None = None
    run: str | None = None
    agent: str | None = None
    reason: str | None = None


Line = NamespaceLine | EventLine
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Line).decode
_NULL = msgspec.Raw(b"null")
# The fields Recorded has (provenance joins them when the store keeps it).


class Progress:
    """A line on stderr at most every ``PROGRESS_SECONDS`` (long runs only), and a summary."""

    def __init__(self, verb: str, out: IO[str] | None = None) -> None:
        self.verb = verb
        self.out = out if out is not None else sys.stderr
        self.events = 0
        self.namespaces = 0
        self.started = self._last = time.monotonic()

    def tick(self, namespace: str, revision: int, head: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_SECONDS:
            self._last = now
            print(
                f"botwire: {self.verb} {self.events} events so far; {namespace!r} at revision "
                f"{revision} of {head}",
                file=self.out,
            )

    def done(self, note: str = "") -> None:
        seconds = time.monotonic() - self.started
        print(
            f"botwire: {self.verb} {self.events} events of {self.namespaces} namespace(s) "
            f"in {seconds:.1f} s{note}",
            file=self.out,
        )


async def namespaces_of(store: Store) -> AsyncIterator[str]:
    after: str | None = None
    while page := await store.list_namespaces(after=after, limit=1000):
        for info in page:
            yield info.namespace
        after = page[-1].namespace


def event_line(namespace: str, e: Recorded) -> EventLine:
    value = _NULL
    if e.op == "set":
        assert e.value is not None
        if b"\n" in e.value or b"\r" in e.value:
            raise InvalidInput(
                f"The value of {e.key!r} at revision {e.revision} in {namespace!r} holds a line "
                "break, which a JSON Lines file cannot carry as stored."
            )
        value = msgspec.Raw(e.value)
    ttl = None if e.expires_at is None else (e.expires_at - e.at) / MICROS
    return EventLine(
        namespace=namespace,
        revision=e.revision,
        at=e.at,
        key=e.key,
        op=e.op,
        value=value,
        expires_at=e.expires_at,
        ttl=ttl,
        created_revision=e.created_revision,
        created_at=e.created_at,
        actor=e.actor,
        run=e.run,
        agent=e.agent,
        reason=e.reason,
    )


def recorded(line: EventLine) -> Recorded:
    return Recorded(
        revision=line.revision,
        at=line.at,
        key=line.key,
        op=line.op,
        value=bytes(line.value) if line.op == "set" else None,
        expires_at=line.expires_at,
        created_revision=line.created_revision,
        created_at=line.created_at,
        actor=line.actor,
        run=line.run,
        agent=line.agent,
        reason=line.reason,
    )


async def export(
    store: Store, out: IO[bytes], *, namespaces: Sequence[str] = (), progress: Progress
) -> None:
    """Write every retained event of ``namespaces`` (default: every namespace) to ``out``."""

    async def names() -> AsyncIterator[str]:
        if namespaces:
            for name in namespaces:
                yield name
        else:
            async for name in namespaces_of(store):
                yield name

    async for namespace in names():
        info = await store.info(namespace)
        if info.revision == 0:
            continue
        progress.namespaces += 1
        header = NamespaceLine(
            namespace=namespace,
            revision=info.revision,
            oldest_revision=info.oldest_revision,
            updated_at=info.updated_at,
        )
        out.write(_encode(header) + b"\n")
        after = (-1, "")
        while rows := await store.dump(namespace, after=after, limit=PAGE):
            kept = [e for e in rows if e.revision <= info.revision]
            out.write(b"".join(_encode(event_line(namespace, e)) + b"\n" for e in kept))
            progress.events += len(kept)
            if len(kept) < len(rows):
                break
            after = (rows[-1].revision, rows[-1].key)
            progress.tick(namespace, after[0], info.revision)
    out.flush()


@dataclass
class _Target:
    header: NamespaceLine
    replace: bool
    skip: bool
    written: bool = False


def read_lines(lines: Iterable[bytes]) -> Iterable[tuple[int, Line]]:
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            yield number, _decode(raw)
        except msgspec.ValidationError as exc:
            raise InvalidInput(f"Line {number} is not an export line: {exc}.") from None
        except msgspec.DecodeError:
            raise InvalidInput(f"Line {number} is not JSON.") from None


async def import_(
    store: Store,
    lines: Iterable[bytes],
    *,
    existing: Existing = "refuse",
    progress: Progress,
    say: Callable[[str], None],
) -> None:
    """Rebuild every namespace of an export in ``store`` (see the module docstring). A
    namespace that already has events is refused (``InvalidInput``, nothing of it written),
    skipped (``skip``) or replaced (``replace``); one whose head and head time equal the
    export's is the same import run again and is skipped in every mode but ``replace``."""
    target: _Target | None = None
    page: list[Recorded] = []

    async def flush(*, last: bool) -> None:
        nonlocal page
        assert target is not None
        if target.skip or not (page or last):
            page = []
            return
        header = target.header
        head, head_at, oldest = (0, 0, 0)
        if last:
            head, head_at = header.revision, header.updated_at or 0
            oldest = header.oldest_revision
        await store.restore(
            header.namespace,
            page,
            replace=target.replace and not target.written,
            head=head,
            head_at=head_at,
            oldest=oldest,
        )
        target.written = True
        progress.events += len(page)
        if page:
            progress.tick(header.namespace, page[-1].revision, header.revision)
        page = []

    async def begin(header: NamespaceLine) -> _Target:
        info = await store.info(header.namespace)
        progress.namespaces += 1
        if info.revision == 0:
            return _Target(header, replace=False, skip=False)
        same = (info.revision, info.updated_at, info.oldest_revision) == (
            header.revision,
            header.updated_at,
            header.oldest_revision,
        )
        if existing == "replace":
            return _Target(header, replace=True, skip=False)
        if existing == "skip" or same:
            why = "imported already" if same else "it has events (--skip-existing)"
            say(f"botwire: skipped namespace {header.namespace!r}: {why}.")
            return _Target(header, replace=False, skip=True)
        raise InvalidInput(
            f"Namespace {header.namespace!r} already has events (revision {info.revision}); "
            "import would merge two histories. Pass --replace to replace it with the file's, "
            "or --skip-existing to leave it as it is."
        )

    for number, line in read_lines(lines):
        if isinstance(line, NamespaceLine):
            if target is not None:
                await flush(last=True)
            target = await begin(line)
            continue
        if target is None or line.namespace != target.header.namespace:
            raise InvalidInput(f"Line {number}: an event outside its namespace's section.")
        if line.revision > target.header.revision:
            raise InvalidInput(f"Line {number}: revision {line.revision} is past the head.")
        page.append(recorded(line))
        if len(page) >= PAGE:
            await flush(last=False)
    if target is not None:
        await flush(last=True)


__all__ = ["EventLine", "NamespaceLine", "Progress", "export", "import_"]
