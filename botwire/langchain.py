"""``botwire.langchain``: where the original package's docstring imported the adapter from."""

from __future__ import annotations

from botwire_client.byte_store import BotWireByteStore
from botwire_client.chat_history import BotWireChatHistory

__all__ = ["BotWireByteStore", "BotWireChatHistory"]
