"""The BotWire Python client, importable as ``botwire``.

``Memory`` is the client; ``BotWireChatHistory`` (needs ``langchain-core``, extra
``langchain``) and ``memory_tools`` (needs ``crewai``, extra ``crewai``) are imported only
when used, so ``import botwire`` needs neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botwire_client.batch import AsyncBatch, Batch
from botwire_client.channel import Channel, aregister, register
from botwire_client.errors import (
    AuthError,
    BotWireError,
    ConflictError,
    ForbiddenError,
    FutureRevision,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    RevisionCompacted,
    ServerError,
    ServerUnavailable,
    TooLarge,
)
from botwire_client.feed import AsyncEventStream, EventStream
from botwire_client.memory import Memory
from botwire_client.models import (
    BatchResult,
    Change,
    Conflict,
    Event,
    Item,
    RevertResult,
    RollbackResult,
)

if TYPE_CHECKING:
    from botwire_client.chat_history import BotWireChatHistory

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "AsyncBatch",
    "AsyncEventStream",
    "Batch",
    "BatchResult",
    "BotWireChatHistory",
    "Channel",
    "BotWireError",
    "Change",
    "Conflict",
    "ConflictError",
    "Event",
    "EventStream",
    "ForbiddenError",
    "FutureRevision",
    "InvalidRequest",
    "Item",
    "Memory",
    "NotFound",
    "QuotaExceeded",
    "RevertResult",
    "RevisionCompacted",
    "RollbackResult",
    "ServerError",
    "ServerUnavailable",
    "TooLarge",
    "aregister",
    "memory_tools",
    "register",
]


def memory_tools(
    namespace: str, base_url: str | None = None, *, token: str | None = None, run: str | None = None
) -> list[Any]:
    """CrewAI tools (remember, recall, list keys) over ``Memory(namespace, base_url,
    token=token, run=run)``: with ``run``, every write the tools make belongs to that run."""
    try:
        from botwire_client.crewai_tools import build_tools
    except ImportError as exc:
        raise ImportError(
            f"memory_tools needs CrewAI ({exc}). Install it: pip install 'botwire-server[crewai]'"
        ) from exc
    return build_tools(Memory(namespace, base_url, token=token, run=run))


def __getattr__(name: str) -> Any:
    if name == "BotWireChatHistory":
        try:
            from botwire_client.chat_history import BotWireChatHistory
        except ImportError as exc:
            raise ImportError(
                f"BotWireChatHistory needs langchain-core ({exc}). Install it: "
                "pip install 'botwire-server[langchain]'"
            ) from exc
        return BotWireChatHistory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
