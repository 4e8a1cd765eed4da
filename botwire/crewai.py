"""``botwire.crewai``: where the original package's docstring imported the tools from."""

from __future__ import annotations

from botwire_client import memory_tools

__all__ = ["memory_tools"]
