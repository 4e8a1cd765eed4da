"""The routes. Each one parses its parameters, calls ONE verb of the service layer
(``botwire_server.service``) and encodes the result; the rules live in ``params``, ``body``,
the service and the store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, cast

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .. import auth, service
from ..metrics import CONTENT_TYPE
from ..settings import Limits
from ..storage.base import Item, TokenRecord
from . import body, params, paths, stream, ui, wire

if TYPE_CHECKING:
    from ..service import BatchOp, Service

Endpoint = Callable[[Request], Awaitable[Response]]

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


def _service(request: Request) -> Service:
    return cast("Service", request.app.state.service)


def _who(request: Request) -> auth.Principal:
    return auth.principal_of(request.scope)


def _limits(request: Request) -> Limits:
    return cast(Limits, request.app.state.limits)


def _raw(value: bytes | None) -> msgspec.Raw | None:
    return None if value is None else msgspec.Raw(value)


def _iso(micros: int | None) -> str | None:
    return None if micros is None else params.iso(micros)


# -- BotWire-compatible routes ---------------------------------------------------------------


async def put_item(request: Request) -> Response:
    path = request.path_params
    limits = _limits(request)
    headers = params.headers(request.scope)
    data = await body.read(request, request.app.state.body_limit, limits.value_max_bytes, headers)
    put = body.decode(data, wire.put_decoder)
    value = body.encode_value(put.value, data)
    expected = params.expected_version(headers, put.expected_version, allow_none_match=True)
    result = await _service(request).set(
        _who(request),
        path["ns"],
        path["key"],
        value,
        expected_version=expected,
        ttl=put.ttl,
        meta=params.write_meta(request.scope, headers, data),
    )
    return _json(
        wire.encode(
            wire.Stored(
                path["ns"],
                path["key"],
                True,
                result.bytes,
                result.revision,
                result.created_revision,
            )
        ),
        params.etag(result.revision),
    )


async def get_item(request: Request) -> Response:
    path = request.path_params
    as_of = params.as_of(request.query_params) if request.scope["query_string"] else None
    item = await _service(request).get(_who(request), path["ns"], path["key"], as_of=as_of)
    return _json(
        wire.encode(
            wire.ItemOut(
                path["ns"],
                item.key,
                msgspec.Raw(item.value),
                params.seconds(item.created_at),
                params.seconds(item.updated_at),
                item.version,
                item.created_revision,
                None if item.expires_at is None else params.seconds(item.expires_at),
            )
        ),
        params.etag(item.version),
    )


async def delete_item(request: Request) -> Response:
    path = request.path_params
    headers = params.headers(request.scope)
    expected = params.expected_version(
        headers, params.expected_version_query(request.query_params), allow_none_match=False
    )
    result = await _service(request).delete(
        _who(request),
        path["ns"],
        path["key"],
        expected_version=expected,
        meta=params.write_meta(request.scope, headers),
    )
    return _json(wire.encode(wire.Deleted(True, path["ns"], path["key"], result.revision)))


async def list_keys(request: Request) -> Response:
    ns = request.path_params["ns"]
    query = request.query_params
    page = await _service(request).list_keys(
        _who(request),
        ns,
        prefix=params.prefix(query),
        after=params.key_cursor(query, "k"),
        limit=params.limit(query, 100),
        as_of=params.as_of(query),
    )
    keys = [
        wire.KeyOut(
            i.key,
            len(i.value),
            params.seconds(i.updated_at),
            i.version,
            None if i.expires_at is None else params.seconds(i.expires_at),
        )
        for i in page.rows
    ]
    cursor = params.make_cursor("k", page.rows[-1].key) if page.more else None
    return _json(wire.encode(wire.KeyPage(ns, len(keys), keys, cursor, page.revision)))


async def stats(request: Request) -> Response:
    s = await _service(request).stats(_who(request))
    return _json(wire.encode(wire.StatsOut(s.total_entries, s.total_namespaces, s.total_bytes)))


# -- extended routes -------------------------------------------------------------------------


async def history(request: Request) -> Response:
    path = request.path_params
    query = request.query_params
    page = await _service(request).history(
        _who(request),
        path["ns"],
        path["key"],
        before=params.revision_cursor(query, "h"),
        limit=params.limit(query, 100),
    )
    events = page.rows
    out = [
        wire.EventOut(
            e.revision,
            e.op,
            _raw(e.value),
            params.iso(e.at),
            _iso(e.expires_at),
            e.actor,
            e.run,
            e.agent,
            e.reason,
        )
        for e in events
    ]
    cursor = params.make_cursor("h", str(events[-1].revision)) if page.more else None
    return _json(wire.encode(wire.HistoryPage(path["ns"], path["key"], out, cursor)))


async def namespace_info(request: Request) -> Response:
    ns = request.path_params["ns"]
    info = await _service(request).info(_who(request), ns)
    updated = None if info.updated_at is None else params.iso(info.updated_at)
    return _json(
        wire.encode(
            wire.NamespaceOut(
                ns, info.revision, info.keys, info.bytes, info.oldest_revision, updated
            )
        )
    )


async def snapshot(request: Request) -> Response:
    ns = request.path_params["ns"]
    query = request.query_params
    page = await _service(request).snapshot(
        _who(request),
        ns,
        prefix=params.prefix(query),
        after=params.key_cursor(query, "s"),
        limit=params.limit(query, 1000),
        as_of=params.as_of(query),
    )
    values = {i.key: msgspec.Raw(i.value) for i in page.rows}
    cursor = params.make_cursor("s", page.rows[-1].key) if page.more else None
    return _json(wire.encode(wire.SnapshotPage(ns, page.revision, values, cursor)))


async def rollback(request: Request) -> Response:
    ns = request.path_params["ns"]
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, wire.rollback_decoder)
    to: int | datetime = req.to if isinstance(req.to, int) else params.timestamp(req.to, what="to")
    result = await _service(request).rollback(
        _who(request),
        ns,
        to,
        key=req.key,
        dry_run=req.dry_run,
        meta=params.write_meta(request.scope, params.headers(request.scope), data),
    )
    changed = [wire.ChangeOut(c.key, c.op, _raw(c.value)) for c in result.changes]
    return _json(wire.encode(wire.RollbackOut(ns, result.revision, result.dry_run, changed)))


async def run_events(request: Request) -> Response:
    path = request.path_params
    query = request.query_params
    page = await _service(request).run_events(
        _who(request),
        path["ns"],
        path["run"],
        after=params.run_cursor(query),
        limit=params.limit(query, 100),
    )
    events = [stream.feed_event(e) for e in page.rows]
    last = page.rows[-1] if page.rows else None
    cursor = params.make_cursor("r", f"{last.revision}:{last.key}") if page.more and last else None
    return _json(wire.encode(wire.RunPage(path["ns"], path["run"], events, cursor)))


async def revert_run(request: Request) -> Response:
    path = request.path_params
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, wire.revert_decoder) if data.strip() else wire.RevertBody()
    result = await _service(request).revert_run(
        _who(request),
        path["ns"],
        path["run"],
        dry_run=req.dry_run,
        meta=params.write_meta(request.scope, params.headers(request.scope), data),
    )
    changed = [wire.ChangeOut(c.key, c.op, _raw(c.value)) for c in result.changes]
    skipped = [wire.SkippedOut(s.key, s.reason, s.current_version) for s in result.skipped]
    out = wire.RevertOut(path["ns"], path["run"], result.revision, result.dry_run, changed, skipped)
    return _json(wire.encode(out))


async def compact(request: Request) -> Response:
    ns = request.path_params["ns"]
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, wire.compact_decoder)
    removed, oldest = await _service(request).compact(_who(request), ns, before=req.before)
    return _json(wire.encode(wire.CompactOut(ns, removed, oldest)))


async def batch(request: Request) -> Response:
    ns = request.path_params["ns"]
    data = await body.read(request, request.app.state.batch_body_limit)
    req = body.decode(data, wire.batch_decoder)
    ops = [_batch_op(op, data) for op in req.ops]
    meta = params.write_meta(request.scope, params.headers(request.scope), data)
    done = await _service(request).batch(_who(request), ns, ops, meta=meta)
    results = [wire.OpResult(r.key, r.version) for r in done.results]
    return _json(wire.encode(wire.BatchOut(ns, done.revision, results)))


def _batch_op(op: wire.SetOp | wire.DeleteOp | wire.CheckOp, data: bytes) -> BatchOp:
    if isinstance(op, wire.SetOp):
        value = body.encode_value(op.value, data)
        return service.BatchOp(
            op="set", key=op.key, value=value, expected_version=op.expected_version, ttl=op.ttl
        )
    if isinstance(op, wire.DeleteOp):
        return service.BatchOp(op="delete", key=op.key, expected_version=op.expected_version)
    return service.BatchOp(op="check", key=op.key, expected_version=op.expected_version)


async def get_many(request: Request) -> Response:
    ns = request.path_params["ns"]
    data = await body.read(request, body.KEYS_BODY_BYTES)
    req = body.decode(data, wire.get_decoder)
    as_of: int | datetime | None = (
        req.as_of
        if req.as_of is None or isinstance(req.as_of, int)
        else params.timestamp(req.as_of)
    )
    revision, items = await _service(request).get_many(_who(request), ns, req.keys, as_of=as_of)
    out = {k: None if i is None else _item_at(i) for k, i in items.items()}
    return _json(wire.encode(wire.ItemsOut(ns, revision, out)))


async def query(request: Request) -> Response:
    ns = request.path_params["ns"]
    data = await body.read(request, body.KEYS_BODY_BYTES)
    req = body.decode(data, wire.query_decoder)
    as_of: int | datetime | None = (
        req.as_of
        if req.as_of is None or isinstance(req.as_of, int)
        else params.timestamp(req.as_of)
    )
    found = await _service(request).select(
        _who(request),
        ns,
        where=req.filter,
        prefix=req.prefix,
        offset=req.offset,
        limit=req.limit,
        as_of=as_of,
    )
    items = [_item_at(i) for i in found.items]
    return _json(wire.encode(wire.QueryOut(ns, found.revision, items, found.skipped, found.more)))


def _item_at(i: Item) -> wire.ItemAt:
    return wire.ItemAt(
        i.key,
        msgspec.Raw(i.value),
        i.version,
        i.created_revision,
        params.iso(i.created_at),
        params.iso(i.updated_at),
        _iso(i.expires_at),
    )


async def changes(request: Request) -> Response:
    ns = request.path_params["ns"]
    query = request.query_params
    page = await _service(request).changes(
        _who(request),
        ns,
        after=params.revision_param(query, "after") or 0,
        limit=params.limit(query, 100),
        prefix=params.prefix(query),
    )
    events = [stream.feed_event(e) for e in page.events]
    return _json(wire.encode(wire.ChangesOut(ns, page.head, events, page.next_after)))


async def watch(request: Request) -> Response:
    ns = request.path_params["ns"]
    query = request.query_params
    after = params.last_event_id(params.headers(request.scope))
    if after is None:
        after = params.revision_param(query, "after")
    feed = await _service(request).watch(
        _who(request), ns, after=after, prefix=params.prefix(query)
    )
    who = _who(request)
    svc = _service(request)
    return stream.EventStream(
        feed,
        keepalive=request.app.state.settings.watch_keepalive,
        still_valid=(lambda: svc.still_valid(who)) if who.stored else None,
    )


async def list_namespaces(request: Request) -> Response:
    query = request.query_params
    page = await _service(request).list_namespaces(
        _who(request),
        prefix=params.namespace_prefix(query),
        after=params.namespace_cursor(query),
        limit=params.limit(query, 100),
    )
    rows = [
        wire.NamespaceEntry(i.namespace, i.revision, i.keys, i.bytes, _iso(i.updated_at))
        for i in page.rows
    ]
    cursor = params.make_cursor("n", page.rows[-1].namespace) if page.more else None
    return _json(wire.encode(wire.NamespacesPage(rows, cursor)))


def _grants_out(text: str) -> list[wire.GrantIn]:
    return [wire.GrantIn(g.namespaces, g.access) for g in auth.decode_grants(text)]


def _token_out(t: TokenRecord) -> wire.TokenOut:
    return wire.TokenOut(
        t.id,
        t.name,
        _grants_out(t.grants),
        params.iso(t.created_at),
        _iso(t.expires_at),
        _iso(t.revoked_at),
        _iso(t.last_used_at),
    )


async def create_token(request: Request) -> Response:
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, wire.token_decoder)
    grants = [auth.Grant(g.namespaces, g.access) for g in req.grants]
    record, token = await _service(request).create_token(
        _who(request), req.name, grants, expires_in=req.expires_in
    )
    out = wire.TokenCreated(
        record.id, record.name, token, _grants_out(record.grants), _iso(record.expires_at)
    )
    response = _json(wire.encode(out))
    response.status_code = 201
    return response


async def list_tokens(request: Request) -> Response:
    tokens = await _service(request).list_tokens(_who(request))
    return _json(wire.encode(wire.TokenList([_token_out(t) for t in tokens])))


async def revoke_token(request: Request) -> Response:
    record = await _service(request).revoke_token(_who(request), request.path_params["id"])
    return _json(wire.encode(_token_out(record)))


async def healthz(request: Request) -> Response:
    await _service(request).ping()
    return _json(wire.encode(wire.Health("ok")))


async def metrics(request: Request) -> Response:
    text = _service(request).metrics_text(_who(request))
    return Response(text, media_type=None, headers={"Content-Type": CONTENT_TYPE})


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
    _route("/namespaces/{ns}/batch", POST=batch),
    _route("/namespaces/{ns}/get", POST=get_many),
    _route("/namespaces/{ns}/query", POST=query),
    _route("/namespaces/{ns}/changes", GET=changes),
    _route("/namespaces/{ns}/watch", GET=watch),
    _route("/namespaces/{ns}/runs/{run}", GET=run_events),
    _route("/namespaces/{ns}/runs/{run}/revert", POST=revert_run),
    _route("/namespaces/{ns}", GET=namespace_info),
    _route("/namespaces", GET=list_namespaces),
    _route("/admin/tokens", GET=list_tokens, POST=create_token),
    _route("/admin/tokens/{id}", DELETE=revoke_token),
    _route("/healthz", GET=healthz),
    _route("/openapi.json", GET=openapi),
    _route("/ui", GET=ui.page),
    _route("/ui/{file}", GET=ui.asset),
    _route("/metrics", GET=metrics),
]
