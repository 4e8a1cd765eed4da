"""``botwire.langgraph``: LangGraph's long-term memory store on BotWire (extra ``langgraph``).

from botwire.langgraph import BotWireStore
"""

from __future__ import annotations

from botwire_client.langgraph_store import BotWireStore

__all__ = ["BotWireStore"]
