"""The units the PostgreSQL store groups: writes waiting for their namespace's next group
commit, their outcomes, and gets waiting for a grouped read (see ``postgres.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BotWireServerError
from .base import NO_PROVENANCE, Item, NsState, Provenance, Write

# Gets waiting for one grouped read: (namespace, key, the caller's answer).
GetGroup = list[tuple[str, str, "asyncio.Future[Item | None]"]]


Head = NsState  # a namespace row, read under its lock (queries.LOCK_HEAD: same columns)

WriteWork = Callable[[Any, "Head"], Awaitable[Any]]


@dataclass(slots=True)
class Queued:
    """A write waiting for its namespace's next group commit."""

    work: WriteWork
    creates: bool  # may create the namespace row (a set); others never write to a new one
    future: asyncio.Future[Any]


@dataclass(slots=True)
class Plain:
    """A commit (a list of writes, one revision) waiting for its namespace's next group commit:
    applied by the ``botwire_commit`` function, many commits in one round trip."""

    writes: Sequence[Write]
    future: asyncio.Future[Any]
    meta: Provenance = NO_PROVENANCE


@dataclass(slots=True)
class Outcome:
    """One write's result or refusal within a group."""

    result: Any
    error: BotWireServerError | None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result

    def settle(self, future: asyncio.Future[Any]) -> None:
        if self.error is not None:
            future.set_exception(self.error)
        else:
            future.set_result(self.result)


__all__ = ["GetGroup", "Head", "Outcome", "Plain", "Queued", "WriteWork"]
