"""Parsing of everything a request carries besides its JSON body: names, query parameters,
cursors and the ``If-Match`` / ``If-None-Match`` headers. Each parser returns a typed value or
raises ``InvalidInput`` with the contract's code."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from starlette.datastructures import QueryParams
from starlette.types import Scope

from botwire_client import names

from .. import naming, provenance
from ..errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ..storage.base import Provenance
from .wire import MAX_INT

_DIGITS = re.compile(r"[0-9]{1,30}")
_NUMBER = re.compile(r"[0-9]+")
_ETAG = re.compile(r'"?([0-9]{1,30})"?')
_WEAK_ETAG = re.compile(r'W/"?([0-9]{1,30})"?')
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_shown = names.shown


# -- names -----------------------------------------------------------------------------------
# The rules live in ``botwire_client.names``; path parameters arrive percent-decoded once
# (``paths``).


namespace = naming.namespace
key = naming.key


# -- query parameters ------------------------------------------------------------------------


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_parameter")


def _single(query: QueryParams, name: str) -> str | None:
    """The parameter's one value; a parameter given twice is refused rather than guessed."""
    if name not in query:
        return None
    values = query.getlist(name)
    if len(values) > 1:
        raise _invalid(f"{name} is given {len(values)} times; give it once.")
    return values[0]


def timestamp(raw: str, *, what: str = "as_of") -> datetime:
    """An ISO-8601 timestamp with a timezone. A space where the offset's ``+`` belongs is
    accepted: an unencoded ``+`` in a query string arrives as a space."""
    text = raw.strip().replace(" ", "+") if "T" in raw else raw
    try:
        moment = datetime.fromisoformat(text)
        moment.astimezone(UTC)  # years 1 and 9999 can overflow once shifted to UTC
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in text:
        raise InvalidInput(
            f"{what}={_shown(raw)} is neither a revision (an integer >= 0) nor an ISO-8601 "
            "timestamp with a timezone, such as 2026-11-21T10:00:00Z.",
            code="invalid_parameter",
        )
    return moment


def as_of(query: QueryParams) -> int | datetime | None:
    raw = _single(query, "as_of")
    if raw is None or raw == "":
        return None
    if _NUMBER.fullmatch(raw):
        # A revision too large for any backend is above every head: clamp it so the store
        # answers future_revision with the namespace's head.
        return MAX_INT if len(raw) > 19 else min(int(raw), MAX_INT)
    return timestamp(raw)


def limit(query: QueryParams, default: int) -> int:
    raw = _single(query, "limit")
    if not raw:  # absent or empty, like every other optional parameter
        return default
    if _DIGITS.fullmatch(raw) is None or not 1 <= int(raw) <= 1000:
        raise _invalid(f"limit={_shown(raw)} is invalid: use an integer from 1 to 1000.")
    return int(raw)


def prefix(query: QueryParams) -> str | None:
    raw = _single(query, "prefix")
    if not raw:
        return None
    problem = names.prefix_problem(raw)
    if problem is not None:
        raise _invalid(problem)
    return raw


def expected_version_query(query: QueryParams) -> int | None:
    raw = _single(query, "expected_version")
    if raw is None:
        return None
    if _DIGITS.fullmatch(raw) is None or int(raw) > MAX_INT:
        raise _invalid(f"expected_version={_shown(raw)} is invalid: use an integer >= 0.")
    return int(raw)


def revision_param(query: QueryParams, name: str) -> int | None:
    """A revision in the query (``after``); absent or empty is None. One too large for any
    backend is clamped, so the store answers future_revision with the head."""
    raw = _single(query, name)
    if not raw:
        return None
    if _NUMBER.fullmatch(raw) is None:
        raise _invalid(f"{name}={_shown(raw)} is invalid: use a revision (an integer >= 0).")
    return MAX_INT if len(raw) > 19 else min(int(raw), MAX_INT)


def last_event_id(headers: Mapping[str, str]) -> int | None:
    """The revision a watch stream resumes after (``Last-Event-ID``, as the SSE ids are)."""
    raw = headers.get("last-event-id")
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if _NUMBER.fullmatch(raw) is None:
        raise _invalid(
            f"Last-Event-ID {_shown(raw)} is invalid: send the id of the last event received "
            "(a revision)."
        )
    return MAX_INT if len(raw) > 19 else min(int(raw), MAX_INT)


# -- conditional headers ---------------------------------------------------------------------


