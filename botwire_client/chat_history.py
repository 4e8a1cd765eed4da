"""``BotWireChatHistory``: a LangChain chat message history stored in one BotWire key.

The session's messages are one JSON list under the key ``session_id``, in the
``langchain_core.messages.messages_to_dict`` format the original ``botwire`` 0.2.1 adapter used.
Appends are a compare-and-set loop on the key's version: read the list and its version, write
the longer list with ``expected_version``, and on ``ConflictError`` (another writer got there
first) read again and retry. No append is lost and each writer's messages keep their order,
however many processes append to one session. Worked example, writers A and B::

    A reads [] @ v0          B reads [] @ v0
    A writes [a1] expecting 0 -> v5
                             B writes [b1] expecting 0 -> ConflictError(current_version=5)
                             B reads [a1] @ v5, writes [a1, b1] expecting 5 -> v6

Reading also accepts what 0.2.1 wrote: the same list, JSON-encoded into a string.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, messages_from_dict, messages_to_dict

from botwire_client import core
from botwire_client.core import Op
from botwire_client.errors import ConflictError
from botwire_client.memory import Memory

DEFAULT_NAMESPACE = "langchain-sessions"


def _as_dicts(value: Any) -> list[dict[str, Any]]:
    """The stored message dicts, whichever format wrote them."""
    if value is None:
        return []
    if isinstance(value, str):  # the 0.2.1 adapter stored json.dumps(list)
        try:
            value = json.loads(value) if value else []
        except ValueError as exc:
            raise ValueError(
                "This chat history key holds a string that is not a JSON message list; "
                "use another session_id or delete the key."
            ) from exc
    if not isinstance(value, list):
        raise ValueError(
            f"This chat history key holds a {type(value).__name__}, not a message list; "
            "use another session_id or delete the key."
        )
    return value


def append_op(
    namespace: str, key: str, new: list[dict[str, Any]], meta: core.WriteMeta = core.NO_META
) -> Op[int]:
    """Append ``new`` to the list under ``key`` with compare-and-set; return the new version."""
    while True:
        item = yield from core.item_op(namespace, key, None)
        current, expected = ([], 0) if item is None else (_as_dicts(item.value), item.version)
        try:
            return (yield from core.set_op(namespace, key, current + new, expected, None, meta))
        except ConflictError:
            continue  # another writer appended first: re-read and append after its messages


class BotWireChatHistory(BaseChatMessageHistory):
    """LangChain ``BaseChatMessageHistory`` backed by BotWire, with native async methods.

    ``memory`` overrides the ``Memory`` built from ``namespace`` and ``base_url`` (to share
    one connection pool between many sessions). ``run``: the run id (a LangGraph thread, a
    workflow run) every write of this history belongs to, so that ``Memory.revert_run`` can
    undo it.
    """

    def __init__(
        self,
        session_id: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        base_url: str | None = None,
        token: str | None = None,
        memory: Memory | None = None,
        run: str | None = None,
    ) -> None:
        self.session_id = core.check_key(session_id)
        if memory is None:
            memory = Memory(namespace, base_url, token=token, run=run)
        elif run is not None:
            memory = memory.with_run(run)
        self.memory = memory

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return messages_from_dict(_as_dicts(self.memory.get(self.session_id)))

    async def aget_messages(self) -> list[BaseMessage]:
        return messages_from_dict(_as_dicts(await self.memory.aget(self.session_id)))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        new = messages_to_dict(list(messages))
        if new:
            meta = self.memory._meta(None, None)
            self.memory._run(append_op(self.memory.namespace, self.session_id, new, meta))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        new = messages_to_dict(list(messages))
        if new:
            meta = self.memory._meta(None, None)
            await self.memory._arun(append_op(self.memory.namespace, self.session_id, new, meta))

    def clear(self) -> None:
        self.memory.delete(self.session_id)

    async def aclear(self) -> None:
        await self.memory.adelete(self.session_id)

    def __repr__(self) -> str:
        return (
            f"BotWireChatHistory(session_id={self.session_id!r}, "
            f"namespace={self.memory.namespace!r}, base_url={self.memory.base_url!r})"
        )
