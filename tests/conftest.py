from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _clean_botwire_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the BOTWIRE_* settings of the shell that started pytest."""
    for name in list(os.environ):
        if name.startswith("BOTWIRE_"):
            monkeypatch.delenv(name)
    yield
