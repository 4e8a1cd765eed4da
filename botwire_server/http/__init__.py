"""The HTTP layer: a Starlette application over one ``Store``."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
