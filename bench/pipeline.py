"""Figures of the write pipeline's newer paths: batches, watch fan-out, and the expiry sweep.

- **batch**: keys/s of ``clients`` connections each posting 100-op batches (200-byte values)
  against the same connections doing single PUTs, per backend (SQLite, and PostgreSQL when the
  suite loads it), from the suite's load generator; the ratio is taken per repeat.
- **watch**: ``watchers`` Server-Sent Events streams on one namespace of one SQLite server, held
  by ``bench/watchload.py`` processes, while a writer PUTs a value every ``write_interval``
  seconds. Delivery latency is a subscriber's receive time minus the time the writer SENT the
  PUT (so it includes the commit); the same minus the time the PUT's answer came back is
  reported beside it. Every subscriber must receive every write.
- **expiry**: ``expiry_keys`` keys loaded by batches with a TTL that ends at one instant, then
  a PUT load on other keys while the server's sweeper appends their ``expire`` events; PUT
  latency over the sweep against the same load without one, and how long the sweep took. This
  load comes from the Python generator, which records when each request was sent, so that the
  figure covers the sweep itself rather than the whole run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import pgdb
from .client import Http
from .load import BATCH_OPS, LoadResult, TimedLoad, run_load
from .procs import (
    ROOT,
    MemorySampler,
    ServerProcess,
    free_port,
    postgres_backends,
    quota_free_env,
    server_argv,
)
from .stats import percentile, summary
from .watchload import raise_fd_limit

TTL_NAMESPACE = "ttl"
WATCH_NAMESPACE = "watched"
SWEEP_INTERVAL = 1.0  # BOTWIRE_EXPIRY_INTERVAL's default, which the servers here run with


@dataclass(frozen=True, slots=True)
class PipelineSizes:
    clients: int = 16  # connections of the batch and expiry loads
    watchers: int = 1_000
    watch_procs: int = 2  # subscriber processes sharing the watchers
    writes: int = 50  # the watch writer's PUTs ...
    write_interval: float = 0.1  # ... one every this many seconds
    expiry_keys: int = 100_000
    expiry_window: float = 8.0  # seconds of PUT load during the sweep (and without one)


QUICK_PIPELINE = PipelineSizes(
    clients=2, watchers=20, watch_procs=1, writes=5, expiry_keys=500, expiry_window=1.0
)


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    server: Callable[[Path], contextlib.AbstractContextManager[ServerProcess]]


def _latency(ms: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else 0.0,
        "samples": len(ms),
    }


def run_pipeline(
    sizes: PipelineSizes,
    backends: Sequence[Backend],
    *,
    workdir: Path,
    repeats: int,
    duration: float,
    warmup: float,
    generator: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": {}, "sizes": dataclasses.asdict(sizes)}
    sqlite = backends[0]

    def batch() -> dict[str, Any]:
        figures = {}
        for backend in backends:
            figures[backend.name] = _batch_figures(
                backend, sizes, workdir, repeats, duration, warmup, generator, log
            )
        return figures

    groups: dict[str, Callable[[], dict[str, Any]]] = {
        "batch": batch,
        "watch": lambda: _watch_figures(sqlite, sizes, workdir, log),
        "expiry": lambda: _expiry_figures(sqlite, sizes, workdir, repeats, warmup, log),
    }
    for name, measure in groups.items():
        # As in the scaling figures, one failing group is reported and the others still run.
        try:
            out[name] = measure()
        except Exception as exc:
            out[name] = None
            out["errors"][name] = f"{type(exc).__name__}: {exc}"
            log(f"pipeline figure {name} failed: {exc}")
    return out


def _batch_figures(
    backend: Backend,
    sizes: PipelineSizes,
    workdir: Path,
    repeats: int,
    duration: float,
    warmup: float,
    generator: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    runs: dict[str, list[tuple[LoadResult, float]]] = {"batch": [], "put": []}
    with backend.server(workdir / f"batch-{backend.name}.db") as server:

        def load(scenario: str, seconds: float) -> tuple[LoadResult, float]:
            with MemorySampler(server.pid, helpers=server.helpers) as mem:
                result = run_load(
                    server.url,
                    scenario,
                    connections=sizes.clients,
                    duration=seconds,
                    workdir=workdir,
                    generator=generator,
                )
            return result, mem.cpu_s + mem.helpers_cpu_s

        if warmup > 0:
            load("batch", warmup)
            load("put", warmup)
        # Alternate, so that noise from other work hits both alike.
        for _ in range(repeats):
            for scenario in ("batch", "put"):
                runs[scenario].append(load(scenario, duration))
    per_key = {"batch": BATCH_OPS, "put": 1}
    record: dict[str, Any] = {"clients": sizes.clients, "ops_per_batch": BATCH_OPS}
    for scenario, results in runs.items():
        keys_s = [r.rps * per_key[scenario] for r, _ in results]
        cpu = [1e6 * c / (r.requests * per_key[scenario]) for r, c in results if r.requests]
        record[scenario] = {
            "requests_per_s": summary([r.rps for r, _ in results], 1),
            "keys_per_s": summary(keys_s, 1),
            "p50_ms": summary([r.p50_ms for r, _ in results]),
            "p99_ms": summary([r.p99_ms for r, _ in results]),
            "errors": sum(r.errors for r, _ in results),
            # Server CPU per key written (with the database's processes on PostgreSQL).
            "cpu_us_per_key": summary(cpu, 1),
        }
    pairs = zip(runs["batch"], runs["put"], strict=True)
    record["ratio"] = summary(
        [b.rps * BATCH_OPS / p.rps if p.rps else 0.0 for (b, _), (p, _) in pairs]
    )
    log(
        f"batch {backend.name}: {record['batch']['keys_per_s']['median']:,.0f} keys/s in batches, "
        f"{record['put']['keys_per_s']['median']:,.0f} by PUT, x{record['ratio']['median']}"
    )
    return record


def _watch_figures(
    backend: Backend, sizes: PipelineSizes, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    fd_limit = raise_fd_limit()  # the server inherits it: one socket per watcher
    with backend.server(workdir / "watch.db") as server:
        http = Http(server.url)
        procs: list[subprocess.Popen[str]] = []
        try:
            data, _ = http.ok("PUT", f"/memory/{WATCH_NAMESPACE}/w", {"value": -1})
            head = int(data["version"])
            share = [sizes.watchers // sizes.watch_procs] * sizes.watch_procs
            share[0] += sizes.watchers - sum(share)
            for count in share:
                cmd = [sys.executable, "-m", "bench.watchload", server.url, WATCH_NAMESPACE]
                cmd += ["--count", str(count), "--after", str(head)]
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=ROOT,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            connected = 0
            for proc in procs:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.startswith("READY "):
                    raise RuntimeError(f"watch subscribers did not start: {line!r}")
                connected += int(line.split()[1])
            log(f"watch: {connected} of {sizes.watchers} subscribers connected")
            sent: dict[int, tuple[float, float]] = {}
            loaders = [MemorySampler(p.pid) for p in procs]
            with MemorySampler(server.pid) as mem, contextlib.ExitStack() as stack:
                for sampler in loaders:
                    stack.enter_context(sampler)
                began = time.monotonic()
                for i in range(sizes.writes):
                    at = began + i * sizes.write_interval
                    time.sleep(max(0.0, at - time.monotonic()))
                    t_send = time.monotonic()
                    data, _ = http.ok("PUT", f"/memory/{WATCH_NAMESPACE}/w", {"value": i})
                    sent[int(data["version"])] = (t_send, time.monotonic())
                last = max(sent)
                outputs = [_finish(proc, last) for proc in procs]
        finally:
            http.close()
            for proc in procs:
                _stop(proc)
    from_send: list[float] = []
    from_ack: list[float] = []
    delivered = 0
    for output in outputs:
        received = output["received"]
        for revision, (t_send, t_ack) in sent.items():
            times = received.get(str(revision), [])
            delivered += len(times)
            from_send += [1000 * (t - t_send) for t in times]
            from_ack += [1000 * (t - t_ack) for t in times]
    expected = sizes.watchers * len(sent)
    figures = {
        "watchers": sizes.watchers,
        "connected": connected,
        "load_processes": len(procs),
        "writes": len(sent),
        "write_interval_s": sizes.write_interval,
        "expected_deliveries": expected,
        "delivered": delivered,
        "missing": expected - delivered,
        "duplicates": sum(o["duplicates"] for o in outputs),
        "stream_errors": sum(o["error_count"] for o in outputs),
        "ended_early": sum(o["ended_early"] for o in outputs),
        "connect_s": max(o["connect_s"] for o in outputs),
        "from_send": _latency(from_send),
        "from_ack": _latency(from_ack),
        "server_cpu_s": round(mem.cpu_s, 2),
        "server_rss_mb": mem.hwm_mb,
        "load_cpu_s": round(sum(s.cpu_s for s in loaders), 2),
        "writing_s": round(sizes.writes * sizes.write_interval, 1),
        "fd_limit": fd_limit,
    }
    log(f"watch: {figures}")
    return figures


def _finish(proc: subprocess.Popen[str], last: int) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"STOP {last}\n")
    proc.stdin.flush()
    for line in proc.stdout:
        if line.startswith("WATCH_JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("WATCH_JSON "))
            return result
    assert proc.stderr is not None
    raise RuntimeError(f"watch subscribers gave no result: {proc.stderr.read()[-2000:]}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _load_ttl_keys(url: str, ns: str, keys: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Write ``keys`` keys in batches of 1,000 from 4 connections, with TTLs that all end at one
    instant soon after the last batch: a probe batch (no TTL, another namespace) sizes the time
    the load will take."""
    value = "x" * 198
    page, conns = 1000, 4
    local = threading.local()
    opened: list[Http] = []
    late: list[int] = []

    def post(path: str, start: int, stop: int, expire_at: float | None) -> float:
        if not hasattr(local, "http"):
            local.http = Http(url)
            opened.append(local.http)
        ops: list[dict[str, Any]] = [
            {"op": "set", "key": f"k{i}", "value": value} for i in range(start, stop)
        ]
        if expire_at is not None:
            ttl = expire_at - time.monotonic()
            if ttl < 0.5:
                # The load ran past its estimate: these keys expire a little late (counted).
                late.append(start)
                ttl = 0.5
            for op in ops:
                op["ttl"] = ttl
        _, elapsed = local.http.ok("POST", path, {"ops": ops})
        return float(elapsed)

    with concurrent.futures.ThreadPoolExecutor(conns) as pool:
        try:
            probe = post("/namespaces/probe/batch", 0, min(page, keys), None)
            began = time.monotonic()
            # One writer commits the batches in turn, whatever the connections: room for the
            # whole load at the probe's pace, plus half again for a busier machine.
            expire_at = began + 3.0 + 1.5 * probe * -(-keys // page)
            starts = range(0, keys, page)
            done = pool.map(
                lambda i: post(f"/namespaces/{ns}/batch", i, min(i + page, keys), expire_at),
                starts,
            )
            list(done)
        finally:
            for http in opened:
                http.close()
    load_s = time.monotonic() - began
    log(f"expiry: loaded {keys:,} keys in {load_s:.1f} s, TTLs end {expire_at - began:.1f} s in")
    return {"expire_at": expire_at, "load_s": load_s, "late_batches": len(late)}


def _expiry_figures(
    backend: Backend,
    sizes: PipelineSizes,
    workdir: Path,
    repeats: int,
    warmup: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    n = sizes.expiry_keys
    base_lat: list[float] = []
    sweep_lat: list[float] = []
    base_rps: list[float] = []
    sweep_rps: list[float] = []
    sweep_s: list[float] = []
    first_s: list[float] = []
    load_s: list[float] = []
    covered_s: list[float] = []
    errors = late_batches = 0
    with backend.server(workdir / "expiry.db") as server:

        def put_load(seconds: float) -> TimedLoad:
            return TimedLoad(
                server.url, "put", connections=sizes.clients, longest=seconds, workdir=workdir
            )

        if warmup > 0:
            put_load(warmup).finish()
        for r in range(repeats):
            result, _, lat = put_load(sizes.expiry_window).finish()
            errors += result.errors
            base_lat += lat
            base_rps.append(result.rps)
            ns = f"{TTL_NAMESPACE}-{r}"
            loaded = _load_ttl_keys(server.url, ns, n, log)
            expire_at = loaded["expire_at"]
            load_s.append(loaded["load_s"])
            late_batches += loaded["late_batches"]
            # Start the PUT load a little before the TTLs end; stop it once the count of live
            # keys, polled meanwhile, has fallen to zero.
            time.sleep(max(0.0, expire_at - 0.3 - time.monotonic()))
            load = put_load(600.0)
            try:
                first, gone = _watch_sweep(server.url, ns, n, timeout=120.0 + n / 1000)
                time.sleep(0.2)
            finally:
                load.stop()
            result, starts, lat = load.finish()
            errors += result.errors
            span = (first - 0.05, gone)
            # Requests sent while the sweeper was committing (from just before the first key
            # was seen gone to the moment the last one was).
            during = [x for s, x in zip(starts, lat, strict=True) if span[0] <= s <= span[1]]
            sweep_lat += during
            sweep_rps.append(len(during) / (span[1] - span[0]))
            covered = 0.0
            if starts:
                covered = max(0.0, min(span[1], max(starts)) - max(span[0], min(starts)))
            sweep_s.append(gone - expire_at)
            covered_s.append(covered / (span[1] - span[0]))
            first_s.append(first - expire_at)
            log(
                f"expiry: {n:,} keys expired {gone - expire_at:.2f} s after their TTL "
                f"(first {first - expire_at:.2f} s); {len(during)} PUTs sent meanwhile"
            )
    base_ms = [1000 * x for x in base_lat]
    sweep_ms = [1000 * x for x in sweep_lat]
    figures = {
        "keys": n,
        "clients": sizes.clients,
        "window_s": sizes.expiry_window,
        # The share of each sweep (first key seen gone to last) during which the load ran.
        "load_covered_sweep": summary(covered_s, 2),
        "expiry_interval_s": SWEEP_INTERVAL,
        "load_s": summary(load_s, 2),
        "sweep_s": summary(sweep_s, 2),
        "first_expired_s": summary(first_s, 2),
        "without_sweep": {**_latency(base_ms), "requests_per_s": summary(base_rps, 1)},
        "during_sweep": {**_latency(sweep_ms), "requests_per_s": summary(sweep_rps, 1)},
        "errors": errors,
        # Batches of 1,000 written after the common expiry instant (their TTLs end a little later).
        "late_batches": late_batches,
        "generator": "python",
    }
    log(f"expiry: {figures}")
    return figures


def _watch_sweep(url: str, ns: str, keys: int, *, timeout: float) -> tuple[float, float]:
    """Poll the namespace's live key count: (when it was first below ``keys``, when it was 0)."""
    first = None
    deadline = time.monotonic() + timeout
    http = Http(url)  # a fresh connection: an idle one may have been closed by the server
    try:
        while time.monotonic() < deadline:
            data, _ = http.ok("GET", f"/namespaces/{ns}")
            now = time.monotonic()
            if data["keys"] < keys and first is None:
                first = now
            if data["keys"] == 0:
                return first if first is not None else now, now
            time.sleep(0.02)
    finally:
        http.close()
    raise RuntimeError(f"{ns}: keys still live {timeout:.0f} s after their TTL")


def sqlite_backend(log: Callable[[str], None]) -> Backend:
    @contextlib.contextmanager
    def server(db: Path) -> Iterator[ServerProcess]:
        port = free_port()
        proc = ServerProcess("sqlite", server_argv(port, f"sqlite:///{db}"), port, quota_free_env())
        with proc.start():
            log(f"pipeline: sqlite on {proc.url} (pid {proc.pid})")
            yield proc

    return Backend("sqlite", server)


def postgres_backend(admin_url: str, log: Callable[[str], None]) -> Backend:
    @contextlib.contextmanager
    def server(_: Path) -> Iterator[ServerProcess]:
        database = pgdb.TempDatabase(admin_url)
        with database as url:
            port = free_port()
            proc = ServerProcess("postgresql", server_argv(port, url), port, quota_free_env())
            proc.helpers = functools.partial(postgres_backends, database.name)
            with proc.start():
                log(f"pipeline: postgresql on {proc.url} (pid {proc.pid})")
                yield proc

    return Backend("postgresql", server)
