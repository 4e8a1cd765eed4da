"""Linearizability of reads, writes, CAS writes and deletes, checked from recorded histories.

The checker (``tests/linearizability.py``) is tested first on hand-written histories, some
linearizable and some not; then histories recorded from several client processes against real
server processes (SQLite; PostgreSQL with two servers on one database) must pass it.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import pytest
from linearizability import (
    Op,
    Verdict,
    check,
    dump,
    from_records,
    now_ns,
    record,
    revision_order_violations,
)
from pg import require_postgres, temp_database_sync
from server_process import ServerProcess

# -- the checker itself ------------------------------------------------------------------------


def op(
    process: int,
    kind: str,
    outcome: str,
    invoke: int,
    complete: int | None,
    *,
    value: str | None = None,
    version: int | None = None,
    expected: int | None = None,
    key: str = "k",
) -> Op:
    return Op(
        process=process,
        key=key,
        kind=kind,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        invoke=invoke,
        complete=complete,
        value=value,
        version=version,
        expected=expected,
    )


def verdict(*ops: Op) -> Verdict:
    (result,) = check(ops)
    return result


def test_sequential_history_is_linearizable() -> None:
    result = verdict(
        op(1, "read", "absent", 0, 1),
        op(1, "write", "ok", 2, 3, value="a", version=1),
        op(1, "read", "ok", 4, 5, value="a", version=1),
        op(1, "cas", "ok", 6, 7, value="b", expected=1, version=2),
        op(1, "cas", "conflict", 8, 9, value="c", expected=1, version=2),
        op(1, "delete", "ok", 10, 11, version=3),
        op(1, "delete", "absent", 12, 13),
        op(1, "cas", "ok", 14, 15, value="d", expected=0, version=4),
    )
    assert result.ok, result.explain()


def test_concurrent_operations_may_take_effect_in_either_order() -> None:
    # The read overlaps both writes and sees the one invoked second: fine, they overlap.
    result = verdict(
        op(1, "write", "ok", 0, 10, value="a", version=2),
        op(2, "write", "ok", 1, 9, value="b", version=1),
        op(3, "read", "ok", 2, 8, value="b", version=1),
        op(3, "read", "ok", 11, 12, value="a", version=2),
    )
    assert result.ok, result.explain()


def test_stale_read_is_not_linearizable() -> None:
    # b is written (and acknowledged) after a; a later read still returns a.
    result = verdict(
        op(1, "write", "ok", 0, 1, value="a", version=1),
        op(2, "write", "ok", 2, 3, value="b", version=2),
        op(3, "read", "ok", 4, 5, value="a", version=1),
    )
    assert not result.ok
    assert "NOT linearizable" in result.explain()
    assert any(o.kind == "read" for o in result.stuck)


def test_lost_update_through_cas_is_not_linearizable() -> None:
    # Two CAS writes expecting the same version both succeed: one of them must have conflicted.
    result = verdict(
        op(1, "write", "ok", 0, 1, value="a", version=1),
        op(2, "cas", "ok", 2, 5, value="b", expected=1, version=2),
        op(3, "cas", "ok", 3, 6, value="c", expected=1, version=3),
    )
    assert not result.ok


def test_conflict_must_report_a_version_the_key_had() -> None:
    result = verdict(
        op(1, "write", "ok", 0, 1, value="a", version=1),
        op(2, "cas", "conflict", 2, 3, value="b", expected=5, version=7),
    )
    assert not result.ok


def test_revisions_must_grow_along_one_key() -> None:
    # The second write completed strictly later but committed at a lower revision.
    result = verdict(
        op(1, "write", "ok", 0, 1, value="a", version=5),
        op(1, "write", "ok", 2, 3, value="b", version=4),
    )
    assert not result.ok


def test_read_of_a_value_never_written_is_not_linearizable() -> None:
    assert not verdict(op(1, "read", "ok", 0, 1, value="ghost", version=1)).ok


def test_unknown_write_may_have_happened() -> None:
    # The write's reply was lost; a later read shows it took effect (at a version the read tells).
    result = verdict(
        op(1, "write", "unknown", 0, None, value="a"),
        op(2, "read", "ok", 5, 6, value="a", version=3),
        op(2, "cas", "ok", 7, 8, value="b", expected=3, version=4),
    )
    assert result.ok, result.explain()


def test_unknown_write_may_not_have_happened() -> None:
    result = verdict(
        op(1, "write", "unknown", 0, None, value="a"),
        op(2, "read", "absent", 5, 6),
    )
    assert result.ok, result.explain()


def test_unknown_write_cannot_take_effect_before_it_was_invoked() -> None:
    result = verdict(
        op(2, "read", "ok", 0, 1, value="a", version=1),
        op(1, "write", "unknown", 2, None, value="a"),
    )
    assert not result.ok


def test_unknown_cas_only_applies_when_its_expectation_holds() -> None:
    # The CAS expected version 9, which the key never had, so it cannot explain the read.
    result = verdict(
        op(1, "write", "ok", 0, 1, value="a", version=1),
        op(2, "cas", "unknown", 2, None, value="b", expected=9),
        op(3, "read", "ok", 10, 11, value="b", version=2),
    )
    assert not result.ok


def test_keys_are_checked_independently() -> None:
    results = check(
        [
            op(1, "write", "ok", 0, 1, value="a", version=1, key="x"),
            op(1, "read", "ok", 2, 3, value="a", version=1, key="x"),
            op(1, "write", "ok", 0, 1, value="b", version=2, key="y"),
            op(1, "read", "absent", 2, 3, key="y"),
        ]
    )
    assert [(v.key, v.ok) for v in results] == [("x", True), ("y", False)]


def test_revision_order_follows_real_time_across_keys() -> None:
    ordered = [
        op(1, "write", "ok", 0, 1, value="a", version=1, key="x"),
        op(2, "write", "ok", 2, 3, value="b", version=2, key="y"),
    ]
    assert revision_order_violations(ordered) == []
    inverted = [
        op(1, "write", "ok", 0, 1, value="a", version=2, key="x"),
        op(2, "write", "ok", 2, 3, value="b", version=1, key="y"),
    ]
    assert len(revision_order_violations(inverted)) == 1
    duplicate = [
        op(1, "write", "ok", 0, 5, value="a", version=1, key="x"),
        op(2, "write", "ok", 1, 6, value="b", version=1, key="y"),
    ]
    assert len(revision_order_violations(duplicate)) == 1


def test_search_scales_to_many_lost_replies() -> None:
    # Thirty overlapping writes whose replies were lost, then reads naming some of them: any
    # subset of the thirty may have happened, in any order, and the search must still find one
    # order quickly instead of enumerating subsets.
    ops = [op(p, "write", "unknown", p, None, value=f"v{p}") for p in range(30)]
    ops += [
        op(100 + p, "read", "ok", 50 + p, 200, value=f"v{p}", version=100 + p)
        for p in range(0, 30, 3)
    ]
    result = verdict(*ops)
    assert result.ok, result.explain()
    assert result.explored < 1_000


# -- histories recorded against real servers ---------------------------------------------------


def record_history(
    urls: list[str],
    namespace: str,
    *,
    processes: int,
    operations: int,
    meanwhile: Callable[[], None] | None = None,
    duration: float | None = None,
) -> list[Op]:
    """Run ``processes`` client processes (spread over ``urls``) at once; return their history.
    Separate processes, not threads: the clients' own scheduling must not serialise them.
    ``meanwhile`` runs in this process while they work (to crash the server, say)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [
            pool.submit(
                record,
                urls[p % len(urls)],
                namespace,
                KEYS,
                process=p,
                operations=operations,
                seed=p,
                duration=duration,
            )
            for p in range(processes)
        ]
        if meanwhile is not None:
            meanwhile()
        records = [rec for f in futures for rec in f.result()]
    unexpected = [r for r in records if str(r["outcome"]).startswith("unexpected")]
    assert not unexpected, unexpected[:5]
    return from_records(records)


