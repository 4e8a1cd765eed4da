"""The watch stream: change feed events as Server-Sent Events, a pure ASGI response.

Each event is ``event: change`` with the feed event's JSON as ``data``; only the LAST event of
each revision carries ``id: <revision>``, so the ``Last-Event-ID`` a client reconnects with
always names a revision whose events it has all received. A ``: keepalive`` comment goes out
after each idle ``keepalive`` seconds. The stream ends when the client disconnects
(``http.disconnect``) or the server shuts down (the watch hub closes); an error after the
response started (for example the position compacted away while the client lagged) is sent as
``event: error`` with the canonical error body, and the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..errors import BotWireServerError, Unauthenticated
from ..storage.base import Changes, Event
from ..watch import Watch, WatchClosed
from . import params, wire

logger = logging.getLogger("botwire_server.watch")

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
KEEPALIVE = b": keepalive\n\n"
# Seconds between checks that the stream's token is still valid (revoked, expired).
RECHECK = 2.0


def feed_event(e: Event) -> wire.FeedEvent:
    return wire.FeedEvent(
        e.revision,
        e.key,
        e.op,
        None if e.value is None else msgspec.Raw(e.value),
        params.iso(e.at),
        None if e.expires_at is None else params.iso(e.expires_at),
        e.actor,
        e.run,
        e.agent,
        e.reason,
    )


def encode_page(page: Changes) -> bytes:
    """The SSE text of a page's events; ``id`` on the last event of each revision."""
    events = page.events
    out: list[bytes] = []
    last = len(events) - 1
    for i, e in enumerate(events):
        data = wire.encode(feed_event(e))
        if i == last or events[i + 1].revision != e.revision:
            out.append(b"event: change\nid: %d\ndata: %s\n\n" % (e.revision, data))
        else:
            out.append(b"event: change\ndata: %s\n\n" % data)
    return b"".join(out)


def encode_error(exc: BotWireServerError) -> bytes:
    return b"event: error\ndata: %s\n\n" % wire.encode(exc.body())


class EventStream(Response):
    """A ``text/event-stream`` response that follows ``watch`` until the client leaves or the
    server shuts down; it closes the watch in every case."""

    def __init__(
        self,
        watch: Watch,
        *,
        keepalive: float,
        still_valid: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = list(HEADERS)
        self.watch = watch
        self.keepalive = keepalive
        # Asked at each wake-up (at most every RECHECK seconds): False ends the stream with an
        # ``unauthenticated`` error event (the token was revoked or expired).
        self.still_valid = still_valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            stream = asyncio.ensure_future(self._stream(send))
            gone = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait({stream, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (stream, gone):
                    task.cancel()
                await asyncio.gather(stream, gone, return_exceptions=True)
        finally:
            self.watch.close()

    async def _stream(self, send: Send) -> None:
        wait = self.keepalive if self.still_valid is None else min(self.keepalive, RECHECK)
        sent = checked = time.monotonic()
        try:
            while True:
                try:
                    page = await self.watch.next(wait)
                except WatchClosed:
                    break
                except BotWireServerError as exc:
                    await _body(send, encode_error(exc))
                    break
                now = time.monotonic()
                if self.still_valid is not None and now - checked >= min(wait, RECHECK) * 0.9:
                    checked = now
                    if not await self.still_valid():
                        gone = Unauthenticated("The token of this stream was revoked or expired.")
                        await _body(send, encode_error(gone))
                        break
                if page is not None:
                    await _body(send, encode_page(page))
                    sent = now
                elif now - sent >= self.keepalive * 0.9:
                    await _body(send, KEEPALIVE)
                    sent = now
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away while we wrote
            pass
        except Exception:
            logger.exception("A watch stream failed.")
            error = BotWireServerError("The server failed to continue this stream; reconnect.")
            try:
                await _body(send, encode_error(error))
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
