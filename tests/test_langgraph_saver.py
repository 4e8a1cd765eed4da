"""``BotWireSaver`` beyond the conformance suite, on a real server: how many requests a put
and a read of the latest checkpoint cost, what a put writes (one revision; only changed
channels), the thread mapping, encryption at rest, values over the limit, and a compiled
``StateGraph``: history, time travel, interrupts, a restart of the process between two turns
and two processes on two threads at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import langgraph_chat
import pytest
from client_support import UNLIMITED, fresh_namespace, serve, subprocess_env
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.types import Command
from server_process import ServerProcess

from botwire import Memory, TooLarge
from botwire.langgraph import BotWireSaver
from botwire_client.langgraph_saver import layout

pytestmark = pytest.mark.e2e

CHAT = Path(__file__).with_name("langgraph_chat.py")
VALUE_LIMIT = 32768


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory, {**UNLIMITED, "BOTWIRE_VALUE_MAX_BYTES": str(VALUE_LIMIT)})


class Counting(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


class AsyncCounting(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return await super().handle_async_request(request)


def _saver(server: ServerProcess, **kw: Any) -> BotWireSaver:
    return BotWireSaver(server.url, prefix=f"{fresh_namespace('lg')}/", **kw)


def _put(
    saver: BotWireSaver,
    thread: str,
    values: dict[str, Any],
    versions: dict[str, Any],
    new: dict[str, Any],
    parent: str | None = None,
    checkpoint_ns: str = "",
) -> dict[str, Any]:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = versions
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": checkpoint_ns}
    if parent:
        conf["checkpoint_id"] = parent
    stored = saver.put({"configurable": conf}, checkpoint, {"source": "loop", "step": 0}, new)
    return dict(stored)


def _thread(saver: BotWireSaver, length: int, thread: str = "t") -> str:
    parent = None
    for step in range(length):
        versions = {"messages": step + 1, "step": step + 1, "static": 1}
        values = {"messages": [f"m{i}" for i in range(step + 1)], "step": step, "static": "s"}
        new = {"messages": step + 1, "step": step + 1} if step else versions
        parent = _put(saver, thread, values, versions, new, parent)["configurable"]["checkpoint_id"]
    assert parent is not None
    return parent


def test_latest_checkpoint_costs_two_requests_whatever_the_thread_length(
    server: ServerProcess,
) -> None:
    transport = Counting()
    prefix = f"{fresh_namespace('lg')}/"
    saver = BotWireSaver(
        memory=Memory(prefix + "#runs", server.url, transport=transport), prefix=prefix
    )
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    for length in (1, 40):
        saver.delete_thread("t")
        latest = _thread(saver, length)
        saver.put_writes(
            {"configurable": {**config["configurable"], "checkpoint_id": latest}},
            [("messages", ["w"])],
            "task-1",
        )
        transport.requests.clear()
        tup = saver.get_tuple(config)
        assert tup is not None and tup.checkpoint["id"] == latest
        assert tup.checkpoint["channel_values"]["step"] == length - 1
        assert tup.checkpoint["channel_values"]["static"] == "s"
        assert tup.pending_writes == [("task-1", "messages", ["w"])]
        assert len(transport.requests) == 2, (length, transport.requests)
    # A put is one request: the batch of the record and its changed blobs.
    transport.requests.clear()
    _put(saver, "t", {"step": 99}, {"step": 99}, {"step": 99})
    assert [r.split(" ")[0] for r in transport.requests] == ["POST"]
    assert transport.requests[0].endswith("/batch")


def test_writes_longer_than_a_page_come_back_whole_and_in_order(server: ServerProcess) -> None:
    saver = _saver(server)
    latest = _thread(saver, 3)
    stored = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": latest}}
    for task in ("task-b", "task-a"):
        saver.put_writes(stored, [(f"ch{i}", i) for i in range(12)], task, task_path=task)
    # A repeat keeps the first value of a regular write and replaces a special one.
    saver.put_writes(stored, [("ch0", "again"), ("__error__", "boom")], "task-a", "task-a")
    saver.put_writes(stored, [("__error__", "boom 2")], "task-a", "task-a")
    expected = [("task-a", "__error__", "boom 2")]
    expected += [(task, f"ch{i}", i) for task in ("task-a", "task-b") for i in range(12)]
    for tup in (saver.get_tuple({"configurable": {"thread_id": "t"}}), saver.get_tuple(stored)):
        assert tup is not None and tup.pending_writes == expected
    listed = list(saver.list({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}))
    assert [len(t.pending_writes or []) for t in listed] == [25, 0, 0]


async def test_async_reads_cost_the_same(server: ServerProcess) -> None:
    transport = AsyncCounting()
    prefix = f"{fresh_namespace('lg')}/"
    saver = BotWireSaver(
        memory=Memory(prefix + "#runs", server.url, async_transport=transport), prefix=prefix
    )
    await asyncio.to_thread(_thread, BotWireSaver(server.url, prefix=prefix), 25)
    tup = await saver.aget_tuple({"configurable": {"thread_id": "t"}})
    assert tup is not None and tup.checkpoint["channel_values"]["step"] == 24
    assert len(transport.requests) == 2, transport.requests
    transport.requests.clear()
    listed = [
        t
        async for t in saver.alist(
            {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, limit=10
        )
    ]
    assert [t.checkpoint["channel_values"]["step"] for t in listed] == list(range(24, 14, -1))
    assert len(transport.requests) == 2, transport.requests
    await saver.memory.aclose()


def test_a_put_is_one_revision_with_only_the_changed_channels(server: ServerProcess) -> None:
    saver = _saver(server)
    first = _put(saver, "t", {"a": 1, "b": 2}, {"a": 1, "b": 1}, {"a": 1, "b": 1})
    memory = Memory(saver.namespace("t"), server.url)
    head = memory.head()
    _put(
        saver,
        "t",
        {"a": 1, "b": 3},
        {"a": 1, "b": 2},
        {"b": 2},
        first["configurable"]["checkpoint_id"],
    )
    events = list(memory.changes(after=head))
    assert {e.revision for e in events} == {head + 1}
    blobs = sorted(e.key for e in events if e.key and e.key.startswith("b/"))
    assert blobs == ["b//b/2"]
    assert len([e for e in events if e.key and e.key.startswith("c/")]) == 1


def test_prune_keeps_the_blobs_the_latest_checkpoint_shares(server: ServerProcess) -> None:
    saver = _saver(server)
    _thread(saver, 5)  # "static" is written by the first checkpoint only, then shared
    before = saver.get_tuple({"configurable": {"thread_id": "t"}})
    saver.prune(["t"])
    keys = Memory(saver.namespace("t"), server.url).list_keys()
    assert sorted(k for k in keys if k.startswith("b/")) == [
        "b//messages/5",
        "b//static/1",
        "b//step/5",
    ]
    assert len([k for k in keys if k.startswith("c/")]) == 1
    after = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert before is not None and after is not None
    assert after.checkpoint == before.checkpoint


async def test_list_without_a_thread_covers_every_thread(server: ServerProcess) -> None:
    saver = _saver(server)
    for thread in ("one", "two/x"):
        _thread(saver, 3, thread)
    saver.put_writes(
        {"configurable": {"thread_id": "one", "checkpoint_ns": "", "checkpoint_id": "nope"}},
        [("c", 1)],
        "orphan",
    )
    listed = [(t.config["configurable"]["thread_id"], t.metadata["step"]) for t in saver.list(None)]
    assert sorted(listed) == sorted((t, 0) for t in ("one", "two/x") for _ in range(3))
    assert len(list(saver.list(None, limit=4))) == 4
    alisted = [t.config["configurable"]["thread_id"] async for t in saver.alist(None, limit=5)]
    assert sorted(alisted) == ["one", "one", "one", "two/x", "two/x"]
    # Without checkpoint_ns in the config: every checkpoint namespace of the thread.
    _put(saver, "one", {"v": 1}, {"v": 1}, {"v": 1}, checkpoint_ns="sub")
    assert len(list(saver.list({"configurable": {"thread_id": "one"}}))) == 4
    await saver.memory.aclose()


def test_delete_for_runs_takes_a_graph_run_back_in_every_thread(server: ServerProcess) -> None:
    saver = _saver(server)
    app = langgraph_chat.build(saver)

    def say(thread: str, text: str, run: str) -> None:
        conf = {**langgraph_chat.config(thread), "metadata": {"run_id": run}}
        app.invoke({"messages": [HumanMessage(text)]}, conf)

    for thread in ("a", "b"):
        say(thread, "hi", "run-1")
        say(thread, "oops", "run-2")
    saver.delete_for_runs(["run-2"])
    for thread in ("a", "b"):
        assert langgraph_chat.contents(app, thread)["messages"] == ["hi", "#1 heard hi"]
        history = app.get_state_history(langgraph_chat.config(thread))
        assert {s.metadata["run_id"] for s in history} == {"run-1"}
    assert Memory(saver.runs_namespace, server.url).list_keys() == [
        layout.run_index_key("run-1", saver.namespace(t)) for t in ("a", "b")
    ]


def test_a_bad_run_is_undone_by_botwire_run_revert(server: ServerProcess) -> None:
    """Each checkpoint write carries its LangGraph run as BotWire-Run, so the event log knows
    which run wrote what and Memory.revert_run takes one run's turn back."""
    saver = _saver(server)
    app = langgraph_chat.build(saver)
    for text, run in (("hi", "run-1"), ("oops", "run-2")):
        conf = {**langgraph_chat.config("t"), "metadata": {"run_id": run}}
        app.invoke({"messages": [HumanMessage(text)]}, conf)
    with Memory(saver.namespace("t"), server.url) as m:
        assert m.run_events("run-2") and m.run_events("run-1")
        preview = m.revert_run("run-2", dry_run=True)
        assert preview.changes and preview.skipped == ()
        m.revert_run("run-2")
    assert langgraph_chat.contents(app, "t")["messages"] == ["hi", "#1 heard hi"]


