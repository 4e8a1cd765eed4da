"""langchain-tests' standard BaseStore suites (sync and async) for ``BotWireByteStore``.

Run only inside ``.cache/langchain-tests-venv`` by ``tests/test_byte_store.py`` (langchain-tests
brings pytest plugins of its own), against the server at ``BOTWIRE_URL``; each test gets an
empty store in a fresh namespace."""

from __future__ import annotations

import uuid

import pytest
from langchain_tests.integration_tests import BaseStoreAsyncTests, BaseStoreSyncTests

from botwire.langchain import BotWireByteStore


def _store() -> BotWireByteStore:
    return BotWireByteStore(f"bytes-{uuid.uuid4().hex}")


class TestBotWireByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def kv_store(self) -> BotWireByteStore:
        return _store()

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"bar", b"\x00\xffbuzz"


class TestBotWireByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    async def kv_store(self) -> BotWireByteStore:
        return _store()

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"bar", b"\x00\xffbuzz"
