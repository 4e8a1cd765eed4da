"""The original ``botwire==0.2.1`` client's ``register`` and ``Channel``, unchanged, against a
real server: two agents, one channel, 500 entries posted from two processes at once, all read
back in order by ``since``-paging, and ``Channel.watch`` (0.2.1 polls) delivering new ones.

The virtualenv is the one of ``test_official_client.py`` (``.cache/official-botwire-0.2.1``).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, clean_env
from test_official_client import official_python  # noqa: F401 - the shared fixture

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SETUP = textwrap.dedent(
    """
    import json, botwire
    from botwire import Channel
    out = [botwire.register(a, accept_terms=True, capabilities=["relay"]) for a in ("alice", "bob")]
    ch = Channel("relay", agent_id="alice")
    Channel("relay", agent_id="bob")
    print(json.dumps(out))
    """
)

POSTER = textwrap.dedent(
    """
    import sys
    from botwire import Channel
    agent, count = sys.argv[1], int(sys.argv[2])
    ch = Channel("relay", agent_id=agent)   # 0.2.1 checks the registration by a search
    for i in range(count):
        ch.post("data" if i % 2 else "signal", {"agent": agent, "i": i})
    """
)

READER = textwrap.dedent(
    """
    import json
    from botwire import Channel
    ch = Channel("relay", agent_id="alice", auto_create=False)
    entries, since = [], None
    while True:
        page = ch.read(since=since, limit=100)
        if not page:
            break
        entries.extend(page)
        since = page[-1]["timestamp"]
    signals = ch.read(type="signal", limit=1000)
    print(json.dumps({"entries": entries, "signals": len(signals)}))
    """
)

WATCHER = textwrap.dedent(
    """
    import json, os, sys
    from botwire import Channel
    stop = int(sys.argv[1])
    ch = Channel("relay", agent_id="bob", auto_create=False)

    def seen(entry):
        print(json.dumps([entry["id"], entry["data"]]), flush=True)
        if entry["id"] >= stop:
            os._exit(0)   # watch() catches Exception and never returns

    ch.watch(seen, poll_interval=0.2)
    """
)


def run(python: Path, script: str, env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(python), "-I", "-c", script, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_official_client_channels(official_python: Path, tmp_path: Path) -> None:  # noqa: F811
    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}") as server:
        env = clean_env({"BOTWIRE_URL": server.url})
        registered = json.loads(run(official_python, SETUP, env, tmp_path))
        assert [a["agent_id"] for a in registered] == ["alice", "bob"]

        posters = [
            subprocess.Popen(
                [str(official_python), "-I", "-c", POSTER, agent, "250"],
                env=env,
                cwd=tmp_path,
                stderr=subprocess.PIPE,
                text=True,
            )
            for agent in ("alice", "bob")
        ]
        for p in posters:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err

        out = json.loads(run(official_python, READER, env, tmp_path))
        entries = out["entries"]
        assert [e["id"] for e in entries] == list(range(1, 501))  # all 500, in order, once
        timestamps = [e["timestamp"] for e in entries]
        assert timestamps == sorted(timestamps)
        for agent in ("alice", "bob"):
            mine = [e["data"]["i"] for e in entries if e["agent_id"] == agent]
            assert mine == list(range(250)), agent  # each poster's order kept
        assert out["signals"] == 250
        members = httpx.get(f"{server.url}/channels/relay/members").json()["members"]
        assert [m["agent_id"] for m in members] == ["alice", "bob"]

        watcher = subprocess.Popen(
            [str(official_python), "-I", "-c", WATCHER, "503"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(1.0)  # it is polling by now (or soon: entries are not lost either way)
            for i in range(3):
                posted = httpx.post(
                    f"{server.url}/channels/relay/post",
                    json={"agent_id": "alice", "type": "alert", "data": {"new": i}},
                )
                assert posted.json()["id"] == 501 + i
            stdout, stderr = watcher.communicate(timeout=120)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
        assert watcher.returncode == 0, stderr
        delivered = [json.loads(line) for line in stdout.splitlines()]
        # 0.2.1's watch starts from the oldest entry: every one arrives, in order, once.
        assert [d[0] for d in delivered] == list(range(1, 504))
        assert [d[1] for d in delivered[-3:]] == [{"new": 0}, {"new": 1}, {"new": 2}]
