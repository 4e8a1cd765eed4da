"""``BotWireMemory`` with the real AutoGen packages against a real server: an ``AssistantAgent``
on a replaying model client (no network) gets the stored memories in the messages it sends to
the model; query, filter, clear and the component config."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import MemoryQueryEvent
from autogen_core.memory import MemoryContent, MemoryMimeType
from autogen_core.models import CreateResult, LLMMessage
from autogen_ext.models.replay import ReplayChatCompletionClient
from client_support import fresh_namespace, serve
from server_process import ServerProcess

from botwire.autogen import BotWireMemory

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


class RecordingClient(ReplayChatCompletionClient):
    """Replays its answers and keeps the messages of every request."""

    def __init__(self, answers: list[str]) -> None:
        super().__init__(answers)
        self.sent: list[Sequence[LLMMessage]] = []

    async def create(self, messages: Sequence[LLMMessage], *args: Any, **kw: Any) -> CreateResult:
        self.sent.append(list(messages))
        return await super().create(messages, *args, **kw)


def text(content: str, **metadata: Any) -> MemoryContent:
    return MemoryContent(content=content, mime_type=MemoryMimeType.TEXT, metadata=metadata or None)


async def test_an_assistant_agent_gets_the_stored_memories(server: ServerProcess) -> None:
    namespace = fresh_namespace("autogen")
    writer = BotWireMemory(namespace, server.url)
    await writer.add(text("The user likes green tea.", topic="food"))
    await writer.add(text("The user lives in Lisbon.", topic="place"))
    await writer.close()

    # Another process's view: a new memory over the same namespace.
    memory = BotWireMemory(namespace, server.url)
    client = RecordingClient(["You like green tea and live in Lisbon."])
    agent = AssistantAgent("assistant", model_client=client, memory=[memory])
    result = await agent.run(task="What do you know about me?")
    assert result.messages[-1].content == "You like green tea and live in Lisbon."
    sent = "\n".join(str(m.content) for m in client.sent[0])
    assert "1. The user likes green tea." in sent and "2. The user lives in Lisbon." in sent
    (event,) = [m for m in result.messages if isinstance(m, MemoryQueryEvent)]
    assert [c.content for c in event.content] == [
        "The user likes green tea.",
        "The user lives in Lisbon.",
    ]
    await memory.close()


async def test_query_filter_kinds_clear_and_config(server: ServerProcess) -> None:
    namespace = fresh_namespace("autogen")
    memory = BotWireMemory(namespace, server.url)
    await memory.add(text("Tea in the morning", topic="food"))
    await memory.add(text("Meeting at noon", topic="work"))
    await memory.add(MemoryContent(content={"k": 1}, mime_type=MemoryMimeType.JSON))
    await memory.add(MemoryContent(content=b"\x00\xff", mime_type=MemoryMimeType.BINARY))
    everything = (await memory.query()).results
    assert [c.content for c in everything] == [
        "Tea in the morning",
        "Meeting at noon",
        {"k": 1},
        b"\x00\xff",
    ]
    assert [c.content for c in (await memory.query("TEA")).results] == ["Tea in the morning"]
    found = await memory.query("", filter={"metadata": {"topic": "work"}})
    assert [(c.content, c.metadata) for c in found.results] == [
        ("Meeting at noon", {"topic": "work"})
    ]
    assert len((await memory.query(limit=2)).results) == 2

    config = memory.dump_component()
    assert config.provider == "botwire.autogen.BotWireMemory"
    assert config.config["namespace"] == namespace and "token" not in config.config
    loaded = BotWireMemory.load_component(config)
    assert [c.content for c in (await loaded.query("noon")).results] == ["Meeting at noon"]

    await memory.clear()
    assert (await loaded.query()).results == []
    await asyncio.gather(memory.close(), loaded.close())
