"""Crash durability: nothing the server acknowledged is lost when its process dies.

A real ``botwire serve`` process on a SQLite file takes writes from 16 concurrent connections;
the test SIGKILLs it at random moments (no chance to flush or finish anything), restarts it on
the same file, and checks that every acknowledged write is in its key's history at its version,
that every key's current value is its newest event, that revisions are exactly 1..head, and that
``PRAGMA integrity_check`` passes. A few cycles run in ``make test``; many in ``make test-long``.

SIGKILL ends the process, not the machine: the operating system still writes out what the
process handed it. Surviving power loss rests on ``synchronous=FULL`` (an fsync per commit),
which a test on one running kernel cannot observe.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from pg import require_postgres, temp_database_sync
from reliability_util import Writers, sqlite_checks, verify_acknowledged
from server_process import ServerProcess

NAMESPACES = ["crash-a", "crash-b"]
KEYS = [f"k{i}" for i in range(12)]
# Thousands of writes per run: the default daily quota (1000 per namespace) would refuse them.
NO_QUOTA = {"BOTWIRE_WRITES_PER_DAY": "0"}


def run_kill_cycles(db_url: str, cycles: int, seed: int, sqlite_file: Path | None) -> None:
    """Kill the server ``cycles`` times under write traffic, then check everything it
    acknowledged. ``sqlite_file``: also check the file itself after every kill."""
    rng = random.Random(seed)
    with ServerProcess(db_url, env=NO_QUOTA) as server:
        with Writers(server.url, NAMESPACES, KEYS, threads=16, seed=seed) as writers:
            for cycle in range(cycles):
                # Let traffic build up, then kill at a random moment of it.
                writers.wait_for_acks(20)
                time.sleep(rng.uniform(0.0, 0.8))
                server.kill()
                if sqlite_file is not None:
                    problems = sqlite_checks(sqlite_file, NAMESPACES)
                    assert not problems, f"after kill {cycle + 1}: {problems}"
                server.start()
            writers.wait_for_acks(20)
        assert not writers.unexpected, writers.unexpected[:5]
        attempts = writers.log.snapshot()
        acked = sum(1 for a in attempts if a.status == 200)
        lost_replies = sum(1 for a in attempts if a.status is None)
        problems = verify_acknowledged(server.url, attempts, NAMESPACES, KEYS)
        assert not problems, (
            f"{len(problems)} problems after {cycles} kills, {acked} acknowledged writes, "
            f"{lost_replies} without reply:\n" + "\n".join(problems[:20])
        )
        assert acked >= 20 * (cycles + 1)
        server.kill()
    if sqlite_file is not None:
        assert not sqlite_checks(sqlite_file, NAMESPACES)


def run_sqlite_kill_cycles(tmp_path: Path, cycles: int, seed: int) -> None:
    db = tmp_path / "botwire.db"
    run_kill_cycles(f"sqlite:///{db}", cycles, seed, db)


@pytest.mark.e2e
def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    run_sqlite_kill_cycles(tmp_path, cycles=3, seed=1)


@pytest.mark.e2e
@pytest.mark.slow
def test_acknowledged_writes_survive_many_sigkills(tmp_path: Path) -> None:
    run_sqlite_kill_cycles(tmp_path, cycles=40, seed=2)


@pytest.mark.e2e
@pytest.mark.postgres
def test_acknowledged_writes_survive_sigkill_on_postgres() -> None:
    """The same on PostgreSQL: the server process dies, the database does not; what matters is
    that the server never acknowledges a write before PostgreSQL has committed it."""
    require_postgres()
    with temp_database_sync() as db:
        run_kill_cycles(db, cycles=3, seed=4, sqlite_file=None)


@pytest.mark.e2e
def test_sigterm_mid_traffic_is_graceful(tmp_path: Path) -> None:
    """SIGTERM while 16 connections write: the server exits 0 after closing the store, every
    reply it gave is either an acknowledgement (then the write is kept) or a 503
    ``shutting_down`` (then nothing was written), and a restart serves all of it."""
    db = tmp_path / "botwire.db"
    with ServerProcess(f"sqlite:///{db}", env=NO_QUOTA) as server:
        with Writers(server.url, NAMESPACES, KEYS, threads=16, seed=3) as writers:
            writers.wait_for_acks(200)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            status = server.proc.wait(timeout=30)
            assert status == 0, server.output()[-2000:]
            assert "Application shutdown complete" in server.output(), server.output()[-2000:]
            assert not sqlite_checks(db, NAMESPACES)
            server.start()
            writers.wait_for_acks(20)
        assert not writers.unexpected, writers.unexpected[:5]
        attempts = writers.log.snapshot()
        problems = verify_acknowledged(server.url, attempts, NAMESPACES, KEYS)
        assert not problems, "\n".join(problems[:20])
