"""Routing on the raw path: in a URL, a name is one percent-encoded path segment.

Starlette matches routes on ``scope["path"]``, which the ASGI server has already
percent-decoded: ``PUT /memory/atk%2Fviaslash`` would reach ``/memory/{ns}/{key}`` as namespace
``atk``, key ``viaslash``. Two pieces, both here, make ``%2F`` part of a name instead:

- ``RawPathRouting``, a pure ASGI middleware, gives the router the path as it was received
  (``scope["raw_path"]``, without the query string), so that only a literal ``/`` separates
  segments. Without ``raw_path`` (some test clients) it re-encodes the decoded path, where an
  encoded ``/`` can no longer be told apart.
- ``NAME``, the convertor of every path parameter, percent-decodes its segment exactly once,
  strictly: a ``%`` that starts no escape, or bytes that are not UTF-8, are 400 ``invalid_name``.

Worked example: ``GET /memory/notes/2026%2F11%3Aa%20b`` matches ``/memory/{ns}/{key}`` with
``ns="notes"`` and ``key="2026/11:a b"``; ``GET /memory/notes/2026/11`` matches no route (404).
The naming rules themselves are checked by the routes (``params.namespace`` / ``params.key``).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from starlette.convertors import Convertor
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from botwire_client import names

from ..errors import InvalidInput

_NON_ASCII = re.compile(rb"[\x80-\xff]")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def encoded_path(scope: Scope) -> str:
    """The request's path, still percent-encoded, as an ASCII string."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return quote(scope["path"], safe="/")
    # Some servers and test clients leave the query string in raw_path; a raw '?' ends the
    # path in any case.
    raw = raw.partition(b"?")[0]
    if not raw.isascii():  # bytes a client did not encode: encode them, so decoding is uniform
        raw = _NON_ASCII.sub(lambda m: b"%%%02X" % m.group()[0], raw)
    return raw.decode("ascii")


class RawPathRouting:
    """Pure ASGI middleware: route on the still-encoded path (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # The scope is this request's own; the router is the only reader of "path".
            scope["path"] = encoded_path(scope)
        await self.app(scope, receive, send)


def decode_segment(segment: str) -> str:
    """One path segment, percent-decoded once as UTF-8; 400 ``invalid_name`` if it cannot be."""
    if "%" not in segment:
        return segment
    if _STRAY_PERCENT.search(segment) is not None:
        raise InvalidInput(
            f"The path segment {names.shown(segment)} is not percent-encoded correctly: "
            "a '%' must start an escape such as %2F; write a '%' in a name as %25.",
            code="invalid_name",
        )
    try:
        return unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"The path segment {names.shown(segment)} is not a name: percent-decoded, it is "
            "not valid UTF-8.",
            code="invalid_name",
        ) from None


class NameConvertor(Convertor[str]):
    """A path parameter: one segment, percent-decoded once."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return decode_segment(value)

    def to_string(self, value: str) -> str:
        return names.path_segment(value)


NAME = NameConvertor()


def name_params(route: Route) -> Route:
    """``route`` with every path parameter read by ``NAME``."""
    route.param_convertors = dict.fromkeys(route.param_convertors, NAME)
    return route
