"""``botwire.memory``, as in the original package: ``Memory``, ``BotWireChatHistory``,
``memory_tools``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import botwire_client
from botwire_client import memory_tools
from botwire_client.memory import Memory

if TYPE_CHECKING:
    from botwire_client.chat_history import BotWireChatHistory

__all__ = ["BotWireChatHistory", "Memory", "memory_tools"]


def __getattr__(name: str) -> Any:
    return getattr(botwire_client, name)
