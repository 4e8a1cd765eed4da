"""Every error path answers the canonical body, pinned here exactly::

    {"error": "<human sentence>", "code": "<stable_snake_case>", "status": <int>, ...extra}

One row per path: the request that takes it and the whole body it must produce. A change to a
message, code, status or extra field shows up here as a failing row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from backends import BACKENDS, open_store

from botwire_server.errors import InvalidInput
from botwire_server.http import body, create_app
from botwire_server.settings import Limits, Settings
from botwire_server.storage.base import Stats
from botwire_server.storage.memory import MemoryStore
from botwire_server.storage.sqlite import SQLiteStore


class AnyInt:
    """Matches any int in a given range (for values that depend on the clock)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and self.low <= other <= self.high

    def __repr__(self) -> str:
        return f"AnyInt({self.low}, {self.high})"


@dataclass
class Case:
    id: str
    method: str
    url: str
    body: dict[str, Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    setup: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    headers: dict[str, str] = field(default_factory=dict)


def err(status: int, code: str, error: str, **extra: Any) -> dict[str, Any]:
    return {"error": error, "code": code, "status": status, **extra}


SET_K = ("PUT", "/memory/ns/k", {"json": {"value": 1}})
REGISTER_A = ("POST", "/identity/register", {"json": {"name": "a"}})
CREATE_C = ("POST", "/channels/c/create", {"json": {"agent_id": "a"}})
JSON = {"Content-Type": "application/json"}
NOT_JSON = (
    "The body is not valid JSON: send one UTF-8 encoded JSON document "
    "(NaN and Infinity are not JSON)."
)
NOT_VALID = "The body is not valid here:"
TOO_BIG_NUMBER = (
    f"{NOT_VALID} `value` holds a number too large to store (an integer may have at most 4300 "
    "digits; a float must be below 1.8e308)."
)
REVISION_RULE = "an integer from 0 to 9223372036854775807"
AS_OF_RULE = (
    "is neither a revision (an integer >= 0) nor an ISO-8601 timestamp with a timezone, "
    "such as 2026-11-21T10:00:00Z."
)
CURSOR_RULE = "is not a cursor this route returned."

CASES = [
    # -- 400 invalid_json ---------------------------------------------------------------------
    Case(
        "malformed json",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_json", NOT_JSON),
        {"content": b'{"value": ', "headers": JSON},
    ),
    Case("empty body", "PUT", "/memory/ns/k", err(400, "invalid_json", NOT_JSON), {"content": b""}),
    Case(
        "NaN",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_json", NOT_JSON),
        {"content": b'{"value": NaN}'},
    ),
    Case(
        "not utf-8",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_json", NOT_JSON),
        {"content": b'{"value": "\xff"}'},
    ),
    Case(
        "not utf-8 outside a string",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_json", NOT_JSON),
        {"content": b"\xff\xfe{}"},
    ),
    Case(
        "rollback malformed",
        "POST",
        "/namespaces/ns/rollback",
        err(400, "invalid_json", NOT_JSON),
        {"content": b"{"},
    ),
    # -- 400 invalid_body ---------------------------------------------------------------------
    Case(
        "body not an object",
        "PUT",
        "/memory/ns/k",
        err(
            400,
            "invalid_body",
            f"{NOT_VALID} send a JSON object with the fields `value`, `expected_version`, `ttl`.",
        ),
        {"content": b"[1]"},
    ),
    Case(
        "missing value",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_body", f"{NOT_VALID} it lacks the required field `value`."),
        {"json": {"expected_version": 1}},
    ),
    Case(
        "unknown field",
        "PUT",
        "/memory/ns/k",
        err(
            400,
            "invalid_body",
            f"{NOT_VALID} it has an unknown field `expected_verison` (the fields are `value`, "
            "`expected_version`, `ttl`).",
        ),
        {"json": {"value": 1, "expected_verison": 1}},
    ),
    Case(
        "expected_version wrong type",
        "PUT",
        "/memory/ns/k",
        err(
            400,
            "invalid_body",
            f"{NOT_VALID} `expected_version` must be {REVISION_RULE} or null.",
        ),
        {"json": {"value": 1, "expected_version": "1"}},
    ),
    Case(
        "expected_version negative",
        "PUT",
        "/memory/ns/k",
        err(
            400,
            "invalid_body",
            f"{NOT_VALID} `expected_version` must be {REVISION_RULE} or null.",
        ),
        {"json": {"value": 1, "expected_version": -1}},
    ),
    Case(
        "float overflow",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_body", TOO_BIG_NUMBER),
        {"content": b'{"value": 1e400}'},
    ),
    Case(
        "huge integer",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_body", TOO_BIG_NUMBER),
        {"content": b'{"value": ' + b"9" * 5000 + b"}"},
    ),
    Case(
        "too deep",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_body", "The value nests arrays and objects more than 100 levels deep."),
        {"content": b'{"value": ' + b"[" * 101 + b"]" * 101 + b"}"},
    ),
    Case(
        "far too deep",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_body", "The value nests arrays and objects more than 100 levels deep."),
        {"content": b'{"value": ' + b"[" * 20000 + b"]" * 20000 + b"}"},
    ),
    Case(
        "compact missing before",
        "POST",
        "/namespaces/ns/compact",
        err(400, "invalid_body", f"{NOT_VALID} it lacks the required field `before`."),
        {"json": {}},
    ),
    Case(
        "compact unknown field",
        "POST",
        "/namespaces/ns/compact",
        err(
            400,
            "invalid_body",
            f"{NOT_VALID} it has an unknown field `after` (the fields are `before`).",
        ),
        {"json": {"before": 1, "after": 2}},
    ),
    Case(
        "rollback to wrong type",
        "POST",
        "/namespaces/ns/rollback",
        err(400, "invalid_body", f"{NOT_VALID} `to` must be {REVISION_RULE} or a string."),
        {"json": {"to": [1]}},
    ),
    Case(
        "rollback dry_run wrong type",
        "POST",
        "/namespaces/ns/rollback",
        err(400, "invalid_body", f"{NOT_VALID} `dry_run` must be true or false."),
        {"json": {"to": 1, "dry_run": "yes"}},
    ),
    # -- 400 invalid_name ---------------------------------------------------------------------
    Case(
        "namespace too long",
        "GET",
        "/memory/" + "n" * 257 + "/k",
        err(
            400,
            "invalid_name",
            f"Namespace '{'n' * 80}...' is 257 bytes in UTF-8; the limit is 256 bytes.",
        ),
    ),
    Case(
        "namespace too long in bytes",
        "PUT",
        "/memory/" + "%C3%A9" * 129 + "/k",
        err(
            400,
            "invalid_name",
            f"Namespace '{'é' * 80}...' is 258 bytes in UTF-8; the limit is 256 bytes.",
        ),
        {"json": {"value": 1}},
    ),
    Case(
        "namespace control character",
        "PUT",
        "/memory/a%09b/k",
        err(
            400,
            "invalid_name",
            "Namespace 'a\\tb' holds the control character U+0009 at position 1; names may "
            "not hold U+0000-U+001F or U+007F.",
        ),
        {"json": {"value": 1}},
    ),
    Case(
        "key control character",
        "DELETE",
        "/memory/ns/a%7F",
        err(
            400,
            "invalid_name",
            "Key 'a\\x7f' holds the control character U+007F at position 1; names may not "
            "hold U+0000-U+001F or U+007F.",
        ),
    ),
    Case(
        "key too long, shown shortened",
        "GET",
        "/memory/ns/" + "k" * 1025 + "/history",
        err(
            400,
            "invalid_name",
            f"Key '{'k' * 80}...' is 1025 bytes in UTF-8; the limit is 1024 bytes.",
        ),
    ),
    Case(
        "key dot dot",
        "GET",
        "/memory/ns/%2E%2E",
        err(400, "invalid_name", "Key '..' is not allowed: '.' and '..' are never names."),
    ),
    Case(
        "rollback key",
        "POST",
        "/namespaces/ns/rollback",
        err(400, "invalid_name", "Key '..' is not allowed: '.' and '..' are never names."),
        {"json": {"to": 0, "key": ".."}},
    ),
    Case(
        "rollback empty key",
        "POST",
        "/namespaces/ns/rollback",
        err(400, "invalid_name", "Key is empty: use 1 to 1024 bytes of UTF-8."),
        {"json": {"to": 0, "key": ""}},
    ),
    Case(
        "name not UTF-8",
        "GET",
        "/memory/ns/k%FF",
        err(
            400,
            "invalid_name",
            "The path segment 'k%FF' is not a name: percent-decoded, it is not valid UTF-8.",
        ),
    ),
    Case(
        "stray percent in a name",
        "GET",
        "/memory/ns%/k",
        err(
            400,
            "invalid_name",
            "The path segment 'ns%' is not percent-encoded correctly: a '%' must start an "
            "escape such as %2F; write a '%' in a name as %25.",
        ),
    ),
    # -- 400 invalid_parameter ----------------------------------------------------------------
    Case(
        "as_of garbage",
        "GET",
        "/memory/ns/k?as_of=yesterday",
        err(400, "invalid_parameter", f"as_of='yesterday' {AS_OF_RULE}"),
    ),
    Case(
        "as_of without timezone",
        "GET",
        "/memory/ns?as_of=2026-11-21T10:00:00",
        err(400, "invalid_parameter", f"as_of='2026-11-21T10:00:00' {AS_OF_RULE}"),
    ),
    Case(
        "rollback to garbage",
        "POST",
        "/namespaces/ns/rollback",
        err(400, "invalid_parameter", f"to='soon' {AS_OF_RULE}"),
        {"json": {"to": "soon"}},
    ),
    Case(
        "limit out of range",
        "GET",
        "/memory/ns?limit=0",
        err(400, "invalid_parameter", "limit='0' is invalid: use an integer from 1 to 1000."),
    ),
    Case(
        "parameter given twice",
        "GET",
        "/memory/ns/k/history?limit=1&limit=2",
        err(400, "invalid_parameter", "limit is given 2 times; give it once."),
    ),
    Case(
        "prefix with a control character",
        "GET",
        "/namespaces/ns/snapshot?prefix=a%00",
        err(
            400,
            "invalid_parameter",
            "Prefix 'a\\x00' holds the control character U+0000 at position 1; names may not "
            "hold U+0000-U+001F or U+007F.",
        ),
    ),
    Case(
        "expected_version query",
        "DELETE",
        "/memory/ns/k?expected_version=-1",
        err(400, "invalid_parameter", "expected_version='-1' is invalid: use an integer >= 0."),
    ),
    Case(
        "If-Match not a version",
        "PUT",
        "/memory/ns/k",
        err(
            400,
            "invalid_parameter",
            "If-Match '*' is invalid: send one version as an ETag, for example If-Match: \"3\".",
        ),
        {"json": {"value": 1}, "headers": {"If-Match": "*"}},
    ),
    Case(
        "If-Match with a weak ETag",
        "PUT",
        "/memory/ns/k",
        err(400, "invalid_parameter", 'If-Match needs a strong ETag ("1"), not W/"1".'),
        {"json": {"value": 1}, "headers": {"If-Match": 'W/"1"'}},
    ),
    Case(
        "If-Match against expected_version",
        "PUT",
        "/memory/ns/k",
        err(
            400,
            "invalid_parameter",
            "expected_version asks for version 1 but If-Match asks for version 2; send one "
            "condition.",
        ),
        {"json": {"value": 1, "expected_version": 1}, "headers": {"If-Match": '"2"'}},
    ),
    Case(
        "If-None-Match on DELETE",
        "DELETE",
        "/memory/ns/k",
        err(
            400,
            "invalid_parameter",
            "If-None-Match is only understood as 'If-None-Match: *' on PUT (write only when "
            "the key does not exist).",
        ),
        {"headers": {"If-None-Match": "*"}},
    ),
    # -- 400 invalid_cursor -------------------------------------------------------------------
    Case(
        "cursor garbage",
        "GET",
        "/memory/ns?cursor=xyz",
        err(400, "invalid_cursor", f"cursor='xyz' {CURSOR_RULE}"),
    ),
    Case(
        "cursor of another route",
        "GET",
        "/memory/ns/k/history?cursor=azpr",
        err(400, "invalid_cursor", f"cursor='azpr' {CURSOR_RULE}"),
    ),
    # -- 400 future_revision, 410 revision_compacted --------------------------------------------
    Case(
        "future revision",
        "GET",
        "/memory/ns/k?as_of=5",
        err(
            400,
            "future_revision",
            "Revision 5 is in the future: this namespace is at revision 1.",
            head=1,
        ),
        setup=[SET_K],
    ),
    Case(
        "compacted revision",
        "GET",
        "/namespaces/ns/snapshot?as_of=1",
        err(
            410,
            "revision_compacted",
            "Revision 1 is older than the kept history; the oldest readable revision is 2.",
            oldest_revision=2,
        ),
        setup=[SET_K, SET_K, ("POST", "/namespaces/ns/compact", {"json": {"before": 2}})],
    ),
    # -- 404 ----------------------------------------------------------------------------------
    Case(
        "get absent key",
        "GET",
        "/memory/ns/k",
        err(404, "key_not_found", "Key 'k' does not exist in namespace 'ns'."),
    ),
    Case(
        "delete absent key",
        "DELETE",
        "/memory/ns/k?expected_version=3",
        err(404, "key_not_found", "Key 'k' does not exist in namespace 'ns'."),
    ),
    Case(
        "unknown route",
        "GET",
        "/memory/ns/k/versions",
        err(
            404,
            "route_not_found",
            "No route matches GET /memory/ns/k/versions; see GET /openapi.json for the API.",
        ),
    ),
    Case(
        "trailing slash",
        "GET",
        "/memory/ns/",
        err(
            404,
            "route_not_found",
            "No route matches GET /memory/ns/; see GET /openapi.json for the API.",
        ),
    ),
    # -- 405 ----------------------------------------------------------------------------------
    Case(
        "wrong method",
        "POST",
        "/memory/ns",
        err(405, "method_not_allowed", "POST is not allowed on /memory/ns; allowed: GET, HEAD."),
        headers={"allow": "GET, HEAD"},
    ),
    Case(
        # An encoded '/' is part of the name: this is the namespace listing, not a key.
        "encoded slash is no separator",
        "PUT",
        "/memory/atk%2Fviaslash",
        err(
            405,
            "method_not_allowed",
            "PUT is not allowed on /memory/atk%2Fviaslash; allowed: GET, HEAD.",
        ),
        {"json": {"value": 1}},
        headers={"allow": "GET, HEAD"},
    ),
    # -- 409 ----------------------------------------------------------------------------------
    Case(
        "conflict on an existing key",
        "PUT",
        "/memory/ns/k",
        err(
            409,
            "version_conflict",
            "The key was expected to be at version 7, but it is at version 1. Re-read it and "
            "retry.",
            current_version=1,
        ),
        {"json": {"value": 2, "expected_version": 7}},
        setup=[SET_K],
    ),
    Case(
        "conflict on If-None-Match",
        "PUT",
        "/memory/ns/k",
        err(
            409,
            "version_conflict",
            "The key was expected not to exist, but it is at version 1. Re-read it and retry.",
            current_version=1,
        ),
        {"json": {"value": 2}, "headers": {"If-None-Match": "*"}},
        setup=[SET_K],
    ),
    Case(
        "conflict on an absent key",
        "PUT",
        "/memory/ns/k",
        err(
            409,
            "version_conflict",
            "The key was expected to be at version 3, but it does not exist. Re-read it and retry.",
            current_version=0,
        ),
        {"json": {"value": 2}, "headers": {"If-Match": '"3"'}},
    ),
    # -- 413 ----------------------------------------------------------------------------------
    Case(
        "value too large",
        "PUT",
        "/memory/ns/k",
        err(413, "value_too_large", "The value is 12 bytes, over the limit of 10 bytes.", limit=10),
        {"json": {"value": "x" * 10}},
        limits=Limits(value_max_bytes=10),
    ),
    Case(
        "body too large by Content-Length",
        "PUT",
        "/memory/ns/k",
        err(
            413,
            "value_too_large",
            "The request body is 20000 bytes; bodies are limited to 16394 bytes because a value "
            "may be at most 10 bytes.",
            limit=10,
        ),
        {"content": b" " * 20000},
        limits=Limits(value_max_bytes=10),
    ),
    Case(
        "rollback body too large",
        "POST",
        "/namespaces/ns/rollback",
        err(
            413,
            "value_too_large",
            "The request body is 20000 bytes; this route accepts at most 16384 bytes.",
            limit=16384,
        ),
        {"content": b" " * 20000},
    ),
    Case(
        "namespace full",
        "PUT",
        "/memory/ns/j",
        err(
            413,
            "namespace_full",
            "This namespace would hold 6 bytes, over its limit of 5. Delete keys or store "
            "smaller values.",
            limit=5,
        ),
        {"json": {"value": 100}},
        setup=[("PUT", "/memory/ns/k", {"json": {"value": 1}})],
        limits=Limits(namespace_max_bytes=5),
    ),
    # -- the write pipeline: batch, TTL, multi-get, change feed, watch ----------------------
    Case(
        "batch conflict",
        "POST",
        "/namespaces/ns/batch",
        err(
            409,
            "batch_conflict",
            "The batch was not applied: op 1 (key 'k') failed its condition (the key is at "
            "version 1) and 1 more. Nothing was written; re-read and retry.",
            conflicts=[
                {"index": 1, "key": "k", "current_version": 1},
                {"index": 2, "key": "gone", "current_version": 0},
            ],
        ),
        {
            "json": {
                "ops": [
                    {"op": "set", "key": "a", "value": 1},
                    {"op": "check", "key": "k", "expected_version": 2},
                    {"op": "delete", "key": "gone"},
                ]
            }
        },
        setup=[SET_K],
    ),
    Case(
        "batch without ops",
        "POST",
        "/namespaces/ns/batch",
        err(400, "invalid_body", "A request holds 1 to 1000 ops; this one holds 0."),
        {"json": {"ops": []}},
    ),
    Case(
        "batch key twice",
        "POST",
        "/namespaces/ns/batch",
        err(
            400,
            "invalid_body",
            "Key 'k' appears more than once in the batch (op 1); a batch may touch each key once.",
        ),
        {"json": {"ops": [{"op": "set", "key": "k", "value": 1}, {"op": "delete", "key": "k"}]}},
    ),
    Case(
        "batch value too large",
        "POST",
        "/namespaces/ns/batch",
        err(
            413,
            "value_too_large",
            "The value is 12 bytes, over the limit of 10 bytes.",
            limit=10,
        ),
        {"json": {"ops": [{"op": "set", "key": "k", "value": "x" * 10}]}},
        limits=Limits(value_max_bytes=10),
    ),
    Case(
        "put ttl not positive",
        "PUT",
        "/memory/ns/k",
        err(
            400,
            "invalid_body",
            "ttl must be a number of seconds > 0 and at most 3153600000 (100 years).",
        ),
        {"json": {"value": 1, "ttl": 0}},
    ),
    Case(
        "get many without keys",
        "POST",
        "/namespaces/ns/get",
        err(400, "invalid_body", "A request holds 1 to 1000 keys; this one holds 0."),
        {"json": {"keys": []}},
    ),
    Case(
        "changes after compacted",
        "GET",
        "/namespaces/ns/changes?after=0",
        err(
            410,
            "revision_compacted",
            "Revision 0 is older than the kept history; the oldest readable revision is 2.",
            oldest_revision=2,
        ),
        setup=[SET_K, SET_K, ("POST", "/namespaces/ns/compact", {"json": {"before": 2}})],
    ),
    Case(
        "changes after the head",
        "GET",
        "/namespaces/ns/changes?after=3",
        err(
            400,
            "future_revision",
            "Revision 3 is in the future: this namespace is at revision 1.",
            head=1,
        ),
        setup=[SET_K],
    ),
    Case(
        "changes after not a revision",
        "GET",
        "/namespaces/ns/changes?after=soon",
        err(
            400,
            "invalid_parameter",
            "after='soon' is invalid: use a revision (an integer >= 0).",
        ),
    ),
    Case(
        "watch after compacted",
        "GET",
        "/namespaces/ns/watch?after=1",
        err(
            410,
            "revision_compacted",
            "Revision 1 is older than the kept history; the oldest readable revision is 2.",
            oldest_revision=2,
        ),
        setup=[SET_K, SET_K, ("POST", "/namespaces/ns/compact", {"json": {"before": 2}})],
    ),
    Case(
        "watch bad last-event-id",
        "GET",
        "/namespaces/ns/watch",
        err(
            400,
            "invalid_parameter",
            "Last-Event-ID 'abc' is invalid: send the id of the last event received (a revision).",
        ),
        {"headers": {"Last-Event-ID": "abc"}},
    ),
    # -- 415 ----------------------------------------------------------------------------------
    Case(
        "not json",
        "PUT",
        "/memory/ns/k",
        err(
            415,
            "unsupported_media_type",
            "The body must be JSON sent as Content-Type: application/json, not 'text/plain' "
            "(curl: use --json, or -H 'Content-Type: application/json').",
        ),
        {"content": b'{"value": 1}', "headers": {"Content-Type": "text/plain"}},
    ),
    # -- 429 ----------------------------------------------------------------------------------
    Case(
        "write quota",
        "DELETE",
        "/memory/ns/k",
        err(
            429,
            "write_quota_exceeded",
            # The sentence names the seconds left in the UTC day; checked below.
            "",
            retry_after=AnyInt(1, 86_400),
        ),
        setup=[SET_K],
        limits=Limits(writes_per_day=1),
    ),
    # -- identities and channels --------------------------------------------------------------
    Case(
        "channel post of an unknown type",
        "POST",
        "/channels/c/post",
        err(
            400,
            "invalid_type",
            "Invalid type 'gossip'. Use: alert, analysis, data, decision, human, question, "
            "response, signal, status.",
        ),
        {"json": {"agent_id": "a", "type": "gossip", "data": 1}},
    ),
    Case(
        "memory write into a reserved namespace",
        "PUT",
        "/memory/botwire%3Aagents/k",
        err(
            400,
            "reserved_namespace",
            "Namespace 'botwire:agents' is reserved for agent identities and channels (names "
            "starting with 'botwire:'); write it through the /identity and /channels routes.",
        ),
        {"json": {"value": 1}},
    ),
    Case(
        "channel created by an unregistered agent",
        "POST",
        "/channels/c/create",
        err(
            400,
            "agent_not_registered",
            "Agent 'a' is not registered; register it first (POST /identity/register, or "
            "botwire.register('a', accept_terms=True)).",
        ),
        {"json": {"agent_id": "a"}},
    ),
    Case(
        "agent lookup",
        "GET",
        "/identity/lookup/nobody",
        err(404, "agent_not_found", "No agent is registered as 'nobody'."),
    ),
    Case(
        "messages of an unknown channel",
        "GET",
        "/channels/c/messages",
        err(
            404,
            "channel_not_found",
            "Channel 'c' does not exist; create it first (POST /channels/c/create).",
        ),
    ),
    Case(
        "channel created twice",
        "POST",
        "/channels/c/create",
        err(409, "channel_exists", "Channel 'c' already exists; join it instead."),
        {"json": {"agent_id": "a"}},
        setup=[REGISTER_A, CREATE_C],
    ),
    Case(
        "channel entry over 10 KiB",
        "POST",
        "/channels/c/post",
        err(
            413,
            "entry_too_large",
            "The entry's data is 10243 bytes, over the limit of 10240.",
            limit=10240,
        ),
        {"json": {"agent_id": "a", "type": "data", "data": "x" * 10241}},
        setup=[REGISTER_A, CREATE_C],
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def call(
    backend: str, tmp_path: Path, case: Case
) -> tuple[httpx.Response, list[httpx.Response]]:
    async with open_store(backend, tmp_path, limits=case.limits) as store:
        app = create_app(Settings(limits=case.limits), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
            setup = [await c.request(m, u, **kw) for m, u, kw in case.setup]
            return await c.request(case.method, case.url, **case.kwargs), setup


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_error_body(backend: str, tmp_path: Path, case: Case) -> None:
    r, setup = await call(backend, tmp_path, case)
    assert all(s.status_code == 200 for s in setup), [s.text for s in setup]
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert r.status_code == case.body["status"]
    if case.body["code"] == "write_quota_exceeded":
        retry = body["retry_after"]
        assert body["error"] == (
            f"This namespace has used its 1 writes for today (UTC); retry after {retry} seconds."
        )
        assert r.headers["retry-after"] == str(retry)
        body["error"] = ""
    assert body == case.body
    for name, value in case.headers.items():
        assert r.headers[name] == value


def test_every_code_has_a_row() -> None:
    codes = {c.body["code"] for c in CASES} | {
        "database_unavailable",
        "shutting_down",
        "internal_error",
        "disk_full",
    }
    contract = {
        "invalid_json",
        "invalid_body",
        "invalid_name",
        "invalid_parameter",
        "invalid_cursor",
        "future_revision",
        "key_not_found",
        "route_not_found",
        "method_not_allowed",
        "version_conflict",
        "batch_conflict",
        "revision_compacted",
        "value_too_large",
        "namespace_full",
        "unsupported_media_type",
        "write_quota_exceeded",
        "database_unavailable",
        "shutting_down",
        "disk_full",
        "internal_error",
        "invalid_type",
        "reserved_namespace",
        "agent_not_registered",
        "agent_not_found",
        "channel_not_found",
        "channel_exists",
        "entry_too_large",
    }
    assert codes == contract


# -- paths that need a store in a particular state ---------------------------------------------


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, httpx.AsyncClient]]:
    store = SQLiteStore(tmp_path / "botwire.db")
    await store.migrate()
    await store.open()
    app = create_app(Settings(), store=store)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
            yield store, c
    finally:
        await store.close()


async def test_database_unavailable(sqlite_app: tuple[SQLiteStore, httpx.AsyncClient]) -> None:
    store, c = sqlite_app
    await store.close()
    r = await c.get("/healthz")
    assert r.status_code == 503
    assert r.json() == err(503, "database_unavailable", "The SQLite store is not open.")


async def test_disk_full(sqlite_app: tuple[SQLiteStore, httpx.AsyncClient], tmp_path: Path) -> None:
    store, c = sqlite_app
    # Cap the file at its current size: the next write that needs a new page hits SQLITE_FULL.
    with sqlite3.connect(tmp_path / "botwire.db") as probe:
        pages = probe.execute("PRAGMA page_count").fetchone()[0]
    assert store._writer is not None
    store._writer.execute(f"PRAGMA max_page_count={pages}")
    r = await c.put("/memory/ns/k", json={"value": "x" * 50_000})
    assert r.status_code == 507
    body = r.json()
    assert body == err(
        507,
        "disk_full",
        f"The disk holding the database {tmp_path / 'botwire.db'} is full; free space and "
        "retry. (database or disk is full)",
    )
    assert (await c.get("/memory/ns/k")).status_code == 404


async def test_shutting_down(tmp_path: Path) -> None:
    async with open_store("memory", tmp_path) as store:
        app = create_app(Settings(), store=store)
        app.state.lifecycle.closing = True
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
            r = await c.get("/memory/ns/k")
    assert r.status_code == 503
    assert r.json() == err(
        503,
        "shutting_down",
        "The server is shutting down; retry against another server or after it restarts.",
    )


class BrokenStatsStore(MemoryStore):
    """A store with a bug in one verb: what a client sees when the server fails."""

    async def stats(self) -> Stats:
        raise RuntimeError("bug: secret internals")


async def test_internal_error_hides_internals() -> None:
    store = BrokenStatsStore()
    app = create_app(Settings(), store=store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
        r = await c.get("/stats/memory")
    assert r.status_code == 500
    assert r.json() == err(
        500, "internal_error", "The server failed to handle this request; it has been logged."
    )


async def test_client_disconnect_mid_body() -> None:
    app = create_app(Settings(), store=MemoryStore())
    sent: list[dict[str, Any]] = []
    messages = iter(
        [
            {"type": "http.request", "body": b'{"value": ', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": "/memory/ns/k",
        "raw_path": b"/memory/ns/k",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "server": ("bw.test", 80),
        "client": ("127.0.0.1", 1234),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert httpx.Response(400, content=body).json() == err(
        400, "invalid_body", "The client closed the connection before sending the whole body."
    )


class _SetOp(msgspec.Struct, tag_field="op", tag="set", forbid_unknown_fields=True):
    key: str
    value: Any


class _Ops(msgspec.Struct, forbid_unknown_fields=True):
    ops: list[_SetOp]


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (b'{"ops": 3}', "`ops` must be an array."),
        (
            b'{"ops": [{"op": "set", "key": 1, "value": 1}]}',
            "`ops[0].key` has the wrong type or value.",
        ),
        (b'{"ops": [{"op": "set", "value": 1}]}', "`ops[0]` lacks the required field `key`."),
        (
            b'{"ops": [{"op": "set", "key": "k", "value": 1, "x": 0}]}',
            "`ops[0]` has an unknown field `x`.",
        ),
        (
            b'{"ops": [{"op": "set", "key": "k", "value": [1e999]}]}',
            "`ops[0].value[0]` holds a number too large to store (an integer may have at most 4300 "
            "digits; a float must be below 1.8e308).",
        ),
    ],
)
def test_nested_body_errors_name_the_path(data: bytes, sentence: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        body.decode(data, msgspec.json.Decoder(_Ops))
    assert caught.value.body() == err(
        400, "invalid_body", f"The body is not valid here: {sentence}"
    )
