"""``BotWireSaver``, LangGraph's checkpointer on BotWire (needs ``langgraph``, extra
``langgraph``): ``layout`` maps threads to namespaces and keys, ``ops`` holds the operations
(sans-I/O), ``saver`` the ``BaseCheckpointSaver``."""

from __future__ import annotations

from botwire_client.langgraph_saver.saver import BotWireSaver

__all__ = ["BotWireSaver"]
