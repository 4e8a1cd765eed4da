"""The change feed and the watch, sans I/O: what to request, and what the answers mean.

``Changes`` pages through ``GET /namespaces/{ns}/changes`` until it has covered the head seen by
its first page. ``Watch`` reads ``GET /namespaces/{ns}/watch`` (Server-Sent Events) line by line
and says when and from where to reconnect. The shells in ``botwire_client.memory`` only send
requests, hand over lines and sleep.

Resuming a watch without a lost or repeated event. The server puts ``id:`` only on the LAST
event of each revision, so the last id seen always names a fully delivered revision. Say
revision 8 wrote ``a`` and ``b`` and the connection breaks between them::

    event: change / data: {"revision":7,"key":"x",...} / id: 7     yielded; after = 7
    event: change / data: {"revision":8,"key":"a",...}             yielded; revision 8 is open
    -- connection lost; reconnect with Last-Event-ID: 7 --
    event: change / data: {"revision":8,"key":"a",...}             dropped: (8, "a") was yielded
    event: change / data: {"revision":8,"key":"b",...} / id: 8     yielded; after = 8
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from botwire_client.core import (
    Op,
    Request,
    Response,
    RetryPolicy,
    _ok,
    _path,
    error_for,
    head_op,
    parse_event,
)
from botwire_client.errors import InvalidRequest, ServerError
from botwire_client.models import Event

# The server sends a keepalive comment every 15 s: three missed ones mean the connection is dead.
WATCH_READ_TIMEOUT = 45.0


def _check_after(after: object, *, optional: bool) -> int | None:
    if after is None and optional:
        return None
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        also = " or None (only new changes)" if optional else ""
        raise InvalidRequest(f"after must be a revision (an int >= 0){also}, not {after!r}.")
    return after


def _check_prefix(prefix: object) -> str | None:
    if prefix is None or isinstance(prefix, str):
        return prefix or None
    raise InvalidRequest(f"prefix must be a str or None, not {prefix!r}.")


class Changes:
    """The change feed after revision ``after``, oldest first, one page per ``page_op()``.

    Done once it has covered the head that the first page reported, so the iteration ends even
    while writes keep coming (events past that head on the last page are yielded too).
    """

    def __init__(self, namespace: str, after: int, prefix: str | None, page: int) -> None:
        self.namespace = namespace
        checked = _check_after(after, optional=False)
        assert checked is not None
        self.after = checked
        self.prefix = _check_prefix(prefix)
        self.page = page
        self.target: int | None = None
        self.done = False

    def page_op(self) -> Op[list[Event]]:
        params = {"after": str(self.after), "limit": str(self.page)}
        if self.prefix:
            params["prefix"] = self.prefix
        req = Request("GET", _path("namespaces", self.namespace, "changes"), params=params)
        data = _ok((yield req), req)
        events = [parse_event(e) for e in data["events"]]
        if self.target is None:
            self.target = int(data["head"])
        raw_next = data.get("next_after")
        next_after = int(raw_next) if raw_next is not None else self.after
        if events:
            next_after = max(next_after, events[-1].revision)
        # No progress would mean asking the same page again forever: stop instead.
        self.done = next_after >= self.target or next_after <= self.after
        self.after = max(self.after, next_after)
        return events


@dataclass(frozen=True, slots=True)
class Message:
    """One Server-Sent Event: its type, its data lines joined by newlines, its id (or None)."""

    event: str
    data: str
    id: str | None


class SSEParser:
    """Server-Sent Events, line by line (the lines without their endings, as ``httpx``'s
    ``iter_lines`` gives them): ``feed`` returns a ``Message`` at each blank line that ends one."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget a half-received message (its connection broke before the blank line)."""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Message | None:
        if not line:
            if not self._data and self._id is None:
                self.reset()
                return None
            message = Message(self._event or "message", "\n".join(self._data), self._id)
            self.reset()
            return message
        if line.startswith(":"):
            return None  # a comment: the keepalive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None  # `retry:` and unknown fields are ignored


