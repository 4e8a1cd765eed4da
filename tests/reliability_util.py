"""Shared pieces of the reliability suite: write traffic that records what the server
acknowledged, and checks that what it acknowledged is all there.

An *acknowledged* write is one the server answered with 200: its ``version`` names the revision
it committed at. A write whose reply never came (the server was killed, the connection dropped)
has an unknown outcome: it may or may not be in the log, and nothing is asserted about it. A
write refused with a status (409, 429, 503) must not be in the log.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class Attempt:
    """One write as the client saw it. ``status`` is None when no reply came."""

    namespace: str
    key: str
    op: str  # "set" | "delete"
    value: str | None
    status: int | None
    version: int | None = None
    code: str | None = None


@dataclass
class WriteLog:
    """Every write attempt of every writer thread, thread-safe."""

    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def snapshot(self) -> list[Attempt]:
        with self.lock:
            return list(self.attempts)

    def acked(self) -> list[Attempt]:
        return [a for a in self.snapshot() if a.status == 200]

    def count(self, status: int | None) -> int:
        return sum(1 for a in self.snapshot() if a.status == status)


class Writers:
    """``threads`` writer threads, each with its own HTTP connection, writing unique values to
    ``keys`` in ``namespaces`` (9 sets for each delete) as fast as the server answers. They keep
    going through server restarts (a refused connection is retried after a short pause) until
    ``stop()``. ``url`` may be changed while they run."""

    def __init__(
        self,
        url: str,
        namespaces: Sequence[str],
        keys: Sequence[str],
        *,
        threads: int = 16,
        seed: int = 0,
        delete_ratio: float = 0.1,
    ) -> None:
        self.url = url
        self.namespaces = list(namespaces)
        self.keys = list(keys)
        self.log = WriteLog()
        self.unexpected: list[str] = []  # replies the contract does not allow here
        self._stop = threading.Event()
        self._delete_ratio = delete_ratio
        self._threads = [
            threading.Thread(target=self._run, args=(seed * 1000 + i,), daemon=True)
            for i in range(threads)
        ]

    def start(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
            if t.is_alive():
                raise RuntimeError("a writer thread did not stop within 30 s")

    def __enter__(self) -> Writers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_acks(self, n: int, timeout: float = 30.0) -> None:
        """Block until at least ``n`` more writes have been acknowledged."""
        target = len(self.log.acked()) + n
        deadline = time.monotonic() + timeout
        while len(self.log.acked()) < target:
            if time.monotonic() > deadline:
                seen = Counter((a.status, a.code) for a in self.log.snapshot())
                raise AssertionError(
                    f"fewer than {n} writes acknowledged within {timeout} s; "
                    f"replies so far (status, code): {dict(seen)}"
                )
            time.sleep(0.01)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        # Short timeouts: a reply that never comes is what a crash looks like.
        client = httpx.Client(timeout=httpx.Timeout(5.0, connect=1.0))
        try:
            while not self._stop.is_set():
                ns, key = rng.choice(self.namespaces), rng.choice(self.keys)
                url = f"{self.url}/memory/{ns}/{key}"
                n += 1
                value = f"w{seed}-{n}"
                deleting = rng.random() < self._delete_ratio
                try:
                    r = client.delete(url) if deleting else client.put(url, json={"value": value})
                except httpx.TransportError:
                    self.log.add(Attempt(ns, key, "delete" if deleting else "set", value, None))
                    time.sleep(0.02)  # the server is down or restarting
                    continue
                body: dict[str, Any] = r.json() if r.content else {}
                op = "delete" if deleting else "set"
                self.log.add(
                    Attempt(
                        ns,
                        key,
                        op,
                        None if deleting else value,
                        r.status_code,
                        version=body.get("version") if r.status_code == 200 else None,
                        code=body.get("code"),
                    )
                )
                allowed = {200, 404} if deleting else {200}
                if r.status_code not in allowed and body.get("code") != "shutting_down":
                    self.unexpected.append(f"{r.request.method} {url}: {r.status_code} {body}")
        finally:
            client.close()


# -- reading back -------------------------------------------------------------------------------


def history(client: httpx.Client, namespace: str, key: str) -> list[dict[str, Any]]:
    """Every event of ``key``, newest first, following cursors."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = client.get(f"/memory/{namespace}/{key}/history", params=params)
        if r.status_code == 404:  # never written
            return events
        r.raise_for_status()
        body = r.json()
        events.extend(body["events"])
        cursor = body["next_cursor"]
        if not cursor:
            return events


