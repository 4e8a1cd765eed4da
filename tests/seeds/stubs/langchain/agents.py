"""Agent constructors as the seeds call them; the "agent" answers with the stub model."""

from __future__ import annotations

from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory


class _Agent:
    def __init__(self, llm: Any, chat_history: BaseChatMessageHistory | None = None) -> None:
        self.llm = llm
        self.chat_history = chat_history

    def invoke(self, inputs: dict[str, Any]) -> dict[str, Any]:
        past = self.chat_history.messages if self.chat_history is not None else []
        output = self.llm.answer(str(inputs["input"]), past)
        if self.chat_history is not None:
            self.chat_history.add_user_message(str(inputs["input"]))
            self.chat_history.add_ai_message(output)
        return {"input": inputs["input"], "output": output}


def create_react_agent(llm: Any, tools: Any, prompt: Any, **_: Any) -> _Agent:
    return _Agent(llm)


def create_openai_functions_agent(
    llm: Any, tools: Any, prompt: Any = None, chat_history: Any = None, **_: Any
) -> _Agent:
    return _Agent(llm, chat_history)


class AgentExecutor:
    def __init__(self, agent: _Agent, tools: Any, memory: Any = None) -> None:
        self.agent = agent
        self.tools = tools
        self.memory = memory

    @classmethod
    def from_agent_and_tools(
        cls, agent: _Agent, tools: Any, memory: Any = None, **_: Any
    ) -> AgentExecutor:
        return cls(agent, tools, memory)

    def invoke(self, inputs: dict[str, Any]) -> dict[str, Any]:
        past = []
        if self.memory is not None:
            loaded = self.memory.load_memory_variables(inputs)[self.memory.memory_key]
            past = loaded if isinstance(loaded, list) else []
        output = self.agent.llm.answer(str(inputs["input"]), past)
        if self.memory is not None:
            self.memory.save_context(inputs, {"output": output})
        return {"input": inputs["input"], "output": output}
