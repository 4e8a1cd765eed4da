"""The client's sans-I/O core: every operation, written once, with no network code.

An operation is a generator that yields ``Request`` objects and receives ``Response`` objects;
its return value is the operation's result. Paging (``list_keys``, ``history``, ``snapshot``)
and not-found handling live here, so the sync and async shells in ``botwire_client.memory`` only
send requests and cannot drift apart. Worked example, ``list_keys`` over two pages::

    op = list_keys_op("ns", prefix=None, as_of=None)
    req = next(op)                  # GET /memory/ns?limit=1000
    req = op.send(Response(200, {}, b'{"keys":[{"key":"a"}],"next_cursor":"c1","revision":7}'))
                                    # GET /memory/ns?limit=1000&cursor=c1&as_of=7 (pinned)
    op.send(Response(200, {}, b'{"keys":[{"key":"b"}],"next_cursor":null,"revision":7}'))
                                    # StopIteration(["a", "b"])

Retry decisions (``RetryPolicy``) are made here too; the shells only sleep.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from botwire_client import names
from botwire_client.errors import (
    AuthError,
    BotWireError,
    ConflictError,
    ForbiddenError,
    FutureRevision,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    RevisionCompacted,
    ServerError,
    ServerUnavailable,
    TooLarge,
)
from botwire_client.models import (
    BatchResult,
    Change,
    Conflict,
    Event,
    Item,
    RevertResult,
    RollbackResult,
    Skipped,
)

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
PAGE_LIMIT = 1000  # the server's maximum page size: fewest round trips
BATCH_LIMIT = 1000  # the server's maximum number of ops in one batch


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, described. ``safe``: sending it twice cannot do harm (reads, writes
    that carry ``expected_version``, dry runs), so the shells may retry it after a failure."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    has_body: bool = False
    safe: bool = True
    headers: Mapping[str, str | bytes] = field(default_factory=dict)


MAX_META = 256  # characters of BotWire-Run, BotWire-Agent, BotWire-Reason
MAX_IDEMPOTENCY_KEY = 128


@dataclass(frozen=True, slots=True)
class WriteMeta:
    """Who and why of a write, sent as headers: the run and agent (from the ``Memory``), a
    reason, and an idempotency key. With a key, a retry after a lost reply is answered with
    the first outcome instead of writing twice, so the shells may retry it."""

    run: str | None = None
    agent: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None

    def headers(self) -> dict[str, str | bytes]:
        out: dict[str, str | bytes] = {}
        for name, value, limit in [
            ("BotWire-Run", self.run, MAX_META),
            ("BotWire-Agent", self.agent, MAX_META),
            ("BotWire-Reason", self.reason, MAX_META),
            ("Idempotency-Key", self.idempotency_key, MAX_IDEMPOTENCY_KEY),
        ]:
            if value is None:
                continue
            if not isinstance(value, str) or not 1 <= len(value) <= limit:
                raise InvalidRequest(f"{name} must be a string of 1 to {limit} characters.")
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                raise InvalidRequest(f"{name} must not hold control characters.")
            out[name] = value.encode()  # UTF-8 on the wire; the server decodes it so
        return out

    @property
    def idempotent(self) -> bool:
        return self.idempotency_key is not None


NO_META = WriteMeta()


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    content: bytes


Op = Generator[Request, Response, T]


# ---------------------------------------------------------------------------------------------
# Argument checks and encodings


# The naming rules live in ``botwire_client.names``, shared with the server.


def check_namespace(namespace: object) -> str:
    problem = names.namespace_problem(namespace)
    if problem is not None:
        raise InvalidRequest(problem)
    assert isinstance(namespace, str)
    return namespace


def check_key(key: object) -> str:
    problem = names.key_problem(key)
    if problem is not None:
        raise InvalidRequest(problem)
    assert isinstance(key, str)
    return key


def check_prefix(prefix: object) -> str | None:
    """A listing's prefix; None and '' both mean every key."""
    if prefix is None:
        return None
    problem = names.prefix_problem(prefix)
    if problem is not None:
        raise InvalidRequest(problem)
    assert isinstance(prefix, str)
    return prefix


