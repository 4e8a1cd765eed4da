"""What the client returns besides plain values: immutable records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Item:
    """A key's current (or ``as_of``) value with its versioning metadata.

    ``version`` is the revision of the key's last write; ``created_revision`` the revision that
    created its current incarnation (a delete ends one). ``item()`` returns ``None`` for an absent
    key, so a stored ``None`` (``Item(value=None, ...)``) is told apart from absence.
    """

    key: str
    value: Any
    version: int
    created_revision: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a key's history: ``value`` is ``None`` for a delete."""

    revision: int
    op: Literal["set", "delete"]
    value: Any
    at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """One key a rollback sets back (``op="set"``, ``value``) or removes (``op="delete"``)."""

    key: str
    op: Literal["set", "delete"]
    value: Any


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """``revision`` is the new revision, or the unchanged head when nothing differed or on a
    dry run; ``changes`` lists what was (or, on a dry run, would be) changed."""

    revision: int
    dry_run: bool
    changes: tuple[Change, ...]

    @property
    def changed(self) -> list[str]:
        """The keys the rollback changed (or would change)."""
        return [c.key for c in self.changes]
