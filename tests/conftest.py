from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from backends import BACKENDS, FakeClock, OpenStore, open_store

from botwire_server.settings import Limits
from botwire_server.storage.base import Store


@pytest.fixture(autouse=True)
def _clean_botwire_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the BOTWIRE_* settings of the shell that started pytest."""
    for name in list(os.environ):
        if name.startswith("BOTWIRE_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty, opened store of every backend in ``tests/backends.py``, default limits."""
    async with open_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
    """Open a store of each backend with chosen limits and clock (no limits by default)."""
    counter = iter(range(1000))

    def make(
        *, limits: Limits | None = None, clock: FakeClock | None = None
    ) -> AbstractAsyncContextManager[Store]:
        directory = tmp_path / f"store{next(counter)}"
        directory.mkdir()
        return open_store(
            request.param,
            directory,
            limits=limits or Limits(writes_per_day=0, namespace_max_bytes=0, value_max_bytes=0),
            clock=clock,
        )

    return make


@pytest.fixture
async def clocked(make_store: OpenStore) -> AsyncIterator[tuple[Store, FakeClock]]:
    clock = FakeClock(datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
    async with make_store(clock=clock) as store:
        yield store, clock


def _uses_crewai_venv(item: pytest.Item) -> bool:
    return item.path.name == "test_crewai.py" or "crewai" in item.name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests parametrised with the ``postgres`` backend carry the ``postgres`` marker, so
    ``-m postgres`` / ``-m "not postgres"`` select them.

    The tests that need ``.cache/crewai-venv`` run first: on a fresh checkout the first of them
    builds that virtualenv (one to several minutes of pip). pytest-xdist hands the first chunk
    of tests to one worker, so that worker builds it while the others run the rest of the suite,
    instead of the build landing at the end of the run or several workers waiting on its lock."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgres" in callspec.params.values():
            item.add_marker(pytest.mark.postgres)
    items[:] = sorted(items, key=lambda item: not _uses_crewai_venv(item))


# Reports a test wants in the log even when it passes (LangGraph's checkpointer conformance):
# it records them with record_property(REPORT_PROPERTY, text); pytest-xdist carries the
# property back to the main process, which prints them after the run.
REPORT_PROPERTY = "printed_report"
_reports: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _reports.extend(str(v) for k, v in report.user_properties if k == REPORT_PROPERTY)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for text in _reports:
        terminalreporter.write_line(text)
