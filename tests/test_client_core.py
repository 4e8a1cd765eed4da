"""The sans-I/O core and the shells' retry rules, driven through ``httpx.MockTransport``: what
is sent, what is retried, and which error each server answer becomes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from botwire import (
    BotWireError,
    ConflictError,
    FutureRevision,
    InvalidRequest,
    Memory,
    NotFound,
    QuotaExceeded,
    RevisionCompacted,
    ServerError,
    ServerUnavailable,
    TooLarge,
)
from botwire_client import core

Handler = Callable[[httpx.Request], httpx.Response]


def mock(handler: Handler, **options: Any) -> Memory:
    transport = httpx.MockTransport(handler)
    options.setdefault("retries", 3)
    memory = Memory("ns", "http://botwire.test", transport=transport, **options)
    memory.retry = core.RetryPolicy(retries=memory.retry.retries, backoff=0.001, max_backoff=0.01)
    return memory


def error(status: int, code: str, **extra: Any) -> httpx.Response:
    body = {"error": f"Refused ({code}).", "code": code, "status": status, **extra}
    return httpx.Response(status, json=body)


def test_set_sends_compact_json_and_expected_version() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"version": 7, "stored": True})

    memory = mock(handler)
    assert memory.set("k", {"a": [1, None]}, expected_version=3) == 7
    request = seen[0]
    assert (request.method, request.url.path) == ("PUT", "/memory/ns/k")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"value": {"a": [1, None]}, "expected_version": 3}


def test_each_name_is_one_percent_encoded_path_segment() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        if request.url.path.endswith("/history"):
            return httpx.Response(200, json={"events": [], "next_cursor": None})
        if request.url.path.startswith("/namespaces/"):
            return httpx.Response(200, json={"revision": 0})
        return httpx.Response(200, json={"version": 1, "keys": [], "next_cursor": None})

    transport = httpx.MockTransport(handler)
    memory = Memory("team:1/a b", "http://botwire.test", transport=transport)
    memory.set("notes/2026-11.md", 1)
    memory.set("user:42 🙂", 1)
    memory.set("100%?#", 1)
    memory.history("a/../b")
    memory.head()
    memory.list_keys("p/q r")
    ns = b"/memory/team%3A1%2Fa%20b"
    assert seen == [
        ns + b"/notes%2F2026-11.md",
        ns + b"/user%3A42%20%F0%9F%99%82",
        ns + b"/100%25%3F%23",
        ns + b"/a%2F..%2Fb/history?limit=100",
        b"/namespaces/team%3A1%2Fa%20b",
        ns + b"?limit=1000&prefix=p%2Fq+r",
    ]


def test_as_of_datetime_is_sent_as_utc_iso_and_ints_as_revisions() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return error(404, "key_not_found")

    memory = mock(handler)
    moment = datetime(2026, 11, 21, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert memory.get("k", "d", as_of=moment) == "d"
    assert seen[-1].url.params["as_of"] == "2026-11-21T10:00:00.000005Z"
    assert memory.item("k", as_of=4) is None
    assert seen[-1].url.params["as_of"] == "4"
    with pytest.raises(ValueError, match="naive"):
        memory.get("k", as_of=datetime(2026, 11, 21))
    with pytest.raises(InvalidRequest):
        memory.get("k", as_of=True)  # type: ignore[arg-type]
    assert len(seen) == 2


def test_list_pages_pin_the_first_pages_revision() -> None:
    seen: list[httpx.Request] = []
    pages = {
        None: {"keys": [{"key": "a"}, {"key": "b"}], "next_cursor": "c1", "revision": 9},
        "c1": {"keys": [{"key": "c"}], "next_cursor": "c2", "revision": 9},
        "c2": {"keys": [], "next_cursor": None, "revision": 9},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    assert mock(handler).list_keys(prefix="x") == ["a", "b", "c"]
    assert "as_of" not in seen[0].url.params
    assert [r.url.params.get("as_of") for r in seen[1:]] == ["9", "9"]
    assert all(r.url.params["prefix"] == "x" for r in seen)
    seen.clear()
    moment = datetime(2030, 1, 1, tzinfo=UTC)  # a future moment would move with new writes
    assert mock(handler).list_keys(as_of=moment) == ["a", "b", "c"]
    assert [r.url.params["as_of"] for r in seen] == ["2030-01-01T00:00:00.000000Z", "9", "9"]


def test_history_stops_at_limit_across_pages() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        n = int(request.url.params["limit"])
        start = int(request.url.params.get("cursor", "100"))
        events = [
            {"revision": r, "op": "set", "value": r, "at": "2026-11-21T10:00:00.000001Z"}
            for r in range(start, start - n, -1)
        ]
        return httpx.Response(200, json={"events": events, "next_cursor": str(start - n)})

    events = mock(handler, page_size=4).history("k", limit=10)
    assert [e.revision for e in events] == list(range(100, 90, -1))
    assert [r.url.params["limit"] for r in seen] == ["4", "4", "2"]
    assert events[0].at == datetime(2026, 11, 21, 10, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("response", "kind", "attribute", "expected"),
    [
        (error(409, "version_conflict", current_version=4), ConflictError, "current_version", 4),
        (error(429, "write_quota_exceeded", retry_after=30), QuotaExceeded, "retry_after", 30),
        (error(400, "future_revision", head=3), FutureRevision, "head", 3),
        (
            error(410, "revision_compacted", oldest_revision=8),
            RevisionCompacted,
            "oldest_revision",
            8,
        ),
        (error(413, "value_too_large"), TooLarge, "code", "value_too_large"),
        (error(400, "invalid_parameter"), InvalidRequest, "status", 400),
        (error(404, "route_not_found"), NotFound, "code", "route_not_found"),
        (error(507, "disk_full"), ServerError, "status", 507),
        (httpx.Response(500, text="boom"), ServerError, "status", 500),
    ],
)
def test_error_codes_map_to_the_tree(
    response: httpx.Response, kind: type[BotWireError], attribute: str, expected: Any
) -> None:
    memory = mock(lambda request: response)
    with pytest.raises(kind) as caught:
        memory.set("k", 1)
    assert getattr(caught.value, attribute) == expected
    assert isinstance(caught.value, BotWireError)
    assert str(caught.value).endswith((".", ")")) and len(str(caught.value)) > 20


def test_a_token_quota_names_the_token_setting() -> None:
    memory = mock(lambda request: error(429, "token_quota_exceeded", retry_after=5))
    with pytest.raises(QuotaExceeded) as caught:
        memory.set("k", 1)
    assert caught.value.code == "token_quota_exceeded" and caught.value.retry_after == 5
    assert str(caught.value).endswith(
        "Reads still work; retry the write in 5 seconds, or raise "
        "BOTWIRE_TOKEN_WRITES_PER_DAY on the server."
    )


def test_quota_retry_after_falls_back_to_the_header() -> None:
    memory = mock(lambda r: httpx.Response(429, json={"code": "x"}, headers={"Retry-After": "12"}))
    with pytest.raises(QuotaExceeded) as caught:
        memory.set("k", 1)
    assert caught.value.retry_after == 12


class Flaky:
    """Fails ``failures`` times (raising ``exc`` or answering 503), then succeeds."""

    def __init__(self, failures: int, exc: Exception | None = None) -> None:
        self.failures = failures
        self.exc = exc
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.failures:
            if self.exc is not None:
                raise self.exc
            return error(503, "database_unavailable")
        if request.url.path.endswith("/rollback"):
            return httpx.Response(200, json={"revision": 5, "dry_run": True, "changed": []})
        if request.method == "GET":
            item = {"value": 1, "version": 1, "created_at": 1.0, "updated_at": 1.0}
            return httpx.Response(200, json=item)
        return httpx.Response(200, json={"version": 2})


def test_reads_and_cas_writes_are_retried_after_503_and_dropped_connections() -> None:
    for exc in [None, httpx.ReadError("reset"), httpx.RemoteProtocolError("closed")]:
        flaky = Flaky(2, exc)
        assert mock(flaky).get("k") == 1 and flaky.calls == 3
        flaky = Flaky(2, exc)
        assert mock(flaky).set("k", 1, expected_version=1) == 2 and flaky.calls == 3
        flaky = Flaky(2, exc)
        assert mock(flaky).rollback(3, dry_run=True).revision == 5 and flaky.calls == 3


def test_plain_writes_are_not_repeated_unless_never_sent() -> None:
    flaky = Flaky(1)
    with pytest.raises(ServerUnavailable):
        mock(flaky).set("k", 1)
    assert flaky.calls == 1
    flaky = Flaky(1, httpx.ReadError("reset"))
    with pytest.raises(ServerUnavailable, match="may or may not"):
        mock(flaky).set("k", 1)
    assert flaky.calls == 1
    flaky = Flaky(1, httpx.ReadTimeout("slow"))
    with pytest.raises(ServerUnavailable):
        mock(flaky).rollback(3)
    assert flaky.calls == 1
    # A refused connection means the request never left: repeating it cannot write twice.
    flaky = Flaky(2, httpx.ConnectError("refused"))
    assert mock(flaky).set("k", 1) == 2 and flaky.calls == 3


def test_retries_give_up_with_server_unavailable() -> None:
    flaky = Flaky(10)
    with pytest.raises(ServerUnavailable) as caught:
        mock(flaky, retries=2).get("k")
    assert flaky.calls == 3 and caught.value.status == 503
    flaky = Flaky(10, httpx.ConnectError("refused"))
    with pytest.raises(ServerUnavailable, match="Could not reach .*BOTWIRE_URL"):
        mock(flaky, retries=2).get("k")
    assert flaky.calls == 3


def test_the_async_shell_follows_the_same_rules() -> None:
    async def scenario() -> None:
        flaky = Flaky(2)
        memory = Memory("ns", "http://t", async_transport=httpx.MockTransport(flaky))
        memory.retry = core.RetryPolicy(retries=3, backoff=0.001, max_backoff=0.01)
        assert await memory.aget("k") == 1 and flaky.calls == 3
        flaky.calls, flaky.failures = 0, 1
        with pytest.raises(ServerUnavailable):
            await memory.aset("k", 1)
        assert flaky.calls == 1
        await memory.aclose()

    asyncio.run(scenario())


def test_an_operation_is_the_same_generator_for_both_shells() -> None:
    op = core.list_keys_op("ns", None, None, 2)
    first = next(op)
    assert (first.method, first.path, first.params) == ("GET", "/memory/ns", {"limit": "2"})
    body = {"keys": [{"key": "a"}], "next_cursor": None, "revision": 1}
    with pytest.raises(StopIteration) as done:
        op.send(core.Response(200, {}, json.dumps(body).encode()))
    assert done.value.value == ["a"]


# -- TTL, expiry and events --------------------------------------------------------------------


def test_ttl_is_sent_in_seconds_and_checked_before_sending() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"version": 1})

    memory = mock(handler)
    memory.set("k", 1, ttl=30)
    memory.set("k", 1, ttl=0.5, expected_version=1)
    memory.set("k", 1, ttl=timedelta(minutes=2))
    memory.set("k", 1)
    bodies = [json.loads(r.content) for r in seen]
    assert [b.get("ttl") for b in bodies] == [30, 0.5, 120.0, None]
    assert "ttl" not in bodies[3]
    assert bodies[1] == {"value": 1, "expected_version": 1, "ttl": 0.5}
    for bad in [0, -1, 0.0, float("nan"), float("inf"), True, "30", timedelta(0), [1]]:
        with pytest.raises(InvalidRequest, match="ttl"):
            memory.set("k", 1, ttl=bad)  # type: ignore[arg-type]
    assert len(seen) == 4


def test_item_carries_expires_at_from_unix_seconds() -> None:
    item = {"value": 1, "version": 3, "created_revision": 1, "created_at": 1.5, "updated_at": 2.5}
    answers = [{**item, "expires_at": 1_800_000_000.000001}, {**item, "expires_at": None}, item]
    memory = mock(lambda request: httpx.Response(200, json=answers.pop(0)))
    first = memory.item("k")
    assert first is not None
    assert first.expires_at == datetime(2027, 1, 15, 8, 0, 0, 1, tzinfo=UTC)
    assert [memory.item("k").expires_at for _ in range(2)] == [None, None]  # type: ignore[union-attr]


def test_history_events_know_their_key_and_keep_unknown_fields() -> None:
    at = "2026-11-21T10:00:00.000001Z"
    events = [
        {"revision": 4, "op": "expire", "value": None, "at": at, "reason": None},
        {
            "revision": 3,
            "op": "set",
            "value": 1,
            "at": at,
            "expires_at": "2026-11-21T11:00:00.000001Z",
            "actor": "ci",
            "run": "r-1",
            "agent": "planner",
            "reason": "tidy up",
            "future_field": [1],
        },
    ]
    memory = mock(lambda r: httpx.Response(200, json={"events": events, "next_cursor": None}))
    expired, written = memory.history("k")
    assert expired.key == written.key == "k"
    assert (expired.op, expired.expires_at, expired.actor, expired.extra) == (
        "expire",
        None,
        None,
        {},
    )
    assert written.expires_at == datetime(2026, 11, 21, 11, 0, 0, 1, tzinfo=UTC)
    assert (written.actor, written.run, written.agent, written.reason) == (
        "ci",
        "r-1",
        "planner",
        "tidy up",
    )
    assert written.extra == {"future_field": [1]}
