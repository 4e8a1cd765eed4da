"""Operations figures (``make bench`` runs it after the main suite; ``python -m bench.ops``).
What metrics and access lines cost a request is in the main suite (``bench/overhead.py``).

**Retention under writes**: a SQLite database with ``--retention-events`` events (default
   1,000,000) older than the retention, then a server with ``BOTWIRE_RETENTION`` whose first
   pass compacts them while PUTs run; p99 PUT latency during the pass against the same load
   without retention.

Results go to ``bench/results/ops-<time>.json`` and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .load import LoadResult, run_load, wrk_path
from .procs import ServerProcess, free_port, quota_free_env, server_argv

RESULTS = Path(__file__).resolve().parent / "results"


def _serve(db: Path, env: dict[str, str], name: str) -> ServerProcess:
    port = free_port()
    server = ServerProcess(name, server_argv(port, f"sqlite:///{db}"), port, quota_free_env(env))
    return server.start()


async def _build_old(db: Path, events: int, keys: int) -> None:
    """``events`` events an hour old in namespace ``old`` (direct restore: fast), spread over
    ``keys`` keys, one revision per event."""
    from botwire_server.storage.base import MICROS, Recorded
    from botwire_server.storage.sqlite import SQLiteStore

    store = SQLiteStore(db)
    await store.migrate()
    await store.open()
    try:
        start = store.clock() - 3600 * MICROS
        page: list[Recorded] = []
        created: dict[int, int] = {}
        for revision in range(1, events + 1):
            key = revision % keys
            created.setdefault(key, revision)
            at = start + revision
            page.append(
                Recorded(
                    revision=revision,
                    at=at,
                    key=f"k{key:06d}",
                    op="set",
                    value=b'{"n":%d}' % revision,
                    created_revision=created[key],
                    created_at=start + created[key],
                )
            )
            if len(page) == 1000:
                await store.restore("old", page)
                page = []
        if page:
            await store.restore("old", page)
    finally:
        await store.close()


def _put_load(server: ServerProcess, args: argparse.Namespace, workdir: Path) -> LoadResult:
    return run_load(
        server.url,
        "put",
        connections=args.connections,
        duration=args.retention_duration,
        workdir=workdir,
        generator=args.generator,
    )


def retention_under_writes(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    events = args.retention_events
    db = workdir / "retention.db"
    started = time.monotonic()
    asyncio.run(_build_old(db, events, keys=max(100, events // 100)))
    build_s = time.monotonic() - started
    baseline_db = workdir / "baseline.db"
    baseline_db.write_bytes(db.read_bytes())
    out: dict[str, Any] = {"events": events, "build_s": round(build_s, 1)}
    with _serve(baseline_db, {"BOTWIRE_LOG_LEVEL": "warning"}, "baseline") as server:
        out["baseline"] = _put_load(server, args, workdir).as_dict()
    env = {
        "BOTWIRE_RETENTION": "30m",
        "BOTWIRE_RETENTION_INTERVAL": "3600",
        "BOTWIRE_LOG_LEVEL": "warning",  # as the baseline: no access lines in either
    }
    with _serve(db, env, "retention") as server:
        served = time.monotonic()
        result = _put_load(server, args, workdir)
        # How far the first pass got while the load ran, and when it ended.
        deadline = time.monotonic() + 3600
        while True:
            oldest = httpx.get(f"{server.url}/namespaces/old").json()["oldest_revision"]
            if oldest >= events or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        out["during_retention"] = result.as_dict()
        out["pass_s"] = round(time.monotonic() - served, 1)
        out["oldest_revision_after"] = oldest
    return out


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__)
    p.add_argument("--duration", type=float, default=float(env("BENCH_OPS_DURATION", "5")))
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=int(env("BENCH_OPS_REPEATS", "3")))
    p.add_argument("--connections", type=int, default=16)
    p.add_argument(
        "--retention-events",
        type=int,
        default=int(env("BENCH_RETENTION_EVENTS", "1000000")),
        help="events aged out by the retention pass (BENCH_RETENTION_EVENTS, 1,000,000)",
    )
    p.add_argument("--retention-duration", type=float, default=20.0)
    p.add_argument("--no-retention", action="store_true", help="skip retention under writes")
    args = p.parse_args(argv)
    args.generator = "wrk" if wrk_path() else "python"
    report: dict[str, Any] = {"generator": args.generator, "connections": args.connections}
    with tempfile.TemporaryDirectory(prefix="botwire-ops-") as tmp:
        workdir = Path(tmp)
        if not args.no_retention:
            report["retention"] = retention_under_writes(args, workdir)
            print(json.dumps(report["retention"], indent=2), flush=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"ops-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
