"""``botwire.errors``: the client's exception tree (see ``botwire_client.errors``)."""

from __future__ import annotations

from botwire_client.errors import (
    BotWireError,
    ConflictError,
    FutureRevision,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    RevisionCompacted,
    ServerError,
    ServerUnavailable,
    TooLarge,
)

__all__ = [
    "BotWireError",
    "ConflictError",
    "FutureRevision",
    "InvalidRequest",
    "NotFound",
    "QuotaExceeded",
    "RevisionCompacted",
    "ServerError",
    "ServerUnavailable",
    "TooLarge",
]
