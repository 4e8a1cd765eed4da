"""The outermost middleware: a request id, the access line, the request metrics.

Every request gets an id: the client's ``X-Request-Id`` when it is sane (1-128 characters of
``A-Za-z0-9._:-``), a new random one otherwise. It is returned in the ``X-Request-Id``
response header, set in ``logs.REQUEST_ID`` for every record logged while the request runs,
and written in the request's access line (``botwire_server.access``, level INFO). An exception
that escapes the application is logged here, with that id, instead of by the ASGI server.

The route is the matched template (``/memory/{ns}/{key}``), never the path: names are user
data and would make a metric label per key.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..logs import REQUEST_ID
from ..metrics import UNMATCHED
from .errors import internal_error

access = logging.getLogger("botwire_server.access")
errors = logging.getLogger("botwire_server.errors")

_SANE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` when sane, else a new one (32 hex characters)."""
    for name, value in headers:
        if name == b"x-request-id":
            if _SANE_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return secrets.token_hex(16)


class Observe:
    """Pure ASGI middleware; ``metrics`` off: ids and access lines only."""

    def __init__(self, app: ASGIApp, *, metrics: bool = True) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope["headers"])
        reset = REQUEST_ID.set(rid)
        header = (b"x-request-id", rid.encode("ascii"))
        status = 500
        responded = False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Logged here with the id, and answered here (with the id in the header), so that
            # neither Starlette nor the ASGI server logs it again without it.
            errors.exception(
                "The request failed (%s %s).",
                scope["method"],
                _route(scope),
                extra={"request_id": rid},
            )
            if not responded:
                await internal_error()(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = _route(scope)
            if self.metrics:
                service = scope["app"].state.service
                if service is not None:
                    service.metrics.observe_request(route, scope["method"], status, seconds)
            if access.isEnabledFor(logging.INFO):
                ms = round(seconds * 1000, 1)
                access.info(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    route,
                    status,
                    ms,
                    extra=_fields(rid, scope["method"], route, status, ms),
                )
            REQUEST_ID.reset(reset)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _fields(rid: str, method: str, route: str, status: int, ms: float) -> dict[str, Any]:
    return {
        "request_id": rid,
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": ms,
    }


__all__ = ["Observe", "request_id"]
