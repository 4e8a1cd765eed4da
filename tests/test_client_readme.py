"""The README's Temporal pattern, run as written against a real server: the revision recorded by
an activity makes a replayed read see the first execution's data, and a retried write cannot
apply twice. Temporal itself is the stand-in of ``tests/seeds/stubs`` (activities run inline)."""

from __future__ import annotations

import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_support import PYTHON, ROOT, serve, subprocess_env
from server_process import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


def readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, heading
    return match.group(1)


REPLAY = """
    import asyncio, sys
    sys.path.insert(0, {stubs!r})
    exec(compile({block!r}, "README.md", "exec"))

    # What Temporal records in the workflow history: each activity's result.
    recorded = {{}}
    run_activity = workflow.execute_activity

    async def recording(activity, *args, **options):
        recorded[activity.__name__] = await run_activity(activity, *args, **options)
        return recorded[activity.__name__]

    workflow.execute_activity = recording

    memory.set("fact-1", "the sky is blue")
    assert asyncio.run(AgentWorkflow().run("t1")) == "t1 done with 1 facts"
    revision = recorded["pin_revision"]
    memory.set("fact-2", "written after the first execution")
    memory.set("fact-1", "changed since")

    # A replay gets `revision` from the history, so its read sees the first execution's data.
    assert asyncio.run(load_context(revision)) == {{"fact-1": "the sky is blue"}}
    assert len(asyncio.run(load_context(memory.head()))) == 3

    # A retried save_result (same arguments) cannot write a second time.
    before = memory.head()
    asyncio.run(save_result("t1", "t1 done with 1 facts", revision))
    assert memory.head() == before
    assert [e.value for e in memory.history("result-t1")] == ["t1 done with 1 facts"]
    print("ok")
"""


def test_temporal_pattern_from_the_readme(server: ServerProcess) -> None:
    block = readme_block("### Temporal")
    assert "await memory.ahead()" in block and "as_of=revision" in block
    script = textwrap.dedent(REPLAY).format(
        stubs=str(Path(__file__).resolve().parent / "seeds" / "stubs"), block=block
    )
    done = subprocess.run(
        [PYTHON, "-c", script],
        env=subprocess_env(server.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"


HANDLER = """
    import sys
    exec(compile({block!r}, "README.md", "exec"))
    worker = sys.argv[1]
    for turn in range(25):
        lambda_handler({{"user": "shared", "message": f"{{worker}}-{{turn}}"}}, None)
    print("ok")
"""


def test_serverless_handler_from_the_readme_loses_no_turn(server: ServerProcess) -> None:
    """The handler as a new user copies it, run by 4 processes at once for 25 turns each, all on
    one user: every turn is kept (a read-modify-write without expected_version kept 81 of 100)."""
    block = readme_block("### Async, and serverless handlers")
    assert "expected_version" in block
    script = textwrap.dedent(HANDLER).format(block=block)
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", script, str(worker)],
            env=subprocess_env(server.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", out + err
    check = subprocess.run(
        [
            PYTHON,
            "-c",
            "from botwire import Memory; print(len(Memory('sessions').get('shared')))",
        ],
        env=subprocess_env(server.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip() == "100", check.stdout + check.stderr
