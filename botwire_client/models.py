"""What the client returns besides plain values: immutable records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    expires_at: datetime | None = None  # set by a write with ``ttl``; None: it never expires


@dataclass(frozen=True, slots=True)
class Event:
    """One write to one key, from its history, the change feed or a watch.

    ``value`` is ``None`` for a delete and an expiry. ``expires_at`` is the TTL deadline a set
    gave the key. ``actor``, ``run``, ``agent`` and ``reason`` say who wrote it and why (``None``
    when the server did not record it). ``extra`` keeps fields this client version does not know,
    so a newer server's additions stay readable.
    """

    revision: int
    op: Literal["set", "delete", "expire"]
    value: Any
    at: datetime
    key: str | None = None
    expires_at: datetime | None = None
    actor: str | None = None
    run: str | None = None
    agent: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


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


@dataclass(frozen=True, slots=True)
class Skipped:
    """A key a run's revert left alone: ``reason`` is ``written_by_others`` (someone else
    wrote it after the run did) or ``history_compacted``; ``current_version`` 0: absent."""

    key: str
    reason: str
    current_version: int


@dataclass(frozen=True, slots=True)
class RevertResult:
    """A run's revert: ``revision`` is the new revision (the unchanged head on a dry run or
    when nothing changed); ``changes`` what was (or would be) set back or removed;
    ``skipped`` the keys left alone because others wrote them since."""

    revision: int
    dry_run: bool
    changes: tuple[Change, ...]
    skipped: tuple[Skipped, ...]

    @property
    def changed(self) -> list[str]:
        return [c.key for c in self.changes]


@dataclass(frozen=True, slots=True)
class Conflict:
    """One failed condition of a batch: the op at ``index`` (0-based, in the order the ops were
    added) expected a version of ``key`` other than ``current_version`` (0: absent)."""

    index: int
    key: str
    current_version: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A committed batch: ``revision`` is the ONE revision all its writes share (the unchanged
    head for an empty batch); ``versions`` maps each key to its new version (for a check: the
    version it saw; for a delete: the batch's revision), in the order the ops were added."""

    revision: int
    versions: Mapping[str, int]
