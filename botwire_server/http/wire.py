"""Wire types: every request and response body, as msgspec structs.

Values travel as ``msgspec.Raw``: the stored JSON bytes are spliced into responses without being
decoded. Request bodies refuse unknown fields (400 ``invalid_body`` naming the field: a typo such
as ``expected_verison`` must not be silently ignored); response types only ever gain fields with
defaults, and clients ignore fields they do not know, so old clients and new servers keep
understanding each other. The OpenAPI document's schemas are generated from these structs
(``openapi.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

# Revisions and versions are bound to a signed 64-bit integer by every SQL backend.
MAX_INT = 2**63 - 1
Revision = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]

# -- requests --------------------------------------------------------------------------------


class PutBody(msgspec.Struct, forbid_unknown_fields=True):
    value: Any
    expected_version: Revision | None = None
    ttl: float | None = None


class RollbackBody(msgspec.Struct, forbid_unknown_fields=True):
    to: Revision | str
    key: str | None = None
    dry_run: bool = False


class RevertBody(msgspec.Struct, forbid_unknown_fields=True):
    """Undo a run; ``dry_run``: only report what would change."""

    dry_run: bool = False


class CompactBody(msgspec.Struct, forbid_unknown_fields=True):
    before: Revision


class GrantIn(msgspec.Struct, forbid_unknown_fields=True):
    """``namespaces``: an exact namespace or a prefix ending in ``*`` (``*``: every one)."""

    namespaces: str
    access: Literal["read", "write", "admin"]


class TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    """A new token: a name, 1-100 grants, and seconds until it expires (none: never)."""

    name: str
    grants: list[GrantIn]
    expires_in: float | None = None


class SetOp(msgspec.Struct, tag_field="op", tag="set", forbid_unknown_fields=True):
    """Set ``key`` to ``value``; ``ttl``: seconds until it expires."""

    key: str
    value: Any
    expected_version: Revision | None = None
    ttl: float | None = None


class DeleteOp(msgspec.Struct, tag_field="op", tag="delete", forbid_unknown_fields=True):
    """Delete ``key``; an absent key is a conflict."""

    key: str
    expected_version: Revision | None = None


class CheckOp(msgspec.Struct, tag_field="op", tag="check", forbid_unknown_fields=True):
    """Write nothing; require ``key`` to be at ``expected_version`` (0: absent)."""

    key: str
    expected_version: Revision


class BatchBody(msgspec.Struct, forbid_unknown_fields=True):
    """1-1000 ops, each key at most once, committed as ONE revision or not at all."""

    ops: list[SetOp | DeleteOp | CheckOp]


class GetBody(msgspec.Struct, forbid_unknown_fields=True):
    """1-1000 keys read at one revision: now, or ``as_of`` (a revision or an ISO-8601 time)."""

    keys: list[str]
    as_of: Revision | str | None = None


class QueryBody(msgspec.Struct, forbid_unknown_fields=True):
    """A filtered listing: items whose value matches ``filter`` (see ``botwire_server.filters``)
    and whose key starts with ``prefix``, in key order, skipping ``offset`` matches."""

    filter: dict[str, Any] | None = None
    prefix: str | None = None
    offset: int = 0
    limit: int = 10
    as_of: Revision | str | None = None


# -- responses -------------------------------------------------------------------------------


class Stored(msgspec.Struct):
    namespace: str
    key: str
    stored: bool
    bytes: int
    version: int
    created_revision: int


class ItemOut(msgspec.Struct):
    namespace: str
    key: str
    value: msgspec.Raw
    created_at: float
    updated_at: float
    version: int
    created_revision: int
    expires_at: float | None = None


class Deleted(msgspec.Struct):
    deleted: bool
    namespace: str
    key: str
    version: int


class KeyOut(msgspec.Struct):
    key: str
    bytes: int
    updated_at: float
    version: int
    expires_at: float | None = None


class KeyPage(msgspec.Struct):
    namespace: str
    count: int
    keys: list[KeyOut]
    next_cursor: str | None
    revision: int


class StatsOut(msgspec.Struct):
    total_entries: int
    total_namespaces: int
    total_bytes: int


class EventOut(msgspec.Struct):
    """A key's event. ``actor`` (the token's name), ``run``, ``agent``, ``reason``: who wrote
    it and why (null when not given, and for events written before they were recorded)."""

    revision: int
    op: Literal["set", "delete", "expire"]
    value: msgspec.Raw | None
    at: str
    expires_at: str | None = None
    actor: str | None = None
    run: str | None = None
    agent: str | None = None
    reason: str | None = None


class HistoryPage(msgspec.Struct):
    namespace: str
    key: str
    events: list[EventOut]
    next_cursor: str | None


class NamespaceOut(msgspec.Struct):
    namespace: str
    revision: int
    keys: int
    bytes: int
    oldest_revision: int
    updated_at: str | None


class SnapshotPage(msgspec.Struct):
    namespace: str
    revision: int
    values: dict[str, msgspec.Raw]
    next_cursor: str | None


class ChangeOut(msgspec.Struct):
    key: str
    op: Literal["set", "delete"]
    value: msgspec.Raw | None


class RollbackOut(msgspec.Struct):
    namespace: str
    revision: int
    dry_run: bool
    changed: list[ChangeOut]


class CompactOut(msgspec.Struct):
    namespace: str
    removed: int
    oldest_revision: int


class NamespaceEntry(msgspec.Struct):
    namespace: str
    revision: int
    keys: int
    bytes: int
    updated_at: str | None


class NamespacesPage(msgspec.Struct):
    """Namespaces the token may read, in name order."""

    namespaces: list[NamespaceEntry]
    next_cursor: str | None


class TokenOut(msgspec.Struct):
    """A token without its secret. Times are ISO-8601 UTC; null: never (or not yet)."""

    id: str
    name: str
    grants: list[GrantIn]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class TokenCreated(msgspec.Struct):
    """A new token; ``token`` is the full secret token, shown only in this response."""

    id: str
    name: str
    token: str
    grants: list[GrantIn]
    expires_at: str | None


class TokenList(msgspec.Struct):
    tokens: list[TokenOut]


class Health(msgspec.Struct):
    status: str


class OpResult(msgspec.Struct):
    """A set's or delete's new version; for a check, the version it saw."""

    key: str
    version: int


class BatchOut(msgspec.Struct):
    namespace: str
    revision: int
    results: list[OpResult]


class ItemAt(msgspec.Struct):
    """A key as read by the extended routes (times in ISO-8601)."""

    key: str
    value: msgspec.Raw
    version: int
    created_revision: int
    created_at: str
    updated_at: str
    expires_at: str | None


class QueryOut(msgspec.Struct):
    """The matching items at ``revision``; ``skipped``: matches the offset passed over;
    ``more``: whether more matches follow."""

    namespace: str
    revision: int
    items: list[ItemAt]
    skipped: int
    more: bool


class ItemsOut(msgspec.Struct):
    """Each requested key's item, or null when absent at ``revision``."""

    namespace: str
    revision: int
    items: dict[str, ItemAt | None]


