"""The client's exception tree, built from the server's stable error ``code``.

::

    BotWireError                      anything the client raises on purpose (.status, .code, .body)
    ├── ConflictError                 409 version_conflict; .current_version (0: the key is absent)
    │                                 409 batch_conflict; also .conflicts (index, key, version)
    ├── QuotaExceeded                 429 write_quota_exceeded / token_quota_exceeded;
    │                                 .retry_after (seconds)
    ├── InvalidRequest (ValueError)   400 / 405 / 415: bad name, parameter, cursor, body
    │   ├── FutureRevision            400 future_revision; .head
    │   └── TooLarge                  413 value_too_large / namespace_full /
    │                                 token_storage_full
    ├── AuthError                     401 unauthenticated: no token, or an unknown, expired or
    │                                 revoked one
    ├── ForbiddenError                403 forbidden: the token's grants do not cover the request
    ├── NotFound                      404 other than an absent key (wrong URL, old server)
    ├── RevisionCompacted             410 revision_compacted; .oldest_revision
    ├── ServerUnavailable             503, or the server could not be reached (after retries)
    └── ServerError                   any other 5xx (507 disk_full, 500)

An absent key is not an error: ``get`` returns the default, ``item`` returns ``None`` and
``delete`` returns ``False``. ``InvalidRequest`` is also a ``ValueError`` because the original
client raised ``ValueError`` for a bad namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botwire_client.models import Conflict


class BotWireError(Exception):
    """Base of every error the client raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body: dict[str, Any] = body or {}


class ConflictError(BotWireError):
    """A set or delete carried an ``expected_version`` that no longer holds.

    For a batch, ``conflicts`` lists every failed condition and ``current_version`` is the first
    one's; for a single write, ``conflicts`` is empty.
    """

    def __init__(
        self,
        message: str,
        *,
        current_version: int,
        conflicts: list[Conflict] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.current_version = current_version
        self.conflicts: list[Conflict] = conflicts or []


class QuotaExceeded(BotWireError):
    """The namespace used up its writes for the day."""

    def __init__(self, message: str, *, retry_after: int | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class InvalidRequest(BotWireError, ValueError):
    """The server (or the client, before sending) refused the input."""


class FutureRevision(InvalidRequest):
    """``as_of`` or a rollback target is above the namespace's head revision."""

    def __init__(self, message: str, *, head: int | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.head = head


class TooLarge(InvalidRequest):
    """A value, or the namespace's live data, is over the server's size limit."""


class AuthError(BotWireError):
    """The server needs a valid token: none was sent, or it is unknown, expired or revoked."""


class ForbiddenError(BotWireError):
    """The token is valid, but its grants do not allow this request on this namespace."""


class NotFound(BotWireError):
    """A route the client needs does not exist on this server."""


class RevisionCompacted(BotWireError):
    """The revision asked for is older than the history the server keeps."""

    def __init__(self, message: str, *, oldest_revision: int | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.oldest_revision = oldest_revision


class ServerUnavailable(BotWireError):
    """The server could not be reached, or answered 503, on every attempt."""


class ServerError(BotWireError):
    """The server failed in a way the client cannot fix (disk full, internal error)."""