def _path(*segments: str) -> str:
    """The path of a route from its segments, each percent-encoded as one path segment: a name
    may hold '/', '?', '%' (route words such as ``namespaces`` come out unchanged). Names must
    be checked first."""
    return "/" + "/".join(names.path_segment(segment) for segment in segments)


def check_base_url(url: str, source: str = "base_url") -> str:
    """``url`` without its trailing '/', if it is an http(s) URL with a host. A URL without a
    scheme is a configuration error, raised at once rather than retried as an unreachable
    server. ``source`` names where the URL came from, for the message."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() in {"http", "https"} and parts.netloc:
        return url.strip().rstrip("/")
    if "://" in url:
        raise InvalidRequest(
            f"{source}={url!r} is not an http:// or https:// URL with a host; write it like "
            f"{DEFAULT_URL}."
        )
    raise InvalidRequest(
        f"{source}={url!r} has no scheme; write http://{url.strip().lstrip('/')} "
        f"(like {DEFAULT_URL})."
    )


def _check_version(expected_version: object) -> int | None:
    if expected_version is None:
        return None
    if isinstance(expected_version, bool) or not isinstance(expected_version, int):
        raise InvalidRequest(
            f"expected_version must be an int >= 0 (0: the key must not exist), "
            f"not {expected_version!r}."
        )
    if expected_version < 0:
        raise InvalidRequest(f"expected_version must be >= 0, not {expected_version}.")
    return expected_version


def check_ttl(ttl: object) -> float | int | None:
    """A TTL in seconds (an int or float > 0, or a ``timedelta``), as the server takes it."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds: float | int = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        seconds = ttl
    else:
        raise InvalidRequest(
            f"ttl must be seconds (an int or float > 0) or a datetime.timedelta, not {ttl!r}."
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidRequest(f"ttl must be > 0 seconds, not {ttl!r}; omit it to keep the key.")
    return seconds


def encode_point(value: object, *, name: str = "as_of") -> int | str:
    """An ``as_of`` / rollback target: an int revision stays an int, an aware datetime becomes
    ISO-8601 UTC with microseconds. Naive datetimes are refused: their zone is a guess."""
    if isinstance(value, bool):
        raise InvalidRequest(f"{name} must be an int revision or an aware datetime, not a bool.")
    if isinstance(value, int):
        if value < 0:
            raise InvalidRequest(f"{name} must be a revision >= 0, not {value}.")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidRequest(
                f"{name}={value!r} is a naive datetime; pass a timezone-aware one, "
                "e.g. datetime.now(timezone.utc) or dt.replace(tzinfo=timezone.utc)."
            )
        text = value.astimezone(UTC).isoformat(timespec="microseconds")
        return text.replace("+00:00", "Z")
    raise InvalidRequest(
        f"{name} must be an int revision or a timezone-aware datetime, not {type(value).__name__}."
    )


def encode_value(value: Any) -> Any:
    """Check that ``value`` is JSON the server will accept, before anything is sent."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"The value cannot be stored as JSON ({exc}). Store dicts, lists, strings, numbers "
            "(finite), booleans or None; convert other objects first (e.g. dt.isoformat())."
        ) from exc
    return value


def parse_unix(value: Any) -> datetime:
    # Rounding to the nearest microsecond recovers the server's exact microsecond: a float
    # near 1.7e9 is precise to about 0.24 microseconds.
    return datetime.fromtimestamp(float(value), tz=UTC)


def parse_iso(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """``None``, Unix seconds (the compatible routes) or ISO-8601 (the extended ones)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_unix(value)
    return parse_iso(value)


_EVENT_FIELDS = frozenset(
    {"revision", "key", "op", "value", "at", "expires_at", "actor", "run", "agent", "reason"}
)


def parse_event(data: Mapping[str, Any], key: str | None = None) -> Event:
    """An event of a history page, the change feed or a watch; ``key``: when the JSON has none
    (a key's history). Unknown fields land in ``Event.extra``."""

    def text(name: str) -> str | None:
        raw = data.get(name)
        return None if raw is None else str(raw)

    return Event(
        revision=int(data["revision"]),
        op=data["op"],
        value=data.get("value"),
        at=parse_iso(data["at"]),
        key=text("key") or key,
        expires_at=parse_time(data.get("expires_at")),
        actor=text("actor"),
        run=text("run"),
        agent=text("agent"),
        reason=text("reason"),
        extra={k: v for k, v in data.items() if k not in _EVENT_FIELDS},
    )


# ---------------------------------------------------------------------------------------------
# Responses -> results or errors


def decode(response: Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content) if response.content else {}
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}


