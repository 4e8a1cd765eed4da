"""Agent identities and channels, with the names of the original ``botwire`` 0.2.1 client.

::

    import botwire
    from botwire import Channel

    botwire.register("alice", capabilities=["trading"])
    ch = Channel("trading", agent_id="alice")          # creates it if needed, joins it
    ch.post("signal", {"ticker": "NVDA", "action": "BUY"})
    for entry in ch.read(type="signal"):               # the OLDEST 50, then page on
        print(entry["id"], entry["data"])
    for entry in ch.watch():                           # new entries as they are posted (SSE)
        ...

An entry is a dict ``{"id", "channel", "agent_id", "type", "data", "timestamp"}``: ``id`` is
gap-free from 1 in post order, ``timestamp`` Unix seconds. Unlike 0.2.1, ``read`` returns the
OLDEST ``limit`` entries after ``since`` (or ``after``, an id), so paging never skips one, and
``watch`` follows the server's Server-Sent Events instead of polling. Every request goes
through the same machinery as ``Memory`` (retries, errors, token).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any, overload

from botwire_client import core
from botwire_client.core import Op, Request, _ok, _path
from botwire_client.errors import InvalidRequest
from botwire_client.memory import Memory
from botwire_client.models import Event

VALID_TYPES = frozenset(
    {"signal", "analysis", "decision", "alert", "question", "response", "human", "status", "data"}
)
CHANNEL_PREFIX = "botwire:channel:"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"Channel name {name!r} is not 1-64 letters, digits, '-' or '_' (e.g. 'trading')."
        )
    return name


def _check_type(entry_type: object) -> str:
    if entry_type not in VALID_TYPES:
        raise InvalidRequest(f"Invalid type {entry_type!r}. Use: {', '.join(sorted(VALID_TYPES))}.")
    assert isinstance(entry_type, str)
    return entry_type


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidRequest(f"limit must be an int from 1 to 1000, not {limit!r}.")
    return limit


def register_op(
    agent_id: str, description: str, capabilities: list[str] | None, wallet_address: str
) -> Op[dict[str, Any]]:
    body = {
        "name": core.check_key(agent_id),
        "description": description,
        "capabilities": list(capabilities or []),
        "wallet_address": wallet_address,
    }
    req = Request("POST", "/identity/register", json=body, has_body=True)
    return _ok((yield req), req)


def lookup_op(agent_id: str) -> Op[dict[str, Any] | None]:
    req = Request("GET", _path("identity", "lookup", core.check_key(agent_id)))
    resp = yield req
    if resp.status == 404 and core.decode(resp).get("code") == "agent_not_found":
        return None
    return _ok(resp, req)


def search_op(capability: str, query: str, limit: int) -> Op[list[dict[str, Any]]]:
    params = {"capability": capability, "q": query, "limit": str(_check_limit(limit))}
    req = Request("GET", "/identity/search", params=params)
    return list(_ok((yield req), req)["results"])


def create_op(name: str, agent_id: str, description: str) -> Op[bool]:
    """Create the channel; False when it existed already."""
    body = {"agent_id": agent_id, "visibility": "public", "description": description}
    req = Request("POST", _path("channels", name, "create"), json=body, has_body=True)
    resp = yield req
    if resp.status == 409 and core.decode(resp).get("code") == "channel_exists":
        return False
    _ok(resp, req)
    return True


def join_op(name: str, agent_id: str) -> Op[dict[str, Any]]:
    req = Request("POST", _path("channels", name, "join"), params={"agent_id": agent_id})
    return _ok((yield req), req)


def post_op(name: str, agent_id: str, entry_type: str, data: Any) -> Op[dict[str, Any]]:
    body = {"agent_id": agent_id, "type": _check_type(entry_type), "data": core.encode_value(data)}
    # A post is not repeated after an unclear failure: it would be a second entry.
    req = Request("POST", _path("channels", name, "post"), json=body, has_body=True, safe=False)
    return _ok((yield req), req)


def read_op(
    name: str, entry_type: str | None, since: float | None, after: int | None, limit: int
) -> Op[list[dict[str, Any]]]:
    params = {"limit": str(_check_limit(limit))}
    if entry_type is not None:
        params["type"] = _check_type(entry_type)
    if since is not None:
        params["since"] = repr(float(since))
    if after is not None:
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidRequest(f"after must be an entry id (an int >= 0), not {after!r}.")
        params["after"] = str(after)
    req = Request("GET", _path("channels", name, "messages"), params=params)
    return list(_ok((yield req), req)["entries"])


def members_op(name: str) -> Op[list[dict[str, Any]]]:
    req = Request("GET", _path("channels", name, "members"))
    return list(_ok((yield req), req)["members"])


def list_op() -> Op[list[dict[str, Any]]]:
    req = Request("GET", "/channels")
    return list(_ok((yield req), req)["channels"])


def entry_of(name: str, event: Event) -> dict[str, Any] | None:
    """The entry a change of the channel's namespace carries (None: not an entry)."""
    value = event.value
    if event.op != "set" or not isinstance(value, dict):
        return None
    at: datetime = event.at
    return {
        "id": event.revision,
        "channel": name,
        "agent_id": value.get("agent_id"),
        "type": value.get("type"),
        "data": value.get("data"),
        "timestamp": at.timestamp(),
    }


