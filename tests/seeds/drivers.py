"""What each seed snippet is run with, how it is exercised, and what must be stored afterwards.

For a snippet ``s<seed>_<name>.py`` there are up to three functions:

- ``context_<name>(round)``: names the snippet uses but does not define, supplied the way the
  surrounding article (or the reader's own code) supplies them: the LLM calls it leaves to the
  reader (``generate_response``, ``perform_research``...), imports made by an earlier snippet of
  the same article, and objects such as ``tools`` or a request.
- ``drive_<name>(g, round)``: calls what the snippet defined (``g`` is its globals) as an
  application would, in round 1 and again in round 2 from a NEW process, and checks the answers:
  round 2 only passes if round 1's data survived the client process's exit.
- ``check_<name>()``: reads the server with a plain ``Memory`` and checks what is stored; it
  runs after round 2 and again after the server restarted.
"""

from __future__ import annotations

import asyncio
import datetime as _datetime
import time as _time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from botwire import Memory

Globals = dict[str, Any]

CONTEXTS: dict[str, Callable[[int], Globals]] = {}
DRIVERS: dict[str, Callable[[Globals, int], None]] = {}
CHECKS: dict[str, Callable[[], None]] = {}


def context(name: str) -> Callable[[Callable[[int], Globals]], Callable[[int], Globals]]:
    def register(fn: Callable[[int], Globals]) -> Callable[[int], Globals]:
        CONTEXTS[name] = fn
        return fn

    return register


def drive(name: str) -> Callable[[Callable[[Globals, int], None]], Callable[[Globals, int], None]]:
    def register(fn: Callable[[Globals, int], None]) -> Callable[[Globals, int], None]:
        DRIVERS[name] = fn
        return fn

    return register