def assert_linearizable(history: list[Op], urls: list[str], namespace: str) -> None:
    verdicts = check(history)
    bad = [v for v in verdicts if not v.ok]
    assert not bad, "\n\n".join(v.explain() for v in bad) + "\n\nhistory:\n" + dump(history)
    assert len(verdicts) == len(KEYS)
    violations = revision_order_violations(history)
    assert not violations, "\n".join(f"{a.describe()}  /  {b.describe()}" for a, b in violations)
    # Every revision belongs to one write: head counts the acknowledged writes plus any of the
    # writes whose reply was lost.
    committed = sum(1 for o in history if o.kind != "read" and o.outcome == "ok")
    lost = sum(1 for o in history if o.kind != "read" and o.outcome == "unknown")
    top = httpx.get(f"{urls[0]}/namespaces/{namespace}").json()["revision"]
    assert committed <= top <= committed + lost
    # The history must exercise what it claims to: CAS successes and conflicts, reads of values.
    outcomes = {(o.kind, o.outcome) for o in history}
    assert {("cas", "ok"), ("cas", "conflict"), ("read", "ok"), ("write", "ok")} <= outcomes


KEYS = ["x", "y", "z"]
# Histories hold more writes than the default daily quota of a namespace.
NO_QUOTA = {"BOTWIRE_WRITES_PER_DAY": "0"}


@pytest.mark.e2e
def test_sqlite_server_is_linearizable(tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}", env=NO_QUOTA) as server:
        history = record_history([server.url], "lin", processes=6, operations=100)
        assert_linearizable(history, [server.url], "lin")


@pytest.mark.e2e
@pytest.mark.slow
def test_sqlite_server_is_linearizable_across_crashes(tmp_path: Path) -> None:
    """SIGKILL and restart the server while the clients run: operations in flight at a kill
    have unknown outcomes (they may or may not have committed), and the history, read back
    across restarts from the same file, must still be linearizable."""
    rng = random.Random(5)
    kills: list[int] = []
    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}", env=NO_QUOTA) as server:

        def crash_and_restart() -> None:
            for _ in range(4):
                time.sleep(rng.uniform(0.5, 1.5))
                server.kill()
                server.start()
                kills.append(now_ns())

        history = record_history(
            [server.url],
            "lin",
            processes=6,
            operations=800,
            duration=20.0,
            meanwhile=crash_and_restart,
        )
        assert_linearizable(history, [server.url], "lin")
    # Crashes happened while the clients ran. How many of the four land inside the run
    # depends on how fast this machine starts processes, so at least two must.
    first, last = min(o.invoke for o in history), max(o.invoke for o in history)
    assert sum(first < k < last for k in kills) >= 2, (first, last, kills)


@pytest.mark.e2e
@pytest.mark.postgres
def test_postgres_servers_are_linearizable() -> None:
    """Two server processes on one PostgreSQL database; clients talk to either."""
    require_postgres()
    with (
        temp_database_sync() as db,
        ServerProcess(db, env=NO_QUOTA) as first,
        ServerProcess(db, env=NO_QUOTA) as second,
    ):
        urls = [first.url, second.url]
        history = record_history(urls, "lin", processes=6, operations=100)
        assert_linearizable(history, urls, "lin")