def check_token(token: str | None) -> str | None:
    """A token as given (``bw_<id>_<secret>``), or None; refused before any request when it
    could not be sent in a header."""
    if token is None:
        return None
    token = token.strip()
    if not token or any(c.isspace() or not c.isprintable() or ord(c) > 126 for c in token):
        raise InvalidRequest(
            "The token is empty or holds spaces or non-ASCII characters; pass the whole "
            "bw_<id>_<secret> string that `botwire token create` printed."
        )
    return token


def error_for(response: Response, request: Request) -> BotWireError:
    """Translate a non-2xx response into the matching exception, in this one place."""
    body = decode(response)
    status = response.status
    code = str(body.get("code") or "")
    said = str(body.get("error") or f"HTTP {status}").rstrip()
    where = f"{request.method} {request.path}"
    kw: dict[str, Any] = {"status": status, "code": code or None, "body": body}
    if code == "batch_conflict":
        conflicts = [
            Conflict(
                index=int(c.get("index") or 0),
                key=str(c.get("key")),
                current_version=int(c.get("current_version") or 0),
            )
            for c in body.get("conflicts") or []
            if isinstance(c, dict)
        ]
        listed = ", ".join(f"{c.key!r} is at {c.current_version}" for c in conflicts[:5])
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        return ConflictError(
            f"{said} ({listed}{more}) Nothing was written; read the keys again and retry.",
            current_version=conflicts[0].current_version if conflicts else 0,
            conflicts=conflicts,
            **kw,
        )
    if status == 409 or code == "version_conflict":
        current = int(body.get("current_version") or 0)
        return ConflictError(
            f"{said} (current_version={current})",
            current_version=current,
            **kw,
        )
    if status == 429 or code == "write_quota_exceeded":
        retry_after = _retry_after(response, body)
        when = f" in {retry_after} seconds" if retry_after is not None else " later"
        setting = (
            "BOTWIRE_TOKEN_WRITES_PER_DAY"
            if code == "token_quota_exceeded"
            else "BOTWIRE_WRITES_PER_DAY"
        )
        return QuotaExceeded(
            f"{said} Reads still work; retry the write{when}, or raise {setting} on the server.",
            retry_after=retry_after,
            **kw,
        )
    if code == "future_revision":
        head = body.get("head")
        return FutureRevision(
            f"{said} Call head() for the newest revision.",
            head=int(head) if head is not None else None,
            **kw,
        )
    if status == 410 or code == "revision_compacted":
        oldest = body.get("oldest_revision")
        return RevisionCompacted(
            f"{said} Read at a revision >= {oldest}, or without as_of.",
            oldest_revision=int(oldest) if oldest is not None else None,
            **kw,
        )
    if status == 401 or code == "unauthenticated":
        return AuthError(
            f"{said} Pass token= to Memory (or set BOTWIRE_TOKEN) with a valid token from "
            "the server's operator.",
            **kw,
        )
    if status == 403 or code == "forbidden":
        return ForbiddenError(
            f"{said} ({where}) Use a token whose grants cover this namespace.", **kw
        )
    if status == 413:
        return TooLarge(
            f"{said} Store smaller values (split them over several keys) or raise "
            "BOTWIRE_VALUE_MAX_BYTES / BOTWIRE_NAMESPACE_MAX_BYTES on the server.",
            **kw,
        )
    if status in {400, 405, 415, 422}:
        return InvalidRequest(
            f"{said} ({where}) Fix the request; repeating it will not help.", **kw
        )
    if status == 404:
        return NotFound(
            f"{said} ({where}) Check that base_url points at a BotWire server of this version.",
            **kw,
        )
    if status == 503:
        return ServerUnavailable(
            f"{said} The server cannot serve requests right now; retry later.", **kw
        )
    return ServerError(f"{said} ({where}) The server failed; see its log.", **kw)


