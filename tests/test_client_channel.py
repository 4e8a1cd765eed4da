"""Our client's ``register`` and ``Channel`` (sync and async) against a real server with
tokens: two agents, posts, oldest-first reads, ``watch`` on Server-Sent Events, grants and the
binding of an agent name to its token, and the channel's change feed through ``Memory``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_process import ServerProcess

import botwire
from botwire import Channel, ForbiddenError, InvalidRequest, Memory
from botwire_client.channel import lookup, search

pytestmark = pytest.mark.e2e

ADMIN = "bw_root_" + "c" * 40


def make_token(url: str, *grants: tuple[str, str]) -> str:
    made = httpx.post(
        f"{url}/admin/tokens",
        json={"name": "t", "grants": [{"namespaces": p, "access": a} for p, a in grants]},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("channels") / "botwire.db"
    env = {"BOTWIRE_AUTH": "tokens", "BOTWIRE_ADMIN_TOKEN": ADMIN}
    with ServerProcess(f"sqlite:///{db}", env=env) as process:
        yield process


def test_two_agents_talk(server: ServerProcess) -> None:
    url = server.url
    agents = ("botwire:agents", "write")
    team = ("botwire:channel:team-*", "write")
    a_token, b_token = make_token(url, agents, team), make_token(url, agents, team)
    assert botwire.register("ann", capabilities=["plan"], base_url=url, token=a_token)["name"]
    botwire.register("ben", base_url=url, token=b_token)
    assert lookup("ann", base_url=url, token=b_token)["capabilities"] == ["plan"]
    assert lookup("nobody", base_url=url, token=b_token) is None
    assert [a["name"] for a in search("plan", base_url=url, token=b_token)] == ["ann"]
    with pytest.raises(ForbiddenError):
        botwire.register("ann", base_url=url, token=b_token)  # bound to ann's token

    ann = Channel("team-1", "ann", base_url=url, token=a_token)
    ben = Channel("team-1", "ben", base_url=url, token=b_token)
    assert [m["agent_id"] for m in ann.members()] == ["ann", "ben"]
    with pytest.raises(ForbiddenError):
        Channel("team-1", "ann", base_url=url, token=b_token)  # ben's token acting as ann
    with pytest.raises(ForbiddenError):
        Channel("elsewhere", "ann", base_url=url, token=a_token)
    with pytest.raises(InvalidRequest):
        ann.post("gossip", "x")

    got: list[dict[str, Any]] = []
    ready = threading.Event()

    def follow() -> None:
        stream = ben.watch(after=0)
        ready.set()
        for entry in stream:
            got.append(entry)
            if len(got) == 4:
                break

    thread = threading.Thread(target=follow)
    thread.start()
    ready.wait(10)
    first = ann.post("question", {"q": "lunch?"})
    ben.post("response", "yes")
    ann.post("decision", {"where": "café"})
    ann.post("status", "done")
    thread.join(30)
    assert not thread.is_alive()
    assert [e["id"] for e in got] == [1, 2, 3, 4] and first["id"] == 1
    assert [e["agent_id"] for e in got] == ["ann", "ben", "ann", "ann"]
    assert got[2]["data"] == {"where": "café"}
    assert got[0]["timestamp"] == pytest.approx(first["timestamp"], abs=1e-6)

    page = ben.read(limit=2)
    assert [e["id"] for e in page] == [1, 2]
    assert [e["id"] for e in ben.read(since=page[-1]["timestamp"])] == [3, 4]
    assert [e["id"] for e in ben.read(after=3)] == [4]
    assert [e["type"] for e in ben.read(type="response")] == ["response"]

    # The channel is a namespace: its change feed, read with a channel grant.
    feed = Memory("botwire:channel:team-1", url, token=b_token)
    assert [e.revision for e in feed.changes()] == [1, 2, 3, 4]
    with pytest.raises(InvalidRequest) as refused:
        feed.set("k", 1)
    assert refused.value.code == "reserved_namespace"


async def test_async_channel(server: ServerProcess) -> None:
    url = server.url
    token = make_token(url, ("botwire:agents", "write"), ("botwire:channel:async", "write"))
    await botwire.aregister("cat", base_url=url, token=token)
    ch = Channel("async", "cat", auto_create=False, base_url=url, token=token)
    assert await ch.acreate() is True
    assert await ch.acreate() is False  # exists: joined again, nothing else

    async def first_two() -> list[int]:
        out = []
        async for entry in ch.awatch(type="alert", after=0):
            out.append(entry["id"])
            if len(out) == 2:
                return out
        return out

    watching = asyncio.create_task(first_two())
    await ch.apost("alert", {"n": 1})
    await ch.apost("status", "skipped by the type filter")
    await ch.apost("alert", {"n": 2})
    assert await asyncio.wait_for(watching, 20) == [1, 3]
    assert [e["id"] for e in await ch.aread(after=1)] == [2, 3]
    assert [m["agent_id"] for m in await ch.amembers()] == ["cat"]
    await ch.aclose()
