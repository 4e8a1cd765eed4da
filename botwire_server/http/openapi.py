"""The OpenAPI 3.1 document served at ``GET /openapi.json``, written by hand to describe exactly
what the routes do (tests fuzz the server from it)."""

from __future__ import annotations

from typing import Any

import msgspec

from botwire_client import names

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
CURSOR: Schema = {"type": ["string", "null"], "description": "Opaque; null on the last page."}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error", "code", "status"],
        "properties": {
            "error": {"type": "string", "description": "A sentence for humans."},
            "code": {"type": "string", "pattern": "^[a-z_]+$"},
            "status": {"type": "integer"},
            "current_version": {"type": "integer", "minimum": 0},
            "oldest_revision": {"type": "integer", "minimum": 0},
            "head": {"type": "integer", "minimum": 0},
            "retry_after": {"type": "integer", "minimum": 1},
            "limit": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": True,
    },
    "PutBody": {
        **_obj(
            {"value": ANY_JSON}, {"expected_version": {**REVISION, "type": ["integer", "null"]}}
        ),
        "description": "expected_version: 0 = the key must not exist; N = its version must be N.",
    },
    "Stored": _obj(
        {
            "namespace": NAMESPACE,
            "key": KEY,
            "stored": {"const": True},
            "bytes": {"type": "integer", "minimum": 0},
            "version": REVISION,
            "created_revision": REVISION,
        }
    ),
    "Item": _obj(
        {
            "namespace": NAMESPACE,
            "key": KEY,
            "value": ANY_JSON,
            "created_at": UNIX,
            "updated_at": UNIX,
            "version": REVISION,
            "created_revision": REVISION,
        }
    ),
    "Deleted": _obj(
        {"deleted": {"const": True}, "namespace": NAMESPACE, "key": KEY, "version": REVISION}
    ),
    "KeyPage": _obj(
        {
            "namespace": NAMESPACE,
            "count": {"type": "integer", "minimum": 0, "maximum": 1000},
            "keys": {
                "type": "array",
                "items": _obj(
                    {
                        "key": KEY,
                        "bytes": {"type": "integer", "minimum": 0},
                        "updated_at": UNIX,
                        "version": REVISION,
                    }
                ),
            },
            "next_cursor": CURSOR,
            "revision": REVISION,
        }
    ),
    "Stats": _obj(
        {
            "total_entries": {"type": "integer", "minimum": 0},
            "total_namespaces": {"type": "integer", "minimum": 0},
            "total_bytes": {"type": "integer", "minimum": 0},
        }
    ),
    "History": _obj(
        {
            "namespace": NAMESPACE,
            "key": KEY,
            "events": {
                "type": "array",
                "description": "Newest first.",
                "items": _obj(
                    {
                        "revision": REVISION,
                        "op": {"enum": ["set", "delete"]},
                        "value": {**ANY_JSON, "description": "The value set; null for a delete."},
                        "at": ISO,
                    }
                ),
            },
            "next_cursor": CURSOR,
        }
    ),
    "Namespace": _obj(
        {
            "namespace": NAMESPACE,
            "revision": {**REVISION, "description": "The head: the last committed revision."},
            "keys": {"type": "integer", "minimum": 0},
            "bytes": {"type": "integer", "minimum": 0},
            "oldest_revision": REVISION,
            "updated_at": {**ISO, "type": ["string", "null"]},
        }
    ),
    "Snapshot": _obj(
        {
            "namespace": NAMESPACE,
            "revision": {**REVISION, "description": "The revision read."},
            "values": {"type": "object", "additionalProperties": ANY_JSON},
            "next_cursor": CURSOR,
        }
    ),
    "RollbackBody": _obj(
        {"to": {"oneOf": [REVISION, {**ISO, "description": "ISO-8601 with a timezone."}]}},
        {
            "key": {**KEY, "type": ["string", "null"]},
            "dry_run": {"type": "boolean", "default": False},
        },
    ),
    "Rollback": _obj(
        {
            "namespace": NAMESPACE,
            "revision": {
                **REVISION,
                "description": "The new head, or the unchanged head (dry run, nothing differed).",
            },
            "dry_run": {"type": "boolean"},
            "changed": {
                "type": "array",
                "items": _obj(
                    {
                        "key": KEY,
                        "op": {"enum": ["set", "delete"]},
                        "value": {**ANY_JSON, "description": "Restored value; null for delete."},
                    }
                ),
            },
        }
    ),
    "CompactBody": _obj({"before": REVISION}),
    "Compacted": _obj(
        {
            "namespace": NAMESPACE,
            "removed": {"type": "integer", "minimum": 0},
            "oldest_revision": REVISION,
        }
    ),
    "Health": _obj({"status": {"const": "ok"}}),
}

ERRORS = {
    "400": "Invalid input: invalid_input, invalid_json, invalid_body, invalid_name, "
    "invalid_parameter, invalid_cursor, future_revision (with head).",
    "404": "key_not_found, or route_not_found.",
    "405": "method_not_allowed; the Allow header lists the methods.",
    "409": "version_conflict, with current_version (0 when the key is absent).",
    "410": "revision_compacted, with oldest_revision.",
    "413": "value_too_large (with limit) or namespace_full (with limit).",
    "415": "unsupported_media_type: a body that is not application/json.",
    "429": "write_quota_exceeded, with retry_after (also the Retry-After header).",
    "500": "internal_error.",
    "503": "database_unavailable or shutting_down.",
    "507": "disk_full.",
}