def _retry_after(response: Response, body: Mapping[str, Any]) -> int | None:
    raw = body.get("retry_after")
    if raw is None:
        raw = response.headers.get("retry-after")
    try:
        return math.ceil(float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None


def _ok(response: Response, request: Request) -> dict[str, Any]:
    if 200 <= response.status < 300:
        return decode(response)
    raise error_for(response, request)


def _is_absent_key(response: Response) -> bool:
    return response.status == 404 and decode(response).get("code") == "key_not_found"


# ---------------------------------------------------------------------------------------------
# Operations


def set_op(
    namespace: str,
    key: str,
    value: Any,
    expected_version: int | None,
    ttl: float | timedelta | None = None,
    meta: WriteMeta = NO_META,
) -> Op[int]:
    body: dict[str, Any] = {"value": encode_value(value)}
    version = _check_version(expected_version)
    if version is not None:
        body["expected_version"] = version
    seconds = check_ttl(ttl)
    if seconds is not None:
        body["ttl"] = seconds
    req = Request(
        "PUT",
        _path("memory", namespace, check_key(key)),
        json=body,
        has_body=True,
        safe=version is not None or meta.idempotent,
        headers=meta.headers(),
    )
    data = _ok((yield req), req)
    return int(data["version"])


def item_op(namespace: str, key: str, as_of: int | datetime | None) -> Op[Item | None]:
    params = {} if as_of is None else {"as_of": str(encode_point(as_of))}
    req = Request("GET", _path("memory", namespace, check_key(key)), params=params)
    resp = yield req
    if _is_absent_key(resp):
        return None
    data = _ok(resp, req)
    created = data.get("created_revision")
    return Item(
        key=key,
        value=data.get("value"),
        version=int(data["version"]),
        created_revision=int(created) if created is not None else None,
        created_at=parse_unix(data["created_at"]),
        updated_at=parse_unix(data["updated_at"]),
        expires_at=parse_time(data.get("expires_at")),
    )


def get_op(namespace: str, key: str, default: Any, as_of: int | datetime | None) -> Op[Any]:
    item = yield from item_op(namespace, key, as_of)
    return default if item is None else item.value


def exists_op(namespace: str, key: str, as_of: int | datetime | None) -> Op[bool]:
    item = yield from item_op(namespace, key, as_of)
    return item is not None


def delete_op(
    namespace: str, key: str, expected_version: int | None, meta: WriteMeta = NO_META
) -> Op[bool]:
    version = _check_version(expected_version)
    params = {} if version is None else {"expected_version": str(version)}
    req = Request(
        "DELETE",
        _path("memory", namespace, check_key(key)),
        params=params,
        safe=version is not None or meta.idempotent,
        headers=meta.headers(),
    )
    resp = yield req
    if _is_absent_key(resp):
        return False
    _ok(resp, req)
    return True


def list_keys_op(
    namespace: str, prefix: str | None, as_of: int | datetime | None, page: int = PAGE_LIMIT
) -> Op[list[str]]:
    params: dict[str, str] = {"limit": str(page)}
    prefix = check_prefix(prefix)
    if prefix:
        params["prefix"] = prefix
    if as_of is not None:
        params["as_of"] = str(encode_point(as_of))
    keys: list[str] = []
    while True:
        req = Request("GET", _path("memory", namespace), params=dict(params))
        data = _ok((yield req), req)
        keys.extend(entry["key"] if isinstance(entry, dict) else entry for entry in data["keys"])
        cursor = data.get("next_cursor")
        if not cursor:
            return keys
        params["cursor"] = str(cursor)
        # Later pages read the revision the first page read, so a write landing between two
        # pages can neither duplicate nor hide a key (also when as_of is a future timestamp).
        if data.get("revision") is not None:
            params["as_of"] = str(int(data["revision"]))


def history_op(
    namespace: str, key: str, limit: int | None, page: int = PAGE_LIMIT
) -> Op[list[Event]]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidRequest(f"limit must be an int >= 0 or None (all events), not {limit!r}.")
    events: list[Event] = []
    cursor: str | None = None
    while limit is None or len(events) < limit:
        size = page if limit is None else min(page, limit - len(events))
        params = {"limit": str(size)}
        if cursor:
            params["cursor"] = cursor
        req = Request("GET", _path("memory", namespace, check_key(key), "history"), params=params)
        resp = yield req
        if _is_absent_key(resp):
            break
        data = _ok(resp, req)
        events.extend(parse_event(e, key) for e in data["events"])
        cursor = data.get("next_cursor")
        if not cursor or not data["events"]:
            break
    return events


def items_many_op(
    namespace: str, keys: Iterable[str], as_of: int | datetime | None, page: int = PAGE_LIMIT
) -> Op[dict[str, Item]]:
    """The present ones of ``keys`` (in the order asked, repeats dropped) as Items, read at ONE
    revision: a request holds at most ``page`` keys, and every later request pins the revision
    the first one read, so a write landing in between cannot show up in half of the answer."""
    if isinstance(keys, str | bytes):
        raise InvalidRequest(f"keys must be a list of keys, not a single string ({keys!r}).")
    wanted = list(dict.fromkeys(check_key(key) for key in keys))
    point = None if as_of is None else encode_point(as_of)
    found: dict[str, Item] = {}
    for start in range(0, len(wanted), page):
        body: dict[str, Any] = {"keys": wanted[start : start + page]}
        if point is not None:
            body["as_of"] = point
        req = Request(
            "POST", _path("namespaces", namespace, "get"), json=body, has_body=True, safe=True
        )
        data = _ok((yield req), req)
        for key, raw in data["items"].items():
            if raw is not None:
                found[key] = _extended_item(key, raw)
        point = int(data["revision"])
    return {key: found[key] for key in wanted if key in found}


def _extended_item(key: str, data: Mapping[str, Any]) -> Item:
    created = data.get("created_revision")
    return Item(
        key=str(data.get("key") or key),
        value=data.get("value"),
        version=int(data["version"]),
        created_revision=int(created) if created is not None else None,
        created_at=parse_iso(data["created_at"]),
        updated_at=parse_iso(data["updated_at"]),
        expires_at=parse_time(data.get("expires_at")),
    )


def get_many_op(
    namespace: str, keys: Iterable[str], as_of: int | datetime | None, page: int = PAGE_LIMIT
) -> Op[dict[str, Any]]:
    items = yield from items_many_op(namespace, keys, as_of, page)
    return {key: item.value for key, item in items.items()}


def head_op(namespace: str) -> Op[int]:
    req = Request("GET", _path("namespaces", namespace))
    data = _ok((yield req), req)
    return int(data["revision"])


def snapshot_op(
    namespace: str, as_of: int | datetime | None, prefix: str | None, page: int = PAGE_LIMIT
) -> Op[dict[str, Any]]:
    params: dict[str, str] = {"limit": str(page)}
    prefix = check_prefix(prefix)
    if prefix:
        params["prefix"] = prefix
    if as_of is not None:
        params["as_of"] = str(encode_point(as_of))
    values: dict[str, Any] = {}
    while True:
        req = Request("GET", _path("namespaces", namespace, "snapshot"), params=dict(params))
        data = _ok((yield req), req)
        values.update(data["values"])
        cursor = data.get("next_cursor")
        if not cursor:
            return values
        params["cursor"] = str(cursor)
        params["as_of"] = str(int(data["revision"]))  # every page reads the same revision


def rollback_op(
    namespace: str, to: int | datetime, key: str | None, dry_run: bool, meta: WriteMeta = NO_META
) -> Op[RollbackResult]:
    if to is None:
        raise InvalidRequest("rollback needs `to`: an int revision or an aware datetime.")
    body: dict[str, Any] = {"to": encode_point(to, name="to")}
    if key is not None:
        body["key"] = check_key(key)
    if dry_run:
        body["dry_run"] = True
    # A real rollback is not repeated after an unclear failure: a second attempt would find
    # nothing to change and report an empty `changed`, hiding what the first one did.
    # With an idempotency key, a repeat is answered with the first outcome: safe.
    req = Request(
        "POST",
        _path("namespaces", namespace, "rollback"),
        json=body,
        has_body=True,
        safe=dry_run or meta.idempotent,
        headers=meta.headers(),
    )
    data = _ok((yield req), req)
    return RollbackResult(
        revision=int(data["revision"]),
        dry_run=bool(data.get("dry_run", dry_run)),
        changes=_changes(data),
    )


def _changes(data: Mapping[str, Any]) -> tuple[Change, ...]:
    return tuple(Change(key=c["key"], op=c["op"], value=c.get("value")) for c in data["changed"])


def check_run(run: object) -> str:
    if not isinstance(run, str) or not 1 <= len(run) <= MAX_META:
        raise InvalidRequest(f"A run id is a string of 1 to {MAX_META} characters, not {run!r}.")
    return run


def revert_run_op(
    namespace: str, run: str, dry_run: bool, meta: WriteMeta = NO_META
) -> Op[RevertResult]:
    """Undo what ``run`` wrote in one revision; keys others wrote since are skipped."""
    req = Request(
        "POST",
        _path("namespaces", namespace, "runs", check_run(run), "revert"),
        json={"dry_run": bool(dry_run)},
        has_body=True,
        safe=dry_run or meta.idempotent,
        headers=meta.headers(),
    )
    data = _ok((yield req), req)
    return RevertResult(
        revision=int(data["revision"]),
        dry_run=bool(data["dry_run"]),
        changes=_changes(data),
        skipped=tuple(
            Skipped(key=s["key"], reason=s["reason"], current_version=int(s["current_version"]))
            for s in data["skipped"]
        ),
    )


def run_events_op(namespace: str, run: str, page: int = PAGE_LIMIT) -> Op[list[Event]]:
    """Every event ``run`` wrote in the namespace, oldest first (pages internally)."""
    path = _path("namespaces", namespace, "runs", check_run(run))
    events: list[Event] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(page)}
        if cursor:
            params["cursor"] = cursor
        req = Request("GET", path, params=params)
        data = _ok((yield req), req)
        events.extend(parse_event(e) for e in data["events"])
        cursor = data.get("next_cursor")
        if not cursor or not data["events"]:
            return events