def test_import_botwire_needs_no_langgraph() -> None:
    code = "import botwire, sys; assert not any(m.startswith('langgraph') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_threads_and_checkpoint_namespaces_map_injectively(server: ServerProcess) -> None:
    saver = _saver(server)
    threads = ["a/b", "a%2Fb", "a", "#runs", "#x", "x" * 300, "y" * 300, "é ✓"]
    names = {saver.namespace(t) for t in threads}
    assert len(names) == len(threads)
    assert saver.runs_namespace not in names
    for thread in threads:
        for ns in ("", "sub/1", "sub%2F1"):
            _put(saver, thread, {"v": [thread, ns]}, {"v": 1}, {"v": 1}, checkpoint_ns=ns)
    for thread in threads:
        for ns in ("", "sub/1", "sub%2F1"):
            tup = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ns}})
            assert tup is not None
            assert tup.checkpoint["channel_values"]["v"] == [thread, ns]
            assert tup.config["configurable"]["thread_id"] == thread
    assert layout.unreverse_id(layout.reverse_id("1ef-ü")) == "1ef-ü"
    ids = ["1", "10", "2", "1ef4f797-8335-6428-8001-8a1503f9b875", "1ef4f797-8335-6428-8002-0"]
    assert sorted(ids, key=layout.reverse_id) == sorted(ids, reverse=True)


