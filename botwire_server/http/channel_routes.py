"""The identity and channel routes (``botwire_server.channels``): thin, as the others are."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, cast

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .. import auth
from ..channels import CHANNEL_PREFIX, AgentRecord, ChannelRecord, Entry, channel_name
from ..errors import InvalidInput
from ..storage.base import MICROS
from . import body, params
from . import channel_wire as cw
from .routes import _json, _route

if TYPE_CHECKING:
    from ..channels import Channels

_encode = msgspec.json.Encoder().encode


def _channels(request: Request) -> Channels:
    return cast("Channels", request.app.state.service.channels)


def _who(request: Request) -> auth.Principal:
    return auth.principal_of(request.scope)


def _agent_out(a: AgentRecord) -> cw.AgentOut:
    return cw.AgentOut(
        a.name,
        a.name,
        a.description,
        a.capabilities,
        a.wallet_address,
        params.seconds(a.registered_at),
        params.seconds(a.updated_at),
    )


def _channel_out(c: ChannelRecord, head: int) -> cw.ChannelOut:
    return cw.ChannelOut(
        c.name,
        c.description,
        c.visibility,
        c.created_by,
        params.seconds(c.created_at),
        CHANNEL_PREFIX + c.name,
        head,
    )


def _entry_out(name: str, e: Entry) -> cw.EntryOut:
    return cw.EntryOut(e.id, name, e.agent_id, e.type, e.data, params.seconds(e.timestamp))


def _since(raw: str | None) -> int | None:
    """``since``: Unix seconds as the 0.2.1 client sends them (``str(float)``), read exactly
    as a decimal so that a timestamp it received comes back as the same microsecond."""
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0 or value > 10**11:
        raise InvalidInput(
            f"since={raw[:40]!r} is not a Unix time in seconds (e.g. 1795219200.123456).",
            code="invalid_parameter",
        )
    return int((value * MICROS).to_integral_value())


def _text(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidInput(
            f"{name} is given {len(values)} times; give it once.", code="invalid_parameter"
        )
    return values[0] if values else None


async def register(request: Request) -> Response:
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, cw.register_decoder)
    agent = await _channels(request).register(
        _who(request),
        req.name,
        description=req.description,
        capabilities=req.capabilities,
        wallet_address=req.wallet_address,
    )
    return _json(_encode(_agent_out(agent)))


async def lookup(request: Request) -> Response:
    agent = await _channels(request).lookup(_who(request), request.path_params["agent_id"])
    return _json(_encode(_agent_out(agent)))


async def search(request: Request) -> Response:
    found = await _channels(request).search(
        _who(request),
        capability=_text(request, "capability") or "",
        query=_text(request, "q") or "",
        limit=params.limit(request.query_params, 100),
    )
    out = [_agent_out(a) for a in found]
    return _json(_encode(cw.SearchOut(out, len(out))))


async def list_channels(request: Request) -> Response:
    rows = await _channels(request).list_channels(_who(request))
    out = [_channel_out(c, head) for c, head in rows]
    return _json(_encode(cw.ChannelsOut(out, len(out))))


async def create(request: Request) -> Response:
    name = channel_name(request.path_params["name"])
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, cw.create_decoder)
    record = await _channels(request).create(
        _who(request), name, req.agent_id, description=req.description, visibility=req.visibility
    )
    return _json(_encode(_channel_out(record, 0)))


async def join(request: Request) -> Response:
    name = channel_name(request.path_params["name"])
    agent_id = _text(request, "agent_id")
    if not agent_id:
        raise InvalidInput("join needs ?agent_id=<a registered agent>.", code="invalid_parameter")
    member = await _channels(request).join(_who(request), name, agent_id)
    out = cw.JoinOut(name, member.agent_id, True, params.seconds(member.joined_at))
    return _json(_encode(out))


async def post(request: Request) -> Response:
    name = channel_name(request.path_params["name"])
    data = await body.read(request, body.SMALL_BODY_BYTES)
    req = body.decode(data, cw.post_decoder)
    value = body.encode_value(req.data, data)
    entry = await _channels(request).post(_who(request), name, req.agent_id, req.type, value)
    return _json(_encode(_entry_out(name, entry)))


async def messages(request: Request) -> Response:
    name = channel_name(request.path_params["name"])
    query = request.query_params
    entries, head = await _channels(request).messages(
        _who(request),
        name,
        since=_since(_text(request, "since")),
        after=params.revision_param(query, "after"),
        kind=_text(request, "type") or None,
        limit=params.limit(query, 50),
    )
    out = [_entry_out(name, e) for e in entries]
    return _json(_encode(cw.MessagesOut(name, out, len(out), head)))


async def members(request: Request) -> Response:
    name = channel_name(request.path_params["name"])
    rows = await _channels(request).members(_who(request), name)
    out = [cw.MemberOut(m.agent_id, params.seconds(m.joined_at)) for m in rows]
    return _json(_encode(cw.MembersOut(name, out, len(out))))


ROUTES = [
    _route("/identity/register", POST=register),
    _route("/identity/lookup/{agent_id}", GET=lookup),
    _route("/identity/search", GET=search),
    _route("/channels", GET=list_channels),
    _route("/channels/{name}/create", POST=create),
    _route("/channels/{name}/join", POST=join),
    _route("/channels/{name}/post", POST=post),
    _route("/channels/{name}/messages", GET=messages),
    _route("/channels/{name}/members", GET=members),
]