class BatchOps:
    """The ops of one batch, checked as they are added, and the operation that commits them.

    Each op is checked when added (names, values, versions, TTL, a key at most once), so a
    mistake raises at the line that made it and nothing is sent.
    """

    def __init__(self, namespace: str, meta: WriteMeta = NO_META) -> None:
        self.namespace = namespace
        self.meta = meta
        self.ops: list[dict[str, Any]] = []
        self._keys: set[str] = set()

    def _add(self, op: dict[str, Any]) -> None:
        if op["key"] in self._keys:
            raise InvalidRequest(
                f"The batch already has an op on {op['key']!r}; a batch touches a key at most "
                "once (combine the ops, or use two batches)."
            )
        if len(self.ops) >= BATCH_LIMIT:
            raise InvalidRequest(
                f"A batch holds at most {BATCH_LIMIT} ops; split the work into several batches "
                "(each one is atomic on its own)."
            )
        self._keys.add(op["key"])
        self.ops.append(op)

    def set(
        self, key: str, value: Any, expected_version: int | None, ttl: float | timedelta | None
    ) -> None:
        op: dict[str, Any] = {"op": "set", "key": check_key(key), "value": encode_value(value)}
        version = _check_version(expected_version)
        if version is not None:
            op["expected_version"] = version
        seconds = check_ttl(ttl)
        if seconds is not None:
            op["ttl"] = seconds
        self._add(op)

    def delete(self, key: str, expected_version: int | None) -> None:
        op: dict[str, Any] = {"op": "delete", "key": check_key(key)}
        version = _check_version(expected_version)
        if version is not None:
            op["expected_version"] = version
        self._add(op)

    def check(self, key: str, version: int) -> None:
        expected = _check_version(version)
        if expected is None:
            raise InvalidRequest("check needs a version: an int >= 0 (0: the key must not exist).")
        self._add({"op": "check", "key": check_key(key), "expected_version": expected})

    def commit_op(self) -> Op[BatchResult]:
        """Commit every op as ONE revision, or none. An empty batch writes nothing and returns
        the unchanged head (one read), as a rollback that changes nothing does."""
        if not self.ops:
            head = yield from head_op(self.namespace)
            return BatchResult(revision=head, versions={})
        # Repeating it is harmless only when every write is conditional: a repeat of a batch
        # that did apply then fails its conditions instead of writing twice.
        safe = self.meta.idempotent or all(
            op["op"] == "check" or "expected_version" in op for op in self.ops
        )
        req = Request(
            "POST",
            _path("namespaces", self.namespace, "batch"),
            json={"ops": list(self.ops)},
            has_body=True,
            safe=safe,
            headers=self.meta.headers(),
        )
        data = _ok((yield req), req)
        return BatchResult(
            revision=int(data["revision"]),
            versions={str(r["key"]): int(r["version"]) for r in data["results"]},
        )


