"""``memory_tools`` with the real ``crewai`` package, against a real server.

CrewAI pins older aiosqlite and pydantic than the server, so these scripts run in
``.cache/crewai-venv`` (built on first use, see ``client_support.crewai_python``). A real
``Crew`` with a scripted LLM (no network) calls the tools through CrewAI's own agent loop.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator

import pytest
from client_support import CREWAI_ENV, PYTHON, crewai_python, fresh_namespace, serve
from client_support import subprocess_env as child_env
from server_process import ServerProcess

from botwire import Memory

# make test-long: building .cache/crewai-venv is minutes of pip on a fresh machine.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


def _run(python: str, script: str, url: str, *args: str) -> str:
    done = subprocess.run(
        [python, "-c", textwrap.dedent(script), *args],
        env=child_env(url, **CREWAI_ENV),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


CREW = """
    import sys
    from typing import Any
    from crewai import Agent, Crew, Task
    from crewai.llms.base_llm import BaseLLM
    from botwire.memory import memory_tools

    class ScriptedLLM(BaseLLM):
        '''Answers from a script in CrewAI's ReAct text format, recording what it was sent.'''
        replies: list[str] = []
        seen: list[Any] = []

        def call(self, messages, tools=None, callbacks=None, available_functions=None,
                 from_task=None, from_agent=None, response_model=None):
            if isinstance(messages, str):
                self.seen.append(messages)
            else:
                self.seen.append("\\n".join(str(m.get("content")) for m in messages))
            return self.replies.pop(0)

        def supports_function_calling(self):
            return False

    llm = ScriptedLLM(model="scripted", replies=[
        'Thought: store it\\nAction: Remember a fact\\n'
        'Action Input: {"key": "city", "value": "Lisbon"}',
        'Thought: check it\\nAction: Recall a fact\\nAction Input: {"key": "city"}',
        'Thought: and the rest\\nAction: List remembered keys\\nAction Input: {}',
        'Thought: I now know the final answer\\nFinal Answer: The city is Lisbon',
    ])
    agent = Agent(role="Researcher", goal="Remember facts", backstory="A careful notetaker",
                  tools=memory_tools(sys.argv[1]), llm=llm)
    task = Task(description="Remember that the city is Lisbon", expected_output="a sentence",
                agent=agent)
    result = Crew(agents=[agent], tasks=[task]).kickoff()
    assert result.raw == "The city is Lisbon", result.raw
    assert "Observation: stored 'city'" in llm.seen[1], llm.seen[1][-300:]
    assert "Observation: Lisbon" in llm.seen[2], llm.seen[2][-300:]
    assert "Observation: city, preset" in llm.seen[3], llm.seen[3][-300:]
    print("crew ok")
"""

TOOLS = """
    import asyncio, sys
    from crewai.tools import BaseTool
    from botwire import Memory, memory_tools as top_level
    from botwire.memory import memory_tools

    namespace = sys.argv[1]
    assert top_level is memory_tools
    remember, recall, listing = memory_tools(namespace)
    assert all(isinstance(t, BaseTool) for t in (remember, recall, listing))
    assert [t.name for t in (remember, recall, listing)] == [
        "Remember a fact", "Recall a fact", "List remembered keys"]

    assert recall.run(key="name") == "not found"
    assert listing.run() == "(empty)"
    assert remember.run(key="name", value="Ada") == "stored 'name'"
    assert recall.run(key="name") == "Ada"
    Memory(namespace).set("profile", {"langs": ["en", "pt"]})
    assert recall.run(key="profile") == '{"langs": ["en", "pt"]}'
    assert remember.run(key="user:42", value="colon") == "stored 'user:42'"
    assert recall.run(key="user:42") == "colon"
    assert remember.run(key="..", value="x").startswith("error: Key '..' is not allowed")

    async def main():
        assert await remember.arun(key="note.1", value="async") == "stored 'note.1'"
        assert await recall.arun(key="note.1") == "async"
        assert await recall.arun(key="missing") == "not found"
        assert await listing.arun(prefix="note") == "note.1"
        assert await listing.arun() == "name, note.1, profile, user:42"

    asyncio.run(main())
    print("tools ok")
"""


def test_tools_sync_and_async_paths(server: ServerProcess) -> None:
    namespace = fresh_namespace("crew")
    assert _run(crewai_python(), TOOLS, server.url, namespace).strip() == "tools ok"
    assert Memory(namespace, server.url).snapshot() == {
        "name": "Ada",
        "note.1": "async",
        "profile": {"langs": ["en", "pt"]},
        "user:42": "colon",
    }


def test_a_crew_calls_the_tools_through_its_agent_loop(server: ServerProcess) -> None:
    namespace = fresh_namespace("crew")
    Memory(namespace, server.url).set("preset", 1)
    assert "crew ok" in _run(crewai_python(), CREW, server.url, namespace)
    assert Memory(namespace, server.url).snapshot() == {"city": "Lisbon", "preset": 1}


def test_importing_botwire_needs_neither_crewai_nor_langchain(server: ServerProcess) -> None:
    script = """
        import sys
        sys.modules["crewai"] = None          # as if not installed
        sys.modules["langchain_core"] = None
        import botwire
        from botwire import Memory, BotWireError, ConflictError
        from botwire.memory import Memory, memory_tools
        assert Memory("n").base_url
        for name in ("memory_tools", "BotWireChatHistory"):
            try:
                memory_tools("n") if name == "memory_tools" else botwire.BotWireChatHistory
            except ImportError as exc:
                assert "pip install" in str(exc), exc
            else:
                raise AssertionError(name + " imported without its framework")
        print("ok")
    """
    assert _run(PYTHON, script, server.url).strip() == "ok"
