"""The web inspector's routes, in process: the page and its files are served from the
package, with the security headers, without a token, and the files keep the rules that make
the page safe to point at agent-written data (no inline script, no HTML parsing of values, the
token in sessionStorage only). The browser tests are in ``test_ui_browser.py``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import httpx
import pytest
from backends import open_store

from botwire_server.http import create_app, ui
from botwire_server.settings import Settings

ADMIN = "bw_operator_" + "s3cret" * 6
UI_DIR = Path(str(resources.files("botwire_server").joinpath("ui")))


@pytest.fixture(params=["off", "tokens"])
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with open_store("memory", tmp_path) as store:
        settings = Settings(auth=request.param, admin_token=ADMIN)
        app = create_app(settings, store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
            yield c


def assert_ui_headers(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "unsafe" not in csp and "*" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-cache"


def page_files() -> set[str]:
    """Every file the page loads: what index.html names, and what the modules import."""
    html = (UI_DIR / "index.html").read_text()
    found = set(re.findall(r'(?:src|href)="/ui/([^"]+)"', html))
    todo = [f for f in found if f.endswith(".js")]
    while todo:
        text = (UI_DIR / todo.pop()).read_text()
        for name in re.findall(r"^import [^;]*? from '\./([^']+)';", text, re.M):
            if name not in found:
                found.add(name)
                todo.append(name)
    return found


async def test_page_is_served_with_the_security_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/ui")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/app.js"></script>' in r.text
    assert_ui_headers(r)
    head = await client.head("/ui")
    assert head.status_code == 200 and head.content == b""


async def test_every_file_the_page_loads_is_served(client: httpx.AsyncClient) -> None:
    files = page_files()
    assert {"app.js", "api.js", "watch.js", "diff.js", "style.css", "icon.svg"} <= files
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in sorted(files):
        r = await client.get(f"/ui/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].split(";")[0] == types[Path(name).suffix], name
        assert r.content == (UI_DIR / name).read_bytes()
        assert_ui_headers(r)
    # Nothing shipped that the page does not use.
    assert set(ui.ASSETS) == files | {"index.html"}


async def test_the_ui_needs_no_token_and_the_api_still_does(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ui")).status_code == 200
    assert (await client.get("/ui/app.js")).status_code == 200
    r = await client.get("/namespaces")
    tokens_on = r.status_code == 401
    assert r.status_code == (401 if tokens_on else 200)
    ok = await client.get("/namespaces", headers={"Authorization": f"Bearer {ADMIN}"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "path", ["/ui/nope.js", "/ui/index.html", "/ui/..%2Fui.py", "/ui/%2E%2E", "/ui/app.js/x"]
)
async def test_other_paths_are_404(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404
    body = r.json()
    assert body["code"] == "route_not_found" and body["status"] == 404


async def test_a_known_version_is_not_sent_again(client: httpx.AsyncClient) -> None:
    first = await client.get("/ui/app.js")
    etag = first.headers["etag"]
    again = await client.get("/ui/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert_ui_headers(again)
    other = await client.get("/ui/app.js", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.content == first.content


def test_the_page_has_no_inline_script_style_or_handlers() -> None:
    html = (UI_DIR / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="/ui/' in tag, tag
    assert all(
        not body.strip() for body in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
    )
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"\sstyle\s*=", html)
    assert "<style" not in html


def test_scripts_render_text_only_and_keep_the_token_out_of_urls() -> None:
    """Values reach the page as text: no API that parses HTML or evaluates strings appears in
    the scripts; the token lives in sessionStorage only and travels in a header only."""
    banned = [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "createContextualFragment",
        "DOMParser",
        "localStorage",
        "document.cookie",
        "new EventSource",
    ]
    scripts = {p.name: p.read_text() for p in UI_DIR.glob("*.js")}
    assert len(scripts) >= 8
    for name, text in scripts.items():
        for word in banned:
            assert word not in text, (name, word)
    api = scripts["api.js"]
    assert "sessionStorage" in api
    assert "headers.Authorization = `Bearer ${token}`" in api
    for name, text in scripts.items():
        if name != "api.js":
            assert "sessionStorage." not in text and "Bearer ${" not in text, name
        # A URL is built from names and query values, never from the token.
        for line in text.splitlines():
            if "withQuery(" in line or "fetch(" in line:
                assert "token" not in line.lower(), (name, line)
