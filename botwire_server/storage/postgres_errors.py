"""Driver and OS errors of the PostgreSQL store, and what they become: the one place where
asyncpg's exceptions are turned into the storage contract's errors (``translate``), and the
rules for when a failed statement may be retried on a fresh connection."""

from __future__ import annotations

import asyncpg

from ..errors import BotWireServerError, DiskFull, Unavailable
from .postgres_pool import PoolExhausted


class CommitLost(Exception):
    """The connection dropped during COMMIT: the write may or may not have been applied."""


def not_applied(exc: BaseException) -> bool:
    """The failed statement cannot have been applied, so a retry on a fresh connection is safe:
    asyncpg refused to send it (the connection was already known dead), or PostgreSQL ended the
    session first."""
    if isinstance(exc, asyncpg.InternalClientError):
        return "in progress" in str(exc)
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc) or "closing" in str(exc)
    # PostgreSQL said it is ending the session (pg_terminate_backend, shutdown, crash of another
    # backend). A FATAL error aborts the open transaction before it is sent, and one raised
    # after a commit would follow that statement's completed reply; so the statement was not
    # applied. asyncpg reports it as the error itself, or as the connection closing with the
    # server's message attached when the session was ended while idle.
    if isinstance(exc, asyncpg.AdminShutdownError | asyncpg.CrashShutdownError):
        return True
    return isinstance(exc, asyncpg.ConnectionDoesNotExistError) and (
        "terminating connection" in str(exc)
    )


def connection_lost(exc: BaseException) -> bool:
    """The connection (not the statement) failed: a fresh connection may well succeed."""
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | ConnectionError,
    ):
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        # A pooled connection that received PostgreSQL's "terminating connection" notice while
        # idle, but has not yet seen the socket close, refuses the next query this way
        # ("another operation is in progress"): it is a dead connection.
        return "in progress" in str(exc)
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc) or "closing" in str(exc)
    return False


def translate(exc: BaseException, *, statement_timeout_ms: int) -> BaseException:
    """The one place where driver and OS errors become the storage contract's errors."""
    if isinstance(exc, BotWireServerError):
        return exc
    if isinstance(exc, CommitLost):
        return Unavailable(
            "The connection to PostgreSQL was lost while committing; the write may or may not "
            "have been applied. Re-read the key before retrying."
        )
    if isinstance(exc, PoolExhausted | asyncpg.LockNotAvailableError):
        return Unavailable(
            "The database is overloaded: "
            + (
                "no connection to PostgreSQL came free in time"
                if isinstance(exc, PoolExhausted)
                else "the namespace stayed locked by other servers' writes for too long"
            )
            + "; nothing was written. Retry in a moment."
        )
    if isinstance(exc, asyncpg.QueryCanceledError):
        return Unavailable(
            f"PostgreSQL did not finish within the statement timeout "
            f"({statement_timeout_ms} ms); nothing was written. Retry later."
        )
    if isinstance(exc, asyncpg.DiskFullError):
        return DiskFull("PostgreSQL's disk is full; nothing was written. Free space and retry.")
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return Unavailable(
            "PostgreSQL refuses new connections (too many connections). Retry later, or lower "
            "BOTWIRE_POOL_MAX across the servers sharing the database."
        )
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return Unavailable(
            "PostgreSQL is read-only here (a standby, or a primary being failed over); nothing "
            "was written. Retry in a moment."
        )
    if isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidCatalogNameError
    ):
        # Wrong user, password or database name: the server cannot reach its data at all.
        return Unavailable(f"PostgreSQL refused the connection: {exc}. Check the database URL.")
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return Unavailable("PostgreSQL is starting up or shutting down. Retry in a moment.")
    if connection_lost(exc) or isinstance(exc, OSError | TimeoutError):
        return Unavailable(
            f"PostgreSQL is unreachable (connection refused, lost or timed out: "
            f"{type(exc).__name__}). Retry in a moment."
        )
    return exc


__all__ = ["CommitLost", "connection_lost", "not_applied", "translate"]
