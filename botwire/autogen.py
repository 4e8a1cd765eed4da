"""``botwire.autogen``: AutoGen memory on BotWire (extra ``autogen``).

from botwire.autogen import BotWireMemory
"""

from __future__ import annotations

from botwire_client.autogen_memory import BotWireMemory, BotWireMemoryConfig

__all__ = ["BotWireMemory", "BotWireMemoryConfig"]