def test_encrypted_serde_stores_no_plaintext(server: ServerProcess) -> None:
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"k" * 32)
    saver = _saver(server, serde=serde)
    secret = "the launch code is 0000"
    stored = _put(saver, "t", {"secret": secret}, {"secret": 1}, {"secret": 1})
    saver.put_writes(stored, [("secret", secret)], "task")
    raw = json.dumps(Memory(saver.namespace("t"), server.url).snapshot())
    assert "launch" not in raw and "aes" in raw
    tup = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert tup is not None and tup.checkpoint["channel_values"]["secret"] == secret
    assert tup.pending_writes == [("task", "secret", secret)]
    plain = BotWireSaver(server.url, prefix=saver.prefix)
    with pytest.raises(Exception):  # noqa: B017 - whatever the serializer raises, not the value
        plain.get_tuple({"configurable": {"thread_id": "t"}})


def test_a_channel_over_the_value_limit_writes_nothing(server: ServerProcess) -> None:
    saver = _saver(server)
    _put(saver, "t", {"small": 1}, {"small": 1}, {"small": 1})
    with pytest.raises(TooLarge, match="BOTWIRE_VALUE_MAX_BYTES"):
        _put(
            saver,
            "t",
            {"small": 2, "big": "x" * VALUE_LIMIT},
            {"small": 2, "big": 1},
            {"small": 2, "big": 1},
        )
    tup = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert tup is not None and tup.checkpoint["channel_values"] == {"small": 1}


def _travel(checkpointer: Any) -> list[Any]:
    """History and time travel on one thread; what a test compares between two savers."""
    app = langgraph_chat.build(checkpointer)
    thread = "chat"
    for text in ("hi", "how are you", "bye"):
        langgraph_chat.say(app, thread, text)
    conf = langgraph_chat.config(thread)
    history = list(app.get_state_history(conf))
    after_first = next(s for s in history if len(s.values.get("messages", [])) == 2)
    # Resume from the checkpoint after the first turn: a new branch, the old one kept.
    app.invoke({"messages": [HumanMessage("again")]}, after_first.config)
    later = list(app.get_state_history(conf))
    page = list(app.get_state_history(conf, before=later[2].config, limit=3))
    return [
        langgraph_chat.contents(app, thread),
        [(len(s.values.get("messages", [])), s.next, s.metadata["step"]) for s in history],
        [(len(s.values.get("messages", [])), s.next, s.metadata["source"]) for s in later],
        [p.config["configurable"]["checkpoint_id"] for p in page]
        == [x.config["configurable"]["checkpoint_id"] for x in later[3:6]],
    ]


def test_a_graph_keeps_history_and_travels_back_in_time(server: ServerProcess) -> None:
    ours = _travel(_saver(server))
    theirs = _travel(InMemorySaver())
    assert ours[0]["messages"] == ["hi", "#1 heard hi", "again", "#2 heard again"]
    assert ours[3] is True
    assert ours == theirs  # the same history and branches as LangGraph's in-memory saver


