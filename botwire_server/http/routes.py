"""The routes. Each one parses its parameters, calls one store verb and encodes the result;
the rules live in ``params``, ``body`` and the store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar, cast

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import NotFound
from ..settings import Limits
from ..storage.base import Store, check_value_size
from . import body, params, paths, wire

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")

_CONTENT_TYPE = (b"content-type", b"application/json")


class JSONBytes(Response):
    """A 200 JSON response from encoded bytes, its raw headers built directly: the base class
    derives them from a dict of strings, lower-casing and encoding each one, on every request."""

    media_type = "application/json"

    def __init__(self, content: bytes, etag: str | None = None) -> None:
        self.status_code = 200
        self.background = None
        self.body = content
        self.raw_headers = [_CONTENT_TYPE, (b"content-length", b"%d" % len(content))]
        if etag is not None:
            self.raw_headers.append((b"etag", etag.encode()))


_json = JSONBytes


def _store(request: Request) -> Store:
    return cast(Store, request.app.state.store)


def _limits(request: Request) -> Limits:
    return cast(Limits, request.app.state.limits)


def _raw(value: bytes | None) -> msgspec.Raw | None:
    return None if value is None else msgspec.Raw(value)


async def _page(
    fetch: Callable[[int], Awaitable[Sequence[T]]],
    probe: Callable[[T], Awaitable[Sequence[object]]],
    limit: int,
) -> tuple[Sequence[T], bool]:
    """One page of ``limit`` rows and whether more follow, so that ``next_cursor`` is null on
    the last page. Stores serve at most 1000 rows a call, hence the probe for a full page."""
    if limit < 1000:
        rows = await fetch(limit + 1)
        return rows[:limit], len(rows) > limit
    rows = await fetch(limit)
    return rows, len(rows) == limit and len(await probe(rows[-1])) > 0


# -- BotWire-compatible routes ---------------------------------------------------------------


async def put_item(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    key = params.key(request.path_params["key"])
    limits = _limits(request)
    headers = params.headers(request.scope)
    data = await body.read(request, request.app.state.body_limit, limits.value_max_bytes, headers)
    put = body.decode(data, wire.put_decoder)
    value = body.encode_value(put.value, data)
    check_value_size(limits, len(value))
    expected = params.expected_version(headers, put.expected_version, allow_none_match=True)
    result = await _store(request).set(ns, key, value, expected_version=expected)
    return _json(
        wire.encode(
            wire.Stored(ns, key, True, result.bytes, result.revision, result.created_revision)
        ),
        params.etag(result.revision),
    )


async def get_item(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    key = params.key(request.path_params["key"])
    as_of = params.as_of(request.query_params) if request.scope["query_string"] else None
    item = await _store(request).get(ns, key, as_of=as_of)
    if item is None:
        raise NotFound(f"Key {key!r} does not exist in namespace {ns!r}.", code="key_not_found")
    return _json(
        wire.encode(
            wire.ItemOut(
                ns,
                key,
                msgspec.Raw(item.value),
                params.seconds(item.created_at),
                params.seconds(item.updated_at),
                item.version,
                item.created_revision,
            )
        ),
        params.etag(item.version),
    )


async def delete_item(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    key = params.key(request.path_params["key"])
    expected = params.expected_version(
        request.headers, params.expected_version_query(request.query_params), allow_none_match=False
    )
    result = await _store(request).delete(ns, key, expected_version=expected)
    return _json(wire.encode(wire.Deleted(True, ns, key, result.revision)))


async def list_keys(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    query = request.query_params
    limit = params.limit(query, 100)
    prefix = params.prefix(query)
    after = params.key_cursor(query, "k")
    as_of = params.as_of(query)
    store = _store(request)
    # A current listing reads the current table; a past one reads at the resolved revision.
    revision = await store.head(ns) if as_of is None else await store.resolve(ns, as_of)
    read_at = None if as_of is None else revision
    items, more = await _page(
        lambda n: store.list(ns, prefix=prefix, after=after, limit=n, as_of=read_at),
        lambda last: store.list(ns, prefix=prefix, after=last.key, limit=1, as_of=read_at),
        limit,
    )
    keys = [
        wire.KeyOut(i.key, len(i.value), params.seconds(i.updated_at), i.version) for i in items
    ]
    cursor = params.make_cursor("k", items[-1].key) if more else None
    return _json(wire.encode(wire.KeyPage(ns, len(keys), keys, cursor, revision)))


async def stats(request: Request) -> Response:
    s = await _store(request).stats()
    return _json(wire.encode(wire.StatsOut(s.total_entries, s.total_namespaces, s.total_bytes)))


# -- extended routes -------------------------------------------------------------------------


async def history(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    key = params.key(request.path_params["key"])
    limit = params.limit(request.query_params, 100)
    before = params.revision_cursor(request.query_params, "h")
    store = _store(request)
    events, more = await _page(
        lambda n: store.history(ns, key, before=before, limit=n),
        lambda last: store.history(ns, key, before=last.revision, limit=1),
        limit,
    )
    out = [wire.EventOut(e.revision, e.op, _raw(e.value), params.iso(e.at)) for e in events]
    cursor = params.make_cursor("h", str(events[-1].revision)) if more else None
    return _json(wire.encode(wire.HistoryPage(ns, key, out, cursor)))


async def namespace_info(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    info = await _store(request).info(ns)
    updated = None if info.updated_at is None else params.iso(info.updated_at)
    return _json(
        wire.encode(
            wire.NamespaceOut(
                ns, info.revision, info.keys, info.bytes, info.oldest_revision, updated
            )
        )
    )


async def snapshot(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    query = request.query_params
    limit = params.limit(query, 1000)
    prefix = params.prefix(query)
    after = params.key_cursor(query, "s")
    as_of = params.as_of(query)
    store = _store(request)
    # Every page reads at one fixed revision, so the pages of a snapshot agree.
    revision = await store.head(ns) if as_of is None else await store.resolve(ns, as_of)
    items, more = await _page(
        lambda n: store.list(ns, prefix=prefix, after=after, limit=n, as_of=revision),
        lambda last: store.list(ns, prefix=prefix, after=last.key, limit=1, as_of=revision),
        limit,
    )
    values = {i.key: msgspec.Raw(i.value) for i in items}
    cursor = params.make_cursor("s", items[-1].key) if more else None
    return _json(wire.encode(wire.SnapshotPage(ns, revision, values, cursor)))


async def rollback(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, wire.rollback_decoder)
    to: int | datetime = req.to if isinstance(req.to, int) else params.timestamp(req.to, what="to")
    key = None if req.key is None else params.key(req.key)
    result = await _store(request).rollback(ns, to, key=key, dry_run=req.dry_run)
    changed = [wire.ChangeOut(c.key, c.op, _raw(c.value)) for c in result.changes]
    return _json(wire.encode(wire.RollbackOut(ns, result.revision, result.dry_run, changed)))


async def compact(request: Request) -> Response:
    ns = params.namespace(request.path_params["ns"])
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, wire.compact_decoder)
    store = _store(request)
    removed = await store.compact(ns, before=req.before)
    info = await store.info(ns)
    return _json(wire.encode(wire.CompactOut(ns, removed, info.oldest_revision)))


async def healthz(request: Request) -> Response:
    await _store(request).ping()
    return _json(wire.encode(wire.Health("ok")))


async def openapi(request: Request) -> Response:
    return _json(request.app.state.openapi)


class _Endpoint:
    """The ASGI app of one path: the handler for the method, then its response. Errors go to
    the application's exception handlers, the one place that shapes them; Starlette's
    ``request_response`` would first pass them through a second, identical layer of the same
    handlers on every request. One endpoint per path, so that a wrong method gets a 405 listing
    every allowed one."""

    __slots__ = ("handlers",)

    def __init__(self, handlers: dict[str, Endpoint]) -> None:
        if "GET" in handlers:
            handlers = {**handlers, "HEAD": handlers["GET"]}
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handlers[scope["method"]](Request(scope, receive, send))
        await response(scope, receive, send)


def _route(path: str, **handlers: Endpoint) -> Route:
    # An instance, not a function: Starlette mounts it as an ASGI app as it is. Path
    # parameters are names, decoded by ``paths`` (the router sees the raw path).
    return paths.name_params(Route(path, _Endpoint(handlers), methods=list(handlers)))


# The busiest route first: Starlette tries the routes in order.
ROUTES = [
    _route("/memory/{ns}/{key}", GET=get_item, PUT=put_item, DELETE=delete_item),
    _route("/memory/{ns}/{key}/history", GET=history),
    _route("/memory/{ns}", GET=list_keys),
    _route("/stats/memory", GET=stats),
    _route("/namespaces/{ns}/snapshot", GET=snapshot),
    _route("/namespaces/{ns}/rollback", POST=rollback),
    _route("/namespaces/{ns}/compact", POST=compact),
    _route("/namespaces/{ns}", GET=namespace_info),
    _route("/healthz", GET=healthz),
    _route("/openapi.json", GET=openapi),
]
