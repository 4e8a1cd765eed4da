"""Wire types of the identity and channel routes: the bodies the original ``botwire`` 0.2.1
client sends and reads (``register``, ``Channel``), as msgspec structs. Times are Unix seconds
(floats), as on the other BotWire-compatible routes."""

from __future__ import annotations

from typing import Any

import msgspec


class RegisterBody(msgspec.Struct, forbid_unknown_fields=True):
    """``accept_terms`` is accepted and ignored: a self-hosted server has no terms."""

    name: str
    description: str = ""
    capabilities: list[str] = []
    wallet_address: str = ""
    accept_terms: bool = False


class AgentOut(msgspec.Struct):
    agent_id: str
    name: str
    description: str
    capabilities: list[str]
    wallet_address: str
    registered_at: float
    updated_at: float


class SearchOut(msgspec.Struct):
    """Registered agents in name order; ``count`` is the number in ``results``."""

    results: list[AgentOut]
    count: int


class CreateBody(msgspec.Struct, forbid_unknown_fields=True):
    agent_id: str
    visibility: str = "public"
    description: str = ""


class ChannelOut(msgspec.Struct):
    """``namespace``: the channel's namespace (its change feed and watch follow the channel);
    ``head``: the id of its newest entry (0: none yet)."""

    name: str
    description: str
    visibility: str
    created_by: str
    created_at: float
    namespace: str
    head: int


class ChannelsOut(msgspec.Struct):
    channels: list[ChannelOut]
    count: int


class JoinOut(msgspec.Struct):
    channel: str
    agent_id: str
    joined: bool
    joined_at: float


class PostBody(msgspec.Struct, forbid_unknown_fields=True):
    """``type``: signal, analysis, decision, alert, question, response, human, status or data;
    ``data``: any JSON, at most 10 KiB encoded."""

    agent_id: str
    type: str
    data: Any


class EntryOut(msgspec.Struct):
    """``id``: the entry's revision in the channel's namespace, gap-free from 1."""

    id: int
    channel: str
    agent_id: str
    type: str
    data: Any
    timestamp: float


class MessagesOut(msgspec.Struct):
    """The OLDEST entries after ``since``/``after``, at most ``limit`` (more only to finish a
    run of entries with one timestamp); page on with the last entry's ``timestamp`` as
    ``since`` or its ``id`` as ``after``. ``head``: the newest entry's id."""

    channel: str
    entries: list[EntryOut]
    count: int
    head: int


class MemberOut(msgspec.Struct):
    agent_id: str
    joined_at: float


class MembersOut(msgspec.Struct):
    channel: str
    members: list[MemberOut]
    count: int


register_decoder = msgspec.json.Decoder(RegisterBody)
create_decoder = msgspec.json.Decoder(CreateBody)
post_decoder = msgspec.json.Decoder(PostBody)
