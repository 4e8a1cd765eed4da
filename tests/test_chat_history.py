"""``BotWireChatHistory`` against a real server: the LangChain contract, sync and native async,
RunnableWithMessageHistory with a fake chat model, and both directions of compatibility with the
stored format of the original ``botwire`` 0.2.1 adapter."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from client_support import fresh_namespace, serve
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    messages_from_dict,
    messages_to_dict,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from server_process import ServerProcess

from botwire import BotWireChatHistory, Memory

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


@pytest.fixture
def namespace() -> str:
    return fresh_namespace("chat")


_opened: list[BotWireChatHistory] = []


def _history(server: ServerProcess, namespace: str, session: str = "s-1") -> BotWireChatHistory:
    history = BotWireChatHistory(session, namespace, base_url=server.url)
    _opened.append(history)
    return history


@pytest.fixture(autouse=True)
async def _close_histories() -> AsyncIterator[None]:
    # Close each history's connections in the test's own event loop, so that none is left for
    # the garbage collector to find (a ResourceWarning) during a later test.
    yield
    while _opened:
        await _opened.pop().memory.aclose()


def test_is_a_langchain_chat_history_with_the_default_namespace(
    monkeypatch: pytest.MonkeyPatch, server: ServerProcess
) -> None:
    monkeypatch.setenv("BOTWIRE_URL", server.url)
    history = BotWireChatHistory(session_id="user-42")
    assert isinstance(history, BaseChatMessageHistory)
    assert history.memory.namespace == "langchain-sessions/user-42"  # one per session
    assert history.memory.base_url == server.url
    history.clear()
    history.add_user_message("hi")
    assert [m.content for m in history.messages] == ["hi"]
    history.clear()
    assert history.messages == []


def test_messages_round_trip_in_order_with_their_types(
    server: ServerProcess, namespace: str
) -> None:
    history = _history(server, namespace)
    assert history.messages == []
    sent: list[BaseMessage] = [
        SystemMessage("be brief"),
        HumanMessage("hello", additional_kwargs={"n": 1}),
        AIMessage("hi there"),
    ]
    history.add_messages(sent[:2])
    history.add_message(sent[2])
    history.add_messages([])
    again = _history(server, namespace)  # a new client reads the same session
    assert again.messages == sent
    assert [type(m) for m in again.messages] == [SystemMessage, HumanMessage, AIMessage]
    memory = Memory(namespace, server.url)
    # One key per message, in langchain_core's dict format, and the session's counter.
    stored = memory.snapshot(prefix="s-1/")
    assert stored == {
        "s-1/seq": {"next": 4, "start": 1, "legacy": False},
        **{f"s-1/m/{n:012d}": d for n, d in enumerate(messages_to_dict(sent), 1)},
    }
    head = memory.head()
    history.clear()
    assert memory.head() == head + 1  # one atomic batch
    assert again.messages == [] and history.messages == []
    assert memory.snapshot(prefix="s-1/") == {"s-1/seq": {"next": 4, "start": 4, "legacy": False}}
    history.add_user_message("after clear")
    assert [m.content for m in again.messages] == ["after clear"]


async def test_native_async_methods(server: ServerProcess, namespace: str) -> None:
    history = _history(server, namespace, "async-1")
    assert await history.aget_messages() == []
    await history.aadd_messages([HumanMessage("a"), AIMessage("b")])
    await history.aadd_messages([HumanMessage("c")])
    assert [m.content for m in await history.aget_messages()] == ["a", "b", "c"]
    assert [m.content for m in history.messages] == ["a", "b", "c"]
    await history.aclear()
    assert await history.aget_messages() == []
    # Native, not the base class's run-in-executor fallbacks.
    for name in ["aget_messages", "aadd_messages", "aclear"]:
        assert getattr(BotWireChatHistory, name) is not getattr(BaseChatMessageHistory, name)


def _chain(server: ServerProcess, namespace: str, replies: list[str]) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    model = FakeListChatModel(responses=replies)
    return RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: _history(server, namespace, session_id),
        input_messages_key="input",
        history_messages_key="history",
    )


# langchain-core 1.x deprecates RunnableWithMessageHistory (in favour of LangGraph) but ships and
# supports it; existing agents still use it.
deprecated_runnable = pytest.mark.filterwarnings(
    "ignore:RunnableWithMessageHistory is deprecated:DeprecationWarning"
)


@deprecated_runnable
def test_inside_runnable_with_message_history(server: ServerProcess, namespace: str) -> None:
    chain = _chain(server, namespace, ["Hello Ann.", "You are Ann."])
    config = {"configurable": {"session_id": "conv-1"}}
    assert chain.invoke({"input": "I am Ann."}, config=config).content == "Hello Ann."
    # A new chain (a restarted process) continues the same conversation from the server.
    chain = _chain(server, namespace, ["You are Ann."])
    assert chain.invoke({"input": "Who am I?"}, config=config).content == "You are Ann."
    contents = [m.content for m in _history(server, namespace, "conv-1").messages]
    assert contents == ["I am Ann.", "Hello Ann.", "Who am I?", "You are Ann."]


@deprecated_runnable
async def test_inside_runnable_with_message_history_async(
    server: ServerProcess, namespace: str
) -> None:
    chain = _chain(server, namespace, ["one", "two"])
    config = {"configurable": {"session_id": "conv-2"}}
    assert (await chain.ainvoke({"input": "first"}, config=config)).content == "one"
    assert (await chain.ainvoke({"input": "second"}, config=config)).content == "two"
    history = _history(server, namespace, "conv-2")
    assert [m.content for m in await history.aget_messages()] == [
        "first",
        "one",
        "second",
        "two",
    ]


# The original adapter's read and write, as botwire 0.2.1 does them over HTTP (its
# Memory.set stored json.dumps(value) for non-strings; its get decoded strings starting with
# '[' or '{').


def _v021_messages(url: str) -> list[BaseMessage]:
    response = httpx.get(url)
    if response.status_code == 404:
        return []
    value = response.json().get("value")
    if isinstance(value, str) and value and value[0] in "[{":
        value = json.loads(value)
    return messages_from_dict(value) if value else []


def _v021_add_message(url: str, message: BaseMessage) -> None:
    response = httpx.get(url)
    current = [] if response.status_code == 404 else response.json().get("value")
    if isinstance(current, str) and current and current[0] in "[{":
        current = json.loads(current)
    if not isinstance(current, list):
        current = []
    current.extend(messages_to_dict([message]))
    httpx.put(url, json={"value": json.dumps(current)}).raise_for_status()


def test_reads_and_migrates_what_the_0_2_1_adapter_wrote(
    server: ServerProcess, namespace: str
) -> None:
    url = f"{server.url}/memory/{namespace}/legacy"
    _v021_add_message(url, HumanMessage("old question"))
    _v021_add_message(url, AIMessage("old answer"))
    assert isinstance(httpx.get(url).json()["value"], str)  # a JSON string, as 0.2.1 stored it
    history = _history(server, namespace, "legacy")
    assert [m.content for m in history.messages] == ["old question", "old answer"]
    history.add_user_message("new question")
    fresh = _history(server, namespace, "legacy")
    assert [m.content for m in fresh.messages] == ["old question", "old answer", "new question"]
    # The old key is left as it was: a 0.2.1 reader sees the conversation before the migration.
    assert [m.content for m in _v021_messages(url)] == ["old question", "old answer"]
    history.clear()
    assert fresh.messages == [] and httpx.get(url).status_code == 404


def test_reads_a_one_value_session_of_the_shared_default_namespace(server: ServerProcess) -> None:
    session = fresh_namespace("old-default")
    old = messages_to_dict([HumanMessage("hi"), AIMessage("hello")])
    Memory("langchain-sessions", server.url).set(session, old)  # the previous format
    history = BotWireChatHistory(session, base_url=server.url)
    assert history.memory.namespace == f"langchain-sessions/{session}"
    assert [m.content for m in history.messages] == ["hi", "hello"]
    history.add_ai_message("again")
    assert [m.content for m in BotWireChatHistory(session, base_url=server.url).messages] == [
        "hi",
        "hello",
        "again",
    ]


def test_concurrent_appenders_lose_nothing_and_keep_their_order(
    server: ServerProcess, namespace: str
) -> None:
    def writer(name: str) -> None:
        history = _history(server, namespace, "busy")  # its own instance, its own counter
        for i in range(15):
            history.add_user_message(f"{name}-{i}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, "abcd"))
    contents = [str(m.content) for m in _history(server, namespace, "busy").messages]
    assert sorted(contents) == sorted(f"{w}-{i}" for w in "abcd" for i in range(15))
    for w in "abcd":
        assert [c for c in contents if c[0] == w] == [f"{w}-{i}" for i in range(15)]


def test_more_than_a_batch_of_messages(server: ServerProcess, namespace: str) -> None:
    history = _history(server, namespace, "many")
    texts = [f"m{i}" for i in range(1200)]
    history.add_messages([HumanMessage(t) for t in texts])  # two batches (998 + 202)
    history.add_ai_message("last")
    assert [m.content for m in _history(server, namespace, "many").messages] == [*texts, "last"]
    memory = Memory(namespace, server.url)
    assert memory.get("many/seq") == {"next": 1202, "start": 1, "legacy": False}
    history.clear()  # one batch hides them all; two more delete the rest
    assert _history(server, namespace, "many").messages == []
    assert memory.list_keys(prefix="many/") == ["many/seq"]


@deprecated_runnable
def test_a_failed_save_is_only_logged_by_langchain(
    server: ServerProcess, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    # What the README says to watch for: the chain answers, the turn is not stored, and the
    # BotWire error reaches only the log of langchain_core's callback manager.
    chain = _chain(server, namespace, ["x" * 200_000])  # an answer over the 100 KiB value limit
    config = {"configurable": {"session_id": "too-long"}}
    with caplog.at_level(logging.WARNING, logger="langchain_core.callbacks.manager"):
        assert len(chain.invoke({"input": "hi"}, config=config).content) == 200_000
    assert _history(server, namespace, "too-long").messages == []
    (record,) = [r for r in caplog.records if r.name == "langchain_core.callbacks.manager"]
    assert record.levelno == logging.WARNING and "TooLarge" in record.getMessage()


def test_a_key_holding_something_else_is_reported(server: ServerProcess, namespace: str) -> None:
    Memory(namespace, server.url).set("not-chat", {"a": 1})
    with pytest.raises(ValueError, match="not a message list"):
        _ = _history(server, namespace, "not-chat").messages


@pytest.mark.parametrize("session", ["user:42", "alice@example.com/chat 1", "🙂 café"])
async def test_session_ids_are_any_valid_key(
    server: ServerProcess, namespace: str, session: str
) -> None:
    history = _history(server, namespace, session)
    history.add_user_message("sync")
    await history.aadd_messages([AIMessage("async")])
    assert [m.content for m in await _history(server, namespace, session).aget_messages()] == [
        "sync",
        "async",
    ]
    escaped = session.replace("/", "%2F")
    assert Memory(namespace, server.url).list_keys() == [
        f"{escaped}/m/000000000001",
        f"{escaped}/m/000000000002",
        f"{escaped}/seq",
    ]


def test_session_id_must_be_a_valid_key() -> None:
    with pytest.raises(ValueError, match="^Key is empty"):
        BotWireChatHistory("")
    with pytest.raises(ValueError, match="control character U\\+000A"):
        BotWireChatHistory("line\nbreak")


def test_the_import_paths_of_the_original_package() -> None:
    import botwire.langchain
    import botwire.memory

    assert botwire.memory.BotWireChatHistory is BotWireChatHistory
    assert botwire.memory.Memory is Memory
    assert botwire.langchain.BotWireChatHistory is BotWireChatHistory
