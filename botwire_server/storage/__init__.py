"""Storage backends behind one ``Store`` interface, chosen by the database URL's scheme."""

from __future__ import annotations

from ..settings import Settings
from .base import Store


def create_store(settings: Settings) -> Store:
    """The backend for ``settings.database_url``: ``postgresql://`` / ``postgres://`` for
    PostgreSQL, ``memory:`` for the in-memory reference store, anything else for SQLite
    (``sqlite:///relative/path``, ``sqlite:////absolute/path`` or a plain file path)."""
    url = settings.database_url
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, settings=settings)
    if url == "memory:":
        from .memory import MemoryStore

        return MemoryStore(limits=settings.limits)
    from .sqlite import SQLiteStore, sqlite_path

    return SQLiteStore(sqlite_path(url), limits=settings.limits)


__all__ = ["Store", "create_store"]
