"""The web inspector in a real browser: Playwright drives Debian's Chromium against real
``botwire serve`` processes (slow: ``make test-long``, which installs chromium).

Two tests need the provenance routes and fields of PRODUCT.md section 9 (``GET
/namespaces/{ns}/runs/{run}``, ``POST .../revert``, ``actor``/``run``/``agent``/``reason`` on
events); until the server has them (its OpenAPI document says so) they are expected to fail,
strictly, and run as ordinary tests once it does."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from browser import chromium, put
from playwright.sync_api import Browser, Page, expect
from server_process import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ADMIN = "bw_uiadmin_" + "a" * 40
TIMEOUT = 10_000  # ms an expectation may wait (a busy 2-core machine)
expect.set_options(timeout=TIMEOUT)


def enc(name: str) -> str:
    return quote(name, safe="")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("ui") / "botwire.db"
    with ServerProcess(f"sqlite:///{db}") as proc:
        yield proc


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("ui-tokens") / "botwire.db"
    env = {"BOTWIRE_AUTH": "tokens", "BOTWIRE_ADMIN_TOKEN": ADMIN}
    with ServerProcess(f"sqlite:///{db}", env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage) in UTC; fails the test on a script error or a
    Content-Security-Policy violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(TIMEOUT)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def console(message: Any) -> None:
        # Chromium logs every 4xx answer as "Failed to load resource"; the page shows those.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(message.text)

    tab.on("console", console)
    yield tab
    context.close()
    assert problems == []


def goto(page: Page, server: ServerProcess, fragment: str = "#/") -> None:
    page.goto(f"{server.url}/ui{fragment}")


def head(server: ServerProcess, ns: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{server.url}/namespaces/{enc(ns)}", headers=headers, timeout=10)
    return int(r.json()["revision"])


def value(server: ServerProcess, ns: str, key: str) -> Any:
    r = httpx.get(f"{server.url}/memory/{enc(ns)}/{enc(key)}", timeout=10)
    return r.json()["value"] if r.status_code == 200 else None


# -- browsing ------------------------------------------------------------------------------------


def test_browse_namespaces_and_open_one(page: Page, server: ServerProcess) -> None:
    put(server.url, "browse/alpha", "user:1", {"name": "Ada"})
    put(server.url, "browse/alpha", "notes", "line one")
    put(server.url, "browse/beta", "k", 1)
    put(server.url, "elsewhere", "k", 1)
    goto(page, server)
    rows = page.locator("table.namespaces tbody tr")
    expect(rows.filter(has_text="elsewhere")).to_have_count(1)
    alpha = rows.filter(has_text="browse/alpha")
    expect(alpha.locator("td").nth(0)).to_have_text("2")  # head revision
    expect(alpha.locator("td").nth(1)).to_have_text("2")  # keys
    page.get_by_label("Search (namespace prefix)").fill("browse/")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="elsewhere")).to_have_count(0)
    page.get_by_role("link", name="browse/alpha").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Namespace browse/alpha")
    keys = page.locator("table.keys tbody tr")
    expect(keys).to_have_count(2)
    expect(keys.filter(has_text="user:1").locator("code.preview")).to_have_text('{"name":"Ada"}')
    page.get_by_label("Filter by key prefix").fill("user:")
    expect(keys).to_have_count(1)


def test_keyboard_alone_reaches_a_namespace(page: Page, server: ServerProcess) -> None:
    put(server.url, "kbd-only", "k", "v")
    goto(page, server, "#/?q=kbd-")
    expect(page.locator("table.namespaces tbody tr")).to_have_count(1)
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "kbd-only":
            break
    else:
        pytest.fail("Tab never reached the namespace's link")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Namespace kbd-only")
    expect(page.locator("table.keys tbody tr")).to_have_count(1)


def test_key_timeline_shows_each_version_and_the_diff(page: Page, server: ServerProcess) -> None:
    ns = "timeline"
    put(server.url, ns, "prefs", {"lang": "python", "theme": "dark"})
    put(server.url, ns, "prefs", {"lang": "go", "theme": "dark", "font": 14})
    httpx.delete(f"{server.url}/memory/{ns}/prefs", timeout=10).raise_for_status()
    put(server.url, ns, "prefs", {"lang": "go"})
    goto(page, server, f"#/ns/{ns}")
    page.get_by_role("link", name="prefs").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Key prefs")
    events = page.locator("ol.timeline > li")
    expect(events).to_have_count(4)
    expect(events.nth(0).locator("h3")).to_contain_text("Revision 4")
    expect(events.nth(1).locator("h3")).to_contain_text("delete")
    # Version 2 against version 1: one field changed, one added.
    second = events.nth(2).locator("ul.diff > li")
    expect(second).to_have_count(2)
    expect(second.filter(has_text="font")).to_have_text(re.compile(r"\+\s*font\s*14"))
    changed = second.filter(has_text="lang")
    expect(changed.locator("del")).to_have_text('"python"')
    expect(changed.locator("ins")).to_have_text('"go"')
    # The first version is all new; the re-creation after the delete too.
    expect(events.nth(3).locator("ul.diff > li")).to_have_text(re.compile(r"\(value\)"))
    expect(events.nth(0).locator("ul.diff > li")).to_have_count(1)
    # A new version written meanwhile appears at the top.
    put(server.url, ns, "prefs", {"lang": "rust"})
    expect(events).to_have_count(5)
    expect(events.nth(0).locator("ins")).to_have_text('"rust"')


def test_a_long_history_is_paged(page: Page, server: ServerProcess) -> None:
    ns = "paged"
    for i in range(25):
        put(server.url, ns, "counter", {"n": i})
    goto(page, server, f"#/ns/{ns}/key/counter")
    events = page.locator("ol.timeline > li")
    expect(events).to_have_count(20)
    # The oldest event of the page waits for the next page to show its change.
    expect(events.nth(19)).to_contain_text("Load older versions")
    page.get_by_role("button", name="Older versions").click()
    expect(events).to_have_count(25)
    expect(page.get_by_role("button", name="Older versions")).to_be_hidden()
    expect(events.nth(19).locator("ul.diff del")).to_have_text("4")
    expect(events.nth(19).locator("ul.diff ins")).to_have_text("5")
    expect(events.nth(24)).to_contain_text("First version in the kept history")


def test_a_large_value_starts_collapsed(page: Page, server: ServerProcess) -> None:
    big = {f"field{i}": "x" * 40 for i in range(60)}
    put(server.url, "large", "blob", big)
    goto(page, server, "#/ns/large/key/blob")
    details = page.locator("section.panel").first.locator("details.collapsed")
    expect(details).to_have_count(1)
    pre = details.locator("pre")
    expect(pre).to_be_hidden()
    details.locator("summary").click()
    expect(pre).to_be_visible()
    expect(pre).to_contain_text('"field59"')


def test_the_time_control_shows_older_values(page: Page, server: ServerProcess) -> None:
    ns = "timetravel"
    put(server.url, ns, "plan", "draft")  # revision 1
    first_at = httpx.get(f"{server.url}/namespaces/{ns}/changes", timeout=10).json()["events"][0]
    time.sleep(1.2)
    put(server.url, ns, "plan", "final")  # revision 2
    put(server.url, ns, "extra", True)  # revision 3
    goto(page, server, f"#/ns/{ns}")
    plan = page.locator("table.keys tbody tr").filter(has_text="plan").locator("code.preview")
    expect(plan).to_have_text('"final"')
    # The slider, by keyboard: two steps back.
    slider = page.get_by_label("Revision", exact=True)
    slider.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#rev-info")).to_contain_text("As of revision 1 of 3")
    expect(plan).to_have_text('"draft"')
    expect(page.locator("table.keys tbody tr")).to_have_count(1)
    assert "at=1" in page.url
    page.get_by_role("button", name="Back to now (live)").click()
    expect(plan).to_have_text('"final"')
    # A time between revisions 1 and 2 shows revision 1.
    at = datetime.fromisoformat(first_at["at"].replace("Z", "+00:00")).replace(microsecond=0)
    page.get_by_label("As of time (local)").fill(
        (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#rev-info")).to_contain_text("As of revision 1 of 3")
    expect(plan).to_have_text('"draft"')


def test_a_write_by_another_client_appears_live(page: Page, server: ServerProcess) -> None:
    ns = "live"
    put(server.url, ns, "before", 1)
    goto(page, server, f"#/ns/{ns}")
    expect(page.locator(".live-state")).to_contain_text("Watching")
    rows = page.locator("table.keys tbody tr")
    expect(rows).to_have_count(1)
    put(server.url, ns, "arrived", {"from": "another client"})
    expect(rows.filter(has_text="arrived").locator("code.preview")).to_have_text(
        '{"from":"another client"}'
    )
    expect(page.locator("ol.log li").first).to_contain_text("arrived")
    expect(page.locator("#head")).to_have_text("2")
    httpx.delete(f"{server.url}/memory/{ns}/before", timeout=10).raise_for_status()
    expect(rows).to_have_count(1)
    expect(page.locator("ol.log li").first).to_contain_text("delete")


def test_the_live_view_reconnects_after_a_restart(page: Page, tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}") as own:
        put(own.url, "restart", "a", 1)
        goto(page, own, "#/ns/restart")
        expect(page.locator(".live-state")).to_contain_text("Watching")
        put(own.url, "restart", "b", 2)
        expect(page.locator("table.keys tbody tr")).to_have_count(2)
        own.restart()
        put(own.url, "restart", "c", 3)  # written while the page is reconnecting
        rows = page.locator("table.keys tbody tr")
        expect(rows).to_have_count(3, timeout=30_000)
        expect(page.locator(".live-state")).to_contain_text("Watching")
        expect(page.locator("ol.log li")).to_have_count(2)  # b and c, each once


# -- rollback ------------------------------------------------------------------------------------


def test_namespace_rollback_shows_the_dry_run_then_writes(
    page: Page, server: ServerProcess
) -> None:
    ns = "rollback-ns"
    put(server.url, ns, "a", {"v": 1})  # 1
    put(server.url, ns, "b", "later")  # 2
    put(server.url, ns, "a", {"v": 3})  # 3
    goto(page, server, f"#/ns/{ns}?at=1")
    button = page.get_by_role("button", name="Roll back namespace to revision 1…")
    button.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("2 keys would change")
    expect(dialog.locator("ol.dry-run > li").filter(has_text="b")).to_contain_text("delete")
    changed = dialog.locator("ol.dry-run > li").filter(has_text="set")
    expect(changed.locator("del")).to_have_text("3")
    expect(changed.locator("ins")).to_have_text("1")
    assert head(server, ns) == 3  # a dry run writes nothing
    page.keyboard.press("Escape")  # cancel
    expect(dialog).to_have_count(0)
    assert head(server, ns) == 3
    button.click()
    page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
    expect(page.locator(".notice.ok")).to_contain_text("Rolled back: revision 4 written")
    assert head(server, ns) == 4
    assert value(server, ns, "a") == {"v": 1}
    assert value(server, ns, "b") is None


def test_key_rollback_from_the_timeline(page: Page, server: ServerProcess) -> None:
    ns = "rollback-key"
    put(server.url, ns, "k", "first")  # 1
    put(server.url, ns, "other", 1)  # 2
    put(server.url, ns, "k", "second")  # 3
    goto(page, server, f"#/ns/{ns}/key/k")
    page.get_by_role("button", name="Roll back key to revision 1…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("1 key would change")
    expect(dialog.locator("del")).to_have_text('"second"')
    expect(dialog.locator("ins")).to_have_text('"first"')
    dialog.get_by_role("button", name="Roll back key").click()
    expect(page.locator(".notice.ok")).to_contain_text("revision 4 written")
    expect(page.locator("ol.timeline > li")).to_have_count(3)
    assert value(server, ns, "k") == "first"
    assert value(server, ns, "other") == 1


# -- safety --------------------------------------------------------------------------------------

XSS = '<img src=x onerror="window.__pwned=1;alert(1)">'


def test_stored_markup_renders_as_text_and_runs_nothing(page: Page, server: ServerProcess) -> None:
    ns = "xss<b>bold</b>"
    put(server.url, ns, XSS, {"html": XSS, "script": "<script>window.__pwned=2</script>"})
    put(server.url, ns, XSS, XSS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    goto(page, server, "#/?q=xss")
    expect(page.get_by_role("link", name=ns)).to_be_visible()
    page.get_by_role("link", name=ns).click()
    expect(page.locator("table.keys tbody th")).to_have_text(XSS)
    expect(page.locator("table.keys code.preview")).to_have_text(
        '"<img src=x onerror=\\"window.__pwned=1;alert(1)\\">"'
    )
    page.locator("table.keys tbody th a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Key {XSS}")
    expect(page.locator("ol.timeline > li")).to_have_count(2)
    scripted = page.locator("ol.timeline").get_by_text("<script>window.__pwned=2</script>")
    expect(scripted).not_to_have_count(0)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    # Nothing the server sent became markup: no image, no script but the page's own.
    assert page.locator("img").count() == 0
    assert page.locator("b").count() == 0
    assert page.locator("script").count() == 1


def test_phone_width_has_no_sideways_scrolling(browser: Browser, server: ServerProcess) -> None:
    put(server.url, "phone", "a-rather-long-key-name-for/a-small-screen", {"text": "y" * 300})
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        tab = context.new_page()
        for fragment in (
            "#/",
            "#/ns/phone",
            "#/ns/phone/key/" + enc("a-rather-long-key-name-for/a-small-screen"),
        ):
            tab.goto(f"{server.url}/ui{fragment}")
            expect(tab.locator("main h1")).to_be_visible()
            tab.wait_for_load_state("networkidle")
            width = tab.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (fragment, width)
    finally:
        context.close()


# -- tokens --------------------------------------------------------------------------------------


def make_token(server: ServerProcess, grants: list[dict[str, str]]) -> str:
    r = httpx.post(
        f"{server.url}/admin/tokens",
        json={"name": "inspector-test", "grants": grants},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    r.raise_for_status()
    return str(r.json()["token"])


def test_sign_in_with_a_token_and_see_a_403(page: Page, secured: ServerProcess) -> None:
    put(secured.url, "team-a/agent", "memo", "visible", ADMIN)
    put(secured.url, "team-b/agent", "memo", "hidden", ADMIN)
    token = make_token(secured, [{"namespaces": "team-a/*", "access": "read"}])
    requests: list[tuple[str, str | None]] = []
    page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
    goto(page, secured)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    # A wrong token: a clear 401, and the form again.
    page.get_by_label("Token").fill("bw_nosuch_" + "x" * 40)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The token was refused (401)")
    expect(page.get_by_label("Token")).to_be_visible()
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    rows = page.locator("table.namespaces tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("team-a/agent")
    # A namespace outside the grant: 403, shown as such.
    goto(page, secured, f"#/ns/{enc('team-b/agent')}")
    expect(page.get_by_role("alert").first).to_contain_text("Forbidden (403)")
    # Kept for this tab only, never in a URL; sent as a bearer header.
    assert page.evaluate("sessionStorage.getItem('botwire.token')") == token
    assert page.evaluate("localStorage.length") == 0
    assert all(token not in url for url, _ in requests)
    api_calls = [auth for url, auth in requests if "/ui" not in url and "/namespaces" in url]
    assert api_calls and f"Bearer {token}" in api_calls
    assert token not in page.url
    # A reload keeps the session; signing out forgets the token.
    page.reload()
    expect(page.get_by_role("alert").first).to_contain_text("Forbidden (403)")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert page.evaluate("sessionStorage.getItem('botwire.token')") is None


def test_a_new_tab_asks_again(browser: Browser, secured: ServerProcess) -> None:
    token = make_token(secured, [{"namespaces": "*", "access": "read"}])
    context = browser.new_context()
    try:
        first = context.new_page()
        first.goto(f"{secured.url}/ui")
        first.get_by_label("Token").fill(token)
        first.get_by_role("button", name="Sign in").click()
        expect(first.locator("table.namespaces")).to_be_visible()
        second = context.new_page()  # sessionStorage is per tab
        second.goto(f"{secured.url}/ui")
        expect(second.get_by_role("heading", level=1)).to_have_text("Sign in")
    finally:
        context.close()


# -- provenance (PRODUCT.md section 9) -----------------------------------------------------------


def test_the_timeline_shows_who_and_why(page: Page, secured: ServerProcess) -> None:
    ns = "prov/timeline"
    token = make_token(secured, [{"namespaces": "prov/*", "access": "write"}])
    headers = {"BotWire-Run": "run-7", "BotWire-Agent": "planner", "BotWire-Reason": "user said so"}
    put(secured.url, ns, "goal", "ship it", token, **headers)
    goto(page, secured)
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("table.namespaces")).to_be_visible()
    goto(page, secured, f"#/ns/{enc(ns)}/key/goal")
    meta = page.locator("ol.timeline > li").first.locator("dl.meta")
    expect(meta.locator("div").filter(has_text="Actor").locator("dd")).to_have_text(
        "inspector-test"
    )
    expect(meta.locator("div").filter(has_text="Run").locator("dd")).to_have_text("run-7")
    expect(meta.locator("div").filter(has_text="Agent").locator("dd")).to_have_text("planner")
    expect(meta.locator("div").filter(has_text="Reason").locator("dd")).to_have_text("user said so")
    meta.get_by_role("link", name="run-7").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Run run-7")


def test_revert_a_run_after_its_dry_run(page: Page, server: ServerProcess) -> None:
    ns = "prov/revert"
    put(server.url, ns, "plan", "v1")  # 1: before the run
    run = {"BotWire-Run": "run-42", "BotWire-Agent": "writer"}
    put(server.url, ns, "plan", "v2 by the run", **run)  # 2
    put(server.url, ns, "scratch", {"tmp": True}, **run)  # 3
    put(server.url, ns, "shared", "by the run", **run)  # 4
    put(server.url, ns, "shared", "by someone else")  # 5: the revert must leave it
    goto(page, server, f"#/ns/{enc(ns)}/run/run-42")
    rows = page.locator("table.run tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("plan")
    page.get_by_role("button", name="Revert this run…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("2 keys would change")
    expect(dialog.locator("ul.skipped")).to_contain_text("shared")
    plan = dialog.locator("ol.dry-run > li").filter(has_text="plan")
    expect(plan.locator("del")).to_have_text('"v2 by the run"')
    expect(plan.locator("ins")).to_have_text('"v1"')
    assert head(server, ns) == 5
    dialog.get_by_role("button", name="Revert run").click()
    expect(page.locator(".notice.ok")).to_contain_text("Reverted: revision 6 written")
    assert value(server, ns, "plan") == "v1"
    assert value(server, ns, "scratch") is None
    assert value(server, ns, "shared") == "by someone else"
    # The inspector's own write says where it came from.
    r = httpx.get(f"{server.url}/memory/{enc(ns)}/plan/history?limit=1", timeout=10)
    assert r.json()["events"][0]["agent"] == "web-inspector"


# -- the screenshots in docs/ --------------------------------------------------------------------


def test_the_screenshot_script_takes_every_view(browser: Browser, tmp_path: Path) -> None:
    import ui_screenshots

    names = ui_screenshots.main(tmp_path, browser)
    views = {"namespaces", "namespace", "key", "time", "rollback", "login", "phone"}
    assert set(names) == views | {"run", "revert"}
    for name in names:
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, name
