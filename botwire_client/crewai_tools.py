"""CrewAI tools over one BotWire namespace: remember, recall, list keys.

Built on ``crewai.tools.BaseTool`` (the ``crewai_tools.tool`` decorator the original client
used no longer exists). Each tool has a sync ``_run`` and a native async ``_arun``. This module
imports CrewAI at the top, so only ``memory_tools`` (in ``botwire_client``) imports it, lazily:
``import botwire`` works without CrewAI installed.

Tool results are strings for the model to read; a refused input (a bad key name, a spent
quota) comes back as a sentence the model can act on instead of an exception that ends the run.
"""

from __future__ import annotations

import json
from typing import Any

from crewai.tools import BaseTool
from pydantic import BaseModel, Field

from botwire_client.errors import BotWireError, InvalidRequest, QuotaExceeded, TooLarge
from botwire_client.memory import Memory

_KEY_HELP = "A short name for the fact (e.g. 'user_name', 'user:42', 'notes/today')."


class RememberArgs(BaseModel):
    key: str = Field(description=_KEY_HELP)
    value: str = Field(description="The fact to store under the key.")


class RecallArgs(BaseModel):
    key: str = Field(description=_KEY_HELP)


class ListArgs(BaseModel):
    prefix: str = Field(default="", description="Only keys starting with this; '' for all.")


def _refused(exc: BotWireError) -> str:
    return f"error: {exc}"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class _MemoryTool(BaseTool):  # type: ignore[misc]
    memory: Any = Field(exclude=True)


class RememberTool(_MemoryTool):
    name: str = "Remember a fact"
    description: str = "Store `value` under `key` in persistent memory (overwrites the key)."
    args_schema: type[BaseModel] = RememberArgs

    def _run(self, key: str, value: str, **_: Any) -> str:
        try:
            self.memory.set(key, value)
        except (InvalidRequest, QuotaExceeded, TooLarge) as exc:
            return _refused(exc)
        return f"stored '{key}'"

    async def _arun(self, key: str, value: str, **_: Any) -> str:
        try:
            await self.memory.aset(key, value)
        except (InvalidRequest, QuotaExceeded, TooLarge) as exc:
            return _refused(exc)
        return f"stored '{key}'"


class RecallTool(_MemoryTool):
    name: str = "Recall a fact"
    description: str = "Fetch the value stored under `key`; 'not found' when nothing is."
    args_schema: type[BaseModel] = RecallArgs

    def _run(self, key: str, **_: Any) -> str:
        try:
            item = self.memory.item(key)
        except InvalidRequest as exc:
            return _refused(exc)
        return "not found" if item is None else _show(item.value)

    async def _arun(self, key: str, **_: Any) -> str:
        try:
            item = await self.memory.aitem(key)
        except InvalidRequest as exc:
            return _refused(exc)
        return "not found" if item is None else _show(item.value)


class ListKeysTool(_MemoryTool):
    name: str = "List remembered keys"
    description: str = "List the keys currently in memory, optionally only those with `prefix`."
    args_schema: type[BaseModel] = ListArgs

    def _run(self, prefix: str = "", **_: Any) -> str:
        return ", ".join(self.memory.list_keys(prefix or None)) or "(empty)"

    async def _arun(self, prefix: str = "", **_: Any) -> str:
        return ", ".join(await self.memory.alist_keys(prefix or None)) or "(empty)"


def build_tools(memory: Memory) -> list[Any]:
    return [RememberTool(memory=memory), RecallTool(memory=memory), ListKeysTool(memory=memory)]
