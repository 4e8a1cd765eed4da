"""Screenshots of the web inspector's views, for the README: ``make screenshots`` (or
``python tests/ui_screenshots.py DIR``) starts a real server on a temporary SQLite file,
writes example data and saves one PNG per view in DIR (docs/ui in the repository).
``test_ui_browser.py`` runs it too, so it keeps working."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx
from browser import chromium, put, seed
from playwright.sync_api import Browser, Page, expect
from server_process import ServerProcess

ADMIN = "bw_shots_" + "s" * 40


def shot(page: Page, out: Path, name: str, names: list[str]) -> None:
    page.wait_for_timeout(400)  # let the flash of live rows fade a little
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    names.append(name)


def main(out: Path, browser: Browser | None = None) -> list[str]:
    """Save the screenshots in ``out`` (with ``browser``, or a Chromium of its own); the names
    taken."""
    if browser is None:
        with chromium() as own:
            return main(out, own)
    b = browser
    out.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {"BOTWIRE_AUTH": "tokens", "BOTWIRE_ADMIN_TOKEN": ADMIN}
        with ServerProcess(f"sqlite:///{tmp}/botwire.db", env=env) as server:
            run = {"BotWire-Run": "run-2026-12-01", "BotWire-Agent": "support-agent"}
            # The agent's own token: with provenance, its name is the events' actor.
            created = httpx.post(
                f"{server.url}/admin/tokens",
                json={"name": "agent-runtime", "grants": [{"namespaces": "*", "access": "write"}]},
                headers={"Authorization": f"Bearer {ADMIN}"},
                timeout=10,
            )
            created.raise_for_status()
            agent = str(created.json()["token"])
            seed(server.url, agent)
            reason = {"BotWire-Reason": "customer confirmed the fix"}
            put(server.url, "support-bot", "ticket:7", {"status": "closed"}, agent, **run, **reason)
            context = b.new_context(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{server.url}/ui")
            expect(page.get_by_label("Token")).to_be_visible()
            page.get_by_label("Token").fill("bw_example_" + "x" * 40)
            shot(page, out, "login", names)
            page.get_by_label("Token").fill(ADMIN)
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("table.namespaces tbody tr")).to_have_count(2)
            shot(page, out, "namespaces", names)

            page.get_by_role("link", name="support-bot").click()
            expect(page.locator(".live-state")).to_contain_text("Watching")
            put(
                server.url, "support-bot", "user:42:last_seen", "2026-12-01T10:02:00Z", agent, **run
            )
            expect(page.locator("ol.log li")).to_have_count(1)
            shot(page, out, "namespace", names)

            page.goto(f"{server.url}/ui#/ns/support-bot?at=3")
            expect(page.locator("#rev-info")).to_contain_text("As of revision 3")
            shot(page, out, "time", names)
            page.get_by_role("button", name="Roll back namespace to revision 3…").click()
            expect(page.get_by_role("dialog")).to_contain_text("would change")
            shot(page, out, "rollback", names)
            page.keyboard.press("Escape")

            page.goto(f"{server.url}/ui#/ns/support-bot/key/user%3A42")
            expect(page.locator("ol.timeline > li")).to_have_count(3)
            shot(page, out, "key", names)

            page.goto(f"{server.url}/ui#/ns/support-bot/run/run-2026-12-01")
            expect(page.locator("table.run tbody tr")).not_to_have_count(0)
            shot(page, out, "run", names)
            page.get_by_role("button", name="Revert this run…").click()
            expect(page.get_by_role("dialog")).to_be_visible()
            shot(page, out, "revert", names)
            context.close()

            phone = b.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, timezone_id="UTC"
            )
            tab = phone.new_page()
            tab.goto(f"{server.url}/ui")
            tab.get_by_label("Token").fill(ADMIN)
            tab.get_by_role("button", name="Sign in").click()
            tab.goto(f"{server.url}/ui#/ns/support-bot")
            expect(tab.locator("table.keys tbody tr")).to_have_count(4)
            shot(tab, out, "phone", names)
            phone.close()
            httpx.get(f"{server.url}/healthz", timeout=5).raise_for_status()
    return names


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/ui")
    for taken in main(target):
        print(target / f"{taken}.png")
