"""``botwire.errors``: the client's exception tree (see ``botwire_client.errors``)."""

from __future__ import annotations

from botwire_client.errors import (
    AuthError,
    BotWireError,
    ConflictError,
    ForbiddenError,
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
    "AuthError",
    "BotWireError",
    "ConflictError",
    "ForbiddenError",
    "FutureRevision",
    "InvalidRequest",
    "NotFound",
    "QuotaExceeded",
    "RevisionCompacted",
    "ServerError",
    "ServerUnavailable",
    "TooLarge",
]
