"""The Model Context Protocol: the official SDK's own ``ClientSession`` against real servers.

Over streamable HTTP it talks to ``/mcp`` of a ``botwire serve`` process (with tokens: 401
without one, 403 sentences as tool errors for a token without the grant); over stdio it spawns
``botwire mcp`` pointed at such a server. Every tool is called, errors included.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from server_process import ServerProcess, clean_env

from botwire_client.mcp_tools import TOOL_NAMES

pytestmark = pytest.mark.e2e

ADMIN = "bw_root_" + "m" * 40
ENV = {"BOTWIRE_AUTH": "tokens", "BOTWIRE_ADMIN_TOKEN": ADMIN}
BOTWIRE = str(Path(sys.executable).with_name("botwire"))


def make_token(url: str, *grants: tuple[str, str]) -> str:
    made = httpx.post(
        f"{url}/admin/tokens",
        json={"name": "mcp test", "grants": [{"namespaces": p, "access": a} for p, a in grants]},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("mcp") / "botwire.db"
    with ServerProcess(f"sqlite:///{db}", env=ENV) as process:
        yield process
        # The MCP session manager ran in the lifespan: the server still stops gracefully.
        assert process.stop() == 0, process.output()[-2000:]


@asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as client,
        streamable_http_client(f"{url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(args: list[str], env: dict[str, str]) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=BOTWIRE, args=["mcp", *args], env=clean_env(env))
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_of(session: ClientSession, name: str, **arguments: Any) -> str:
    result = await session.call_tool(name, arguments)
    assert result.is_error, result.structured_content
    return " ".join(getattr(c, "text", "") for c in result.content)


async def exercise(session: ClientSession, ns: str | None) -> None:
    """Every tool but memory_revert_run, and both resource templates."""
    where = {} if ns is None else {"namespace": ns}
    name = ns or "default-ns"
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(TOOL_NAMES) <= set(tools)
    assert "dry run" in (tools["memory_rollback"].description or "").lower()
    assert "json" in json.dumps(tools["memory_set"].input_schema).lower()
    assert tools["memory_get"].output_schema is not None
    templates = {
        t.uri_template for t in (await session.list_resource_templates()).resource_templates
    }
    assert templates == {"botwire://{namespace}", "botwire://{namespace}/{key}"}

    assert (await call(session, "memory_get", key="user:42", **where))["found"] is False
    first = await call(session, "memory_set", key="user:42", value={"name": "Ana"}, **where)
    assert first["namespace"] == name and first["version"] >= 1
    got = await call(session, "memory_get", key="user:42", **where)
    assert got["value"] == {"name": "Ana"} and got["version"] == first["version"]
    second = await call(session, "memory_set", key="user:42", value="Bea", **where)
    await call(session, "memory_set", key="notes/a b", value=[1, 2], **where)
    keys = await call(session, "memory_list_keys", **where)
    assert keys["keys"] == ["notes/a b", "user:42"] and keys["truncated"] is False
    assert (await call(session, "memory_list_keys", limit=1, **where))["truncated"] is True
    history = await call(session, "memory_history", key="user:42", **where)
    assert [e["value"] for e in history["events"]] == ["Bea", {"name": "Ana"}]

    preview = await call(session, "memory_rollback", to=first["version"], **where)
    assert preview["dry_run"] is True
    assert preview["changed"] == [
        {"key": "notes/a b", "op": "delete", "value": None},
        {"key": "user:42", "op": "set", "value": {"name": "Ana"}},
    ]
    assert (await call(session, "memory_get", key="user:42", **where))["value"] == "Bea"
    done = await call(session, "memory_rollback", to=first["version"], dry_run=False, **where)
    assert done["dry_run"] is False and done["revision"] > second["version"]
    assert (await call(session, "memory_get", key="user:42", **where))["value"] == {"name": "Ana"}

    assert (await call(session, "memory_delete", key="user:42", **where))["deleted"] is True
    assert (await call(session, "memory_delete", key="user:42", **where))["deleted"] is False

    # Our messages, as tool errors.
    said = await error_of(session, "memory_set", key="k", value=1, expected_version=99, **where)
    assert "expected to be at version 99" in said and "version_conflict" in said
    assert "control character" in await error_of(session, "memory_get", key="a\x01b", **where)
    assert "in the future" in await error_of(session, "memory_rollback", to=10**6, **where)
    assert "neither a revision" in await error_of(session, "memory_rollback", to="soon", **where)

    await call(session, "memory_set", key="a/b", value={"x": 1}, **where)
    read = await session.read_resource(f"botwire://{name}/a%2Fb")
    assert json.loads(read.contents[0].text) == {"x": 1}  # type: ignore[union-attr]
    listing = await session.read_resource(f"botwire://{name}")
    assert json.loads(listing.contents[0].text)["keys"] == ["a/b"]  # type: ignore[union-attr]


async def test_streamable_http_with_tokens(server: ServerProcess) -> None:
    token = make_token(server.url, ("mcp-*", "write"))
    async with http_session(server.url, token) as session:
        await exercise(session, "mcp-http")
        said = await error_of(session, "memory_set", namespace="other", key="k", value=1)
        assert "but not write 'other'" in said and "forbidden" in said
        assert "Pass `namespace`" in await error_of(session, "memory_get", key="k")

    reader = make_token(server.url, ("mcp-http", "read"))
    async with http_session(server.url, reader) as session:
        assert (await call(session, "memory_get", namespace="mcp-http", key="a/b"))["found"]
        said = await error_of(session, "memory_delete", namespace="mcp-http", key="a/b")
        assert "but not write 'mcp-http'" in said

    # Without a token, or with a wrong one, the request never reaches MCP: our 401.
    for headers in ({}, {"Authorization": "Bearer bw_nope_" + "x" * 40}):
        refused = httpx.post(
            f"{server.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**headers, "Accept": "application/json, text/event-stream"},
        )
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthenticated"
    # The SDK's client, refused the same way, fails to initialise.
    with pytest.raises(ExceptionGroup) as raised:
        async with http_session(server.url, None):
            pass
    assert raised.group_contains(MCPError)


async def test_rest_api_beside_mcp(server: ServerProcess) -> None:
    """/mcp is mounted; every other route still answers as before."""
    auth = {"Authorization": f"Bearer {ADMIN}"}
    async with http_session(server.url, ADMIN) as session:
        await call(session, "memory_set", namespace="beside", key="k", value=1)
    with httpx.Client(base_url=server.url, headers=auth) as http:
        assert http.get("/memory/beside/k").json()["value"] == 1
        assert http.put("/memory/beside/k", json={"value": 2}).json()["version"] == 2
        assert http.get("/namespaces/beside/changes").json()["head"] == 2
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/memory/beside/k/history").json()["events"][0]["value"] == 2
        assert http.get("/mcp/extra").status_code == 404
        assert "/memory/{ns}/{key}" in http.get("/openapi.json").json()["paths"]


async def test_stdio_against_a_server(server: ServerProcess) -> None:
    # The server needs tokens, so every call that succeeds carried this one.
    token = make_token(server.url, ("default-ns", "write"), ("x", "write"))
    env = {"BOTWIRE_URL": server.url, "BOTWIRE_TOKEN": token}
    async with stdio_session(["--namespace", "default-ns"], env) as session:
        resources = (await session.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["botwire://default-ns"]
        await exercise(session, None)
        assert "empty" in await error_of(session, "memory_set", namespace="x", key="", value=1)
        said = await error_of(session, "memory_get", namespace="y", key="k")
        assert "but not read 'y'" in said and "forbidden" in said


async def test_memory_revert_run_tool(server: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server.url, headers=auth) as http:
        assert http.put("/memory/runs/k", json={"value": 0}).status_code == 200
        run = {**auth, "BotWire-Run": "run-1"}
        assert http.put("/memory/runs/k", json={"value": 1}, headers=run).status_code == 200
        assert http.put("/memory/runs/new", json={"value": 2}, headers=run).status_code == 200
    async with http_session(server.url, ADMIN) as session:
        preview = await call(session, "memory_revert_run", namespace="runs", run="run-1")
        assert preview["dry_run"] is True
        assert preview["changed"] == [
            {"key": "k", "op": "set", "value": 0},
            {"key": "new", "op": "delete", "value": None},
        ]
        assert (await call(session, "memory_get", namespace="runs", key="k"))["value"] == 1
        done = await call(
            session, "memory_revert_run", namespace="runs", run="run-1", dry_run=False
        )
        assert done["dry_run"] is False and done["skipped"] == []
        assert (await call(session, "memory_get", namespace="runs", key="k"))["value"] == 0
        # A run that wrote nothing there: nothing to revert, nothing written.
        empty = await call(session, "memory_revert_run", namespace="other", run="r", dry_run=False)
        assert (empty["revision"], empty["changed"], empty["skipped"]) == (0, [], [])
        said = await error_of(session, "memory_revert_run", namespace="other", run="x" * 300)
        assert "BotWire-Run" in said or "256" in said, said
