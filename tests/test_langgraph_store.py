"""``BotWireStore`` against LangGraph's own ``InMemoryStore`` on random op sequences (sync and
async), a compiled ``StateGraph`` using the injected store, the name mapping, TTL and the extras.

The differential test normalises two documented differences: search order (BotWire: namespace
tuple, then key; ``InMemoryStore``: insertion order), so the oracle's full answer is sorted
before ``offset``/``limit`` are applied, and a namespace counts as present while it holds an
item (``InMemoryStore`` keeps empty namespaces, even ones only read, so they are pruned).
``InMemoryStore`` has no TTL: the oracle gets the puts without one (TTLs are an hour long).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from client_support import serve
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, InvalidNamespaceError
from langgraph.store.memory import InMemoryStore
from server_process import ServerProcess

from botwire import InvalidRequest
from botwire.langgraph import BotWireStore
from botwire_client import tuple_names

pytestmark = pytest.mark.e2e

NAMESPACES = [
    ("a",),
    ("a", "b"),
    ("a", "b", "c"),
    ("a b",),
    ("x", "a/b"),
    ("x", "50%"),
    ("x", "b"),
    ("é", "b", "c"),
]
KEYS = ["k1", "k2", "k 3", "é", "k/4"]
FILTERS: list[dict[str, Any]] = [
    {"s": "x"},
    {"n": {"$gt": 2}},
    {"n": {"$gte": 1, "$lte": 3}},
    {"n": 2},
    {"n": {"$eq": 2.0}},
    {"n": {"$ne": 1}},
    {"s": {"$ne": "y"}},
    {"nested": {"v": 1}},
    {"nested": {"v": {"$lt": 2}}},
    {"tags": ["p", "q"]},
    {"missing": None},
    {"s": "x", "n": {"$lte": 4}},
]
MATCH_PATHS = [("a",), ("a", "b"), ("x",), ("*", "b"), ("a", "*", "c"), ("b",), ("c",), ("é",)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


def fresh_store(server: ServerProcess) -> BotWireStore:
    return BotWireStore(server.url, root=f"lg{uuid.uuid4().hex[:10]}")


def random_value(rng: random.Random) -> dict[str, Any]:
    value: dict[str, Any] = {"n": rng.choice([0, 1, 2, 2.0, 2.5, 3, 4, 5]), "s": rng.choice("xyz")}
    if rng.random() < 0.5:
        value["nested"] = {"v": rng.randint(0, 2)}
    if rng.random() < 0.3:
        value["tags"] = rng.choice([["p", "q"], ["q", "p"], ["p"]])
    return value


def random_ops(rng: random.Random, n: int) -> list[tuple[str, dict[str, Any]]]:
    ops: list[tuple[str, dict[str, Any]]] = []
    for _ in range(n):
        kind = rng.choices(["put", "get", "delete", "search", "list"], [5, 2, 2, 3, 2])[0]
        ns, key = rng.choice(NAMESPACES), rng.choice(KEYS)
        if kind == "put":
            ttl = 60.0 if rng.random() < 0.3 else None
            ops.append(("put", {"ns": ns, "key": key, "value": random_value(rng), "ttl": ttl}))
        elif kind in ("get", "delete"):
            ops.append((kind, {"ns": ns, "key": key}))
        elif kind == "search":
            prefix = rng.choice([(), ("a",), ("a", "b"), ("x",), ("x", "a/b"), ("q",)])
            ops.append(
                (
                    "search",
                    {
                        "prefix": prefix,
                        "filter": rng.choice([None, *FILTERS]),
                        "limit": rng.choice([1, 2, 3, 10]),
                        "offset": rng.choice([0, 0, 1, 2, 5]),
                    },
                )
            )
        else:
            ops.append(
                (
                    "list",
                    {
                        "prefix": rng.choice([None, *MATCH_PATHS]),
                        "suffix": rng.choice([None, None, *MATCH_PATHS]),
                        "max_depth": rng.choice([None, 1, 2, 3]),
                        "limit": rng.choice([1, 2, 100]),
                        "offset": rng.choice([0, 0, 1, 3]),
                    },
                )
            )
    return ops


def prune(oracle: InMemoryStore) -> None:
    # InMemoryStore keeps a namespace once read or emptied; BotWireStore lists it while it
    # holds an item (as LangGraph's database stores do).
    for ns in [ns for ns, items in oracle._data.items() if not items]:
        del oracle._data[ns]


def oracle_answer(oracle: InMemoryStore, kind: str, a: dict[str, Any]) -> Any:
    if kind == "put":
        oracle.put(a["ns"], a["key"], a["value"])
        return None
    if kind == "get":
        item = oracle.get(a["ns"], a["key"])
        return None if item is None else (item.namespace, item.key, item.value)
    if kind == "delete":
        oracle.delete(a["ns"], a["key"])
        return None
    prune(oracle)
    if kind == "search":
        every = oracle.search(a["prefix"], filter=a["filter"], limit=10**6)
        ordered = sorted(((i.namespace, i.key, i.value) for i in every), key=lambda t: t[:2])
        return ordered[a["offset"] : a["offset"] + a["limit"]]
    return oracle.list_namespaces(
        prefix=a["prefix"],
        suffix=a["suffix"],
        max_depth=a["max_depth"],
        limit=a["limit"],
        offset=a["offset"],
    )


def store_answer(store: BaseStore, kind: str, a: dict[str, Any]) -> Any:
    if kind == "put":
        store.put(a["ns"], a["key"], a["value"], ttl=a["ttl"])
        return None
    if kind == "get":
        item = store.get(a["ns"], a["key"])
        return None if item is None else (item.namespace, item.key, item.value)
    if kind == "delete":
        store.delete(a["ns"], a["key"])
        return None
    if kind == "search":
        found = store.search(a["prefix"], filter=a["filter"], limit=a["limit"], offset=a["offset"])
        return [(i.namespace, i.key, i.value) for i in found]
    return store.list_namespaces(
        prefix=a["prefix"],
        suffix=a["suffix"],
        max_depth=a["max_depth"],
        limit=a["limit"],
        offset=a["offset"],
    )


async def astore_answer(store: BaseStore, kind: str, a: dict[str, Any]) -> Any:
    if kind == "put":
        await store.aput(a["ns"], a["key"], a["value"], ttl=a["ttl"])
        return None
    if kind == "get":
        item = await store.aget(a["ns"], a["key"])
        return None if item is None else (item.namespace, item.key, item.value)
    if kind == "delete":
        await store.adelete(a["ns"], a["key"])
        return None
    if kind == "search":
        found = await store.asearch(
            a["prefix"], filter=a["filter"], limit=a["limit"], offset=a["offset"]
        )
        return [(i.namespace, i.key, i.value) for i in found]
    return await store.alist_namespaces(
        prefix=a["prefix"],
        suffix=a["suffix"],
        max_depth=a["max_depth"],
        limit=a["limit"],
        offset=a["offset"],
    )


def run_differential(server: ServerProcess, seed: int, n: int, *, use_async: bool) -> None:
    rng = random.Random(seed)
    store, oracle = fresh_store(server), InMemoryStore()
    runner = asyncio.Runner()
    try:
        for step, (kind, args) in enumerate(random_ops(rng, n)):
            if use_async:
                got = runner.run(astore_answer(store, kind, args))
            else:
                got = store_answer(store, kind, args)
            expected = oracle_answer(oracle, kind, args)
            assert got == expected, f"seed {seed} step {step}: {kind} {args}"
    finally:
        runner.run(store.aclose())
        runner.close()
        store.close()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_same_answers_as_inmemorystore(server: ServerProcess, use_async: bool) -> None:
    run_differential(server, 1 if use_async else 2, 50, use_async=use_async)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 16))
def test_same_answers_as_inmemorystore_long(server: ServerProcess, seed: int) -> None:
    run_differential(server, seed, 400, use_async=seed % 2 == 1)


def test_batch_mixes_ops_in_few_requests(server: ServerProcess) -> None:
    from langgraph.store.base import GetOp, PutOp, SearchOp

    store = fresh_store(server)
    sent: list[str] = []
    original = store.memory._send

    def counting(client: Any, request: Any) -> Any:
        sent.append(f"{request.method} {request.path}")
        return original(client, request)

    store.memory._send = counting  # type: ignore[method-assign]
    puts = [PutOp(("u", "ada"), f"m{i}", {"i": i}) for i in range(50)]
    assert store.batch(puts) == [None] * 50
    assert len(sent) == 1 and sent[0].endswith("/batch")
    sent.clear()
    results = store.batch(
        [
            *(GetOp(("u", "ada"), f"m{i}") for i in range(0, 50, 5)),
            SearchOp(("u",), {"i": {"$gte": 48}}),
            PutOp(("u", "ada"), "m0", None),
        ]
    )
    got = [r.value for r in results[:10]]  # type: ignore[union-attr]
    assert got == [{"i": i} for i in range(0, 50, 5)]
    assert [i.key for i in results[10]] == ["m48", "m49"]  # type: ignore[union-attr]
    # one multi-get; the namespace listing and one filtered listing; a read of the deleted
    # key and one batch
    assert [s.split(" ")[0] for s in sent] == ["POST", "GET", "POST", "POST", "POST"]
    assert store.get(("u", "ada"), "m0") is None


def test_names_round_trip_injectively(server: ServerProcess) -> None:
    store = fresh_store(server)
    spaces = [("a/b",), ("a", "b"), ("a%2Fb",), ("tab\there", "new\nline"), ("%",), ("é", "/")]
    keys = ["", ".", "..", "%", "%25", "a\x01b", "/", "k"]
    for i, ns in enumerate(spaces):
        for j, key in enumerate(keys):
            store.put(ns, key, {"ij": [i, j]})
    assert store.list_namespaces() == sorted(spaces)
    for i, ns in enumerate(spaces):
        found = store.search(ns, limit=100)
        assert sorted((it.key, it.value["ij"]) for it in found if it.namespace == ns) == sorted(
            (key, [i, j]) for j, key in enumerate(keys)
        )
        for key in keys:
            item = store.get(ns, key)
            assert item is not None and (item.namespace, item.key) == (ns, key)
    names = {tuple_names.namespace_name("lg", ns) for ns in spaces}
    assert len(names) == len(spaces)
    assert {tuple_names.key_name(k) for k in keys}.__len__() == len(keys)
    assert tuple_names.namespace_name("lg", ("a/b",)) == "lg:a%2Fb"


def test_clear_errors(server: ServerProcess) -> None:
    store = fresh_store(server)
    with pytest.raises(InvalidRequest, match="no semantic index"):
        store.search(("a",), query="what does ada like?")
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"v": 1})
    with pytest.raises(InvalidRequest, match="Bad filter: unknown operator"):
        store.put(("f",), "k", {"v": 1})
        store.search(("f",), filter={"v": {"$in": [1]}})


def test_ttl_expires_and_refresh_keeps_it(server: ServerProcess) -> None:
    store = fresh_store(server)
    ns = ("t",)
    store.put(ns, "short", {"v": 1}, ttl=1.5 / 60)  # minutes, as in LangGraph
    store.put(ns, "kept", {"v": 2}, ttl=1.5 / 60)
    store.put(ns, "forever", {"v": 3})
    time.sleep(0.9)
    assert store.get(ns, "kept") is not None  # refresh_ttl: 1.5 s from now
    assert store.get(ns, "short", refresh_ttl=False) is not None
    time.sleep(0.9)
    assert store.get(ns, "short") is None
    assert store.get(ns, "kept", refresh_ttl=False) is not None
    assert [i.key for i in store.search(ns, refresh_ttl=False)] == ["forever", "kept"]
    time.sleep(0.8)
    assert [i.key for i in store.search(ns)] == ["forever"]


def test_history_get_at_and_undo(server: ServerProcess) -> None:
    store = fresh_store(server)
    ns = ("users", "ada")
    store.put(ns, "prefs", {"theme": "light"})
    before = store.head(ns)
    store.put(ns, "prefs", {"theme": "dark"})
    store.put(ns, "notes", {"text": "likes tea"})
    assert [e.value for e in store.history(ns, "prefs")] == [{"theme": "dark"}, {"theme": "light"}]
    old = store.get_at(ns, "prefs", before)
    assert old is not None and (old.namespace, old.key, old.value) == (
        ns,
        "prefs",
        {"theme": "light"},
    )
    done = store.rollback(ns, before)
    assert sorted((c.key, c.op) for c in done.changes) == [("notes", "delete"), ("prefs", "set")]
    assert store.get(ns, "prefs").value == {"theme": "light"}  # type: ignore[union-attr]
    assert store.get(ns, "notes") is None


class State(TypedDict):
    user: str
    text: str
    recalled: list[str]


def remember(state: State, *, store: BaseStore) -> dict[str, Any]:
    ns = ("memories", state["user"])
    n = len(store.search(ns, limit=1000))
    store.put(ns, f"m{n:03d}", {"text": state["text"], "n": n})
    return {}


def recall(state: State, *, store: BaseStore) -> dict[str, Any]:
    found = store.search(("memories", state["user"]), limit=1000)
    return {"recalled": [i.value["text"] for i in found]}


def test_a_compiled_graph_uses_the_store_across_threads(server: ServerProcess) -> None:
    store = fresh_store(server)
    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    graph = builder.compile(store=store)
    first = graph.invoke(
        {"user": "ada", "text": "likes tea", "recalled": []},
        {"configurable": {"thread_id": "t1"}},
    )
    assert first["recalled"] == ["likes tea"]
    second = asyncio.run(
        graph.ainvoke(
            {"user": "ada", "text": "lives in Paris", "recalled": []},
            {"configurable": {"thread_id": "t2"}},
        )
    )
    assert second["recalled"] == ["likes tea", "lives in Paris"]
    other = graph.invoke({"user": "bob", "text": "hi", "recalled": []})
    assert other["recalled"] == ["hi"]
    assert store.list_namespaces(prefix=("memories",)) == [("memories", "ada"), ("memories", "bob")]


def test_the_readme_quick_start_runs_as_written(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_client_readme import readme_block

    monkeypatch.setenv("BOTWIRE_URL", server.url)
    scope: dict[str, Any] = {}
    exec(compile(readme_block("### LangGraph long-term memory"), "README.md", "exec"), scope)
    store = scope["store"]
    assert store.namespace_name(("memories", "ada")) == "lg:memories/ada"
    assert len(store.history(("memories", "ada"), "m001")) == 2  # set, then the undo's delete


def test_import_botwire_needs_no_framework() -> None:
    import subprocess
    import sys

    check = (
        "import sys, botwire; heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'langgraph', 'langchain_core', 'autogen_core', 'autogen_agentchat'}); print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
