"""The runner: ``python -m bench [options]`` (``make bench`` runs it with the defaults).

Every option has a ``BENCH_*`` environment variable; flags win. The default full run takes about
ten to fifteen minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import pgdb
from .chathistory import run_chat_history
from .httpbench import run_matrix
from .load import SCENARIOS, wrk_path
from .overhead import FIGURES, run_overhead
from .pipeline import QUICK_PIPELINE, PipelineSizes, postgres_backend, run_pipeline, sqlite_backend
from .procs import (
    ServerProcess,
    free_port,
    postgres_backends,
    quota_free_env,
    server_argv,
)
from .report import evaluate_targets, render_text
from .scaling import Sizes, run_scaling

RESULTS = Path(__file__).resolve().parent / "results"
QUICK = Sizes(
    versions=(10, 300), rollback_keys=(10, 50), list_keys=500, startup_events=2_000, samples=20
)


def _ints(raw: str) -> list[int]:
    return [int(x) for x in raw.replace(" ", "").split(",") if x]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--duration",
        type=float,
        default=float(env("BENCH_DURATION", "4")),
        help="seconds per load run (BENCH_DURATION, default 4)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=int(env("BENCH_REPEATS", "3")),
        help="runs per figure; medians and min-max are reported (BENCH_REPEATS, 3)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=float(env("BENCH_WARMUP", "1")),
        help="seconds of unmeasured load per scenario and target (BENCH_WARMUP, 1)",
    )
    p.add_argument(
        "--connections",
        type=_ints,
        default=_ints(env("BENCH_CONNECTIONS", "1,16,64")),
        help="comma-separated connection counts (BENCH_CONNECTIONS, 1,16,64)",
    )
    p.add_argument(
        "--scenarios",
        type=lambda s: s.split(","),
        default=env("BENCH_SCENARIOS", ",".join(SCENARIOS)).split(","),
        help="comma-separated subset of put,get,mix,cas (BENCH_SCENARIOS)",
    )
    p.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default=env("BENCH_GENERATOR", "auto"),
        help="load generator: wrk, the Python fallback, or auto (wrk when installed)",
    )
    p.add_argument(
        "--postgres",
        choices=["auto", "yes", "no"],
        default=env("BENCH_POSTGRES", "auto"),
        help="also load the server on PostgreSQL (auto: when its store exists)",
    )
    p.add_argument(
        "--postgres-admin-url",
        default=env("BENCH_POSTGRES_URL", pgdb.DEFAULT_ADMIN_URL),
        help="where the temporary database is created (BENCH_POSTGRES_URL)",
    )
    p.add_argument("--no-ceiling", action="store_true", help="skip the bare Starlette ceiling")
    p.add_argument("--no-http", action="store_true", help="skip the HTTP scenarios")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling figures")
    p.add_argument(
        "--no-pipeline",
        action="store_true",
        help="skip the batch, watch fan-out and expiry figures",
    )
    p.add_argument(
        "--no-chat",
        action="store_true",
        help="skip the chat history figure (10,000 appends to one session)",
    )
    p.add_argument(
        "--overhead",
        type=lambda s: s.split(","),
        default=env("BENCH_OVERHEAD", ",".join(dict.fromkeys(f[0] for f in FIGURES))).split(","),
        help="comma-separated cost-of-a-feature figures: token check, metrics, access line "
        "(BENCH_OVERHEAD; default all)",
    )
    p.add_argument(
        "--no-overhead",
        action="store_true",
        help="skip the cost-of-a-feature figures (server CPU per request with token checks, "
        "metrics, access lines on)",
    )
    p.add_argument(
        "--no-langgraph",
        action="store_true",
        help="skip the LangGraph checkpointer comparison (bench/langgraph.py)",
    )
    p.add_argument(
        "--langgraph-steps",
        type=int,
        default=int(env("BENCH_LANGGRAPH_STEPS", "200")),
        help="steps of the LangGraph graph run per saver (BENCH_LANGGRAPH_STEPS, 200)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (scaling: 10/300 versions, 10/50 keys, 2,000 events; pipeline: "
        "2 clients, 20 watchers, 500 expiring keys; chat history: 1,000 appends)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(env("BENCH_OUT", str(RESULTS))),
        help="directory for latest.json and latest.png (BENCH_OUT)",
    )
    p.add_argument("--no-chart", action="store_true", help="write no PNG")
    p.add_argument(
        "--profile",
        action="store_true",
        help="record py-spy profiles of the SQLite server under PUT and GET load",
    )
    return p.parse_args(argv)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _uvicorn_impl() -> dict[str, str]:
    """What uvicorn's ``auto`` resolves to in this environment (both apps run with ``auto``)."""
    has = importlib.util.find_spec
    return {
        "loop": "uvloop" if has("uvloop") else "asyncio",
        "http": "httptools" if has("httptools") else "h11",
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("uvicorn", "starlette", "msgspec", "botwire-server"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _source() -> dict[str, object]:
    """The commit measured, and whether the server's code differed from it (uncommitted edits)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "botwire_server", "migrations")
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "server_modified": bool(changed)}


def _use_postgres(args: argparse.Namespace) -> bool:
    return args.postgres == "yes" or (args.postgres == "auto" and pgdb.backend_available())


@contextlib.contextmanager
def _targets(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> Iterator[list[ServerProcess]]:
    with contextlib.ExitStack() as stack:
        servers: list[ServerProcess] = []
        if not args.no_ceiling:
            port = free_port()
            argv = [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
            servers.append(ServerProcess("ceiling", argv, port, quota_free_env()))
        port = free_port()
        sqlite_url = f"sqlite:///{workdir / 'http.db'}"
        servers.append(
            ServerProcess("sqlite", server_argv(port, sqlite_url), port, quota_free_env())
        )
        if _use_postgres(args):
            database = pgdb.TempDatabase(args.postgres_admin_url)
            pg_url = stack.enter_context(database)
            port = free_port()
            pg = ServerProcess("postgresql", server_argv(port, pg_url), port, quota_free_env())
            pg.helpers = functools.partial(postgres_backends, database.name)
            servers.append(pg)
        for server in servers:
            stack.enter_context(server.start())
            log(f"{server.name} on {server.url} (pid {server.pid}), up in {server.startup_s:.2f} s")
        yield servers


def _terminate(signum: int, frame: object) -> None:
    # Turn SIGTERM into an exception so every server started and database created is cleaned up.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if wrk_path() else "python"

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    started = dt.datetime.now(dt.UTC)
    began = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
            "generator": generator,
            "options": {
                "duration": args.duration,
                "repeats": args.repeats,
                "warmup": args.warmup,
                "connections": args.connections,
                "scenarios": args.scenarios,
                "quick": args.quick,
            },
            "machine": {"cpus": os.cpu_count(), "loadavg_before": _loadavg()},
            "uvicorn": _uvicorn_impl(),
            "versions": _versions(),
            "source": _source(),
        },
        "http": [],
        "scaling": None,
        "pipeline": None,
        "chat_history": None,
        "overhead": [],
        "langgraph": None,
        "targets": [],
        "profile": None,
    }
    with tempfile.TemporaryDirectory(prefix="botwire-bench-") as tmp:
        workdir = Path(tmp)
        if not args.no_http:
            with _targets(args, workdir, log) as servers:
                results["http"] = run_matrix(
                    servers,
                    scenarios=args.scenarios,
                    connections=args.connections,
                    repeats=args.repeats,
                    duration=args.duration,
                    warmup=args.warmup,
                    workdir=workdir,
                    generator=generator,
                    log=log,
                )
                if args.profile:
                    from .profile import profile_hot_paths

                    sqlite = next(s for s in servers if s.name == "sqlite")
                    results["profile"] = profile_hot_paths(
                        sqlite, args.out, workdir=workdir, generator=generator, log=log
                    )
        if not args.no_scaling:
            results["scaling"] = run_scaling(QUICK if args.quick else Sizes(), workdir, log)
        if not args.no_pipeline:
            backends = [sqlite_backend(log)]
            if _use_postgres(args):
                backends.append(postgres_backend(args.postgres_admin_url, log))
            results["pipeline"] = run_pipeline(
                QUICK_PIPELINE if args.quick else PipelineSizes(),
                backends,
                workdir=workdir,
                repeats=args.repeats,
                duration=args.duration,
                warmup=args.warmup,
                generator=generator,
                log=log,
            )
        if not args.no_chat:
            try:
                results["chat_history"] = run_chat_history(
                    1_000 if args.quick else 10_000, workdir, log
                )
            except Exception as exc:  # reported like the other figures; the rest still runs
                results["chat_history"] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"chat history figure failed: {exc}")
        chosen = [] if args.no_overhead else [f for f in FIGURES if f[0] in args.overhead]
        for name, scenario, baseline, variant in chosen:
            results["overhead"].append(
                run_overhead(
                    name,
                    baseline,
                    variant,
                    scenario=scenario,
                    connections=max(args.connections),
                    repeats=args.repeats,
                    duration=args.duration,
                    warmup=args.warmup,
                    workdir=workdir,
                    generator=generator,
                    log=log,
                )
            )
        if not args.no_langgraph:
            from .langgraph import run_langgraph

            results["langgraph"] = run_langgraph(
                steps=args.langgraph_steps,
                repeats=args.repeats,
                workdir=workdir,
                postgres_admin_url=args.postgres_admin_url if _use_postgres(args) else None,
                log=log,
            )
    results["targets"] = evaluate_targets(results)
    results["meta"]["machine"]["loadavg_after"] = _loadavg()
    results["meta"]["elapsed_s"] = round(time.perf_counter() - began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if not args.no_chart:
        from .chart import draw

        draw(results, args.out / "latest.png")
    print(render_text(results))
    log(f"wrote {args.out / 'latest.json'} in {results['meta']['elapsed_s']:.0f} s")
    return 0