class FeedEvent(msgspec.Struct):
    """One event of the change feed (and of a watch stream's ``data``, and of a run), with
    its provenance (null when absent)."""

    revision: int
    key: str
    op: Literal["set", "delete", "expire"]
    value: msgspec.Raw | None
    at: str
    expires_at: str | None
    actor: str | None = None
    run: str | None = None
    agent: str | None = None
    reason: str | None = None


class ChangesOut(msgspec.Struct):
    """The events of revisions (after, next_after], oldest first; pass ``next_after`` as
    ``after`` for the next page (equal to ``head`` once caught up)."""

    namespace: str
    head: int
    events: list[FeedEvent]
    next_after: int


class RunPage(msgspec.Struct):
    """The events a run wrote, oldest first; ``next_cursor``: pass it as ``cursor`` for more."""

    namespace: str
    run: str
    events: list[FeedEvent]
    next_cursor: str | None


class SkippedOut(msgspec.Struct):
    """A key a revert left alone: ``reason`` ``written_by_others`` (written after the run by
    another run or without one) or ``history_compacted``; its current version (0: absent)."""

    key: str
    reason: str
    current_version: int


class RevertOut(msgspec.Struct):
    """A run's revert: ``revision`` is the new head (unchanged for a dry run or when nothing
    changed)."""

    namespace: str
    run: str
    revision: int
    dry_run: bool
    changed: list[ChangeOut]
    skipped: list[SkippedOut]


class ConflictOut(msgspec.Struct):
    """A batch op whose condition failed; ``current_version`` 0: the key is absent."""

    index: int
    key: str
    current_version: int


class ErrorOut(msgspec.Struct):
    """Every error: a sentence for humans, a stable code, the HTTP status, and the fields that
    help with some codes (see the error table of each response). Built from the server's
    exception classes (``errors.py``); this struct only describes it."""

    error: str
    code: str
    status: int
    current_version: int | msgspec.UnsetType = msgspec.UNSET
    conflicts: list[ConflictOut] | msgspec.UnsetType = msgspec.UNSET
    oldest_revision: int | msgspec.UnsetType = msgspec.UNSET
    head: int | msgspec.UnsetType = msgspec.UNSET
    retry_after: int | msgspec.UnsetType = msgspec.UNSET
    limit: int | msgspec.UnsetType = msgspec.UNSET


encode = msgspec.json.Encoder().encode
put_decoder = msgspec.json.Decoder(PutBody)
rollback_decoder = msgspec.json.Decoder(RollbackBody)
compact_decoder = msgspec.json.Decoder(CompactBody)
revert_decoder = msgspec.json.Decoder(RevertBody)
batch_decoder = msgspec.json.Decoder(BatchBody)
get_decoder = msgspec.json.Decoder(GetBody)
query_decoder = msgspec.json.Decoder(QueryBody)
token_decoder = msgspec.json.Decoder(TokenBody)