async def test_a_graph_runs_on_the_async_methods(server: ServerProcess) -> None:
    saver = _saver(server)
    app = langgraph_chat.build(saver)
    conf = langgraph_chat.config("async")
    for text in ("hi", "order tea"):
        await app.ainvoke({"messages": [HumanMessage(text)]}, conf)
    assert (await app.aget_state(conf)).next == ("confirm",)
    await app.ainvoke(Command(resume="placed"), conf)
    state = await app.aget_state(conf)
    assert [m.content for m in state.values["messages"]][-2:] == [
        "#2 heard order tea",
        "order placed",
    ]
    assert len([s async for s in app.aget_state_history(conf)]) == len(
        list(app.get_state_history(conf))
    )
    await saver.memory.aclose()


def _chat(server: ServerProcess, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(CHAT), *args],
        env=subprocess_env(server.url),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_a_new_process_continues_the_conversation(server: ServerProcess) -> None:
    thread = f"restart-{uuid.uuid4().hex[:6]}"
    first = _chat(server, thread, "say", "hi", "order a pizza")
    assert first["next"] == ["confirm"]  # interrupted, then the process exited
    resumed = _chat(server, thread, "resume", "placed")
    assert resumed["next"] == []
    assert resumed["messages"][-2:] == ["#2 heard order a pizza", "order placed"]
    later = _chat(server, thread, "say", "thanks")
    assert later["messages"] == [
        "hi",
        "#1 heard hi",
        "order a pizza",
        "#2 heard order a pizza",
        "order placed",
        "thanks",
        "#3 heard thanks",
    ]


@pytest.mark.slow
def test_two_processes_on_two_threads_lose_nothing(server: ServerProcess) -> None:
    turns = [f"t{i}" for i in range(15)]
    threads = [f"pair-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHAT), thread, "say", *turns],
            env=subprocess_env(server.url),
            stdout=subprocess.PIPE,
            text=True,
        )
        for thread in threads
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    expected = [x for i, t in enumerate(turns) for x in (t, f"#{i + 1} heard {t}")]
    for out in outs:
        assert json.loads(out.strip().splitlines()[-1])["messages"] == expected
    app = langgraph_chat.build(BotWireSaver(server.url))
    for thread in threads:
        assert langgraph_chat.contents(app, thread)["messages"] == expected
        assert len(list(app.get_state_history(langgraph_chat.config(thread)))) == 3 * len(turns)


def test_resume_after_an_interrupt_in_process(server: ServerProcess) -> None:
    app = langgraph_chat.build(_saver(server))
    thread = "order"
    langgraph_chat.say(app, thread, "order tea")
    assert langgraph_chat.contents(app, thread)["next"] == ["confirm"]
    app.invoke(Command(resume="placed"), langgraph_chat.config(thread))
    assert langgraph_chat.contents(app, thread)["messages"][-1] == "order placed"


README_RUN = """
import json, sys
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

# The model of the README's quick start: it answers with what it was shown.
llm = RunnableLambda(lambda messages: AIMessage(" | ".join(m.content for m in messages)))
exec(compile({block!r}, "README.md", "exec"))
print(json.dumps([m.content for m in graph.get_state(config).values["messages"]]))
"""


@pytest.mark.slow
def test_the_readme_quick_start_remembers_across_processes(server: ServerProcess) -> None:
    from test_client_readme import readme_block

    block = readme_block("### LangGraph and LangChain 1.x: `BotWireSaver`")
    block = block.replace('"user-42"', f'"readme-{uuid.uuid4().hex[:6]}"')
    script = README_RUN.format(block=block)
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            env=subprocess_env(server.url),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        for _ in range(2)
    ]
    first, second = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert first[1] == "Hi, I'm Ann"
    assert (
        first[3] == "Hi, I'm Ann | Hi, I'm Ann | What's my name?"
    )  # the second turn saw the first
    assert second[:4] == first and len(second) == 8  # the next process went on from there
    assert second[-1].startswith("Hi, I'm Ann | Hi, I'm Ann | What's my name?")


def test_every_method_has_an_async_twin_with_the_same_signature() -> None:
    import inspect

    names = ["get_tuple", "list", "put", "put_writes", "delete_thread"]
    names += ["delete_for_runs", "copy_thread", "prune"]
    for name in names:
        sync, twin = getattr(BotWireSaver, name), getattr(BotWireSaver, "a" + name)
        assert sync.__qualname__.startswith("BotWireSaver."), name  # not LangGraph's stub
        assert twin.__qualname__.startswith("BotWireSaver."), name
        # The same parameters; the results differ only by being awaited (or iterated async).
        assert inspect.signature(sync).parameters == inspect.signature(twin).parameters, name
