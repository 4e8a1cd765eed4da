"""``BotWireChatHistory``: a LangChain chat message history, one BotWire key per message.

Storage format (``P`` is the session's key prefix: empty in the session's own namespace)::

    namespace  langchain-sessions/<session_id>       (default: one namespace per session)
    P + "seq"                {"next": 4, "start": 1, "legacy": false}   the session's counter
    P + "m/000000000001"     {"type": "human", "data": {...}}           one message each
    P + "m/000000000002"     ...                        (langchain_core's messages_to_dict form)
    P + "legacy"             [ ...messages of a session stored in the old format... ]

With an explicit shared ``namespace``, ``P`` is the session id with ``%`` and ``/`` escaped,
then ``/`` (``user:42/seq``, ``user:42/m/000000000001``), so no session's keys are a prefix of
another's.

An append is ONE atomic batch, whatever the history's length: the counter moves from
``next`` to ``next + n`` on condition that it is still at the version this writer read, and the
``n`` messages are created at ``next .. next + n - 1`` (each on condition that it does not
exist). Two writers that read the same counter cannot both commit: the second gets
``ConflictError``, reads the counter again and appends after the first one's messages. So no
append is lost and each writer's messages keep their order, across any number of processes.
Worked example::

    A reads seq {next:1} @ v0          B reads seq {next:1} @ v0
    A commits seq {next:2} @ v0, m/1   -> v5
                                       B commits seq {next:2} @ v0, m/1 -> ConflictError
                                       B reads seq {next:2} @ v5, commits seq {next:3}, m/2

A reader fetches the counter, then the message keys ``start .. next - 1`` (a multi-get, or the
key listing in pages of 1000 when there are more than 1000: 1 + n/1000 requests); an instance
remembers what it read and afterwards fetches only the new messages (two requests). ``clear``
is one atomic batch that moves ``start`` to ``next`` (and deletes the first 998 message keys
with it; further batches delete the rest, which no reader sees any more).

Sessions stored in the old one-value format (a JSON list of message dicts under the key
``session_id`` of namespace ``langchain-sessions``, or of the namespace given; 0.2.1 stored the
same list as a JSON string) are read as they are. The first append migrates such a session: the
batch that creates the counter copies the old list into ``P + "legacy"``; the old key is left
unchanged (until ``clear``, which deletes it), so older clients still read the conversation as
it was before the migration, and no longer see new messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, messages_from_dict, messages_to_dict

from botwire_client import core, names
from botwire_client.core import Op
from botwire_client.errors import ConflictError, InvalidRequest
from botwire_client.memory import Memory

LEGACY_NAMESPACE = "langchain-sessions"
DEFAULT_NAMESPACE = LEGACY_NAMESPACE  # where 0.2.1 and the one-value format kept every session
SESSION_PREFIX = "langchain-sessions/"
SEQ = "seq"
MESSAGE = "m/"
LEGACY = "legacy"
WIDTH = 12  # digits of a message number: key order is message order
SNAPSHOT_FROM = 1000  # a read of more new messages than this pages through the listing


def _as_dicts(value: Any) -> list[dict[str, Any]]:
    """The stored message dicts of a one-value session, whichever format wrote them."""
    if value is None:
        return []
    if isinstance(value, str):  # the 0.2.1 adapter stored json.dumps(list)
        try:
            value = json.loads(value) if value else []
        except ValueError as exc:
            raise ValueError(
                "This chat history key holds a string that is not a JSON message list; "
                "use another session_id or delete the key."
            ) from exc
    if not isinstance(value, list):
        raise ValueError(
            f"This chat history key holds a {type(value).__name__}, not a message list; "
            "use another session_id or delete the key."
        )
    return value


def session_namespace(session_id: str) -> str:
    """The namespace of a session by default: ``langchain-sessions/<session_id>``."""
    name = SESSION_PREFIX + session_id
    if len(name.encode()) > names.NAMESPACE_MAX_BYTES:
        raise InvalidRequest(
            f"The session id {names.shown(session_id)} is too long for a namespace of its "
            f"own (at most {names.NAMESPACE_MAX_BYTES - len(SESSION_PREFIX)} bytes); pass "
            "namespace= to keep it as keys of a shared namespace."
        )
    return core.check_namespace(name)


def shared_prefix(session_id: str) -> str:
    """The key prefix of a session in a shared namespace."""
    return session_id.replace("%", "%25").replace("/", "%2F") + "/"


@dataclass
class _Counter:
    next: int
    start: int
    legacy: bool
    version: int  # 0: not stored yet

    def value(self) -> dict[str, Any]:
        return {"next": self.next, "start": self.start, "legacy": self.legacy}


@dataclass
class _Read:
    """What one instance read last: messages ``start .. upto - 1`` (after the legacy ones)."""

    start: int = 0
    upto: int = 0
    messages: list[BaseMessage] = field(default_factory=list)


@dataclass(frozen=True)
class Layout:
    """Where a session lives: its namespace and key prefix, and its old one-value key."""

    namespace: str
    prefix: str
    legacy_namespace: str
    legacy_key: str

    def key(self, n: int) -> str:
        return f"{self.prefix}{MESSAGE}{n:0{WIDTH}d}"

    def counter_op(self) -> Op[_Counter | None]:
        item = yield from core.item_op(self.namespace, self.prefix + SEQ, None)
        if item is None:
            return None
        v = item.value
        return _Counter(int(v["next"]), int(v["start"]), bool(v.get("legacy")), item.version)

    def legacy_op(self) -> Op[list[dict[str, Any]]]:
        value = yield from core.get_op(self.legacy_namespace, self.legacy_key, None, None)
        return _as_dicts(value)


def append_op(
    layout: Layout,
    new: list[dict[str, Any]],
    known: list[_Counter | None],
    meta: core.WriteMeta = core.NO_META,
) -> Op[None]:
    """Append ``new`` after every message stored so far (see the module docstring).
    ``known[0]``: the counter this instance last wrote or read, updated here."""
    chunk = core.BATCH_LIMIT - 2
    for begin in range(0, len(new), chunk):
        part = new[begin : begin + chunk]
        while True:
            counter = known[0]
            legacy: list[dict[str, Any]] = []
            if counter is None:
                counter = yield from layout.counter_op()
                if counter is None:
                    legacy = yield from layout.legacy_op()
                    counter = _Counter(1, 1, bool(legacy), 0)
            ops = core.BatchOps(layout.namespace, meta)
            after = _Counter(counter.next + len(part), counter.start, counter.legacy, 0)
            ops.set(layout.prefix + SEQ, after.value(), counter.version, None)
            if counter.version == 0 and legacy:
                ops.set(layout.prefix + LEGACY, legacy, 0, None)
            for i, message in enumerate(part):
                ops.set(layout.key(counter.next + i), message, 0, None)
            try:
                done = yield from ops.commit_op()
            except ConflictError:
                known[0] = None  # another writer appended (or cleared) first: read again
                continue
            after.version = done.versions[layout.prefix + SEQ]
            known[0] = after
            break


def read_op(layout: Layout, cache: _Read) -> Op[list[BaseMessage]]:
    """Every message in order; fetches only what ``cache`` does not hold yet."""
    while True:
        counter = yield from layout.counter_op()
        if counter is None:
            return messages_from_dict((yield from layout.legacy_op()))
        if counter.start != cache.start or counter.next < cache.upto:
            cache.start, cache.upto, cache.messages = counter.start, counter.start, []
            if counter.legacy:
                old = yield from core.get_op(layout.namespace, layout.prefix + LEGACY, [], None)
                cache.messages = messages_from_dict(_as_dicts(old))
        wanted = [layout.key(n) for n in range(cache.upto, counter.next)]
        found: dict[str, Any] = {}
        if len(wanted) > SNAPSHOT_FROM:
            # Many messages: the ordered listing pages faster than multi-gets of named keys.
            every = yield from core.snapshot_op(layout.namespace, None, layout.prefix + MESSAGE)
            found = {k: every[k] for k in wanted if k in every}
        elif wanted:
            found = yield from core.get_many_op(layout.namespace, wanted, None)
        if len(found) < len(wanted):
            cache.start = 0  # cleared between the two reads: start again
            continue
        cache.messages.extend(messages_from_dict([found[k] for k in wanted]))
        cache.upto = counter.next
        return list(cache.messages)


def clear_op(
    layout: Layout, known: list[_Counter | None], meta: core.WriteMeta = core.NO_META
) -> Op[None]:
    while True:
        counter = yield from layout.counter_op()
        if counter is None:
            counter = _Counter(1, 1, False, 0)
        ops = core.BatchOps(layout.namespace, meta)
        ops.set(
            layout.prefix + SEQ,
            {"next": counter.next, "start": counter.next, "legacy": False},
            counter.version,
            None,
        )
        if counter.legacy:
            ops.delete(layout.prefix + LEGACY, None)
        keys = [layout.key(n) for n in range(counter.start, counter.next)]
        first = core.BATCH_LIMIT - len(ops.ops)
        for key in keys[:first]:
            ops.delete(key, None)
        try:
            done = yield from ops.commit_op()
        except ConflictError:
            continue  # an append landed meanwhile: clear what is there now
        known[0] = _Counter(counter.next, counter.next, False, done.versions[layout.prefix + SEQ])
        break
    for begin in range(first, len(keys), core.BATCH_LIMIT):
        rest = core.BatchOps(layout.namespace, meta)
        for key in keys[begin : begin + core.BATCH_LIMIT]:
            rest.delete(key, None)
        try:
            yield from rest.commit_op()
        except ConflictError:
            pass  # another clear removed them: nothing left to hide
    # The session's old one-value key goes too (an old client would still read it).
    yield from core.delete_op(layout.legacy_namespace, layout.legacy_key, None, meta)


class BotWireChatHistory(BaseChatMessageHistory):
    """LangChain ``BaseChatMessageHistory`` backed by BotWire, with native async methods.

    By default each session has its own namespace, ``langchain-sessions/<session_id>`` (so a
    token grant can cover one user's sessions, and sessions spend their own daily quota); a
    ``namespace`` given keeps the session's keys in that namespace instead. ``memory``
    overrides the ``Memory`` built from ``base_url`` and ``token`` (to share its connections).
    ``run``: the run id (a LangGraph thread, a workflow run) every write of this history belongs
    to, so that ``Memory.revert_run`` can undo it.
    """

    def __init__(
        self,
        session_id: str,
        namespace: str | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        memory: Memory | None = None,
        run: str | None = None,
    ) -> None:
        self.session_id = core.check_key(session_id)
        if namespace is None:
            self.layout = Layout(session_namespace(session_id), "", LEGACY_NAMESPACE, session_id)
        else:
            ns = core.check_namespace(namespace)
            self.layout = Layout(ns, core.check_key(shared_prefix(session_id)), ns, session_id)
        if memory is None:
            memory = Memory(self.layout.namespace, base_url, token=token, run=run)
        elif run is not None:
            memory = memory.with_run(run)
        self.memory = memory
        self._counter: list[_Counter | None] = [None]
        self._read = _Read()

    @property
    def namespace(self) -> str:
        return self.layout.namespace

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return self.memory._run(read_op(self.layout, self._read))

    async def aget_messages(self) -> list[BaseMessage]:
        return await self.memory._arun(read_op(self.layout, self._read))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        new = messages_to_dict(list(messages))
        if new:
            meta = self.memory._meta(None, None)
            self.memory._run(append_op(self.layout, new, self._counter, meta))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        new = messages_to_dict(list(messages))
        if new:
            meta = self.memory._meta(None, None)
            await self.memory._arun(append_op(self.layout, new, self._counter, meta))

    def clear(self) -> None:
        self.memory._run(clear_op(self.layout, self._counter, self.memory._meta(None, None)))

    async def aclear(self) -> None:
        meta = self.memory._meta(None, None)
        await self.memory._arun(clear_op(self.layout, self._counter, meta))

    def __repr__(self) -> str:
        return (
            f"BotWireChatHistory(session_id={self.session_id!r}, "
            f"namespace={self.layout.namespace!r}, base_url={self.memory.base_url!r})"
        )
