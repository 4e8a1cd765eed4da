"""A throw-away PostgreSQL database for one run: created before, dropped after."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def backend_available() -> bool:
    """The PostgreSQL store exists in this tree and its driver is installed."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "botwire_server" / "storage" / "postgres.py").exists():
        return False
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return False
    return True


def with_database(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + name))


async def _execute(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class TempDatabase:
    """``with TempDatabase(admin_url) as url:`` a fresh empty database, dropped on exit."""

    def __init__(self, admin_url: str = DEFAULT_ADMIN_URL) -> None:
        self.admin_url = admin_url
        self.name = f"botwire_bench_{os.getpid()}"
        self.url = with_database(admin_url, self.name)

    def __enter__(self) -> str:
        asyncio.run(_execute(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}"'))
        asyncio.run(_execute(self.admin_url, f'CREATE DATABASE "{self.name}"'))
        return self.url

    def __exit__(self, *exc: object) -> None:
        asyncio.run(_execute(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
