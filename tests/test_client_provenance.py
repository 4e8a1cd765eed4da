"""The client's provenance, runs and idempotency against a real ``botwire serve`` (PRODUCT.md
section 9): run and agent on every write, ``with_run``, ``reason=``, ``idempotency_key=``,
``run_events``, ``revert_run`` in sync and async, the chat history's and the CLI's run."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator

import pytest
from client_support import PYTHON, fresh_namespace, serve, subprocess_env
from server_process import ServerProcess

from botwire import BotWireChatHistory, Memory
from botwire_client.errors import BotWireError, InvalidRequest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


def test_run_agent_reason_and_revert(server: ServerProcess) -> None:
    ns = fresh_namespace()
    with Memory(ns, server.url, agent="planner") as base, base.with_run("bad") as bad:
        base.set("plan", "v1", reason="first plan")
        bad.set("plan", "v2", reason="replanned")
        bad.set("scratch", [1, 2])
        with bad.batch(reason="cleanup") as b:
            b.delete("scratch")
            b.set("notes", "n")
        events = base.run_events("bad")
        assert [(e.key, e.op, e.agent, e.run) for e in events] == [
            ("plan", "set", "planner", "bad"),
            ("scratch", "set", "planner", "bad"),
            ("notes", "set", "planner", "bad"),
            ("scratch", "delete", "planner", "bad"),
        ]
        assert base.history("plan")[0].reason == "replanned"
        dry = base.revert_run("bad", dry_run=True)
        assert dry.dry_run and sorted(dry.changed) == ["notes", "plan"] and dry.skipped == ()
        done = base.with_run("undo").revert_run("bad", reason="bad run")
        assert done.revision == base.head() and not done.dry_run
        assert base.snapshot() == {"plan": "v1"}
        assert {e.run for e in base.changes(after=done.revision - 1)} == {"undo"}


def test_async_twins(server: ServerProcess) -> None:
    ns = fresh_namespace()

    async def main() -> None:
        async with Memory(ns, server.url, run="r") as m:
            await m.aset("k", 1, idempotency_key="a1")
            await m.aset("k", 1, idempotency_key="a1")
            async with m.abatch(idempotency_key="b1") as b:
                b.set("j", 2)
            assert [e.key for e in await m.arun_events("r")] == ["k", "j"]
            result = await m.arevert_run("r")
            assert sorted(result.changed) == ["j", "k"]
            assert await m.ahead() == 3

    asyncio.run(main())


def test_idempotency_key_on_every_write(server: ServerProcess) -> None:
    ns = fresh_namespace()
    with Memory(ns, server.url) as m:
        assert m.set("k", 1, idempotency_key="s") == 1
        assert m.set("k", 1, idempotency_key="s") == 1
        with pytest.raises(BotWireError) as reused:
            m.set("k", 2, idempotency_key="s")
        assert reused.value.status == 422 and reused.value.code == "idempotency_key_reused"
        assert m.delete("k", idempotency_key="d") is True
        assert m.delete("k", idempotency_key="d") is True  # the first outcome, not a 404
        assert m.rollback(1, idempotency_key="r").revision == 3
        assert m.rollback(1, idempotency_key="r").revision == 3
        assert m.head() == 3
        with pytest.raises(InvalidRequest):
            m.set("k", 1, idempotency_key="x" * 129)
    with pytest.raises(InvalidRequest):
        Memory(ns, server.url, run="r" * 257)


def test_chat_history_run(server: ServerProcess) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.messages import HumanMessage

    ns = fresh_namespace()
    history = BotWireChatHistory("s1", ns, base_url=server.url, run="thread-7")
    history.add_messages([HumanMessage("hi")])
    with Memory(ns, server.url) as m:
        # One batch: the session's counter and its first message (chat_history's layout).
        ran = [e.key for e in m.run_events("thread-7")]
        assert sorted(ran) == ["s1/m/000000000001", "s1/seq"]
        m.revert_run("thread-7")
        assert m.list_keys() == []
    assert BotWireChatHistory("s1", ns, base_url=server.url).messages == []


@pytest.mark.slow  # four interpreter starts
def test_cli_run_and_revert_run(server: ServerProcess) -> None:
    ns = fresh_namespace()
    env = subprocess_env(server.url)

    def cli(*args: str) -> dict[str, object]:
        done = subprocess.run(
            [PYTHON, "-m", "botwire_client.cli", *args], env=env, capture_output=True, check=True
        )
        out: dict[str, object] = json.loads(done.stdout)
        return out

    cli("set", ns, "k", "1")
    cli("set", ns, "k", "2", "--run", "job-1")
    dry = cli("revert-run", ns, "job-1", "--dry-run")
    assert dry["changed"] == [{"key": "k", "op": "set", "value": 1}] and dry["dry_run"] is True
    done = cli("revert-run", ns, "job-1")
    assert done["revision"] == 3 and done["skipped"] == []
    with Memory(ns, server.url) as m:
        assert m.get("k") == 1