def headers(scope: Scope) -> dict[str, str]:
    """The request headers by name, in one pass. ASGI servers lower-case the names; the first
    of repeated headers wins, as in Starlette's ``Headers.get``, which scans the whole list on
    every lookup."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


def expected_version(
    headers: Mapping[str, str], from_request: int | None, *, allow_none_match: bool
) -> int | None:
    """Merge ``If-Match: "N"`` (version N) and ``If-None-Match: *`` (version 0, PUT only) with
    an ``expected_version`` given in the body or query; they must agree."""
    candidates: list[tuple[str, int]] = []
    if from_request is not None:
        candidates.append(("expected_version", from_request))
    if_match = headers.get("if-match")
    if if_match is not None:
        weak = _WEAK_ETAG.fullmatch(if_match.strip())
        if weak is not None:
            # RFC 9110: If-Match uses the strong comparison, which a weak ETag never satisfies;
            # a write guarded by one could never succeed, so it is refused as a mistake.
            raise _invalid(
                f'If-Match needs a strong ETag ("{weak.group(1)}"), not W/"{weak.group(1)}".'
            )
        match = _ETAG.fullmatch(if_match.strip())
        if match is None or int(match.group(1)) > MAX_INT:
            raise _invalid(
                f"If-Match {_shown(if_match)} is invalid: send one version as an ETag, "
                'for example If-Match: "3".'
            )
        candidates.append(("If-Match", int(match.group(1))))
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if not allow_none_match or if_none_match.strip() != "*":
            raise _invalid(
                "If-None-Match is only understood as 'If-None-Match: *' on PUT "
                "(write only when the key does not exist)."
            )
        candidates.append(("If-None-Match", 0))
    if not candidates:
        return None
    first_name, first = candidates[0]
    for name, value in candidates[1:]:
        if value != first:
            raise _invalid(
                f"{first_name} asks for version {first} but {name} asks for version {value}; "
                "send one condition."
            )
    return first


def etag(version: int) -> str:
    return f'"{version}"'


# -- provenance and idempotency headers ---------------------------------------------------------


def _utf8(headers: Mapping[str, str], name: str, shown: str) -> str | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise InvalidInput(f"{shown} is not UTF-8 text.", code="invalid_header") from None


def write_meta(scope: Scope, headers: Mapping[str, str], body: bytes = b"") -> Provenance:
    """A write's ``BotWire-Run``, ``BotWire-Agent``, ``BotWire-Reason`` and
    ``Idempotency-Key``, checked (``provenance.request``). The key's fingerprint covers the
    method, the path, the query, the conditional headers and the body: what makes a retry
    the same request."""
    key = _utf8(headers, "idempotency-key", "Idempotency-Key")
    digest = ""
    if key is not None:
        digest = provenance.fingerprint(
            [
                scope["method"].encode(),
                scope["path"].encode(),
                scope.get("query_string", b""),
                headers.get("if-match", "").encode("latin-1"),
                headers.get("if-none-match", "").encode("latin-1"),
                body,
            ]
        )
    return provenance.request(
        run=_utf8(headers, "botwire-run", "BotWire-Run"),
        agent=_utf8(headers, "botwire-agent", "BotWire-Agent"),
        reason=_utf8(headers, "botwire-reason", "BotWire-Reason"),
        idempotency_key=key,
        fingerprint=digest,
    )


def run_cursor(query: QueryParams) -> tuple[int, str] | None:
    """A cursor of ``GET /namespaces/{ns}/runs/{run}``: the last (revision, key) returned."""
    payload = read_cursor(query, "r")
    if payload is None:
        return None
    revision, _, key = payload.partition(":")
    if _DIGITS.fullmatch(revision) is None or int(revision) > MAX_INT or not key:
        raise bad_cursor(query["cursor"])
    return int(revision), key


# -- cursors ---------------------------------------------------------------------------------
# A cursor is opaque to clients: base64url of "<kind>:<payload>". The kind stops a cursor of
# one route from being accepted by another.


def make_cursor(kind: str, payload: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{payload}".encode()).decode().rstrip("=")


def read_cursor(query: QueryParams, kind: str) -> str | None:
    raw = _single(query, "cursor")
    if raw is None or raw == "":
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found, _, payload = text.partition(":")
    if found != kind or not payload:
        raise InvalidInput(
            f"cursor={_shown(raw)} is not a cursor this route returned.", code="invalid_cursor"
        )
    return payload


def bad_cursor(raw: str) -> InvalidInput:
    return InvalidInput(
        f"cursor={_shown(raw)} is not a cursor this route returned.", code="invalid_cursor"
    )


def key_cursor(query: QueryParams, kind: str) -> str | None:
    """A cursor that holds the last key of the previous page."""
    payload = read_cursor(query, kind)
    if payload is not None and names.key_problem(payload) is not None:
        raise bad_cursor(query["cursor"])
    return payload


def revision_cursor(query: QueryParams, kind: str) -> int | None:
    """A cursor that holds a revision."""
    payload = read_cursor(query, kind)
    if payload is not None and (_DIGITS.fullmatch(payload) is None or int(payload) > MAX_INT):
        raise bad_cursor(query["cursor"])
    return None if payload is None else int(payload)


# -- bodies ----------------------------------------------------------------------------------


def check_json_content_type(headers: Mapping[str, str]) -> None:
    """A body must be JSON; a missing Content-Type is taken as JSON."""
    raw = headers.get("content-type")
    if raw is None:
        return
    media = raw.partition(";")[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(
        f"The body must be JSON sent as Content-Type: application/json, not {_shown(raw)} "
        "(curl: use --json, or -H 'Content-Type: application/json')."
    )


def body_too_large(size: int | str, allowed: int, value_limit: int | None) -> PayloadTooLarge:
    if value_limit is None:
        return PayloadTooLarge(
            f"The request body is {size} bytes; this route accepts at most {allowed} bytes.",
            limit=allowed,
        )
    return PayloadTooLarge(
        f"The request body is {size} bytes; bodies are limited to {allowed} bytes because a "
        f"value may be at most {value_limit} bytes.",
        limit=value_limit,
    )


# -- time ------------------------------------------------------------------------------------


def seconds(micros: int) -> float:
    """Unix seconds, as the BotWire-compatible routes give them."""
    return micros / 1_000_000


def iso(micros: int) -> str:
    """ISO-8601 UTC with microseconds, as the extended routes give times."""
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- GET /namespaces (kept together at the end of this module) --------------------------------


def namespace_prefix(query: QueryParams) -> str | None:
    """A namespace-name prefix (same rules as a key prefix: no control characters)."""
    return prefix(query)


def namespace_cursor(query: QueryParams) -> str | None:
    """A cursor that holds the last namespace of the previous page."""
    payload = read_cursor(query, "n")
    if payload is not None and names.namespace_problem(payload) is not None:
        raise bad_cursor(query["cursor"])
    return payload
