"""Agent identities and channels (the rest of the original 0.2.1 client), on the event log.

Where things live (reserved namespaces; ``botwire:`` namespaces take no writes through the
memory verbs, so nothing else can slip a revision into them):

- ``botwire:agents``: one key per registered agent (its name), the value its record
  (description, capabilities, and the id of the token that registered it).
- ``botwire:channels``: the directory, ``channel/<name>`` (who created it, when, its
  description) and ``member/<name>/<agent>`` (who joined, when).
- ``botwire:channel:<name>``: the channel itself. Every post is ONE commit of ONE event, so
  the namespace's revision is the entry's id: ids are gap-free (1, 2, 3, ...), in commit order,
  and the change feed and the watch of that namespace follow the channel as they follow any
  namespace. The event's key is the entry's type (``signal``, ``alert``, ...: no type is a
  prefix of another, so ``prefix=alert`` filters by type) and its value
  ``{"agent_id","type","data"}``; the entry's timestamp is the commit time.

A worked example: ``alice`` creates ``trading`` and posts twice, ``bob`` once::

    POST /channels/trading/create   botwire:channels rev 1: channel/trading, member/trading/alice
    POST /channels/trading/post     botwire:channel:trading rev 1: signal {"agent_id":"alice",...}
    POST /channels/trading/post     botwire:channel:trading rev 2: alert  {...}
    POST /channels/trading/post     botwire:channel:trading rev 3: signal {"agent_id":"bob",...}
    GET  /channels/trading/messages?limit=2            -> ids 1, 2 (the OLDEST after since)
    GET  /channels/trading/messages?since=<ts of 2>    -> id 3
    GET  /channels/trading/messages?type=signal        -> ids 1, 3

Reading: ``since`` (Unix seconds, as 0.2.1 sends it) means "entries committed after that
time"; ``after`` (an id) "entries with a greater id". Either way a page holds the OLDEST
``limit`` entries that follow, so a reader paging with the last timestamp (or id) it saw never
skips one. Commit times never go backwards but two commits may share a microsecond (a group
commit on PostgreSQL gives its commits one time); a server process therefore posts to a channel
one entry at a time, after the clock has passed the previous entry's time, and a page never
ends inside a tie that still happens (replicas, a clock set back): it takes the whole tie, so
``since`` = its last timestamp loses nothing.

Access: a channel's grants are those of its namespace (``botwire:channel:<name>``): read for
messages and members, write for create, join and post. Registering an agent needs write on
``botwire:agents``, lookup and search read. With tokens, an agent's name is bound to the token
that registered it: only that token (or an admin on ``*``) may re-register it or act as it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from . import naming
from .auth import Principal
from .errors import (
    BatchConflict,
    Conflict,
    Exists,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RevisionCompacted,
)
from .storage.base import MICROS, Store, Write

RESERVED_PREFIX = "botwire:"
AGENTS_NS = "botwire:agents"
DIRECTORY_NS = "botwire:channels"
CHANNEL_PREFIX = "botwire:channel:"

# The original client's entry types and entry size.
VALID_TYPES = frozenset(
    {"signal", "analysis", "decision", "alert", "question", "response", "human", "status", "data"}
)
ENTRY_MAX_BYTES = 10 * 1024
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
AGENT_NAME_MAX = 128
TICK_WAIT = 0.005  # at most this long for the clock to pass the previous post's time
TEXT_MAX = 1000
MAX_CAPABILITIES = 50


class AgentRecord(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str = ""
    capabilities: list[str] = []
    wallet_address: str = ""
    registered_at: int = 0  # microseconds
    updated_at: int = 0
    token: str = ""  # the id of the token that registered it ("" with auth off)


class ChannelRecord(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str = ""
    visibility: str = "public"
    created_by: str = ""
    created_at: int = 0


class MemberRecord(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    joined_at: int = 0


class EntryValue(msgspec.Struct, frozen=True):
    agent_id: str
    type: str
    data: msgspec.Raw


class Entry(msgspec.Struct, frozen=True):
    id: int
    agent_id: str
    type: str
    data: msgspec.Raw
    timestamp: int  # microseconds


_encode = msgspec.json.Encoder().encode
_agent = msgspec.json.Decoder(AgentRecord)
_channel = msgspec.json.Decoder(ChannelRecord)
_member = msgspec.json.Decoder(MemberRecord)
_entry = msgspec.json.Decoder(EntryValue)


def reserved(namespace: str) -> bool:
    return namespace.startswith(RESERVED_PREFIX)


def refuse_reserved(namespace: str) -> None:
    """The memory verbs may read reserved namespaces but never write them."""
    if reserved(namespace):
        raise InvalidInput(
            f"Namespace {namespace!r} is reserved for agent identities and channels "
            f"(names starting with {RESERVED_PREFIX!r}); write it through the /identity and "
            "/channels routes.",
            code="reserved_namespace",
        )


def channel_namespace(name: str) -> str:
    return CHANNEL_PREFIX + channel_name(name)


def channel_name(name: str) -> str:
    if not CHANNEL_NAME.fullmatch(name):
        raise InvalidInput(
            f"Channel name {name[:80]!r} is not 1-64 letters, digits, '-' or '_'.",
            code="invalid_name",
        )
    return name


def agent_name(name: str) -> str:
    naming.key(name)
    if len(name) > AGENT_NAME_MAX or "/" in name:
        raise InvalidInput(
            f"An agent name is 1-{AGENT_NAME_MAX} characters without '/' or control characters.",
            code="invalid_name",
        )
    return name


def entry_type(kind: str) -> str:
    if kind not in VALID_TYPES:
        raise InvalidInput(
            f"Invalid type {kind[:40]!r}. Use: {', '.join(sorted(VALID_TYPES))}.",
            code="invalid_type",
        )
    return kind


def _text(value: str, what: str) -> str:
    if len(value) > TEXT_MAX:
        raise InvalidInput(f"{what} is at most {TEXT_MAX} characters.", code="invalid_body")
    return value


def _not_found(name: str) -> NotFound:
    return NotFound(
        f"Channel {name!r} does not exist; create it first (POST /channels/{name}/create).",
        code="channel_not_found",
    )


def moment(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


class Channels:
    """The identity and channel verbs over one store. ``tokens``: whether the server
    authenticates (then agent names are bound to tokens)."""

    def __init__(self, store: Store, *, tokens: bool) -> None:
        self.store = store
        self.tokens = tokens
        # Per channel namespace: (posts waiting or running, their lock), and the last commit
        # time a post got here (forgotten once no post runs: the clock has moved on by then).
        self._posting: dict[str, tuple[int, asyncio.Lock]] = {}
        self._last_at: dict[str, int] = {}

    # -- identities ------------------------------------------------------------------------

    async def register(
        self,
        who: Principal,
        name: str,
        *,
        description: str = "",
        capabilities: Sequence[str] = (),
        wallet_address: str = "",
    ) -> AgentRecord:
        """Register ``name`` (or update it, by the token that registered it)."""
        who.require(AGENTS_NS, "write")
        name = agent_name(name)
        if len(capabilities) > MAX_CAPABILITIES:
            raise InvalidInput(
                f"An agent has at most {MAX_CAPABILITIES} capabilities.", code="invalid_body"
            )
        for capability in capabilities:
            _text(capability, "A capability")
        for _ in range(5):
            item = await self.store.get(AGENTS_NS, name)
            old = None if item is None else _agent.decode(item.value)
            if old is not None:
                self._check_owner(who, old)
            now = self.store.clock()
            record = AgentRecord(
                name=name,
                description=_text(description, "description"),
                capabilities=list(capabilities),
                wallet_address=_text(wallet_address, "wallet_address"),
                registered_at=now if old is None else old.registered_at,
                updated_at=now,
                token=who.id if old is None else old.token,
            )
            expected = 0 if item is None else item.version
            try:
                await self.store.set(AGENTS_NS, name, _encode(record), expected_version=expected)
            except Conflict:
                continue  # registered or updated meanwhile: judge again
            return record
        raise Exists(
            f"Agent {name!r} is being registered concurrently; retry.",
            code="registration_conflict",
        )

    def _check_owner(self, who: Principal, agent: AgentRecord) -> None:
        if not self.tokens or agent.token == who.id or who.may("*", "admin"):
            return
        raise Forbidden(
            f"Agent {agent.name!r} was registered with another token; only that token may "
            "register it again or act as it."
        )

    async def lookup(self, who: Principal, name: str) -> AgentRecord:
        who.require(AGENTS_NS, "read")
        item = await self.store.get(AGENTS_NS, agent_name(name))
        if item is None:
            raise NotFound(f"No agent is registered as {name!r}.", code="agent_not_found")
        return _agent.decode(item.value)

    async def search(
        self, who: Principal, *, capability: str = "", query: str = "", limit: int = 100
    ) -> list[AgentRecord]:
        """Agents in name order having ``capability`` (any, when empty) and ``query`` in their
        name or description (case-insensitive)."""
        who.require(AGENTS_NS, "read")
        wanted, text = capability.strip().lower(), query.strip().lower()
        found: list[AgentRecord] = []
        after: str | None = None
        while len(found) < limit:
            page = await self.store.list(AGENTS_NS, after=after, limit=1000)
            for item in page:
                agent = _agent.decode(item.value)
                if wanted and wanted not in (c.lower() for c in agent.capabilities):
                    continue
                if text and text not in agent.name.lower() + "\n" + agent.description.lower():
                    continue
                found.append(agent)
            if len(page) < 1000:
                break
            after = page[-1].key
        return found[:limit]

    async def _acting_as(self, who: Principal, name: str) -> AgentRecord:
        item = await self.store.get(AGENTS_NS, agent_name(name))
        if item is None:
            raise InvalidInput(
                f"Agent {name!r} is not registered; register it first (POST "
                f"/identity/register, or botwire.register({name!r}, accept_terms=True)).",
                code="agent_not_registered",
            )
        agent = _agent.decode(item.value)
        self._check_owner(who, agent)
        return agent

    # -- channels ----------------------------------------------------------------------------

    async def _info(self, name: str) -> ChannelRecord:
        item = await self.store.get(DIRECTORY_NS, f"channel/{name}")
        if item is None:
            raise _not_found(name)
        return _channel.decode(item.value)

    async def create(
        self,
        who: Principal,
        name: str,
        agent_id: str,
        *,
        description: str = "",
        visibility: str = "public",
    ) -> ChannelRecord:
        """A new channel, its creator its first member; ``Exists`` (409) when it exists."""
        who.require(channel_namespace(name), "write")
        await self._acting_as(who, agent_id)
        now = self.store.clock()
        record = ChannelRecord(
            name=name,
            description=_text(description, "description"),
            visibility=_text(visibility, "visibility")[:40],
            created_by=agent_id,
            created_at=now,
        )
        member = MemberRecord(agent_id=agent_id, joined_at=now)
        try:
            await self.store.commit(
                DIRECTORY_NS,
                [
                    Write(
                        op="set", key=f"channel/{name}", value=_encode(record), expected_version=0
                    ),
                    Write(op="set", key=f"member/{name}/{agent_id}", value=_encode(member)),
                ],
            )
        except BatchConflict:
            raise Exists(f"Channel {name!r} already exists; join it instead.") from None
        return record

    async def join(self, who: Principal, name: str, agent_id: str) -> MemberRecord:
        """Add ``agent_id`` to the members (a second join changes nothing)."""
        who.require(channel_namespace(name), "write")
        await self._info(name)
        await self._acting_as(who, agent_id)
        key = f"member/{name}/{agent_id}"
        member = MemberRecord(agent_id=agent_id, joined_at=self.store.clock())
        try:
            await self.store.set(DIRECTORY_NS, key, _encode(member), expected_version=0)
        except Conflict:
            item = await self.store.get(DIRECTORY_NS, key)
            if item is not None:
                return _member.decode(item.value)
        return member

    async def members(self, who: Principal, name: str) -> list[MemberRecord]:
        who.require(channel_namespace(name), "read")
        await self._info(name)
        members: list[MemberRecord] = []
        after: str | None = None
        while True:
            page = await self.store.list(
                DIRECTORY_NS, prefix=f"member/{name}/", after=after, limit=1000
            )
            members.extend(_member.decode(i.value) for i in page)
            if len(page) < 1000:
                return members
            after = page[-1].key

    async def list_channels(self, who: Principal) -> list[tuple[ChannelRecord, int]]:
        """Every channel ``who`` may read, in name order, with its newest entry id."""
        out: list[tuple[ChannelRecord, int]] = []
        after: str | None = None
        while True:
            page = await self.store.list(DIRECTORY_NS, prefix="channel/", after=after, limit=1000)
            for item in page:
                record = _channel.decode(item.value)
                ns = CHANNEL_PREFIX + record.name
                if who.may(ns, "read"):
                    out.append((record, await self.store.head(ns)))
            if len(page) < 1000:
                return out
            after = page[-1].key

    async def post(self, who: Principal, name: str, agent_id: str, kind: str, data: bytes) -> Entry:
        """Append one entry (``data``: encoded JSON, at most 10 KiB) as one revision of the
        channel's namespace, under that namespace's limits and daily quota."""
        ns = channel_namespace(name)
        who.require(ns, "write")
        entry_type(kind)
        if len(data) > ENTRY_MAX_BYTES:
            raise PayloadTooLarge(
                f"The entry's data is {len(data)} bytes, over the limit of {ENTRY_MAX_BYTES}.",
                code="entry_too_large",
                limit=ENTRY_MAX_BYTES,
            )
        await self._info(name)
        await self._acting_as(who, agent_id)
        value = _encode(EntryValue(agent_id, kind, msgspec.Raw(data)))
        # One post of a channel at a time in this process, each after the clock has passed
        # the previous one's commit time: entries get distinct timestamps, which 0.2.1's
        # polling watch needs (it drops an entry whose timestamp equals the last one's).
        # Without the lock, concurrent posts may share a group commit and its time.
        waiters, lock = self._posting.get(ns, (0, asyncio.Lock()))
        self._posting[ns] = (waiters + 1, lock)
        try:
            async with lock:
                last = self._last_at.get(ns, 0)
                give_up = time.monotonic() + TICK_WAIT
                while self.store.clock() <= last and time.monotonic() < give_up:
                    await asyncio.sleep(0.0002)
                done = await self.store.commit(ns, [Write(op="set", key=kind, value=value)])
                self._last_at[ns] = done.at
        finally:
            waiters, lock = self._posting[ns]
            if waiters == 1:
                del self._posting[ns]
                self._last_at.pop(ns, None)
            else:
                self._posting[ns] = (waiters - 1, lock)
        return Entry(done.revision, agent_id, kind, msgspec.Raw(data), done.at)

    async def messages(
        self,
        who: Principal,
        name: str,
        *,
        since: int | None = None,
        after: int | None = None,
        kind: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Entry], int]:
        """The OLDEST ``limit`` entries after ``after`` (an id) or ``since`` (microseconds),
        of type ``kind`` if given, and the channel's head. A page never ends inside a run of
        entries with one timestamp (see the module docstring)."""
        ns = channel_namespace(name)
        who.require(ns, "read")
        if kind is not None:
            entry_type(kind)
        await self._info(name)
        start = after
        if start is None and since is not None:
            try:
                start = await self.store.resolve(ns, moment(since))
            except RevisionCompacted as exc:
                start = exc.oldest_revision
        start = start or 0
        entries: list[Entry] = []
        while True:
            try:
                page = await self.store.changes(ns, after=start, limit=1000, prefix=kind)
            except RevisionCompacted as exc:  # the oldest entries are gone: start at the first
                if start >= exc.oldest_revision:
                    raise
                start = exc.oldest_revision
                continue
            for event in page.events:
                if event.op == "set" and event.value is not None:
                    v = _entry.decode(event.value)
                    entries.append(Entry(event.revision, v.agent_id, v.type, v.data, event.at))
            if len(entries) > limit or page.next_after >= page.head:
                break
            start = page.next_after
        if len(entries) > limit:
            last = entries[limit - 1].timestamp
            cut = limit
            while cut < len(entries) and entries[cut].timestamp == last:
                cut += 1
            entries = entries[:cut]
        return entries, page.head


def seconds(micros: int) -> float:
    return micros / MICROS


__all__ = [
    "AGENTS_NS",
    "CHANNEL_PREFIX",
    "DIRECTORY_NS",
    "ENTRY_MAX_BYTES",
    "VALID_TYPES",
    "AgentRecord",
    "ChannelRecord",
    "Channels",
    "Entry",
    "Exists",
    "MemberRecord",
    "channel_namespace",
    "refuse_reserved",
    "reserved",
]
