"""``botwire.langgraph``: LangGraph persistence on BotWire (needs the ``langgraph`` extra).

from botwire.langgraph import BotWireSaver
"""

from __future__ import annotations

from botwire_client.langgraph_saver import BotWireSaver

__all__ = ["BotWireSaver"]