def _client(base_url: str | None, token: str | None, namespace: str = "botwire:agents") -> Memory:
    return Memory(namespace, base_url, token=token)


def register(
    agent_id: str,
    accept_terms: bool = False,
    description: str = "",
    capabilities: list[str] | None = None,
    wallet_address: str = "",
    *,
    base_url: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """Register ``agent_id`` (again: update its description and capabilities). With tokens
    the name is bound to ``token``. ``accept_terms`` is accepted for 0.2.1 code and ignored:
    a self-hosted server has no terms."""
    with _client(base_url, token) as m:
        return m._run(register_op(agent_id, description, capabilities, wallet_address))


async def aregister(
    agent_id: str,
    accept_terms: bool = False,
    description: str = "",
    capabilities: list[str] | None = None,
    wallet_address: str = "",
    *,
    base_url: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    m = _client(base_url, token)
    try:
        return await m._arun(register_op(agent_id, description, capabilities, wallet_address))
    finally:
        await m.aclose()


def lookup(
    agent_id: str, *, base_url: str | None = None, token: str | None = None
) -> dict[str, Any] | None:
    """The registered agent, or None."""
    with _client(base_url, token) as m:
        return m._run(lookup_op(agent_id))


def search(
    capability: str = "",
    query: str = "",
    *,
    limit: int = 100,
    base_url: str | None = None,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """Registered agents with ``capability`` (any when empty) and ``query`` in name or
    description."""
    with _client(base_url, token) as m:
        return m._run(search_op(capability, query, limit))


class Channel:
    """A channel for agent-to-agent messages, acting as ``agent_id`` (registered first).

    ``auto_create``: create the channel if it does not exist and join it, now (sync); async
    code passes ``auto_create=False`` and awaits ``acreate()``. ``base_url`` and ``token``
    default as ``Memory``'s do (``BOTWIRE_URL``, ``BOTWIRE_TOKEN``).
    """

    def __init__(
        self,
        name: str,
        agent_id: str,
        auto_create: bool = True,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.name = _check_name(name)
        self.agent_id = core.check_key(agent_id)
        self.namespace = CHANNEL_PREFIX + name
        self._memory = Memory(self.namespace, base_url, token=token, timeout=timeout)
        if auto_create:
            self.create()

    def __repr__(self) -> str:
        return f"Channel({self.name!r}, agent_id={self.agent_id!r})"

    # -- membership --------------------------------------------------------------------------

    def create(self, description: str = "") -> bool:
        """Create the channel (False: it existed) and join it."""
        created = self._memory._run(create_op(self.name, self.agent_id, description))
        self._memory._run(join_op(self.name, self.agent_id))
        return created

    async def acreate(self, description: str = "") -> bool:
        created = await self._memory._arun(create_op(self.name, self.agent_id, description))
        await self._memory._arun(join_op(self.name, self.agent_id))
        return created

    def members(self) -> list[dict[str, Any]]:
        """``[{"agent_id", "joined_at"}]`` of every agent that joined."""
        return self._memory._run(members_op(self.name))

    async def amembers(self) -> list[dict[str, Any]]:
        return await self._memory._arun(members_op(self.name))

    # -- entries -----------------------------------------------------------------------------

    def post(self, entry_type: str, data: dict[str, Any] | str | Any) -> dict[str, Any]:
        """Append an entry of ``entry_type`` (see ``VALID_TYPES``) holding ``data`` (any JSON,
        at most 10 KiB); returns it with its ``id`` and ``timestamp``."""
        return self._memory._run(post_op(self.name, self.agent_id, entry_type, data))

    async def apost(self, entry_type: str, data: dict[str, Any] | str | Any) -> dict[str, Any]:
        return await self._memory._arun(post_op(self.name, self.agent_id, entry_type, data))

    def read(
        self,
        type: str | None = None,
        since: float | None = None,
        limit: int = 50,
        *,
        after: int | None = None,
    ) -> list[dict[str, Any]]:
        """The OLDEST ``limit`` entries posted after ``since`` (Unix seconds) or ``after`` (an
        entry id), of ``type`` if given. Page on with the last entry's ``id`` as ``after``."""
        return self._memory._run(read_op(self.name, type, since, after, limit))

    async def aread(
        self,
        type: str | None = None,
        since: float | None = None,
        limit: int = 50,
        *,
        after: int | None = None,
    ) -> list[dict[str, Any]]:
        return await self._memory._arun(read_op(self.name, type, since, after, limit))

    @overload
    def watch(
        self,
        callback: None = None,
        type: str | None = None,
        poll_interval: float | None = None,
        *,
        after: int | None = None,
    ) -> Iterator[dict[str, Any]]: ...

    @overload
    def watch(
        self,
        callback: Callable[[dict[str, Any]], None],
        type: str | None = None,
        poll_interval: float | None = None,
        *,
        after: int | None = None,
    ) -> None: ...

    def watch(
        self,
        callback: Callable[[dict[str, Any]], None] | None = None,
        type: str | None = None,
        poll_interval: float | None = None,
        *,
        after: int | None = None,
    ) -> Iterator[dict[str, Any]] | None:
        """New entries as they are posted (``after``: also those after this id; 0: all).

        Without ``callback``, an endless iterator of entries (``close()`` it, or break out of
        the loop). With ``callback`` (as in 0.2.1), call it for each entry, forever.
        ``poll_interval`` is accepted for 0.2.1 code and ignored: the server pushes entries
        (Server-Sent Events) and a dropped connection resumes where it stopped."""
        if type is not None:
            _check_type(type)
        entries = self._entries(after, type)
        if callback is None:
            return entries
        for entry in entries:
            callback(entry)
        return None

    def _entries(self, after: int | None, kind: str | None) -> Iterator[dict[str, Any]]:
        with self._memory.watch(after, prefix=kind) as events:
            for event in events:
                entry = entry_of(self.name, event)
                if entry is not None:
                    yield entry

    async def awatch(
        self, type: str | None = None, *, after: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """New entries as they are posted, as an async iterator (see ``watch``)."""
        if type is not None:
            _check_type(type)
        async with self._memory.awatch(after, prefix=type) as events:
            async for event in events:
                entry = entry_of(self.name, event)
                if entry is not None:
                    yield entry

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        self._memory.close()

    async def aclose(self) -> None:
        await self._memory.aclose()


def channels(*, base_url: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """Every channel the token may read."""
    with _client(base_url, token) as m:
        return m._run(list_op())


__all__ = [
    "Channel",
    "VALID_TYPES",
    "aregister",
    "channels",
    "lookup",
    "register",
    "search",
]
