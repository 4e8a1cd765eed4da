"""Fast builders for large SQLite databases, written straight into the store's own schema.

Driving the HTTP API would take minutes for a million events, so the scaling figures build their
data with ``executemany`` into the tables of ``migrations/sqlite`` after ``botwire migrate`` has
created them. Each builder writes exactly what the store would have written for the same
sequence of sets (one revision per event, gap-free, times increasing); ``scaling`` then checks the
result through the HTTP API before timing anything, so a schema change shows up as a loud failure
here rather than as wrong figures.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .procs import botwire_command, quota_free_env

SET = 1
# Commit times start an hour ago, one microsecond per revision, so none lies in the future.
_T0 = time.time_ns() // 1000 - 3_600_000_000


def value_for(revision: int) -> bytes:
    """The stored JSON text of the value written at ``revision``: a small object."""
    return b'{"n":%d,"pad":"%s"}' % (revision, b"x" * 16)


def migrate(path: Path) -> None:
    """Create the schema with the server's own ``botwire migrate``."""
    subprocess.run(
        [*botwire_command(), "migrate", "--db", f"sqlite:///{path}"],
        check=True,
        env=quota_free_env(),
        capture_output=True,
    )


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    # A throw-away build: durability is not needed until the final commit.
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    return conn


def add_namespace(conn: sqlite3.Connection, ns: str, writes: Iterable[tuple[str, bytes]]) -> int:
    """Append ``writes`` (key, value) as sets, one revision each; return the head revision."""
    current: dict[str, tuple[bytes, int, int, int]] = {}  # key -> value, version, created rev/at

    def events() -> Iterator[tuple[object, ...]]:
        for revision, (key, value) in enumerate(writes, start=1):
            at = _T0 + revision
            _, _, created_rev, created_at = current.get(key, (b"", 0, revision, at))
            current[key] = (value, revision, created_rev, created_at)
            yield (ns, key, revision, SET, value, created_rev, created_at, at)

    conn.executemany(
        "INSERT INTO events (namespace, key, revision, op, value, created_revision, created_at, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        events(),
    )
    head = max((v[1] for v in current.values()), default=0)
    conn.executemany(
        "INSERT INTO revisions (namespace, revision, at) VALUES (?, ?, ?)",
        ((ns, r, _T0 + r) for r in range(1, head + 1)),
    )
    conn.executemany(
        "INSERT INTO current (namespace, key, value, version, created_revision, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (ns, k, v, ver, c_rev, c_at, _T0 + ver)
            for k, (v, ver, c_rev, c_at) in sorted(current.items())
        ),
    )
    live_bytes = sum(len(k.encode()) + len(v[0]) for k, v in current.items())
    conn.execute(
        "INSERT INTO namespaces (name, revision, oldest_revision, live_keys, live_bytes, last_at)"
        " VALUES (?, ?, 0, ?, ?, ?)",
        (ns, head, len(current), live_bytes, _T0 + head),
    )
    return head


def build(path: Path, namespaces: dict[str, Iterable[tuple[str, bytes]]]) -> dict[str, int]:
    """Migrate a fresh database at ``path`` and fill it; returns each namespace's head."""
    migrate(path)
    conn = _connect(path)
    try:
        heads = {ns: add_namespace(conn, ns, writes) for ns, writes in namespaces.items()}
        conn.execute("COMMIT")
    finally:
        conn.close()
    return heads


def versions_of_one_key(key: str, versions: int) -> Iterator[tuple[str, bytes]]:
    return ((key, value_for(r)) for r in range(1, versions + 1))


def keys_then_changed(keys: int) -> Iterator[tuple[str, bytes]]:
    """Set ``keys`` keys, then set each again: rolling back to revision ``keys`` changes all."""
    for rnd in (0, 1):
        for i in range(keys):
            yield f"k{i:07d}", value_for(rnd * keys + i + 1)


def many_keys(keys: int) -> Iterator[tuple[str, bytes]]:
    return ((f"k{i:07d}", value_for(i + 1)) for i in range(keys))


def spread_events(total: int, namespaces: int, keys: int) -> dict[str, Iterable[tuple[str, bytes]]]:
    """``total`` events over ``namespaces`` namespaces of ``keys`` keys, each rewritten in turn."""
    per_ns = total // namespaces

    def writes() -> Iterator[tuple[str, bytes]]:
        for i in range(per_ns):
            yield f"k{i % keys:06d}", value_for(i + 1)

    return {f"big-{n:04d}": writes() for n in range(namespaces)}
