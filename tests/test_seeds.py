"""Every code snippet of the public seed documents runs unchanged against our server, and its
data survives a client process restart and a server restart.

The snippets live in ``tests/seeds/s*.py``, extracted from ``tests/seeds/originals/*.txt`` with
their flattened indentation restored (``test_snippets_are_verbatim`` checks every line). Only
framework and LLM calls are stand-ins (``tests/seeds/stubs/``, ``tests/seeds/drivers.py``); the
BotWire calls reach a real ``botwire serve``. Not extracted: shell lines (``pip install
botwire``) and seed 000's illustration of the problem, ``context = ??? # Lost in the void``,
which is not Python.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from client_support import CREWAI_ENV, PYTHON, crewai_python, subprocess_env
from server_process import ServerProcess

pytestmark = pytest.mark.e2e

SEEDS = Path(__file__).resolve().parent / "seeds"
SNIPPETS = sorted(p.stem for p in SEEDS.glob("s[0-9]*.py"))
NEEDS_CREWAI = {"s002_crewai_researcher"}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", SNIPPETS)
def test_snippets_are_verbatim(name: str) -> None:
    (source,) = (SEEDS / "originals").glob(f"{name[1:4]}_*.txt")
    original = _lines(source.read_text())
    snippet = _lines((SEEDS / f"{name}.py").read_text())
    starts = [i for i, line in enumerate(original) if line == snippet[0]]
    assert any(original[i : i + len(snippet)] == snippet for i in starts), name


def _run(python: str, url: str, *args: str) -> None:
    done = subprocess.run(
        [python, str(SEEDS / "runner.py"), *args],
        env=subprocess_env(url, **CREWAI_ENV),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"


# The CrewAI snippet runs in .cache/crewai-venv: minutes of pip on a fresh machine, so in
# make test-long with the other CrewAI tests.
RUNS = [
    pytest.param(name, marks=pytest.mark.slow) if name in NEEDS_CREWAI else name
    for name in SNIPPETS
]


@pytest.mark.parametrize("name", RUNS)
def test_seed_snippet_runs_and_its_data_survives_restarts(name: str, tmp_path: Path) -> None:
    python = crewai_python() if name in NEEDS_CREWAI else PYTHON
    # The default settings, as a user's server has them (the free tier's quotas included).
    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}") as server:
        _run(python, server.url, name, "run:1")
        # A new client process: round 2 only passes if it finds round 1's data.
        _run(python, server.url, name, "run:2", "check")
        server.restart()
        _run(python, server.url, name, "check")
