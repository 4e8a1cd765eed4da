"""``ConversationBufferMemory`` as langchain 0.x behaves: a buffer over a chat history."""

from __future__ import annotations

from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory, InMemoryChatMessageHistory


class ConversationBufferMemory:
    def __init__(
        self,
        chat_memory: BaseChatMessageHistory | None = None,
        return_messages: bool = False,
        memory_key: str = "history",
        **_: Any,
    ) -> None:
        self.chat_memory = chat_memory if chat_memory is not None else InMemoryChatMessageHistory()
        self.return_messages = return_messages
        self.memory_key = memory_key

    def load_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        messages = self.chat_memory.messages
        if self.return_messages:
            return {self.memory_key: messages}
        return {self.memory_key: "\n".join(f"{m.type}: {m.content}" for m in messages)}

    def save_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        self.chat_memory.add_user_message(str(inputs["input"]))
        self.chat_memory.add_ai_message(str(outputs["output"]))
