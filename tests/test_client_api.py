"""The client's API against a real server process: one suite, run through the sync methods and
through their async twins (``AsyncDriver``), including a model-based test of versions, history,
point-in-time reads and rollback."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from client_support import AsyncDriver, fresh_namespace, serve
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from server_process import ServerProcess

from botwire import (
    BotWireError,
    ConflictError,
    FutureRevision,
    InvalidRequest,
    Memory,
    QuotaExceeded,
    RevisionCompacted,
    ServerUnavailable,
    TooLarge,
)

pytestmark = pytest.mark.e2e

Make = Callable[..., Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


@pytest.fixture(params=["sync", "async"])
def make(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[Make]:
    """``make(namespace=None, **memory_options)``: a Memory (sync) or its async twins."""
    runner = asyncio.Runner() if request.param == "async" else None
    created: list[Memory] = []

    def factory(namespace: str | None = None, **options: Any) -> Any:
        options.setdefault("base_url", server.url)
        memory = Memory(namespace or fresh_namespace(), **options)
        created.append(memory)
        return memory if runner is None else AsyncDriver(memory, runner)

    yield factory
    for memory in created:
        memory.close()
    if runner is not None:
        runner.close()


@pytest.fixture
def api(make: Make) -> Any:
    return make()


JSON_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -17,
    2**62,
    2**70,
    -(10**40),
    -(2**53) - 1,
    3.5,
    -0.25,
    1e300,
    "",
    "plain",
    "ünïcødé ✓ \u0000 \n",
    '{"looks": "like json"}',
    "[1, 2]",
    "null",
    [],
    {},
    [1, "two", None, [3.0, {"four": 4}]],
    {"nested": {"list": [True, None], "n": 1.25}, "": "empty key"},
]


# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", JSON_VALUES, ids=[repr(v)[:20] for v in JSON_VALUES])
def test_every_json_value_comes_back_exactly_as_stored(api: Any, value: Any) -> None:
    api.set("k", value)
    got = api.get("k", "DEFAULT")
    assert got == value and type(got) is type(value)
    item = api.item("k")
    assert item is not None and item.value == value and type(item.value) is type(value)


def test_default_only_when_absent_and_none_is_a_value(api: Any) -> None:
    assert api.get("k") is None
    assert api.get("k", 42) == 42
    assert api.item("k") is None
    assert "k" not in api
    api.set("k", None)
    assert api.get("k", 42) is None
    assert "k" in api
    item = api.item("k")
    assert item is not None and item.value is None
    api.set("zero", 0)
    assert api.get("zero", 42) == 0 and "zero" in api


def test_set_returns_the_new_version_and_item_carries_metadata(api: Any) -> None:
    assert api.head() == 0
    v1 = api.set("a", 1)
    v2 = api.set("b", 2)
    v3 = api.set("a", 3)
    assert (v1, v2, v3) == (1, 2, 3)
    assert api.head() == 3
    item = api.item("a")
    assert item.version == 3 and item.created_revision == 1 and item.key == "a"
    assert item.created_at.tzinfo is not None
    assert item.created_at < item.updated_at
    assert api.delete("a") is True
    assert api.head() == 4
    assert api.set("a", 5) == 5
    assert api.item("a").created_revision == 5  # a new incarnation after the delete


def test_expected_version_conflicts_carry_the_current_version(api: Any) -> None:
    assert api.set("k", "first", expected_version=0) == 1
    with pytest.raises(ConflictError) as caught:
        api.set("k", "again", expected_version=0)
    assert caught.value.current_version == 1 and caught.value.status == 409
    assert "version" in str(caught.value)
    assert api.set("k", "second", expected_version=1) == 2
    with pytest.raises(ConflictError) as caught:
        api.set("k", "stale", expected_version=1)
    assert caught.value.current_version == 2
    with pytest.raises(ConflictError) as caught:
        api.delete("k", expected_version=1)
    assert caught.value.current_version == 2
    assert api.get("k") == "second"
    with pytest.raises(ConflictError) as caught:
        api.set("other", 1, expected_version=7)
    assert caught.value.current_version == 0
    assert api.delete("k", expected_version=2) is True
    assert api.head() == 3  # refused writes wrote nothing


def test_delete_of_an_absent_key_returns_false(api: Any) -> None:
    assert api.delete("never") is False
    api.set("k", 1)
    assert api.delete("k") is True
    assert api.delete("k") is False
    assert api.head() == 2


def test_list_keys_and_its_aliases_page_internally(make: Make) -> None:
    api = make(page_size=3)
    names = [f"key-{i:02d}" for i in range(10)] + ["other"]
    for name in names:
        api.set(name, name)
    assert api.list_keys() == sorted(names)
    assert api.list() == sorted(names)
    assert api.keys() == sorted(names)
    assert api.list_keys("key-0") == [f"key-0{i}" for i in range(10)]
    assert api.list_keys(as_of=2) == ["key-00", "key-01"]
    api.delete("key-05")
    assert "key-05" not in api.list_keys()


def test_history_newest_first_with_limit_and_all(make: Make) -> None:
    api = make(page_size=4)
    for i in range(9):
        api.set("k", i)
    api.set("other", "x")
    api.delete("k")
    events = api.history("k", limit=None)
    assert [e.revision for e in events] == [11, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert events[0].op == "delete" and events[0].value is None
    assert [e.value for e in events[1:]] == list(range(8, -1, -1))
    assert all(e.op == "set" for e in events[1:])
    assert [e.at for e in events] == sorted((e.at for e in events), reverse=True)
    assert [e.revision for e in api.history("k", limit=5)] == [11, 9, 8, 7, 6]
    assert len(api.history("k")) == 10  # default limit 100
    assert api.history("never") == []


def test_as_of_reads_by_revision_and_by_aware_datetime(api: Any) -> None:
    api.set("k", "one")
    api.set("k", "two")
    at_two = api.history("k", limit=1)[0].at
    api.set("k", "three")
    assert api.get("k", as_of=0) is None
    assert api.get("k", as_of=1) == "one"
    assert api.get("k", as_of=2) == "two"
    assert api.get("k", as_of=at_two) == "two"
    assert api.get("k", as_of=at_two.astimezone(timezone_plus_two())) == "two"
    assert api.get("k", as_of=at_two - timedelta(days=1)) is None
    assert api.item("k", as_of=1).version == 1
    assert api.snapshot(as_of=at_two) == {"k": "two"}
    with pytest.raises(ValueError, match="naive"):
        api.get("k", as_of=datetime(2026, 1, 1))
    with pytest.raises(FutureRevision) as caught:
        api.get("k", as_of=99)
    assert caught.value.head == 3


def timezone_plus_two() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=2))


def test_snapshot_pins_one_revision_across_pages(make: Make) -> None:
    api = make(page_size=2)
    for i in range(7):
        api.set(f"k{i}", i)
    api.delete("k3")
    assert api.snapshot() == {f"k{i}": i for i in range(7) if i != 3}
    assert api.snapshot(as_of=4) == {f"k{i}": i for i in range(4)}
    assert api.snapshot(prefix="k1") == {"k1": 1}


def test_rollback_namespace_key_dry_run_and_undo(api: Any) -> None:
    api.set("a", 1)
    api.set("b", 2)
    api.set("a", 10)
    api.set("c", 3)
    api.delete("b")
    assert api.head() == 5
    dry = api.rollback(2, dry_run=True)
    assert dry.dry_run and dry.revision == 5 and sorted(dry.changed) == ["a", "b", "c"]
    assert api.head() == 5 and api.snapshot() == {"a": 10, "c": 3}
    result = api.rollback(2)
    assert result.revision == 6 and sorted(result.changed) == ["a", "b", "c"]
    assert {c.key: (c.op, c.value) for c in result.changes} == {
        "a": ("set", 1),
        "b": ("set", 2),
        "c": ("delete", None),
    }
    assert api.snapshot() == {"a": 1, "b": 2}
    assert api.history("a", limit=1)[0].revision == 6
    again = api.rollback(2)
    assert again.revision == 6 and again.changed == []
    undo = api.rollback(5)
    assert undo.revision == 7 and api.snapshot() == {"a": 10, "c": 3}
    one = api.rollback(datetime.now(UTC) - timedelta(days=1), key="a")
    assert one.changed == ["a"] and api.snapshot() == {"c": 3}
    with pytest.raises(ValueError, match="naive"):
        api.rollback(datetime(2026, 1, 1))


def test_invalid_names_and_values_are_refused_before_sending(make: Make) -> None:
    api = make()
    for bad in ["", ".", "..", "a\x00b", "tab\t", "del\x7f", "x" * 1025, "é" * 513, 42]:
        with pytest.raises(InvalidRequest):
            api.set(bad, 1)
        with pytest.raises(InvalidRequest):
            api.get(bad)
        with pytest.raises(InvalidRequest):
            api.history(bad)
    with pytest.raises(InvalidRequest, match="^Key 'xxxxx.*' is 1025 bytes in UTF-8; the limit"):
        api.set("x" * 1025, 1)
    with pytest.raises(InvalidRequest, match="control character U\\+0000"):
        api.delete("a\x00b")
    with pytest.raises(InvalidRequest, match="holds the control character U\\+000A"):
        api.list_keys("line\n")
    with pytest.raises(InvalidRequest, match="'.' and '..' are never names"):
        api.rollback(0, key="..")
    with pytest.raises(InvalidRequest, match="JSON"):
        api.set("k", {1, 2})
    with pytest.raises(InvalidRequest, match="JSON"):
        api.set("k", float("nan"))
    with pytest.raises(ValueError):
        api.set("k", 1, expected_version=-1)
    for bad_ns in ["", "..", "n" * 257, "é" * 129, "new\nline"]:
        with pytest.raises(InvalidRequest):
            Memory(bad_ns)
    assert api.head() == 0


# Keys as agent code writes them: each travels as one percent-encoded path segment.
NAME_KEYS = [
    "user:42",
    "alice@example.com",
    "notes/2026-11.md",
    "a/../b",
    "two words",
    " ",
    "café",
    "🙂",
    "100%",
    "%2F",
    "q?x=1#frag",
    "a+b",
    "k" * 1024,
    "🙂" * 256,
]


def test_any_valid_key_round_trips(make: Make) -> None:
    api = make()
    for i, key in enumerate(NAME_KEYS):
        assert api.set(key, {"i": i}) == i + 1
        assert api.get(key) == {"i": i}
        assert api.item(key).key == key
        assert key in api
    assert api.list_keys() == sorted(NAME_KEYS)
    assert api.list_keys("user:") == ["user:42"]
    assert api.list_keys("🙂") == ["🙂", "🙂" * 256]
    assert api.snapshot(prefix="notes/") == {"notes/2026-11.md": {"i": 2}}
    for key in NAME_KEYS:
        assert [e.op for e in api.history(key)] == ["set"]
    assert api.delete("a/../b") and api.get("a/../b", "gone") == "gone"
    assert api.get("a") is None and api.get("b") is None  # no dot segments were resolved
    result = api.rollback(len(NAME_KEYS), key="a/../b")
    assert [(c.key, c.op) for c in result.changes] == [("a/../b", "set")]


def test_any_valid_namespace_works(make: Make) -> None:
    unique = fresh_namespace()
    for ns in [f"user:42/{unique}", f"café 🙂 {unique}", unique.ljust(256, "n"), "é" * 128]:
        api = make(ns)
        api.set("k:1", ns)
        assert api.get("k:1") == ns
        assert api.list_keys() == ["k:1"]
        assert api.head() >= 1
        api.delete("k:1")


def test_base_url_without_a_scheme_is_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidRequest, match="write http://127.0.0.1:8000"):
        Memory("ns", "127.0.0.1:8000")
    with pytest.raises(InvalidRequest, match="^base_url='localhost:8000' has no scheme; write "):
        Memory("ns", "localhost:8000")
    monkeypatch.setenv("BOTWIRE_URL", "localhost:8000")
    with pytest.raises(InvalidRequest, match="^BOTWIRE_URL='localhost:8000' has no scheme"):
        Memory("ns")
    with pytest.raises(InvalidRequest, match="is not an http:// or https:// URL"):
        Memory("ns", "ftp://example.com")
    assert Memory("ns", "https://example.com/api/").base_url == "https://example.com/api"


def test_server_refusals_map_to_the_error_tree(api: Any, server: ServerProcess) -> None:
    with pytest.raises(TooLarge) as too_large:
        api.set("big", "x" * 200_000)
    assert too_large.value.status == 413 and too_large.value.code == "value_too_large"
    with pytest.raises(InvalidRequest) as future:
        api.get("k", as_of=99)  # refused by the server, not before sending
    assert (future.value.status, future.value.code) == (400, "future_revision")
    for i in range(4):
        api.set("k", i)
    response = httpx.post(f"{server.url}/namespaces/{api.namespace}/compact", json={"before": 3})
    assert response.status_code == 200, response.text
    with pytest.raises(RevisionCompacted) as compacted:
        api.get("k", as_of=1)
    assert compacted.value.oldest_revision is not None and compacted.value.oldest_revision > 1
    assert isinstance(compacted.value, BotWireError)
    assert api.get("k") == 3


def test_quota_exceeded_carries_retry_after(tmp_path_factory: pytest.TempPathFactory) -> None:
    for server in serve(tmp_path_factory, {"BOTWIRE_WRITES_PER_DAY": "2"}):
        for mode in ("sync", "async"):
            memory = Memory(fresh_namespace(), server.url)
            with asyncio.Runner() as runner:
                api: Any = memory if mode == "sync" else AsyncDriver(memory, runner)
                api.set("a", 1)
                api.set("a", 2)
                with pytest.raises(QuotaExceeded) as caught:
                    api.set("a", 3)
                assert caught.value.retry_after is not None and caught.value.retry_after > 0
                assert "retry" in str(caught.value).lower()
                assert api.get("a") == 2  # reads stay unlimited
            memory.close()


def test_unreachable_server_raises_server_unavailable(make: Make) -> None:
    from server_process import free_port

    api = make(base_url=f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(ServerUnavailable, match="Could not reach"):
        api.get("k")
    with pytest.raises(ServerUnavailable):
        api.set("k", 1)


# -- the shape of the API ----------------------------------------------------------------------


def test_every_async_twin_has_the_same_signature() -> None:
    twins = {
        name: "a" + name
        for name, member in inspect.getmembers(Memory, inspect.isfunction)
        if not name.startswith("_") and hasattr(Memory, "a" + name) and name not in {"close"}
    }
    # Twins that hand back an object (a batch, an event stream) rather than a result.
    objects = {"batch", "changes", "watch"}
    assert (
        set(twins)
        >= {
            "set",
            "get",
            "item",
            "delete",
            "list_keys",
            "list",
            "keys",
            "history",
            "head",
            "snapshot",
            "rollback",
            "exists",
            "get_many",
            "items_many",
        }
        | objects
    )
    for sync_name, async_name in twins.items():
        sync_method = getattr(Memory, sync_name)
        async_method = getattr(Memory, async_name)
        sync_sig, async_sig = inspect.signature(sync_method), inspect.signature(async_method)
        assert not inspect.iscoroutinefunction(sync_method), sync_name
        if sync_name in objects:
            # Batch / AsyncBatch, EventStream / AsyncEventStream: same arguments, and the
            # async object is the sync one's twin.
            assert not inspect.iscoroutinefunction(async_method), async_name
            assert async_sig.return_annotation == "Async" + sync_sig.return_annotation
            assert async_sig.parameters == sync_sig.parameters, sync_name
        else:
            assert inspect.iscoroutinefunction(async_method), async_name
            assert sync_sig == async_sig, sync_name


def test_the_async_objects_mirror_the_sync_ones() -> None:
    from botwire import AsyncBatch, Batch
    from botwire_client.feed import AsyncEventStream, EventStream

    for sync_kind, async_kind, pairs in [
        (Batch, AsyncBatch, {"commit": "commit", "__enter__": "__aenter__"}),
        (EventStream, AsyncEventStream, {"__next__": "__anext__", "close": "aclose"}),
    ]:
        for sync_name, async_name in pairs.items():
            sync_method = getattr(sync_kind, sync_name)
            async_method = getattr(async_kind, async_name)
            assert inspect.iscoroutinefunction(async_method), async_name
            sync_sig, async_sig = inspect.signature(sync_method), inspect.signature(async_method)
            assert sync_sig.parameters == async_sig.parameters, sync_name
    for name in ["set", "delete", "check"]:
        assert getattr(Batch, name) is getattr(AsyncBatch, name)  # shared, not copied


def test_base_url_argument_then_environment_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Memory("n").base_url == "http://127.0.0.1:8000"
    monkeypatch.setenv("BOTWIRE_URL", "http://example.invalid:9/")
    from_env = Memory("n")
    monkeypatch.setenv("BOTWIRE_URL", "http://changed.invalid")
    assert from_env.base_url == "http://example.invalid:9"  # read when created
    assert Memory("n", "http://arg.invalid").base_url == "http://arg.invalid"


# -- the model-based test ----------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def _text(value: Any) -> str:
    """The JSON text the client sends: rollback compares stored texts, so 1 and 1.0 differ."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class VersionedMemoryModel(RuleBasedStateMachine):
    """Drives a fresh namespace and a plain-Python model of the revision semantics side by side.

    The model keeps the state after every revision (``states[r]``) and each revision's commit
    time (``times[r]``), which the point-in-time reads and rollbacks are checked against.
    """

    def __init__(self, make: Make) -> None:
        super().__init__()
        self.api = make(page_size=2)
        self.states: list[dict[str, Any]] = [{}]
        self.times: list[datetime | None] = [None]
        self.versions: dict[str, int] = {}
        self.created: dict[str, int] = {}
        self.events: dict[str, list[tuple[int, str, Any]]] = {}

    @property
    def head(self) -> int:
        return len(self.states) - 1

    @property
    def state(self) -> dict[str, Any]:
        return self.states[-1]

    def commit(self, changes: dict[str, tuple[str, Any]], probe_key: str) -> int:
        """Record one revision; ``changes`` maps key -> (op, value)."""
        revision = self.head + 1
        state = dict(self.state)
        for key, (op, value) in changes.items():
            self.events.setdefault(key, []).insert(0, (revision, op, value))
            if op == "set":
                if key not in state:
                    self.created[key] = revision
                state[key] = value
                self.versions[key] = revision
            else:
                del state[key]
                del self.versions[key]
                del self.created[key]
        self.states.append(state)
        self.times.append(self.api.history(probe_key, limit=1)[0].at)
        return revision

    @initialize()
    def starts_empty(self) -> None:
        assert self.api.head() == 0 and self.api.snapshot() == {}

    @rule(key=KEYS, value=VALUES)
    def set(self, key: str, value: Any) -> None:
        version = self.api.set(key, value)
        assert version == self.commit({key: ("set", value)}, key)

    @rule(key=KEYS, value=VALUES, stale=st.booleans())
    def compare_and_set(self, key: str, value: Any, stale: bool) -> None:
        current = self.versions.get(key, 0)
        if stale:
            wrong = current + 1
            with pytest.raises(ConflictError) as caught:
                self.api.set(key, value, expected_version=wrong)
            assert caught.value.current_version == current
        else:
            version = self.api.set(key, value, expected_version=current)
            assert version == self.commit({key: ("set", value)}, key)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        if key in self.state:
            assert self.api.delete(key) is True
            self.commit({key: ("delete", None)}, key)
        else:
            assert self.api.delete(key) is False

    @rule(key=KEYS, data=st.data())
    def read_as_of_revision(self, key: str, data: st.DataObject) -> None:
        revision = data.draw(st.integers(0, self.head))
        expected = self.states[revision]
        item = self.api.item(key, as_of=revision)
        if key in expected:
            assert item is not None and item.value == expected[key]
        else:
            assert item is None
        assert self.api.get(key, "absent", as_of=revision) == expected.get(key, "absent")
        assert self.api.list_keys(as_of=revision) == sorted(expected)

    @precondition(lambda self: self.head > 0)
    @rule(data=st.data())
    def read_as_of_time(self, data: st.DataObject) -> None:
        revision = data.draw(st.integers(1, self.head))
        moment = self.times[revision]
        assert moment is not None
        # Several revisions may share a microsecond: the state after the last of them.
        last = max(r for r in range(1, self.head + 1) if (self.times[r] or moment) <= moment)
        assert self.api.snapshot(as_of=moment) == self.states[last]

    @rule()
    def read_above_head_fails(self) -> None:
        with pytest.raises(FutureRevision):
            self.api.snapshot(as_of=self.head + 1)

    @rule(key=KEYS, limit=st.none() | st.integers(1, 5))
    def history(self, key: str, limit: int | None) -> None:
        expected = self.events.get(key, [])
        if limit is not None:
            expected = expected[:limit]
        got = [(e.revision, e.op, e.value) for e in self.api.history(key, limit=limit)]
        assert got == expected

    @rule(data=st.data(), key=st.none() | KEYS, dry_run=st.booleans())
    def rollback(self, data: st.DataObject, key: str | None, dry_run: bool) -> None:
        to = data.draw(st.integers(0, self.head))
        target, now = self.states[to], self.state
        keys = [key] if key is not None else sorted(set(target) | set(now))
        changes: dict[str, tuple[str, Any]] = {}
        for k in keys:
            if k in target and (k not in now or _text(now[k]) != _text(target[k])):
                changes[k] = ("set", target[k])
            elif k not in target and k in now:
                changes[k] = ("delete", None)
        result = self.api.rollback(to, key=key, dry_run=dry_run)
        assert sorted(result.changed) == sorted(changes)
        assert {c.key: (c.op, c.value) for c in result.changes} == changes
        if dry_run or not changes:
            assert result.revision == self.head
        else:
            assert result.revision == self.commit(changes, next(iter(changes)))

    @invariant()
    def current_state_and_versions_match(self) -> None:
        assert self.api.head() == self.head
        assert self.api.snapshot() == self.state
        for key in ["a", "b", "c"]:
            item = self.api.item(key)
            if key in self.state:
                assert item is not None and item.value == self.state[key]
                assert (item.version, item.created_revision) == (
                    self.versions[key],
                    self.created[key],
                )
            else:
                assert item is None and key not in self.api


def test_model_of_versions_history_point_in_time_and_rollback(make: Make) -> None:
    run_state_machine_as_test(
        lambda: VersionedMemoryModel(make),
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