def check(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        CHECKS[name] = fn
        return fn

    return register


def temporal_imports() -> Globals:
    """The imports of the Temporal article's first snippet, which its later snippets use."""
    from temporalio import activity, workflow

    return {
        "Memory": Memory,
        "workflow": workflow,
        "activity": activity,
        "timedelta": _datetime.timedelta,
    }


def messages(session: str, namespace: str | None = None) -> list[tuple[str, str]]:
    from botwire import BotWireChatHistory  # LangChain only where a snippet uses it

    history = BotWireChatHistory(session, namespace)
    return [(m.type, str(m.content)) for m in history.messages]


# -- seed 000: Modal ---------------------------------------------------------------------------


@context("s000_modal_chat_agent")
def _(round: int) -> Globals:
    def generate_response(history: list[dict[str, str]]) -> str:
        return f"echo {history[-1]['content']} ({len(history)} so far)"

    # The snippet calls datetime.now() without importing it; its article imports it elsewhere.
    return {"generate_response": generate_response, "datetime": _datetime.datetime}


@drive("s000_modal_chat_agent")
def _(g: Globals, round: int) -> None:
    expected = {1: "echo hello 1 (1 so far)", 2: "echo hello 2 (3 so far)"}[round]
    assert g["chat_agent"]("u1", f"hello {round}") == expected


@check("s000_modal_chat_agent")
def _() -> None:
    memory = Memory("user-u1")
    conversation = memory.get("conversation")
    assert [m["role"] for m in conversation] == ["user", "assistant"] * 2
    assert [m["content"] for m in conversation][::2] == ["hello 1", "hello 2"]
    assert _datetime.datetime.fromisoformat(memory.get("last_seen"))


@drive("s000_namespaces")
def _(g: Globals, round: int) -> None:
    assert g["prefs"] == {"language": "python", "style": "concise"}
    assert g["tasks"] == []


@check("s000_namespaces")
def _() -> None:
    assert Memory("user-alice").snapshot() == {
        "preferences": {"language": "python", "style": "concise"},
        "task_progress": {"step": 3, "completed": ["research", "outline"]},
    }
    assert Memory("session-xyz").list_keys() == []


@context("s000_list_and_delete")
def _(round: int) -> Globals:
    memory = Memory("agent-cleanup")  # the `memory` of the article's agent
    if round == 1:
        for key, value in [("temp_data", 1), ("cache_a", "x"), ("cache_b", "y"), ("keep", "me")]:
            memory.set(key, value)
    return {"memory": memory}


@drive("s000_list_and_delete")
def _(g: Globals, round: int) -> None:
    before = ["cache_a", "cache_b", "keep", "temp_data"] if round == 1 else ["keep"]
    assert g["all_keys"] == before


@check("s000_list_and_delete")
def _() -> None:
    assert Memory("agent-cleanup").snapshot() == {"keep": "me"}


@context("s000_modal_research_agent")
def _(round: int) -> Globals:
    def perform_research(query: str, context: list[str], patterns: dict[str, Any]) -> Any:
        return {"summary": f"summary of {query} after {len(context)} notes", "approach": "search"}

    # The snippet stores `interests[-10]` (meant: interests[-10:]), which raises IndexError
    # for a user with fewer than ten interests, whatever the store: it runs only for a
    # returning user with at least nine earlier queries, who is who this round sets up.
    # It then stores that one string; round 2 asks a query contained in that string, so the
    # `query not in interests` substring test skips the `.append` a string does not have.
    if round == 1:
        earlier = ["agent memory benchmarks"] + [f"topic {n}" for n in range(2, 10)]
        Memory("user-u2").set("research_interests", earlier)
    # `time` is used but not imported by the snippet (its article imports it elsewhere).
    return {
        "perform_research": perform_research,
        "classify_query": lambda query: "general",
        "time": _time,
    }


@drive("s000_modal_research_agent")
def _(g: Globals, round: int) -> None:
    result = g["research_agent"]("u2", "agent memory")
    assert result == {
        "summary": f"summary of agent memory after {2 * round - 1} notes",
        "approach": "search",
    }


@check("s000_modal_research_agent")
def _() -> None:
    user = Memory("user-u2").snapshot()
    assert user["last_research"] == "agent memory"
    assert user["research_interests"] == "agent memory benchmarks"
    session = user["current_session"]
    assert session.startswith("session-") and session[len("session-") :].isdigit()
    context = Memory(f"session-{session}").get("context")
    assert context == [
        "User query: agent memory",
        "Research result: summary of agent memory after 1 notes",
        "User query: agent memory",
        "Research result: summary of agent memory after 3 notes",
    ]
    assert Memory("research-agent-global").snapshot() == {
        "pattern-0": {"query_type": "general", "successful_approach": "search"}
    }


# -- seed 001: Agno / phidata ------------------------------------------------------------------


@drive("s001_three_lines")
def _(g: Globals, round: int) -> None:
    assert (g["name"], g["model"]) == ("Sarah", "gpt-4")


@check("s001_three_lines")
def _() -> None:
    assert Memory("agent-session-123").snapshot() == {
        "user_name": "Sarah",
        "preferred_model": "gpt-4",
    }


@drive("s001_basic_operations")
def _(g: Globals, round: int) -> None:
    assert [m["role"] for m in g["history"]] == ["user", "assistant"]
    assert g["last_topic"] == "general"
    assert g["all_keys"] == ["conversation_history"]


@check("s001_basic_operations")
def _() -> None:
    stored = Memory("user-42").get("conversation_history")
    assert stored[0] == {"role": "user", "content": "What's the weather?"}
    assert len(stored) == 2


@context("s001_persistent_agent")
def _(round: int) -> Globals:
    return {"Memory": Memory}  # imported by the article's earlier snippets


@drive("s001_persistent_agent")
def _(g: Globals, round: int) -> None:
    agent = g["PersistentAgent"]("p1")
    agent.increment_session()
    agent.remember_preference(f"round{round}", round)
    context = agent.get_context()
    assert context["session_count"] == round
    assert context["preferences"] == {f"round{r}": r for r in range(1, round + 1)}


@check("s001_persistent_agent")
def _() -> None:
    assert Memory("user-p1").snapshot() == {
        "session_count": 2,
        "preferences": {"round1": 1, "round2": 2},
    }


@drive("s001_agno_agent")
def _(g: Globals, round: int) -> None:
    agent = g["PersistentAgnoAgent"]("a1")
    if round == 1:
        assert agent.agent.system_prompt == "You are a helpful assistant."
        agent.learn_preference("tone", "formal")
    else:
        assert "User context: {'tone': 'formal'}" in agent.agent.system_prompt
    assert agent.chat(f"hi {round}").content == f"reply to: hi {round}"


@check("s001_agno_agent")
def _() -> None:
    memory = Memory("agno-user-a1")
    assert memory.get("user_context") == {"tone": "formal"}
    assert [m["content"] for m in memory.get("conversation_history")] == [
        "hi 1",
        "reply to: hi 1",
        "hi 2",
        "reply to: hi 2",
    ]


# -- seed 002: serverless ----------------------------------------------------------------------


@context("s002_lambda_handler")
def _(round: int) -> Globals:
    def process_message(message: str, history: list[Any], preferences: dict[str, Any]) -> str:
        return f"reply {len(history) + 1}: {message}"

    return {"process_message": process_message}


@drive("s002_lambda_handler")
def _(g: Globals, round: int) -> None:
    context = SimpleNamespace(aws_request_id=f"req-{round}")
    answer = g["lambda_handler"]({"user_id": "l1", "message": f"m{round}"}, context)
    assert answer == {"response": f"reply {round}: m{round}"}


@check("s002_lambda_handler")
def _() -> None:
    memory = Memory("user-l1")
    assert [h["timestamp"] for h in memory.get("chat_history")] == ["req-1", "req-2"]
    assert memory.get("last_interaction") == {"timestamp": "2024-01-15"}


@drive("s002_workflow_state")
def _(g: Globals, round: int) -> None:
    assert g["workflow"]["current_step"] == 3
    assert g["all_keys"] == ["workflow_state"]


@check("s002_workflow_state")
def _() -> None:
    assert Memory("crew-planning-agent").get("workflow_state")["pending_tasks"] == [
        "draft",
        "review",
    ]


@context("s002_langchain_vercel")
def _(round: int) -> Globals:
    return {"tools": []}


@drive("s002_langchain_vercel")
def _(g: Globals, round: int) -> None:
    request = SimpleNamespace(headers={"x-session-id": "v1"}, json={"message": f"q{round}"})
    assert g["vercel_function"](request) == {"response": f"answer {round} to: q{round}"}


@check("s002_langchain_vercel")
def _() -> None:
    assert messages("chat-v1") == [
        ("human", "q1"),
        ("ai", "answer 1 to: q1"),
        ("human", "q2"),
        ("ai", "answer 2 to: q2"),
    ]


@context("s002_crewai_researcher")
def _(round: int) -> Globals:
    import crewai

    class Agent:
        """Stand-in for crewai.Agent, whose real constructor also wants goal, backstory and
        an LLM; the tools handed to it are the real CrewAI tools."""

        def __init__(self, role: str, tools: list[Any], memory: bool = False) -> None:
            self.role, self.tools, self.memory = role, tools, memory

    crewai.Agent = Agent
    return {"other_tools": []}


@drive("s002_crewai_researcher")
def _(g: Globals, round: int) -> None:
    from crewai.tools import BaseTool

    tools = {tool.name: tool for tool in g["researcher"].tools}
    assert all(isinstance(tool, BaseTool) for tool in tools.values())
    remember, recall = tools["Remember a fact"], tools["Recall a fact"]
    listing = tools["List remembered keys"]
    if round == 1:
        assert recall.run(key="topic") == "not found"
        assert remember.run(key="topic", value="event sourcing") == "stored 'topic'"
    else:
        assert recall.run(key="topic") == "event sourcing"
        assert asyncio.run(remember.arun(key="source", value="seed 002")) == "stored 'source'"
        assert asyncio.run(recall.arun(key="source")) == "seed 002"
        assert listing.run() == "source, topic"


@check("s002_crewai_researcher")
def _() -> None:
    assert Memory("research-crew").snapshot() == {"topic": "event sourcing", "source": "seed 002"}


# -- seed 003: Temporal ------------------------------------------------------------------------


@drive("s003_temporal_workflow")
def _(g: Globals, round: int) -> None:
    result = asyncio.run(g["AIAgentWorkflow"]().run("t1", f"task {round}"))
    assert result == f"Analysis complete for: task {round}"


@check("s003_temporal_workflow")
def _() -> None:
    assert Memory("agent-t1").snapshot() == {
        "current_task": "task 2",
        "status": "completed",
        "result": "Analysis complete for: task 2",
    }
    statuses = [e.value for e in Memory("agent-t1").history("status")]
    assert statuses == ["completed", "started", "completed", "started"]


@context("s003_chat_workflow")
def _(round: int) -> Globals:
    return temporal_imports()


@drive("s003_chat_workflow")
def _(g: Globals, round: int) -> None:
    reply = asyncio.run(g["PersistentChatWorkflow"]().run("c1", f"message {round}"))
    expected = {
        1: "Hello! I'm starting our conversation.",
        2: "Welcome back Unknown! This is message #2",
    }
    assert reply == expected[round]


@check("s003_chat_workflow")
def _() -> None:
    assert Memory("chat-c1").snapshot() == {"message_count": 2, "last_message": "message 2"}


@context("s003_list_and_delete")
def _(round: int) -> Globals:
    if round == 1:
        Memory("agent-123").set("temporary_data", [1, 2])
        Memory("agent-123").set("notes", "keep")
    return temporal_imports()


@drive("s003_list_and_delete")
def _(g: Globals, round: int) -> None:
    assert g["all_keys"] == (["notes", "temporary_data"] if round == 1 else ["notes"])


@check("s003_list_and_delete")
def _() -> None:
    assert Memory("agent-123").snapshot() == {"notes": "keep"}


@context("s003_multi_step_workflow")
def _(round: int) -> Globals:
    calls: list[str] = []

    async def process_step(agent_id: str, step: str) -> str:
        calls.append(step)
        return f"{step} done for {agent_id}"

    return {**temporal_imports(), "process_step": process_step, "calls": calls}


@drive("s003_multi_step_workflow")
def _(g: Globals, round: int) -> None:
    steps = ["plan", "draft"] if round == 1 else ["plan", "draft", "review"]
    results = asyncio.run(g["MultiStepAIWorkflow"]().run("w1", steps))
    assert results == {step: f"{step} done for w1" for step in steps}
    # In round 2 (a new process, as after a worker restart) the finished steps are skipped.
    assert g["calls"] == (["plan", "draft"] if round == 1 else ["review"])


@check("s003_multi_step_workflow")
def _() -> None:
    assert Memory("workflow-w1").snapshot() == {
        "completed_steps": ["plan", "draft", "review"],
        "result_plan": "plan done for w1",
        "result_draft": "draft done for w1",
        "result_review": "review done for w1",
    }


# -- seed 004: LangChain -----------------------------------------------------------------------


@drive("s004_buffer_memory_problem")
def _(g: Globals, round: int) -> None:
    g["memory"].save_context({"input": "hi"}, {"output": "hello"})
    assert len(g["memory"].chat_memory.messages) == 2  # in RAM only: gone with the process


@check("s004_buffer_memory_problem")
def _() -> None:
    assert Memory("langchain-sessions").list_keys() == []


@context("s004_agent_executor")
def _(round: int) -> Globals:
    return {"tools": [], "prompt": None}


@drive("s004_agent_executor")
def _(g: Globals, round: int) -> None:
    answer = g["agent_executor"].invoke({"input": f"q{round}"})
    assert answer["output"] == f"answer {round} to: q{round}"


@check("s004_agent_executor")
def _() -> None:
    assert messages("user-42") == [
        ("human", "q1"),
        ("ai", "answer 1 to: q1"),
        ("human", "q2"),
        ("ai", "answer 2 to: q2"),
    ]


CONVERSATION = "0b7e5c1a-2f4d-4e8a-9c3b-6d1f0a2e4b5c"


@context("s004_session_ids")
def _(round: int) -> Globals:
    from botwire import BotWireChatHistory

    return {
        "BotWireChatHistory": BotWireChatHistory,  # imported by the article's earlier snippet
        "user_id": "u7",
        "conversation_uuid": CONVERSATION,
    }


@drive("s004_session_ids")
def _(g: Globals, round: int) -> None:
    for name in ["user_history", "conv_history", "support_history"]:
        history = g[name]
        assert len(history.messages) == 2 * (round - 1)
        history.add_user_message(f"{name} {round}")
        history.add_ai_message(f"ok {round}")


@check("s004_session_ids")
def _() -> None:
    # Each session in a namespace of its own; none in the shared one of the old format.
    assert Memory("langchain-sessions").list_keys() == []
    for session in ["user-u7", f"conv-{CONVERSATION}", "support-agent-v2"]:
        assert Memory(f"langchain-sessions/{session}").list_keys() == [
            *(f"m/{n:012d}" for n in range(1, 5)),
            "seq",
        ]
    assert messages("support-agent-v2") == [
        ("human", "support_history 1"),
        ("ai", "ok 1"),
        ("human", "support_history 2"),
        ("ai", "ok 2"),
    ]


@drive("s004_key_value")
def _(g: Globals, round: int) -> None:
    assert g["prefs"] == {"theme": "dark", "language": "en"}
    assert g["last_action"] == "processed_invoice_#1234"
    assert g["all_keys"] == ["last_action", "user_preferences"]


@check("s004_key_value")
def _() -> None:
    assert Memory("my-agent").snapshot() == {
        "user_preferences": {"theme": "dark", "language": "en"},
        "last_action": "processed_invoice_#1234",
    }


@drive("s004_persistent_agent")
def _(g: Globals, round: int) -> None:
    agent = g["PersistentAgent"]("pa1")
    if round == 2:
        assert agent.recall_fact("fact1") == {"n": 1}
    buffer = agent.get_conversation_memory()
    past = buffer.load_memory_variables({})["history"]
    assert [m.content for m in past] == (["hi 1", "hello 1"] if round == 2 else [])
    agent.remember_fact(f"fact{round}", {"n": round})
    buffer.save_context({"input": f"hi {round}"}, {"output": f"hello {round}"})


@check("s004_persistent_agent")
def _() -> None:
    assert Memory("agent-pa1").snapshot() == {"fact1": {"n": 1}, "fact2": {"n": 2}}
    assert [text for _, text in messages("pa1")] == ["hi 1", "hello 1", "hi 2", "hello 2"]
