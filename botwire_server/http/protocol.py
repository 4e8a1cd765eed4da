"""The HTTP/1.1 protocol uvicorn runs: httptools when installed (the ``server`` extra installs
it), h11 otherwise; and the guards that make the server safe to expose.

uvicorn sets no deadline for a request's head or body and no bound on the size of a head, so a
client that sends half a request and stalls holds its connection (and its buffered bytes)
forever, and enough of them exhaust the file descriptors. This subclass of uvicorn's httptools
protocol adds, per connection (``Guards``):

- a **head deadline**: a connection that has not sent a complete request head within
  ``header_timeout`` seconds of connecting, or of the first byte of a later request, is closed,
  with ``408 request_timeout`` when part of a head had arrived. An idle keep-alive connection
  is left to uvicorn's ``timeout_keep_alive``: the deadline starts with the next request's
  first byte.
- a **body deadline**: a request whose body has not arrived whole within ``body_timeout``
  seconds of its head gets ``408 request_timeout`` (when nothing was answered yet; else the
  connection is just closed) and the connection is closed.
- a **head size limit**: past ``max_header_bytes`` bytes of request line and headers, counted
  as they arrive, ``431 headers_too_large`` and close. The parser buffers an unfinished head,
  so a connection holds at most the limit plus one read (256 KiB).
- a **connection cap**: at ``max_connections`` open connections a new one closes the
  connection that has waited longest without a request in progress (idle, or stalled in its
  head), so stalled clients cannot keep real ones out; when every connection has a request in
  progress the new one is answered ``503 too_many_connections`` with ``Retry-After`` once its
  head has arrived. Past ``max_open`` connections (what the file descriptor limit leaves) a new
  connection is closed at once.

Every refusal carries the canonical JSON error body. The guards need httptools; with h11 only
the head size limit holds (uvicorn's ``h11_max_incomplete_event_size``).

httptools parses requests in C and halves the CPU time per request against h11, but its URL
parser refuses a request target over 65,535 bytes, and uvicorn then answers a plain-text 400.
No valid request comes near that length (names, prefixes and cursors are short), so such a
request is refused here with the canonical JSON error of an invalid parameter instead.
"""

from __future__ import annotations

import importlib.util
import logging
from asyncio import TimerHandle, Transport
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import BotWireServerError, HeadersTooLarge, InvalidInput, RequestTimeout, Unavailable

# httptools.parse_url keeps offsets in 16 bits.
MAX_TARGET_BYTES = 65_535
# Seconds a client refused for the connection cap is asked to wait.
RETRY_AFTER = 1

_encode = msgspec.json.Encoder().encode
_log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True, slots=True)
class Guards:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 65_536
    max_connections: int = 1000
    # Connections past which a new one is closed without a reply (file descriptors).
    max_open: int = 2000