def _error(status: str) -> Schema:
    response: Schema = {
        "description": ERRORS[status],
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if status == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    if status == "405":
        response["headers"] = {"Allow": {"schema": {"type": "string"}}}
    return response


def _ok(schema: str, description: str, *, etag: bool = False) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }
    if etag:
        response["headers"] = {
            "ETag": {"description": 'The version, quoted: "3".', "schema": {"type": "string"}}
        }
    return response


def _responses(ok: Schema, *statuses: str) -> Schema:
    # Every route can meet a broken database, a shutdown, or a bug.
    out: Schema = {"200": ok}
    for status in sorted({*statuses, "500", "503"}):
        out[status] = _error(status)
    return out


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


def _body(schema: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


PATHS: dict[str, Schema] = {
    "/memory/{ns}/{key}": {
        "parameters": [P_NS, P_KEY],
        "put": {
            "operationId": "setValue",
            "summary": "Set a key's value (a new revision).",
            "parameters": [P_IF_MATCH, P_IF_NONE_MATCH],
            "requestBody": _body("PutBody"),
            "responses": _responses(
                _ok("Stored", "Stored.", etag=True),
                "400",
                "409",
                "413",
                "415",
                "429",
                "507",
            ),
        },
        "get": {
            "operationId": "getValue",
            "summary": "Read a key, now or as of a revision or time.",
            "parameters": [P_AS_OF],
            "responses": _responses(_ok("Item", "The key.", etag=True), "400", "404", "410"),
        },
        "delete": {
            "operationId": "deleteKey",
            "summary": "Delete a key (a tombstone revision; its history stays).",
            "parameters": [P_EXPECTED, P_IF_MATCH],
            "responses": _responses(_ok("Deleted", "Deleted."), "400", "404", "409", "429", "507"),
        },
    },
    "/memory/{ns}": {
        "get": {
            "operationId": "listKeys",
            "summary": "List keys in key order, one page at a time.",
            "parameters": [P_NS, _limit(100), P_PREFIX, P_CURSOR, P_AS_OF],
            "responses": _responses(_ok("KeyPage", "One page of keys."), "400", "410"),
        }
    },
    "/stats/memory": {
        "get": {
            "operationId": "stats",
            "summary": "Totals over every namespace.",
            "responses": _responses(_ok("Stats", "Totals.")),
        }
    },
    "/memory/{ns}/{key}/history": {
        "get": {
            "operationId": "history",
            "summary": "A key's events, newest first.",
            "parameters": [P_NS, P_KEY, _limit(100), P_CURSOR],
            "responses": _responses(_ok("History", "One page of events."), "400"),
        }
    },
    "/namespaces/{ns}": {
        "get": {
            "operationId": "namespaceInfo",
            "summary": "A namespace's head revision and size (zeros when never written).",
            "parameters": [P_NS],
            "responses": _responses(_ok("Namespace", "The namespace."), "400"),
        }
    },
    "/namespaces/{ns}/snapshot": {
        "get": {
            "operationId": "snapshot",
            "summary": "Every key's value at one revision; pass as_of=<revision> on later pages.",
            "parameters": [P_NS, P_AS_OF, P_PREFIX, P_CURSOR, _limit(1000)],
            "responses": _responses(_ok("Snapshot", "One page of values."), "400", "410"),
        }
    },
    "/namespaces/{ns}/rollback": {
        "post": {
            "operationId": "rollback",
            "summary": "Append one revision that restores the state as of `to`.",
            "parameters": [P_NS],
            "requestBody": _body("RollbackBody"),
            "responses": _responses(
                _ok("Rollback", "The changes (made, or only computed for a dry run)."),
                "400",
                "410",
                "413",
                "415",
                "429",
                "507",
            ),
        }
    },
    "/namespaces/{ns}/compact": {
        "post": {
            "operationId": "compact",
            "summary": "Forget history no read at or after `before` needs.",
            "parameters": [P_NS],
            "requestBody": _body("CompactBody"),
            "responses": _responses(_ok("Compacted", "Compacted."), "400", "413", "415", "507"),
        }
    },
    "/healthz": {
        "get": {
            "operationId": "health",
            "summary": "200 while the database answers; 503 otherwise or while shutting down.",
            "responses": _responses(_ok("Health", "Healthy.")),
        }
    },
    "/openapi.json": {
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
        }
    },
}

# A path whose parameter is empty (/memory//k) or holds a raw '/' matches no route: 404.
for _path, _operations in PATHS.items():
    if "{" in _path:
        for _operation in _operations.values():
            if isinstance(_operation, dict) and "responses" in _operation:
                _operation["responses"].setdefault("404", _error("404"))

DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "BotWire Server",
        "version": "0.1.0",
        "description": "Persistent memory for AI agents on an event-sourced append log. Every "
        "error is JSON {error, code, status, ...}.",
    },
    "paths": PATHS,
    "components": {"schemas": SCHEMAS},
}

DOCUMENT_BYTES = msgspec.json.encode(DOCUMENT)