class Watch:
    """The state of one watch: the last fully delivered revision (``after``), the revision being
    delivered and its keys already yielded, and how many connection attempts failed in a row."""

    def __init__(
        self, namespace: str, after: int | None, prefix: str | None, policy: RetryPolicy
    ) -> None:
        self.namespace = namespace
        self.after = _check_after(after, optional=True)
        self.prefix = _check_prefix(prefix)
        self.policy = policy
        self.parser = SSEParser()
        self.failures = 0
        self.connected = False  # once the server has accepted the watch, it is never given up
        self._reconnect = False
        self._open_revision: int | None = None
        self._open_keys: set[str | None] = set()

    def start_op(self) -> Op[None]:
        """``after=None`` means "only new changes": read the head once, then watch after it."""
        if self.after is None:
            self.after = yield from head_op(self.namespace)

    def request(self) -> Request:
        assert self.after is not None, "run start_op() first"
        self.parser.reset()
        params = {"after": str(self.after)}
        if self.prefix:
            params["prefix"] = self.prefix
        headers = {"Accept": "text/event-stream"}
        if self._reconnect:
            headers["Last-Event-ID"] = str(self.after)
        self._reconnect = True
        return Request(
            "GET", _path("namespaces", self.namespace, "watch"), params=params, headers=headers
        )

    def opened(self) -> None:
        self.connected = True

    def refused(self, response: Response, request: Request) -> float:
        """The delay before trying again after a non-200 answer; raises when it is final."""
        if response.status == 503:
            delay = self.retry_delay()
            if delay is not None:
                return delay
        raise error_for(response, request)

    def retry_delay(self) -> float | None:
        """Seconds to wait before reconnecting, or None: give up. Before the server has ever
        accepted the watch, attempts are limited like any request's (a wrong URL fails fast);
        after, a watch outlives any outage, with delays capped by the policy."""
        if not self.connected and self.failures >= self.policy.retries:
            return None
        delay = self.policy._delay(min(self.failures, 32))
        self.failures += 1
        return delay

    def feed(self, line: str) -> Event | None:
        """One line of the stream; the event to yield, if it completes a new one."""
        self.failures = 0  # the connection works: a later break starts the backoff afresh
        message = self.parser.feed(line)
        if message is None:
            return None
        event = None
        if message.event == "change" and message.data:
            event = self._unseen(self._decode(message.data))
        if message.id is not None and message.id.strip().isdigit():
            revision = int(message.id)
            assert self.after is not None
            self.after = max(self.after, revision)
            if self._open_revision is not None and self._open_revision <= revision:
                self._open_revision, self._open_keys = None, set()
        return event

    def _decode(self, data: str) -> Event:
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            return parse_event(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(
                f"The watch sent an event this client cannot read ({exc}): {data[:200]!r}. "
                "Check that the client and server versions match."
            ) from exc

    def _unseen(self, event: Event) -> Event | None:
        assert self.after is not None
        if event.revision <= self.after:
            return None  # a revision delivered in full before a reconnect
        if event.revision == self._open_revision:
            if event.key in self._open_keys:
                return None  # re-sent after a reconnect in the middle of its revision
        else:
            self._open_revision, self._open_keys = event.revision, set()
        self._open_keys.add(event.key)
        return event


class EventStream:
    """The events of ``changes()`` or ``watch()``: iterate over it; ``close()`` (or leaving a
    ``with`` block) closes the connection of a watch at once."""

    def __init__(self, events: Generator[Event, None, None]) -> None:
        self._events = events

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEventStream:
    """The events of ``achanges()`` or ``awatch()``: ``async for`` over it; ``aclose()`` (or
    leaving an ``async with`` block) closes the connection of a watch at once."""

    def __init__(self, events: AsyncGenerator[Event, None]) -> None:
        self._events = events

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