# ---------------------------------------------------------------------------------------------
# Retries


# The request provably never reached the server: repeating it is safe even for a plain write.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter. ``retries`` is the number of repeats after the first
    attempt; the defaults ride out a server restart of a few seconds."""

    retries: int = 5
    backoff: float = 0.1
    max_backoff: float = 2.0

    def _delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2.0**attempt))
        return base * (0.5 + random.random() / 2)

    def after_error(self, request: Request, attempt: int, exc: Exception) -> float | None:
        """Seconds to wait before repeating ``request`` after ``exc``; None: give up."""
        if attempt >= self.retries:
            return None
        if isinstance(exc, NOT_SENT) or (request.safe and isinstance(exc, httpx.TransportError)):
            return self._delay(attempt)
        return None

    def after_response(self, request: Request, attempt: int, response: Response) -> float | None:
        if response.status != 503 or not request.safe or attempt >= self.retries:
            return None
        hinted = _retry_after(response, decode(response))
        delay = self._delay(attempt)
        return min(self.max_backoff, float(hinted)) if hinted else delay


def unreachable(base_url: str, request: Request, exc: Exception) -> ServerUnavailable:
    if isinstance(exc, NOT_SENT):
        return ServerUnavailable(
            f"Could not reach the BotWire server at {base_url} ({type(exc).__name__}). Start it "
            "(`botwire serve`) or point BOTWIRE_URL / base_url at a running one."
        )
    if request.safe:
        return ServerUnavailable(
            f"The connection to {base_url} failed during {request.method} {request.path} "
            f"({type(exc).__name__}: {exc}); retried without success. Check the server."
        )
    return ServerUnavailable(
        f"The connection to {base_url} failed during {request.method} {request.path} "
        f"({type(exc).__name__}: {exc}). The write may or may not have been applied: read the "
        "key (item()) before repeating it, or pass expected_version so retries are safe."
    )
