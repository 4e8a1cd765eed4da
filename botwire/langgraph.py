"""``botwire.langgraph``: LangGraph persistence on BotWire (needs the ``langgraph`` extra): the
checkpointer and the long-term memory store.

from botwire.langgraph import BotWireSaver, BotWireStore
"""

from __future__ import annotations

from botwire_client.langgraph_saver import BotWireSaver
from botwire_client.langgraph_store import BotWireStore

__all__ = ["BotWireSaver", "BotWireStore"]
