"""``botwire``: the import name users know. The client lives in ``botwire_client``.

from botwire import Memory, BotWireChatHistory, BotWireError, ConflictError
from botwire import Channel, register
from botwire.memory import memory_tools
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import botwire_client
from botwire_client import (
    AsyncBatch,
    AsyncEventStream,
    Batch,
    BatchResult,
    BotWireError,
    Change,
    Channel,
    Conflict,
    ConflictError,
    Event,
    EventStream,
    FutureRevision,
    InvalidRequest,
    Item,
    Memory,
    NotFound,
    QuotaExceeded,
    RevisionCompacted,
    RollbackResult,
    ServerError,
    ServerUnavailable,
    TooLarge,
    __version__,
    aregister,
    memory_tools,
    register,
)

if TYPE_CHECKING:
    from botwire_client.chat_history import BotWireChatHistory

__all__ = [
    "AsyncBatch",
    "AsyncEventStream",
    "Batch",
    "BatchResult",
    "BotWireChatHistory",
    "BotWireError",
    "Change",
    "Channel",
    "Conflict",
    "ConflictError",
    "Event",
    "EventStream",
    "FutureRevision",
    "InvalidRequest",
    "Item",
    "Memory",
    "NotFound",
    "QuotaExceeded",
    "RevisionCompacted",
    "RollbackResult",
    "ServerError",
    "ServerUnavailable",
    "TooLarge",
    "__version__",
    "aregister",
    "memory_tools",
    "register",
]


def __getattr__(name: str) -> Any:
    # BotWireChatHistory imports langchain-core only when asked for.
    return getattr(botwire_client, name)
