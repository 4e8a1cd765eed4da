"""The web inspector (PRODUCT.md section 12): ``GET /ui`` and its static files.

The page and its assets are plain files in ``botwire_server/ui/`` (HTML, CSS and JavaScript
modules, no build step), shipped in the wheel with the package and read once, at import, into
memory: a fixed table of names, so no request path ever reaches the file system. They hold no
data (the page fetches everything from the API with the user's token), so they need no token
(``app.PUBLIC_PATHS``).

Every UI response carries a strict Content-Security-Policy (scripts and styles from this
origin only: no inline script, no ``eval``, no plugins, no framing, requests only to this
origin) and the usual headers: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
no-referrer`` (the page's URL names namespaces and keys), ``X-Frame-Options: DENY`` for older
browsers. Responses are revalidated on every load (``Cache-Control: no-cache``, a strong ETag,
304 on ``If-None-Match``), so an upgraded server never runs a stale script.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from botwire_client import names

from ..errors import NotFound

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
INDEX = "index.html"


class Asset:
    __slots__ = ("body", "media_type", "etag")

    def __init__(self, body: bytes, media_type: str) -> None:
        self.body = body
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def load_assets() -> dict[str, Asset]:
    """Every file of ``botwire_server/ui`` whose type is in ``TYPES``, by name."""
    out: dict[str, Asset] = {}
    for entry in resources.files("botwire_server").joinpath("ui").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in TYPES:
            out[entry.name] = Asset(entry.read_bytes(), TYPES[suffix])
    return out


ASSETS = load_assets()


def _respond(request: Request, asset: Asset) -> Response:
    headers = {**HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, headers=headers, media_type=asset.media_type)


async def page(request: Request) -> Response:
    """``GET /ui``: the inspector's page."""
    return _respond(request, ASSETS[INDEX])


async def asset(request: Request) -> Response:
    """``GET /ui/{file}``: a script, style sheet or icon of the page."""
    name = request.path_params["file"]
    found = ASSETS.get(name)
    if found is None or name == INDEX:
        raise NotFound(
            f"The inspector has no file {names.shown(name)}; open /ui.", code="route_not_found"
        )
    return _respond(request, found)
