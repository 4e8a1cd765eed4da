"""The server's exception tree. Every class carries its HTTP status and a stable ``code``.

One handler (``botwire_server.http.errors``) renders any of them as the canonical JSON body::

    {"error": "<human sentence>", "code": "<stable_snake_case>", "status": <int>, ...extra}

::

    BotWireServerError (500 internal_error)
    ├── InvalidInput (400 invalid_input; also invalid_name, invalid_json, invalid_parameter, ...)
    │   └── FutureRevision (400 future_revision: as_of/to above the head; carries head)
    ├── Unauthenticated (401 unauthenticated: no, malformed, unknown, expired or revoked token)
    ├── Forbidden (403 forbidden: a valid token without the grant)
    ├── NotFound (404 not_found; key_not_found, route_not_found)
    ├── MethodNotAllowed (405 method_not_allowed)
    ├── RequestTimeout (408 request_timeout: head or body not received in time)
    ├── Conflict (409 version_conflict; carries current_version)
    ├── BatchConflict (409 batch_conflict; carries conflicts: [{index, key, current_version}])
    ├── Exists (409 channel_exists, registration_conflict)
    ├── RevisionCompacted (410 revision_compacted; carries oldest_revision)
    ├── PayloadTooLarge (413 value_too_large, namespace_full, token_storage_full)
    ├── UnsupportedMediaType (415 unsupported_media_type)
    ├── IdempotencyKeyReused (422 idempotency_key_reused: same Idempotency-Key, other request)
    ├── QuotaExceeded (429 write_quota_exceeded, token_quota_exceeded; carries retry_after)
    ├── HeadersTooLarge (431 headers_too_large)
    ├── Unavailable (503 database_unavailable, shutting_down, too_many_connections)
    └── DiskFull (507 disk_full)

``RequestTimeout``, ``HeadersTooLarge`` and ``too_many_connections`` are answered by the HTTP
protocol (``http/protocol.py``) before or beside the application, with the same body.

Stores raise these directly: they are the storage contract's errors as much as HTTP's, and a
backend translates its driver's errors into them in exactly one place.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BotWireServerError(Exception):
    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    # Every code an instance may carry (default: ``default_code``) and the extra fields of its
    # body; the OpenAPI document's error table is generated from them.
    codes: ClassVar[tuple[str, ...]] = ()
    fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The canonical JSON error body."""
        return {"error": self.message, "code": self.code, "status": self.status, **self.extra}


class InvalidInput(BotWireServerError):
    status = 400
    default_code = "invalid_input"
    codes: ClassVar[tuple[str, ...]] = (
        "invalid_input",
        "invalid_json",
        "invalid_body",
        "invalid_name",
        "invalid_parameter",
        "invalid_cursor",
        "invalid_type",
        "reserved_namespace",
        "agent_not_registered",
        "invalid_header",
    )


class FutureRevision(InvalidInput):
    default_code = "future_revision"
    codes = ("future_revision",)
    fields = ("head",)

    def __init__(self, revision: int, head: int) -> None:
        super().__init__(
            f"Revision {revision} is in the future: this namespace is at revision {head}.",
            head=head,
        )


class Unauthenticated(BotWireServerError):
    """No usable token; the response also carries ``WWW-Authenticate: Bearer``."""

    status = 401
    default_code = "unauthenticated"


class Forbidden(BotWireServerError):
    """A valid token whose grants do not cover the request. The message depends only on the
    token and the request, never on what the store holds."""

    status = 403
    default_code = "forbidden"


class NotFound(BotWireServerError):
    status = 404
    default_code = "not_found"
    codes = (
        "key_not_found",
        "route_not_found",
        "token_not_found",
        "agent_not_found",
        "channel_not_found",
    )


class MethodNotAllowed(BotWireServerError):
    status = 405
    default_code = "method_not_allowed"


class RequestTimeout(BotWireServerError):
    status = 408
    default_code = "request_timeout"


class Conflict(BotWireServerError):
    status = 409
    default_code = "version_conflict"
    fields = ("current_version",)

    def __init__(self, expected: int, current: int) -> None:
        wanted = "not to exist" if expected == 0 else f"to be at version {expected}"
        now = "it does not exist" if current == 0 else f"it is at version {current}"
        super().__init__(
            f"The key was expected {wanted}, but {now}. Re-read it and retry.",
            current_version=current,
        )
        self.current_version = current


class BatchConflict(BotWireServerError):
    """A commit's conditions failed: nothing was written. ``conflicts``: (index, key,
    current_version) of every write whose condition failed, in op order."""

    status = 409
    default_code = "batch_conflict"
    fields = ("conflicts",)

    def __init__(self, conflicts: list[tuple[int, str, int]]) -> None:
        first = conflicts[0]
        more = f" and {len(conflicts) - 1} more" if len(conflicts) > 1 else ""
        now = "does not exist" if first[2] == 0 else f"is at version {first[2]}"
        super().__init__(
            f"The batch was not applied: op {first[0]} (key {first[1]!r}) failed its condition "
            f"(the key {now}){more}. Nothing was written; re-read and retry.",
            conflicts=[
                {"index": index, "key": key, "current_version": current}
                for index, key, current in conflicts
            ],
        )
        self.conflicts = conflicts


class Exists(BotWireServerError):
    """A channel created twice, or an agent registered by two requests at once."""

    status = 409
    default_code = "channel_exists"
    codes = ("channel_exists", "registration_conflict")


class RevisionCompacted(BotWireServerError):
    status = 410
    default_code = "revision_compacted"
    fields = ("oldest_revision",)

    def __init__(self, revision: int, oldest: int) -> None:
        super().__init__(
            f"Revision {revision} is older than the kept history; "
            f"the oldest readable revision is {oldest}.",
            oldest_revision=oldest,
        )
        self.oldest_revision = oldest


class PayloadTooLarge(BotWireServerError):
    status = 413
    default_code = "value_too_large"
    codes = ("value_too_large", "namespace_full", "entry_too_large", "token_storage_full")
    fields = ("limit",)


class UnsupportedMediaType(BotWireServerError):
    status = 415
    default_code = "unsupported_media_type"


class IdempotencyKeyReused(BotWireServerError):
    """An ``Idempotency-Key`` seen before (within its TTL) with a different request."""

    status = 422
    default_code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used for a different request (another method, "
            "path, condition or body) in this namespace. Use a new key for a new write; a "
            "retry must repeat the first request exactly."
        )


class QuotaExceeded(BotWireServerError):
    status = 429
    default_code = "write_quota_exceeded"
    codes = ("write_quota_exceeded", "token_quota_exceeded")
    fields = ("retry_after",)

    def __init__(self, limit: int, retry_after: int, *, token: bool = False) -> None:
        if token:
            super().__init__(
                f"This token has used its {limit} writes for today (UTC), across all its "
                f"namespaces; retry after {retry_after} seconds.",
                code="token_quota_exceeded",
                retry_after=retry_after,
            )
        else:
            super().__init__(
                f"This namespace has used its {limit} writes for today (UTC); "
                f"retry after {retry_after} seconds.",
                retry_after=retry_after,
            )
        self.retry_after = retry_after


class HeadersTooLarge(BotWireServerError):
    status = 431
    default_code = "headers_too_large"


class Unavailable(BotWireServerError):
    status = 503
    default_code = "database_unavailable"
    codes = ("database_unavailable", "shutting_down", "too_many_connections")


class DiskFull(BotWireServerError):
    status = 507
    default_code = "disk_full"
