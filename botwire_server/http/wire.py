"""Wire types: every request and response body, as msgspec structs.

Values travel as ``msgspec.Raw``: the stored JSON bytes are spliced into responses without being
decoded. Request bodies refuse unknown fields (400 ``invalid_body`` naming the field: a typo such
as ``expected_verison`` must not be silently ignored); response types only ever gain fields with
defaults, and clients ignore fields they do not know, so old clients and new servers keep
understanding each other.
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


class RollbackBody(msgspec.Struct, forbid_unknown_fields=True):
    to: Revision | str
    key: str | None = None
    dry_run: bool = False


class CompactBody(msgspec.Struct, forbid_unknown_fields=True):
    before: Revision


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
    revision: int
    op: Literal["set", "delete"]
    value: msgspec.Raw | None
    at: str


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


class Health(msgspec.Struct):
    status: str


encode = msgspec.json.Encoder().encode
put_decoder = msgspec.json.Decoder(PutBody)
rollback_decoder = msgspec.json.Decoder(RollbackBody)
compact_decoder = msgspec.json.Decoder(CompactBody)
