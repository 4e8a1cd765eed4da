"""Headless Chromium for the inspector's browser tests and screenshots (Playwright's Python
package driving Debian's ``/usr/bin/chromium``; no browser is downloaded).

Usage::

    from browser import chromium, seed

    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/ui")

``make test-long`` and ``make screenshots`` install Debian's chromium first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def put(url: str, ns: str, key: str, value: Any, token: str | None = None, **headers: str) -> int:
    """Set ``ns/key`` through the API; the new version."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    seg = httpx.URL(f"{url}/").copy_with(path=f"/memory/{_enc(ns)}/{_enc(key)}")
    r = httpx.put(str(seg), json={"value": value}, headers=headers, timeout=10)
    r.raise_for_status()
    return int(r.json()["version"])


def _enc(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def seed(url: str, token: str | None = None) -> None:
    """A small agent memory to look at: two namespaces, a key with three versions written by
    two agent runs (their provenance headers are ignored by a server without provenance)."""
    billing = {"BotWire-Run": "run-2026-11-30", "BotWire-Agent": "billing-agent"}
    support = {"BotWire-Run": "run-2026-12-01", "BotWire-Agent": "support-agent"}
    put(url, "support-bot", "user:42", {"name": "Ada", "plan": "free", "tags": ["new"]}, token)
    put(url, "support-bot", "notes/2026-11.md", "Called about billing.\nPrefers e-mail.", token)
    put(
        url,
        "support-bot",
        "user:42",
        {"name": "Ada", "plan": "pro", "tags": ["new"]},
        token,
        **billing,
        **{"BotWire-Reason": "plan upgraded after payment"},
    )
    put(url, "support-bot", "ticket:7", {"status": "open", "priority": 2}, token)
    put(
        url,
        "support-bot",
        "notes/2026-11.md",
        "Called about billing.\nPrefers phone.\nRenewal due in December.",
        token,
    )
    put(
        url,
        "support-bot",
        "user:42",
        {"name": "Ada L.", "plan": "pro", "tags": ["new", "vip"]},
        token,
        **support,
        **{"BotWire-Reason": "customer gave her full name"},
    )
    put(url, "research-agent", "sources", ["arxiv:2401.00001", "arxiv:2402.00002"], token)
    put(url, "research-agent", "summary", "Two papers on event sourcing for agents.", token)
