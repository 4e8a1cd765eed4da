"""``BotWireSaver`` against LangGraph's own checkpointer conformance suite
(``langgraph-checkpoint-conformance``), on a real server: every base capability and every
extended one, with LangGraph's default serializer (``make test``) and its AES-encrypted one
(``make test-long``). The suite's report is printed: ``pytest -s`` shows it, and pytest's
captured output shows it under a failure."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from client_support import serve
from conftest import REPORT_PROPERTY
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from server_process import ServerProcess

from botwire.langgraph import BotWireSaver

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


async def _validate(
    saver_factory: object, name: str, record_property: Callable[[str, object], None]
) -> None:
    @checkpointer_test(name=name)
    async def registered() -> AsyncIterator[BotWireSaver]:
        saver = saver_factory()  # type: ignore[operator]
        yield saver
        await saver.memory.aclose()

    # Every test's name and error go to the captured output (shown under a failure); the
    # report goes to the log of every run too: conftest prints it after the run.
    report = await validate(registered, progress=ProgressCallbacks.verbose())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report.print_report()
    print(printed.getvalue())
    record_property(REPORT_PROPERTY, printed.getvalue())
    every = {cap.value for cap in BASE_CAPABILITIES | EXTENDED_CAPABILITIES}
    assert {name for name, r in report.results.items() if r.detected} == every
    failures = [f for r in report.results.values() for f in r.failures]
    assert report.passed_all_base(), failures
    assert report.passed_all(), failures
    assert report.conformance_level() == "FULL"


async def test_every_capability_passes(
    server: ServerProcess, record_property: Callable[[str, object], None]
) -> None:
    # A prefix per run: delete_for_runs and list(None) see only this suite's threads.
    prefix = f"conformance-{uuid.uuid4().hex[:8]}/"
    saver = lambda: BotWireSaver(server.url, prefix=prefix)  # noqa: E731
    await _validate(saver, "BotWireSaver", record_property)


@pytest.mark.slow
async def test_every_capability_passes_with_encrypted_serde(
    server: ServerProcess, record_property: Callable[[str, object], None]
) -> None:
    prefix = f"conformance-aes-{uuid.uuid4().hex[:8]}/"
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"0123456789abcdef0123456789abcdef")
    await _validate(
        lambda: BotWireSaver(server.url, prefix=prefix, serde=serde),
        "BotWireSaver (AES)",
        record_property,
    )