def _response(error: BotWireServerError) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the canonical reply to ``error``, closing the connection."""
    body = _encode(error.body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    if error.status == 503:
        headers.append((b"retry-after", b"%d" % RETRY_AFTER))
    return headers, body


def _refusing_app(error: BotWireServerError) -> Any:
    """An ASGI app that answers every request with ``error``."""
    headers, body = _response(error)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _seconds(value: float) -> str:
    return f"{value:g} second" + ("" if value == 1 else "s")


def _target_too_long(length: int) -> InvalidInput:
    return InvalidInput(
        f"The request target is {length} bytes long; the longest accepted is "
        f"{MAX_TARGET_BYTES} bytes.",
        code="invalid_parameter",
    )


def http_protocol(guards: Guards | None = None) -> Any:
    """The ``http`` setting for ``uvicorn.Config``: a protocol class, or ``"h11"``."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    g = guards or Guards()
    warned_at = [float("-inf")]

    class Protocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_timer: TimerHandle | None = None
            self._body_timer: TimerHandle | None = None
            # Bytes received since the last complete head: an upper bound of the head's size.
            self._head_bytes = 0
            self._in_head = False  # part of a request head has arrived
            self._in_body = False  # the head is complete, the body is not
            self._idle_since = 0.0
            self._refusal: BotWireServerError | None = None

        # -- connection life cycle ---------------------------------------------------------

        def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._idle_since = self.loop.time()
            self._head_timer = self.loop.call_later(g.header_timeout, self._head_timed_out)
            if len(self.connections) > g.max_connections and not self._evict_one():
                self._warn_refusing()
                if len(self.connections) > g.max_open:
                    self.connections.discard(self)
                    transport.abort()
                    return
                self._refusal = Unavailable(
                    f"The server is serving its limit of {g.max_connections} connections; "
                    f"retry after {_seconds(RETRY_AFTER)}.",
                    code="too_many_connections",
                )

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timers()
            super().connection_lost(exc)

        def _cancel_timers(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _busy(self) -> bool:
            """A request of this connection is being read or answered."""
            return (
                self._in_body
                or bool(self.pipeline)
                or (self.cycle is not None and not self.cycle.response_complete)
            )

        def _evict_one(self) -> bool:
            """Close the connection that has waited longest without a request in progress."""
            idle = [
                c
                for c in self.connections
                if c is not self and isinstance(c, Protocol) and not c._busy()
            ]
            if not idle:
                return False
            victim = min(idle, key=lambda c: c._idle_since)
            self.connections.discard(victim)
            victim._close_waiting()
            return True

        def _warn_refusing(self) -> None:
            now = self.loop.time()
            if now - warned_at[0] >= 10:
                warned_at[0] = now
                _log.warning(
                    "All %d connections have a request in progress; refusing new ones "
                    "(BOTWIRE_MAX_CONNECTIONS).",
                    g.max_connections,
                )

        # -- reading -----------------------------------------------------------------------

        def data_received(self, data: bytes) -> None:
            if not self._in_body:
                self._head_bytes += len(data)
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._in_head:
                if self._head_bytes > g.max_header_bytes:
                    self._refuse_now(self._too_large(f"more than {g.max_header_bytes}"))
                elif self._head_timer is None:
                    self._head_timer = self.loop.call_later(g.header_timeout, self._head_timed_out)
            elif self._in_body and self._body_timer is None:
                self._body_timer = self.loop.call_later(g.body_timeout, self._body_timed_out)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._in_body = True
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            refusal = self._refusal
            if self._head_bytes > g.max_header_bytes:
                # What arrived may include body bytes: measure the head itself.
                size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
                if size > g.max_header_bytes:
                    refusal = self._too_large(str(size))
            self._head_bytes = 0
            if refusal is None:
                super().on_headers_complete()
                return
            app = self.app
            self.app = _refusing_app(refusal)
            try:
                super().on_headers_complete()
            finally:
                self.app = app

        def on_message_complete(self) -> None:
            self._in_body = False
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            super().on_message_complete()

        def on_response_complete(self) -> None:
            self._idle_since = self.loop.time()
            super().on_response_complete()

        # -- refusals ----------------------------------------------------------------------

        def _too_large(self, size: str) -> BotWireServerError:
            url = getattr(self, "url", b"")
            if len(url) > MAX_TARGET_BYTES:  # the same answer as a whole over-long target's
                return _target_too_long(len(url))
            return HeadersTooLarge(
                f"The request head (request line and headers) is {size} bytes; the largest "
                f"accepted is {g.max_header_bytes} bytes (BOTWIRE_MAX_HEADER_BYTES)."
            )

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self._busy():
                # The head waits behind a request of its own connection (uvicorn paused
                # reading): its clock starts again.
                self._head_timer = self.loop.call_later(g.header_timeout, self._head_timed_out)
                return
            self._close_waiting()

        def _close_waiting(self) -> None:
            """Close a connection with no request in progress: with a 408 when part of a head
            had arrived, silently when it was idle."""
            if self._in_head:
                self._refuse_now(
                    RequestTimeout(
                        f"The request head did not arrive whole within "
                        f"{_seconds(g.header_timeout)} (BOTWIRE_HEADER_TIMEOUT)."
                    )
                )
            else:
                self._cancel_timers()
                self.transport.close()

        def _body_timed_out(self) -> None:
            self._body_timer = None
            if self.transport.is_closing() or not self._in_body:
                return
            cycle = self.cycle
            if cycle is not None and not cycle.response_started and not self.pipeline:
                # The application may still be waiting for the body: it gets a disconnect,
                # and whatever it answers goes nowhere.
                cycle.disconnected = True
                cycle.message_event.set()
                self._refuse_now(
                    RequestTimeout(
                        f"The request body did not arrive whole within "
                        f"{_seconds(g.body_timeout)} of its head (BOTWIRE_BODY_TIMEOUT)."
                    )
                )
            else:
                self._cancel_timers()
                self.transport.close()

        def _refuse_now(self, error: BotWireServerError) -> None:
            """Answer ``error`` outside any request cycle and close the connection."""
            self._cancel_timers()
            self._in_head = self._in_body = False
            if self.cycle is not None and not self.cycle.response_complete:
                if self.cycle.response_started:  # a reply is half sent: it cannot be followed
                    self.transport.close()
                    return
            headers, body = _response(error)
            content = [STATUS_LINE[error.status]]
            for name, value in [*self.server_state.default_headers, *headers]:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend([b"\r\n", body])
            self.transport.write(b"".join(content))
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            url = getattr(self, "url", b"")
            if len(url) <= MAX_TARGET_BYTES:
                self._cancel_timers()
                super().send_400_response(msg)
                return
            self._refuse_now(_target_too_long(len(url)))

    return Protocol