def head(client: httpx.Client, namespace: str) -> int:
    r = client.get(f"/namespaces/{namespace}")
    r.raise_for_status()
    return int(r.json()["revision"])


def verify_acknowledged(
    url: str, attempts: Iterable[Attempt], namespaces: Sequence[str], keys: Sequence[str]
) -> list[str]:
    """Problems with what the server at ``url`` holds, given the writes it acknowledged:

    - every acknowledged write is in its key's history at its version, with its value;
    - every write refused with a status is in no history;
    - each key's current value (or absence) is its newest history event, which is at or after
      its newest acknowledged write;
    - the revisions of all events of a namespace are exactly 1..head (gap-free, no duplicates).
    """
    problems: list[str] = []
    attempts = list(attempts)
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for ns in namespaces:
            top = head(client, ns)
            revisions: list[int] = []
            listed = client.get(f"/memory/{ns}", params={"limit": 1000}).json()["keys"]
            unknown_keys = {k["key"] for k in listed} - set(keys)
            if unknown_keys:
                problems.append(f"{ns}: keys nobody wrote: {sorted(unknown_keys)}")
            for key in keys:
                events = history(client, ns, key)
                by_rev = {e["revision"]: e for e in events}
                revisions.extend(by_rev)
                mine = [a for a in attempts if a.namespace == ns and a.key == key]
                acked = [a for a in mine if a.status == 200]
                for a in acked:
                    e = by_rev.get(a.version or -1)
                    if e is None or e["op"] != a.op or e["value"] != a.value:
                        problems.append(
                            f"{ns}/{key}: acknowledged {a.op} {a.value!r} at version "
                            f"{a.version} is missing from history (found {e})"
                        )
                refused = {a.value for a in mine if a.status not in (None, 200) and a.value}
                for e in events:
                    if e["value"] in refused:
                        problems.append(f"{ns}/{key}: refused write {e['value']!r} is in history")
                r = client.get(f"/memory/{ns}/{key}")
                newest = events[0] if events else None
                if acked:
                    last = max(a.version or 0 for a in acked)
                    if newest is None or newest["revision"] < last:
                        problems.append(
                            f"{ns}/{key}: newest event {newest} predates acknowledged version "
                            f"{last}"
                        )
                if newest is None or newest["op"] == "delete":
                    if r.status_code != 404:
                        problems.append(f"{ns}/{key}: deleted, but GET answered {r.status_code}")
                else:
                    body = r.json() if r.status_code == 200 else {}
                    if (
                        body.get("value") != newest["value"]
                        or body.get("version") != newest["revision"]
                    ):
                        problems.append(
                            f"{ns}/{key}: current {r.status_code} {body} is not the newest "
                            f"event {newest}"
                        )
            if sorted(revisions) != list(range(1, top + 1)):
                missing = sorted(set(range(1, top + 1)) - set(revisions))
                extra = len(revisions) - len(set(revisions))
                problems.append(
                    f"{ns}: revisions are not exactly 1..{top}: {len(missing)} missing "
                    f"(first {missing[:5]}), {extra} duplicated"
                )
    return problems


def sqlite_checks(path: Path, namespaces: Sequence[str]) -> list[str]:
    """``PRAGMA integrity_check`` and gap-free ``revisions`` rows, read from the file itself."""
    problems: list[str] = []
    conn = sqlite3.connect(path)
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            problems.append(f"integrity_check: {result[:5]}")
        for ns in namespaces:
            row = conn.execute("SELECT revision FROM namespaces WHERE name = ?", (ns,)).fetchone()
            top = row[0] if row else 0
            revs = [
                r[0]
                for r in conn.execute(
                    "SELECT revision FROM revisions WHERE namespace = ? ORDER BY revision", (ns,)
                )
            ]
            if revs != list(range(1, top + 1)):
                problems.append(f"{ns}: revisions table is not 1..{top} ({len(revs)} rows)")
    finally:
        conn.close()
    return problems


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")
