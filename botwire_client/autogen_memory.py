"""``BotWireMemory``: an AutoGen ``autogen_core.memory.Memory`` in one BotWire namespace.

Each ``MemoryContent`` is one key, named after the time it was added (``{unix ns:020d}-{random}``)
so that key order is the order memories were added, written with ``expected_version=0`` (a
create: one request, never overwriting). The value keeps the content and its kind::

    {"content": "User likes tea", "kind": "text", "mime_type": "text/plain", "metadata": {...}}

(``kind``: ``text``, ``json`` (a dict) or ``bytes`` (base64); images are not stored).
``update_context`` adds every memory (up to ``max_memories``, the newest) to the model context
as one system message in the format of AutoGen's ``ListMemory``; ``query`` returns the memories
whose text holds the query (case-insensitive; an empty query returns all) and takes
``filter=`` (a BotWire filter over the stored value, evaluated by the server, e.g.
``{"metadata": {"topic": "food"}}``) and ``limit=``.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any, Self

from autogen_core import CancellationToken, Component
from autogen_core.memory import (
    Memory,
    MemoryContent,
    MemoryMimeType,
    MemoryQueryResult,
    UpdateContextResult,
)
from autogen_core.model_context import ChatCompletionContext
from autogen_core.models import SystemMessage
from pydantic import BaseModel

from botwire_client import core
from botwire_client import memory as bw
from botwire_client.core import Op
from botwire_client.query import query_op

DEFAULT_MAX_MEMORIES = 100


class BotWireMemoryConfig(BaseModel):
    """The component config. The token is not part of it (a dumped config holds no secret):
    a loaded component reads ``BOTWIRE_TOKEN``."""

    namespace: str
    base_url: str | None = None
    name: str | None = None
    max_memories: int = DEFAULT_MAX_MEMORIES


def _stored(content: MemoryContent) -> dict[str, Any]:
    mime = content.mime_type
    value: dict[str, Any] = {
        "mime_type": mime.value if isinstance(mime, MemoryMimeType) else str(mime),
        "metadata": content.metadata,
    }
    if isinstance(content.content, str):
        value.update(kind="text", content=content.content)
    elif isinstance(content.content, dict):
        value.update(kind="json", content=content.content)
    elif isinstance(content.content, bytes):
        value.update(kind="bytes", content=base64.b64encode(content.content).decode("ascii"))
    else:
        raise TypeError(
            f"BotWireMemory stores text, dicts and bytes, not {type(content.content).__name__}."
        )
    return value


def _content(value: dict[str, Any]) -> MemoryContent:
    kind = value.get("kind")
    body: Any = value.get("content")
    if kind == "bytes" and isinstance(body, str):
        body = base64.b64decode(body)
    return MemoryContent(
        content=body, mime_type=value.get("mime_type", "text/plain"), metadata=value.get("metadata")
    )


def _text(content: MemoryContent) -> str:
    return content.content if isinstance(content.content, str) else str(content.content)


def _all_op(namespace: str, filter: dict[str, Any] | None, limit: int | None) -> Op[list[Any]]:
    if filter:
        page = yield from query_op(namespace, filter, limit=1000)
        values = [item.value for item in page.items]
    else:
        values = list((yield from core.snapshot_op(namespace, None, None)).values())
    return values if limit is None else values[-limit:]


def _clear_op(namespace: str) -> Op[None]:
    keys = yield from core.list_keys_op(namespace, None, None)
    for start in range(0, len(keys), core.BATCH_LIMIT):
        ops = core.BatchOps(namespace)
        for key in keys[start : start + core.BATCH_LIMIT]:
            ops.delete(key, None)
        yield from ops.commit_op()


class BotWireMemory(Memory, Component[BotWireMemoryConfig]):
    """AutoGen memory stored in the BotWire namespace ``namespace``; see the module docstring.

    ``base_url`` and ``token`` as for ``Memory`` (``BOTWIRE_URL``, ``BOTWIRE_TOKEN``).
    """

    component_type = "memory"
    component_provider_override = "botwire.autogen.BotWireMemory"
    component_config_schema = BotWireMemoryConfig

    def __init__(
        self,
        namespace: str,
        base_url: str | None = None,
        *,
        token: str | None = None,
        name: str | None = None,
        max_memories: int = DEFAULT_MAX_MEMORIES,
    ) -> None:
        self._base_url = base_url
        self._name = name or f"botwire:{namespace}"
        self.max_memories = max_memories
        self.memory = bw.Memory(namespace, base_url, token=token)

    @property
    def name(self) -> str:
        return self._name

    @property
    def namespace(self) -> str:
        return self.memory.namespace

    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        key = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        await self.memory.aset(key, _stored(content), expected_version=0)

    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """Memories whose text holds ``query`` (all when empty), oldest first; ``filter=``:
        a server-side filter over the stored value; ``limit=``: only the newest N."""
        wanted = (_text(query) if isinstance(query, MemoryContent) else query).casefold()
        values = await self.memory._arun(
            _all_op(self.namespace, kwargs.get("filter"), kwargs.get("limit"))
        )
        found = [_content(v) for v in values]
        return MemoryQueryResult(results=[c for c in found if wanted in _text(c).casefold()])

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        values = await self.memory._arun(_all_op(self.namespace, None, self.max_memories))
        memories = [_content(v) for v in values]
        if memories:
            lines = [f"{i}. {_text(m)}" for i, m in enumerate(memories, 1)]
            text = "\nRelevant memory content (in chronological order):\n" + "\n".join(lines)
            await model_context.add_message(SystemMessage(content=text + "\n"))
        return UpdateContextResult(memories=MemoryQueryResult(results=memories))

    async def clear(self) -> None:
        await self.memory._arun(_clear_op(self.namespace))

    async def close(self) -> None:
        await self.memory.aclose()

    def _to_config(self) -> BotWireMemoryConfig:
        return BotWireMemoryConfig(
            namespace=self.namespace,
            base_url=self._base_url,
            name=self._name,
            max_memories=self.max_memories,
        )

    @classmethod
    def _from_config(cls, config: BotWireMemoryConfig) -> Self:
        return cls(
            config.namespace,
            config.base_url,
            name=config.name,
            max_memories=config.max_memories,
        )
