"""``Batch`` and ``AsyncBatch``: several writes and checks committed as ONE revision, or none.

::

    with memory.batch() as b:                      # async with memory.abatch() as b:
        b.check("config", 7)                       # the commit fails unless config is at 7
        b.set("a", 1, ttl=60)
        b.delete("old", expected_version=3)
    b.revision, b.versions                         # 12, {'config': 7, 'a': 12, 'old': 12}

A clean exit commits; an exception inside the block sends nothing. ``commit()`` commits early
and returns the revision; the exit then does nothing more. A failed condition raises
``ConflictError`` whose ``conflicts`` list every op that failed; nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from botwire_client import core
from botwire_client.errors import InvalidRequest
from botwire_client.models import BatchResult

if TYPE_CHECKING:
    from botwire_client.memory import Memory


class _Collect:
    """What both batches share: adding ops (each checked at once) and the committed result."""

    def __init__(self, memory: Memory, meta: core.WriteMeta = core.NO_META) -> None:
        self._memory = memory
        self._ops = core.BatchOps(memory.namespace, meta)
        self.result: BatchResult | None = None

    def _open(self) -> core.BatchOps:
        if self.result is not None:
            raise InvalidRequest("This batch is already committed; start a new one for more ops.")
        return self._ops

    def set(
        self,
        key: str,
        value: Any,
        *,
        expected_version: int | None = None,
        ttl: float | timedelta | None = None,
    ) -> Self:
        """Set ``key`` to ``value`` (conditions and ``ttl`` as in ``Memory.set``)."""
        self._open().set(key, value, expected_version, ttl)
        return self

    def delete(self, key: str, *, expected_version: int | None = None) -> Self:
        """Delete ``key``. In a batch, an absent key is a conflict (current version 0)."""
        self._open().delete(key, expected_version)
        return self

    def check(self, key: str, version: int) -> Self:
        """Commit only if ``key`` is at ``version`` (0: absent); writes nothing to it."""
        self._open().check(key, version)
        return self

    def __len__(self) -> int:
        return len(self._ops.ops)

    @property
    def revision(self) -> int | None:
        """The batch's revision once committed, else ``None``."""
        return None if self.result is None else self.result.revision

    @property
    def versions(self) -> Mapping[str, int]:
        """Each key's version after the commit (empty before it)."""
        return {} if self.result is None else self.result.versions


class Batch(_Collect):
    """A batch for the sync methods; see the module docstring."""

    def commit(self) -> int:
        """Commit now and return the revision (again, without sending, once committed)."""
        if self.result is None:
            self.result = self._memory._run(self._ops.commit_op())
        return self.result.revision

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()


class AsyncBatch(_Collect):
    """A batch for the async methods; see the module docstring."""

    async def commit(self) -> int:
        """Commit now and return the revision (again, without sending, once committed)."""
        if self.result is None:
            self.result = await self._memory._arun(self._ops.commit_op())
        return self.result.revision

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
