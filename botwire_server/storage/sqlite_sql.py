"""SQLite building blocks shared by the store's writer and readers: connections, the one
translation of ``sqlite3`` errors, and the statements that read the event log by index."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from ..errors import BotWireServerError, DiskFull, Unavailable
from .base import Event, EventOp, Item, NsState, check_revision, to_micros, visible

# -- the one place sqlite3 errors become server errors ------------------------------------------

_DISK_FULL = {sqlite3.SQLITE_FULL}
_UNAVAILABLE = {
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_NOTADB,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_PERM,
    sqlite3.SQLITE_AUTH,
}


def translate(exc: sqlite3.Error, path: Path) -> BotWireServerError:
    """The server error a ``sqlite3`` error means. Anything unrecognised is a 503 too: the
    database, not the request, is at fault, and the message says which file."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc)
    if code in _DISK_FULL or "database or disk is full" in text:
        return DiskFull(
            f"The disk holding the database {path} is full; free space and retry. ({text})"
        )
    if code in _UNAVAILABLE or isinstance(exc, sqlite3.OperationalError):
        return Unavailable(f"The SQLite database {path} cannot be used right now: {text}.")
    return Unavailable(f"The SQLite database {path} failed: {text}.")


@contextlib.contextmanager
def translated(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc


# -- connections ----------------------------------------------------------------------------------


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: autocommit; transactions are explicit, so none is ever left open.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    try:
        if writer:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch {path} to WAL (got {mode})")
            # FULL: the WAL is fsynced at every commit, so an acknowledged write survives a crash.
            conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        conn.close()
        raise
    return conn


def split_statements(sql: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit mid-way)."""
    statements: list[str] = []
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer)
            buffer = ""
    return statements


# -- rows and the statements both sides share ---------------------------------------------------

SET, DELETE, EXPIRE = 1, 2, 3
OPS: dict[int, EventOp] = {SET: "set", DELETE: "delete", EXPIRE: "expire"}
CODES = {name: code for code, name in OPS.items()}

NsRow = NsState  # the namespaces table's row


def ns_row(conn: sqlite3.Connection, namespace: str) -> NsState:
    row = conn.execute(
        "SELECT revision, oldest_revision, live_keys, live_bytes, last_at, quota_day, quota_used"
        " FROM namespaces WHERE name = ?",
        (namespace,),
    ).fetchone()
    return NsState(*row) if row else NsState()


# Commit times never go backwards, so the greatest revision committed at or before T is the
# newest entry of the (namespace, at) index at or below T: one seek.
REVISION_AT_TIME = (
    "SELECT revision FROM revisions WHERE namespace = ? AND at <= ?"
    " ORDER BY at DESC, revision DESC LIMIT 1"
)


def resolve(conn: sqlite3.Connection, namespace: str, ns: NsState, as_of: int | datetime) -> int:
    """The revision ``as_of`` denotes in this namespace, checked against its readable range."""
    if isinstance(as_of, datetime):
        row = conn.execute(REVISION_AT_TIME, (namespace, to_micros(as_of))).fetchone()
        revision = row[0] if row else 0
    else:
        revision = as_of
    return check_revision(revision, head=ns.revision, oldest=ns.oldest)


def time_of(conn: sqlite3.Connection, namespace: str, revision: int) -> int:
    """The commit time of ``revision`` (0 for revision 0): the moment TTLs are judged at."""
    row = conn.execute(
        "SELECT at FROM revisions WHERE namespace = ? AND revision = ?", (namespace, revision)
    ).fetchone()
    return int(row[0]) if row else 0


EventRow = tuple[int, int, bytes | None, int, int, int, int | None]


def event_at(conn: sqlite3.Connection, namespace: str, key: str, revision: int) -> EventRow | None:
    """(revision, op, value, created_revision, created_at, at, expires_at) of the key's newest
    event at or before ``revision``: one seek on ``events_by_key``, one on the row."""
    row = conn.execute(
        "SELECT revision, op, value, created_revision, created_at, at, expires_at FROM events"
        " WHERE namespace = ? AND key = ? AND revision <= ? ORDER BY revision DESC LIMIT 1",
        (namespace, key, revision),
    ).fetchone()
    return cast("EventRow | None", row)


class Moment:
    """The commit time of one revision, looked up only when a TTL needs it."""

    __slots__ = ("conn", "namespace", "revision", "_at")

    def __init__(self, conn: sqlite3.Connection, namespace: str, revision: int) -> None:
        self.conn, self.namespace, self.revision = conn, namespace, revision
        self._at: int | None = None

    def __call__(self) -> int:
        if self._at is None:
            self._at = time_of(self.conn, self.namespace, self.revision)
        return self._at


def item_at(
    conn: sqlite3.Connection,
    namespace: str,
    key: str,
    revision: int,
    moment: Moment | None = None,
) -> Item | None:
    event = event_at(conn, namespace, key, revision)
    if event is None or event[1] != SET or event[2] is None:
        return None
    rev, _, value, created_revision, created_at, at, expires_at = event
    if expires_at is not None:
        moment = moment or Moment(conn, namespace, revision)
        if not visible(expires_at, moment()):
            return None
    assert value is not None
    return Item(key, bytes(value), rev, created_revision, created_at, at, expires_at)


EVENT_COLUMNS = "revision, key, op, value, at, expires_at, actor, run, agent, reason"


def event(row: tuple[Any, ...]) -> Event:
    """An ``Event`` from a row of ``EVENT_COLUMNS``."""
    value = row[3]
    return Event(
        row[0],
        row[1],
        OPS[row[2]],
        bytes(value) if value is not None else None,
        row[4],
        row[5],
        *row[6:],
    )


CURRENT_COLUMNS = "key, value, version, created_revision, created_at, updated_at, expires_at"


def current_item(row: tuple[Any, ...]) -> Item:
    return Item(row[0], bytes(row[1]), row[2], row[3], row[4], row[5], row[6])


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (code point
    order, which is also SQLite's byte order on UTF-8), or None when there is none."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be encoded; skip past them
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


def list_current(
    conn: sqlite3.Connection,
    namespace: str,
    low: str,
    strict: bool,
    high: str | None,
    limit: int,
    now: int,
) -> list[Item]:
    op = ">" if strict else ">="
    sql = (
        f"SELECT {CURRENT_COLUMNS} FROM current WHERE namespace = ? AND key {op} ?"
        " AND (expires_at IS NULL OR expires_at > ?)"
    )
    params: list[Any] = [namespace, low, now]
    if high is not None:
        sql += " AND key < ?"
        params.append(high)
    sql += " ORDER BY key LIMIT ?"
    params.append(limit)
    return [current_item(row) for row in conn.execute(sql, params)]


def list_at(
    conn: sqlite3.Connection,
    namespace: str,
    low: str,
    strict: bool,
    high: str | None,
    limit: int,
    revision: int,
) -> list[Item]:
    # Walk the distinct keys of the log with next-key seeks, one seek per key for its state
    # at the revision: the cost follows the keys visited, not the length of their histories.
    out: list[Item] = []
    op = ">" if strict else ">="
    moment = Moment(conn, namespace, revision)
    while len(out) < limit:
        row = conn.execute(
            f"SELECT key FROM events WHERE namespace = ? AND key {op} ? ORDER BY key LIMIT 1",
            (namespace, low),
        ).fetchone()
        if row is None or (high is not None and row[0] >= high):
            break
        low, op = row[0], ">"
        item = item_at(conn, namespace, low, revision, moment)
        if item is not None:
            out.append(item)
    return out
