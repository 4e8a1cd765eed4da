"""The chat history without a ceiling (slow): 10,000 messages through
``RunnableWithMessageHistory`` with a fake chat model, all read back in order; 6 processes x 200
concurrent appends to one session keep all 1,200 messages and each writer's order."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator

import pytest
from client_support import PYTHON, fresh_namespace, serve, subprocess_env
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory
from server_process import ServerProcess

from botwire import BotWireChatHistory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated:DeprecationWarning")
def test_ten_thousand_messages_through_runnable_with_message_history(
    server: ServerProcess,
) -> None:
    session = fresh_namespace("long")
    model = FakeListChatModel(responses=[f"answer {i}" for i in range(5000)])
    # The chain answers from the latest input only, so the run measures the history, not a
    # prompt of 10,000 messages; the history is still read in full before every turn.
    chain = RunnableLambda(lambda x: model.invoke(x["input"]))
    history = BotWireChatHistory(session, base_url=server.url)
    runnable = RunnableWithMessageHistory(
        chain,
        lambda session_id: history,
        input_messages_key="input",
        history_messages_key="history",
    )
    config = {"configurable": {"session_id": session}}
    for i in range(5000):
        assert runnable.invoke({"input": f"question {i}"}, config=config).content == f"answer {i}"
    fresh = BotWireChatHistory(session, base_url=server.url)  # a new reader: a cold read
    messages: list[BaseMessage] = fresh.messages
    expected = [t for i in range(5000) for t in (f"question {i}", f"answer {i}")]
    assert [m.content for m in messages] == expected
    assert [m.type for m in messages[:2]] == ["human", "ai"]


WRITER = """
    import sys
    from botwire import BotWireChatHistory
    history = BotWireChatHistory(sys.argv[1])
    for i in range(200):
        history.add_user_message(f"{sys.argv[2]}-{i}")
"""


def test_six_processes_append_concurrently_and_lose_nothing(server: ServerProcess) -> None:
    session = fresh_namespace("busy")
    writers = [
        subprocess.Popen(
            [PYTHON, "-c", textwrap.dedent(WRITER), session, f"w{n}"],
            env=subprocess_env(server.url),
        )
        for n in range(6)
    ]
    for proc in writers:
        assert proc.wait(timeout=600) == 0
    contents = [str(m.content) for m in BotWireChatHistory(session, base_url=server.url).messages]
    assert len(contents) == 1200
    assert sorted(contents) == sorted(f"w{n}-{i}" for n in range(6) for i in range(200))
    for n in range(6):
        assert [c for c in contents if c.startswith(f"w{n}-")] == [f"w{n}-{i}" for i in range(200)]
