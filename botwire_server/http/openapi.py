"""The OpenAPI 3.1 document served at ``GET /openapi.json`` (tests fuzz the server from it).

Bodies cannot drift from the code: every request and response schema is generated from the
msgspec structs of ``wire.py`` (``msgspec.json.schema_components``), then refined by field name
(``_refine``: names, revisions, times and values get the schemas below) and by a short table of
per-field bounds. The error table comes from the exception classes (``errors.py``). Only the
routes are written here, one row each in ``OPERATIONS``: method, path, request and response
struct, error statuses and parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from botwire_client import names

from .. import errors
from ..channels import VALID_TYPES
from ..service import MAX_KEYS, MAX_TTL_SECONDS
from ..storage.base import MAX_OPS
from . import channel_wire as cw
from . import wire
from .body import MAX_DEPTH
from .wire import MAX_INT

Schema = dict[str, Any]

NAMESPACE: Schema = names.NAMESPACE_SCHEMA
KEY: Schema = names.KEY_SCHEMA
REVISION: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
ANY_JSON: Schema = {
    "description": f"Any JSON value (nested at most {MAX_DEPTH} levels), returned exactly as "
    "stored in compact form."
}
ISO: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "ISO-8601 UTC with microseconds, e.g. 2026-11-21T10:00:00.123456Z.",
}
UNIX: Schema = {"type": "number", "description": "Unix seconds (UTC)."}
AT: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "An ISO-8601 time with a timezone, e.g. 2026-11-21T10:00:00Z.",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# -- schemas from the wire structs ---------------------------------------------------------------

# Fields whose schema follows from their name wherever they appear. A rule applies to the
# nodes of the field's schema that have the given JSON type (so `key: str | None` keeps null).
_NAMES = {"namespace": NAMESPACE, "key": KEY, "keys": KEY}
_REVISIONS = {
    "revision",
    "version",
    "created_revision",
    "current_version",
    "oldest_revision",
    "head",
    "next_after",
}
_TIMES = {"at", "created_at", "updated_at", "expires_at"}
_POINTS = {"as_of", "to"}  # a revision or an ISO-8601 time with a timezone

# Bounds that the service checks (with its own messages) rather than the decoder.
_BOUNDS: dict[tuple[str, str], Schema] = {
    ("BatchBody", "ops"): {"minItems": 1, "maxItems": MAX_OPS},
    ("GetBody", "keys"): {"minItems": 1, "maxItems": MAX_KEYS},
    ("KeyPage", "count"): {"minimum": 0, "maximum": 1000},
}
_TTL: Schema = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": MAX_TTL_SECONDS,
    "description": "Seconds until the value expires (a later set without ttl clears it).",
}


def _nodes(schema: Schema) -> list[Schema]:
    """The alternatives of a schema (its anyOf branches, or itself)."""
    return list(schema["anyOf"]) if "anyOf" in schema else [schema]


def _typed(schema: Schema, kind: str, replacement: Schema) -> Schema:
    """``schema`` with each alternative of JSON type ``kind`` (or an array of them) replaced."""
    out: list[Schema] = []
    for node in _nodes(schema):
        if node.get("type") == kind:
            node = {**replacement, **{k: v for k, v in node.items() if k == "default"}}
        elif node.get("type") == "array" and node.get("items", {}).get("type") == kind:
            node = {**node, "items": replacement}
        out.append(node)
    return {**schema, "anyOf": out} if "anyOf" in schema else out[0]


def _field(struct: str, name: str, schema: Schema) -> Schema:
    if name in _NAMES:
        schema = _typed(schema, "string", _NAMES[name])
    elif name in _REVISIONS:
        schema = _typed(schema, "integer", REVISION)
    elif name in _TIMES:
        schema = _typed(_typed(schema, "string", ISO), "number", UNIX)
    elif name in _POINTS:
        schema = _typed(schema, "string", AT)
    elif name == "value":
        schema = {**schema, **ANY_JSON}
    elif name == "ttl":
        schema = _typed(schema, "number", _TTL)
    return {**schema, **_BOUNDS.get((struct, name), {})}


def _refine(name: str, schema: Schema) -> Schema:
    schema = {k: v for k, v in schema.items() if k != "title"}
    if "description" in schema:
        schema["description"] = schema["description"].replace("``", "`")
    if "properties" in schema:
        schema["properties"] = {
            field: _field(name, field, sub) for field, sub in schema["properties"].items()
        }
    return schema


BODIES: tuple[type[msgspec.Struct], ...] = (
    wire.ErrorOut,
    wire.PutBody,
    wire.Stored,
    wire.ItemOut,
    wire.Deleted,
    wire.KeyPage,
    wire.StatsOut,
    wire.HistoryPage,
    wire.NamespaceOut,
    wire.SnapshotPage,
    wire.RollbackBody,
    wire.RollbackOut,
    wire.CompactBody,
    wire.CompactOut,
    wire.BatchBody,
    wire.BatchOut,
    wire.GetBody,
    wire.ItemsOut,
    wire.QueryBody,
    wire.QueryOut,
    wire.ChangesOut,
    wire.Health,
    wire.NamespacesPage,
    wire.TokenBody,
    wire.TokenCreated,
    wire.TokenList,
    wire.TokenOut,
    cw.RegisterBody,
    cw.AgentOut,
    cw.SearchOut,
    cw.CreateBody,
    cw.ChannelOut,
    cw.ChannelsOut,
    cw.JoinOut,
    cw.PostBody,
    cw.EntryOut,
    cw.MessagesOut,
    cw.MembersOut,
    wire.RunPage,
    wire.RevertBody,
    wire.RevertOut,
)
_, _components = msgspec.json.schema_components(BODIES, ref_template="#/components/schemas/{name}")
SCHEMAS: dict[str, Schema] = {name: _refine(name, s) for name, s in sorted(_components.items())}


# -- errors, from the exception classes ----------------------------------------------------------


def _error_classes(cls: type[errors.BotWireServerError]) -> list[type[errors.BotWireServerError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _error_classes(sub)
    return out


def _error_table() -> dict[str, str]:
    rows: dict[str, list[str]] = {}
    for cls in _error_classes(errors.BotWireServerError):
        codes = ", ".join(cls.codes or (cls.default_code,))
        fields = f" (with {', '.join(cls.fields)})" if cls.fields else ""
        rows.setdefault(str(cls.status), []).append(codes + fields)
    return {status: "; ".join(texts) + "." for status, texts in sorted(rows.items())}


ERRORS = _error_table()
# What the classes cannot say.
ERRORS["405"] += " The Allow header lists the methods."
ERRORS["413"] += " A body past the route's limit is refused before it is read whole."
ERRORS["429"] += " Also the Retry-After header."
ERRORS["401"] += " Also WWW-Authenticate: Bearer. Only with BOTWIRE_AUTH=tokens."
ERRORS["403"] += " The same whether or not the namespace exists."


def _error(status: str) -> Schema:
    response: Schema = {
        "description": ERRORS[status],
        "content": {"application/json": {"schema": _ref("ErrorOut")}},
    }
    if status == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    if status == "401":
        response["headers"] = {"WWW-Authenticate": {"schema": {"const": "Bearer"}}}
    if status == "405":
        response["headers"] = {"Allow": {"schema": {"type": "string"}}}
    return response


# -- parameters ----------------------------------------------------------------------------------


def _param(name: str, where: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


P_NS = _param(
    "ns", "path", NAMESPACE, "Namespace, as one percent-encoded path segment ('/' is %2F)."
)
P_KEY = _param("key", "path", KEY, "Key, as one percent-encoded path segment ('/' is %2F).")
P_AS_OF = _param(
    "as_of",
    "query",
    {
        "anyOf": [
            {"type": "string", "pattern": "^[0-9]*$"},
            {"type": "string", "format": "date-time"},
        ]
    },
    "Read as of a revision (0 <= R <= head) or an ISO-8601 timestamp with a timezone; "
    "empty means now.",
)
P_PREFIX = _param("prefix", "query", names.PREFIX_SCHEMA, "Key prefix.")
P_CURSOR = _param("cursor", "query", {"type": "string"}, "next_cursor of the previous page.")
P_AFTER = _param(
    "after",
    "query",
    {"type": "string", "pattern": "^[0-9]*$"},
    "Events of revisions after this one (default 0; on watch, default: the head, so only new "
    "changes). Below the kept history: 410; above the head: 400 future_revision.",
)
P_LAST_EVENT_ID = _param(
    "Last-Event-ID",
    "header",
    {"type": "string", "pattern": "^[0-9]+$"},
    "The id of the last event received; resumes right after that revision (wins over after).",
)


def _limit(default: int) -> Schema:
    return _param(
        "limit",
        "query",
        {
            "anyOf": [{"type": "integer", "minimum": 1, "maximum": 1000}, {"const": ""}],
            "default": default,
        },
        "Page size; empty means the default.",
    )


P_IF_MATCH = _param(
    "If-Match",
    "header",
    {"type": "string", "pattern": '^"[0-9]+"$'},
    'Write only if the key is at this version (an ETag, e.g. "3"); same as expected_version.',
)
P_IF_NONE_MATCH = _param(
    "If-None-Match",
    "header",
    {"const": "*"},
    "'*': write only if the key does not exist (expected_version 0).",
)
P_EXPECTED = _param(
    "expected_version", "query", REVISION, "Delete only if the key is at this version."
)
_META: Schema = {"type": "string", "minLength": 1, "maxLength": 256}
P_RUN_HEADER = _param(
    "BotWire-Run",
    "header",
    _META,
    "The run this write belongs to (a workflow run, a thread); stored with every event, "
    "indexed, and undone by POST /namespaces/{ns}/runs/{run}/revert.",
)
P_AGENT = _param("BotWire-Agent", "header", _META, "The agent's name, stored with every event.")
P_REASON = _param("BotWire-Reason", "header", _META, "Why: a short sentence, stored with events.")
P_IDEMPOTENCY = _param(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 128},
    "A retry with the same key and request within BOTWIRE_IDEMPOTENCY_TTL (24 h) gets the "
    "first outcome again and writes nothing; the same key with another request is 422 "
    "idempotency_key_reused. Scoped to the namespace and the token.",
)
WRITE_HEADERS = (P_RUN_HEADER, P_AGENT, P_REASON, P_IDEMPOTENCY)
P_RUN = _param(
    "run", "path", {"type": "string", "minLength": 1, "maxLength": 256}, "A run id (BotWire-Run)."
)
P_TOKEN_ID = _param("id", "path", {"type": "string", "minLength": 1}, "A token's id.")
P_NS_PREFIX = _param("prefix", "query", names.PREFIX_SCHEMA, "Namespace prefix.")
P_CHANNEL = _param(
    "name",
    "path",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    "Channel name: 1-64 letters, digits, '-' or '_'.",
)
P_AGENT_ID = _param("agent_id", "path", {"type": "string", "minLength": 1}, "A registered agent.")
_PATH_PARAMS = {
    "ns": P_NS,
    "key": P_KEY,
    "id": P_TOKEN_ID,
    "run": P_RUN,
    "name": P_CHANNEL,
    "agent_id": P_AGENT_ID,
}
P_SINCE = _param(
    "since", "query", {"type": "number", "minimum": 0}, "Unix seconds: entries committed after."
)
P_ENTRY_AFTER = _param(
    "after", "query", {"type": "integer", "minimum": 0}, "An entry id: entries after it."
)
P_TYPE = _param(
    "type",
    "query",
    {"type": "string", "enum": sorted(VALID_TYPES)},
    "Only entries of this type.",
)
P_JOIN_AGENT = _param(
    "agent_id", "query", {"type": "string", "minLength": 1}, "The registered agent joining."
)
P_CAPABILITY = _param("capability", "query", {"type": "string"}, "Agents with this capability.")
P_QUERY = _param("q", "query", {"type": "string"}, "Text in the agent's name or description.")
PUBLIC = {"/healthz", "/openapi.json"}


# -- the routes ----------------------------------------------------------------------------------

SSE: Schema = {
    "description": "Server-Sent Events until the client disconnects or the server stops. Each "
    "change is `event: change` with `data:` the event as in the change feed (a FeedEvent); "
    "only the last event of each revision carries `id: <revision>`, so `Last-Event-ID` always "
    "names a fully received revision. `: keepalive` comment lines come every "
    "BOTWIRE_WATCH_KEEPALIVE seconds (15) while idle. An error after the stream started is "
    "sent as `event: error` with the error body, and the stream ends.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    id: str
    summary: str
    response: type[msgspec.Struct] | None  # the 200 body; None: SSE
    errors: str = ""  # error statuses besides 404 on templated paths, 500 and 503
    body: type[msgspec.Struct] | None = None
    params: tuple[Schema, ...] = ()
    etag: bool = False
    status: str = "200"


OPERATIONS = [
    Operation(
        "put",
        "/memory/{ns}/{key}",
        "setValue",
        "Set a key's value (a new revision); ttl: seconds until it expires.",
        wire.Stored,
        "400 409 413 415 422 429 507",
        wire.PutBody,
        (P_IF_MATCH, P_IF_NONE_MATCH, *WRITE_HEADERS),
        etag=True,
    ),
    Operation(
        "get",
        "/memory/{ns}/{key}",
        "getValue",
        "Read a key, now or as of a revision or time.",
        wire.ItemOut,
        "400 404 410",
        params=(P_AS_OF,),
        etag=True,
    ),
    Operation(
        "delete",
        "/memory/{ns}/{key}",
        "deleteKey",
        "Delete a key (a tombstone revision; its history stays).",
        wire.Deleted,
        "400 404 409 422 429 507",
        params=(P_EXPECTED, P_IF_MATCH, *WRITE_HEADERS),
    ),
    Operation(
        "get",
        "/memory/{ns}",
        "listKeys",
        "List keys in key order, one page at a time.",
        wire.KeyPage,
        "400 410",
        params=(_limit(100), P_PREFIX, P_CURSOR, P_AS_OF),
    ),
    Operation("get", "/stats/memory", "stats", "Totals over every namespace.", wire.StatsOut),
    Operation(
        "get",
        "/memory/{ns}/{key}/history",
        "history",
        "A key's events, newest first.",
        wire.HistoryPage,
        "400",
        params=(_limit(100), P_CURSOR),
    ),
    Operation(
        "get",
        "/namespaces/{ns}",
        "namespaceInfo",
        "A namespace's head revision and size (zeros when never written).",
        wire.NamespaceOut,
        "400",
    ),
    Operation(
        "get",
        "/namespaces/{ns}/snapshot",
        "snapshot",
        "Every key's value at one revision; pass as_of=<revision> on later pages.",
        wire.SnapshotPage,
        "400 410",
        params=(P_AS_OF, P_PREFIX, P_CURSOR, _limit(1000)),
    ),
    Operation(
        "post",
        "/namespaces/{ns}/rollback",
        "rollback",
        "Append one revision that restores the state as of `to`.",
        wire.RollbackOut,
        "400 410 413 415 422 429 507",
        wire.RollbackBody,
        WRITE_HEADERS,
    ),
    Operation(
        "post",
        "/namespaces/{ns}/compact",
        "compact",
        "Forget history no read at or after `before` needs.",
        wire.CompactOut,
        "400 413 415 507",
        wire.CompactBody,
    ),
    Operation(
        "post",
        "/namespaces/{ns}/batch",
        "batch",
        "Commit 1-1000 ops (set, delete, check) as ONE revision, or none of them (409).",
        wire.BatchOut,
        "400 409 413 415 422 429 507",
        wire.BatchBody,
        WRITE_HEADERS,
    ),
    Operation(
        "get",
        "/namespaces/{ns}/runs/{run}",
        "runEvents",
        "The events a run wrote (BotWire-Run), oldest first, from the run index.",
        wire.RunPage,
        "400",
        params=(P_CURSOR, _limit(100)),
    ),
    Operation(
        "post",
        "/namespaces/{ns}/runs/{run}/revert",
        "revertRun",
        "Undo a run in ONE revision: each key it wrote gets its value from just before the "
        "run's first write to it; keys others wrote since are skipped and reported.",
        wire.RevertOut,
        "400 413 415 422 429 507",
        wire.RevertBody,
        WRITE_HEADERS,
    ),
    Operation(
        "post",
        "/namespaces/{ns}/get",
        "getMany",
        "Read 1-1000 keys at one revision (now or as_of); absent keys are null.",
        wire.ItemsOut,
        "400 410 413 415",
        wire.GetBody,
    ),
    Operation(
        "post",
        "/namespaces/{ns}/query",
        "query",
        "Items whose JSON value matches a filter (equality, $eq $ne $gt $gte $lt $lte, nested "
        "fields), in key order at one revision, with offset and limit (1-1000).",
        wire.QueryOut,
        "400 410 413 415",
        wire.QueryBody,
    ),
    Operation(
        "get",
        "/namespaces/{ns}/changes",
        "changes",
        "The change feed: every event after a revision, oldest first, limit revisions a page.",
        wire.ChangesOut,
        "400 410",
        params=(P_AFTER, _limit(100), P_PREFIX),
    ),
    Operation(
        "get",
        "/namespaces/{ns}/watch",
        "watch",
        "Follow the change feed as Server-Sent Events.",
        None,
        "400 410",
        params=(P_AFTER, P_PREFIX, P_LAST_EVENT_ID),
    ),
    Operation(
        "get",
        "/namespaces",
        "listNamespaces",
        "Namespaces ever written that the token may read, in name order.",
        wire.NamespacesPage,
        "400",
        params=(P_NS_PREFIX, P_CURSOR, _limit(100)),
    ),
    Operation(
        "post",
        "/admin/tokens",
        "createToken",
        "Create a token (needs admin on *); the full token is in this response only.",
        wire.TokenCreated,
        "400 413 415",
        wire.TokenBody,
        status="201",
    ),
    Operation(
        "get",
        "/admin/tokens",
        "listTokens",
        "Every token, without secrets (needs admin on *).",
        wire.TokenList,
    ),
    Operation(
        "delete",
        "/admin/tokens/{id}",
        "revokeToken",
        "Revoke a token (needs admin on *); within 2 s no server process accepts it.",
        wire.TokenOut,
        "404",
    ),
    Operation(
        "post",
        "/identity/register",
        "registerAgent",
        "Register an agent (or update it, with the token that registered it).",
        cw.AgentOut,
        "400 409 413 415 429 507",
        cw.RegisterBody,
    ),
    Operation(
        "get",
        "/identity/lookup/{agent_id}",
        "lookupAgent",
        "A registered agent.",
        cw.AgentOut,
        "400 404",
    ),
    Operation(
        "get",
        "/identity/search",
        "searchAgents",
        "Registered agents in name order, by capability and text.",
        cw.SearchOut,
        "400",
        params=(P_CAPABILITY, P_QUERY, _limit(100)),
    ),
    Operation("get", "/channels", "listChannels", "Channels the token may read.", cw.ChannelsOut),
    Operation(
        "post",
        "/channels/{name}/create",
        "createChannel",
        "Create a channel; its creator joins it.",
        cw.ChannelOut,
        "400 409 413 415 429 507",
        cw.CreateBody,
    ),
    Operation(
        "post",
        "/channels/{name}/join",
        "joinChannel",
        "Join a channel (again: no change).",
        cw.JoinOut,
        "400 404 413 415 429 507",
        params=(P_JOIN_AGENT,),
    ),
    Operation(
        "post",
        "/channels/{name}/post",
        "postEntry",
        "Append a typed entry: one revision of the channel's namespace, its id.",
        cw.EntryOut,
        "400 404 413 415 429 507",
        cw.PostBody,
    ),
    Operation(
        "get",
        "/channels/{name}/messages",
        "channelMessages",
        "The oldest entries after since/after, at most limit (default 50).",
        cw.MessagesOut,
        "400 404 410",
        params=(P_SINCE, P_ENTRY_AFTER, P_TYPE, _limit(50)),
    ),
    Operation(
        "get",
        "/channels/{name}/members",
        "channelMembers",
        "The agents that joined a channel.",
        cw.MembersOut,
        "400 404",
    ),
    Operation(
        "get",
        "/healthz",
        "health",
        "200 while the database answers; 503 otherwise or while shutting down.",
        wire.Health,
    ),
]


def _operation(op: Operation) -> Schema:
    ok: Schema
    if op.response is None:
        ok = SSE
    else:
        name = op.response.__name__
        ok = {"description": op.summary, "content": {"application/json": {"schema": _ref(name)}}}
    if op.etag:
        ok["headers"] = {
            "ETag": {"description": 'The version, quoted: "3".', "schema": {"type": "string"}}
        }
    statuses = set(op.errors.split()) | {"500", "503"}
    public = op.path in PUBLIC
    if not public:
        statuses |= {"401", "403"}
    out: Schema = {
        "operationId": op.id,
        "summary": op.summary,
        "parameters": [
            *(_PATH_PARAMS[name] for name in re.findall(r"\{(\w+)\}", op.path)),
            *op.params,
        ],
        "responses": {op.status: ok, **{status: _error(status) for status in sorted(statuses)}},
    }
    if public:
        out["security"] = []
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body.__name__)}},
        }
    return out


PATHS: dict[str, Schema] = {}
for _op in OPERATIONS:
    PATHS.setdefault(_op.path, {})[_op.method] = _operation(_op)
PATHS["/openapi.json"] = {
    "get": {
        "operationId": "openapi",
        "summary": "This document.",
        "responses": {
            "200": {
                "description": "OpenAPI 3.1.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "503": _error("503"),
        },
        "security": [],
    }
}

# The web inspector: a page and its static files, public (they hold no data).
_UI_HEADERS = {
    name: {"schema": {"type": "string"}}
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "ETag")
}
P_FILE = _param(
    "file",
    "path",
    {"type": "string", "pattern": r"^[a-z0-9-]+\.(js|css|svg)$"},
    "A file of the page, as the page names it (app.js, style.css, ...).",
)
PATHS["/ui"] = {
    "get": {
        "operationId": "inspector",
        "summary": "The web inspector's page (HTML; no token needed, it holds no data).",
        "responses": {
            "200": {
                "description": "The page, with a strict Content-Security-Policy.",
                "headers": _UI_HEADERS,
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            "503": _error("503"),
        },
        "security": [],
    }
}
PATHS["/ui/{file}"] = {
    "get": {
        "operationId": "inspectorFile",
        "summary": "A script, style sheet or icon of the web inspector.",
        "parameters": [P_FILE],
        "responses": {
            "200": {
                "description": "The file, with the same headers as the page.",
                "headers": _UI_HEADERS,
                "content": {
                    media: {"schema": {"type": "string"}}
                    for media in ("text/javascript", "text/css", "image/svg+xml")
                },
            },
            "404": _error("404"),
            "503": _error("503"),
        },
        "security": [],
    }
}
PATHS["/metrics"] = {
    "get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics (text format; see the README's Operations section). With "
        "tokens: admin on * or the token in BOTWIRE_METRICS_TOKEN. 404 with BOTWIRE_METRICS=off.",
        "responses": {
            "200": {
                "description": "The Prometheus text exposition format 0.0.4.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **{status: _error(status) for status in ("401", "403", "404", "500", "503")},
        },
    }
}

DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "BotWire Server",
        "version": "0.1.0",
        "description": "Persistent memory for AI agents on an event-sourced append log. Every "
        "error is JSON {error, code, status, ...}. With BOTWIRE_AUTH=tokens every route but "
        "/healthz, /openapi.json and the web inspector's files (/ui) needs Authorization: "
        "Bearer bw_<id>_<secret>.",
    },
    "paths": PATHS,
    "security": [{"bearer": []}],
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token bw_<id>_<secret> (botwire token create, or "
                "BOTWIRE_ADMIN_TOKEN). Not needed with BOTWIRE_AUTH=off.",
            }
        },
    },
}

DOCUMENT_BYTES = msgspec.json.encode(DOCUMENT)
