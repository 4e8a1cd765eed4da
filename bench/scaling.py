"""Scaling figures on large histories, on SQLite: every database is built fresh under ``workdir``.

- point-in-time read of a key with 10 / 1,000 / 100,000 versions (via HTTP and via the store);
- a history page of the same keys (the newest page and one from the middle of the history);
- rollback of a namespace with 1,000 / 10,000 changed keys;
- listing a namespace of 100,000 keys page by page;
- start-up time (process start to ``/healthz`` 200) and RSS on a database of 1,000,000 events.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dbbuild
from .client import Http
from .procs import ServerProcess, botwire_command, free_port, memory_kb, quota_free_env
from .stats import percentile, summary


@dataclass(frozen=True, slots=True)
class Sizes:
    versions: Sequence[int] = (10, 1_000, 100_000)
    rollback_keys: Sequence[int] = (1_000, 10_000)
    list_keys: int = 100_000
    startup_events: int = 1_000_000
    samples: int = 300  # timed reads per figure
    repeats: int = 3  # rollbacks and start-ups per figure


def serve(db: Path) -> ServerProcess:
    port = free_port()
    argv = [*botwire_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--db", f"sqlite:///{db}"]
    return ServerProcess("sqlite", argv, port, quota_free_env())


def _latency(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(sum(ms) / len(ms), 3) if ms else 0.0,
        "samples": len(ms),
    }


def run_scaling(sizes: Sizes, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": {}}
    groups = {
        "history": _history_figures,
        "rollback": _rollback_figures,
        "list": _list_figures,
        "startup": _startup_figures,
    }
    for name, measure in groups.items():
        # A failing group (a wrong answer from the server, say) is reported, not fatal: the
        # other figures of a fifteen-minute run are still worth having.
        try:
            out[name] = measure(sizes, workdir / f"{name}.db", log)
        except Exception as exc:
            out[name] = None
            out["errors"][name] = f"{type(exc).__name__}: {exc}"
            log(f"scaling figure {name} failed: {exc}")
    return out


def _history_figures(sizes: Sizes, db: Path, log: Callable[[str], None]) -> dict[str, Any]:
    began = time.perf_counter()
    dbbuild.build(db, {f"pit-{n}": dbbuild.versions_of_one_key("k", n) for n in sizes.versions})
    log(f"built {db.name} in {time.perf_counter() - began:.1f} s")
    rng = random.Random(42)
    figures: dict[str, Any] = {"point_in_time": {}, "point_in_time_store": {}, "history_page": {}}
    with serve(db).start() as server:
        http = Http(server.url)
        try:
            for n in sizes.versions:
                ns = f"pit-{n}"
                # The built data must read back as the store would have written it.
                data, _ = http.ok("GET", f"/memory/{ns}/k?as_of={n // 2 or 1}")
                if data["version"] != (n // 2 or 1) or data["value"]["n"] != (n // 2 or 1):
                    raise RuntimeError(f"{ns}: unexpected point-in-time read {data}")
            # Round-robin over the sizes, so a burst of other load hits each size alike.
            times: dict[int, list[float]] = {n: [] for n in sizes.versions}
            for _ in range(sizes.samples):
                for n in sizes.versions:
                    _, t = http.ok("GET", f"/memory/pit-{n}/k?as_of={rng.randint(1, n)}")
                    times[n].append(t)
            for n in sizes.versions:
                figures["point_in_time"][str(n)] = _latency(times[n])
                figures["history_page"][str(n)] = _history_pages(http, f"pit-{n}", n, sizes.samples)
                log(f"pit-{n}: as_of {figures['point_in_time'][str(n)]}")
        finally:
            http.close()
    figures["point_in_time_store"] = asyncio.run(_store_reads(db, sizes))
    return figures


def _history_pages(http: Http, ns: str, n: int, samples: int) -> dict[str, Any]:
    path = f"/memory/{ns}/k/history?limit=100"
    first: list[float] = []
    for _ in range(samples):
        data, t = http.ok("GET", path)
        first.append(t)
    if data["events"][0]["revision"] != n:
        raise RuntimeError(f"{ns}: newest event is {data['events'][0]}")
    # Walk to the middle of the history (large pages), then time the 100-event page there.
    cursor, seen = data["next_cursor"], len(data["events"])
    step = 100 if n <= 10_000 else 1000
    while cursor and seen < n // 2:
        page, _ = http.ok("GET", f"/memory/{ns}/k/history?limit={step}&cursor={cursor}")
        cursor, seen = page["next_cursor"], seen + len(page["events"])
    middle: list[float] = []
    if cursor:
        for _ in range(samples):
            _, t = http.ok("GET", f"{path}&cursor={cursor}")
            middle.append(t)
    return {"first": _latency(first), "middle": _latency(middle) if middle else None}


async def _store_reads(db: Path, sizes: Sizes) -> dict[str, Any]:
    """The same point-in-time reads through the ``Store`` interface, without HTTP in between."""
    from botwire_server.settings import Settings
    from botwire_server.storage import create_store

    store = create_store(Settings(database_url=f"sqlite:///{db}"))
    await store.open()
    rng = random.Random(7)
    figures: dict[str, Any] = {}
    try:
        times: dict[int, list[float]] = {n: [] for n in sizes.versions}
        for _ in range(sizes.samples):
            for n in sizes.versions:
                revision = rng.randint(1, n)
                start = time.perf_counter()
                item = await store.get(f"pit-{n}", "k", as_of=revision)
                times[n].append(time.perf_counter() - start)
                if item is None or item.version != revision:
                    raise RuntimeError(f"pit-{n}: store read at {revision} gave {item}")
        for n in sizes.versions:
            figures[str(n)] = _latency(times[n])
    finally:
        await store.close()
    return figures


def _rollback_figures(sizes: Sizes, db: Path, log: Callable[[str], None]) -> dict[str, Any]:
    began = time.perf_counter()
    dbbuild.build(db, {f"rb-{n}": dbbuild.keys_then_changed(n) for n in sizes.rollback_keys})
    log(f"built {db.name} in {time.perf_counter() - began:.1f} s")
    figures: dict[str, Any] = {}
    with serve(db).start() as server:
        http = Http(server.url)
        try:
            for n in sizes.rollback_keys:
                ns = f"rb-{n}"
                times = []
                # Alternate between the two states: every rollback changes all n keys.
                for i in range(sizes.repeats):
                    to = n if i % 2 == 0 else 2 * n
                    data, t = http.ok("POST", f"/namespaces/{ns}/rollback", {"to": to})
                    if len(data["changed"]) != n:
                        raise RuntimeError(f"{ns}: rollback changed {len(data['changed'])} keys")
                    times.append(t)
                figures[str(n)] = {**summary(times), "unit": "s", "changed_keys": n}
                log(f"{ns}: rollback {figures[str(n)]}")
        finally:
            http.close()
    return figures


def _list_figures(sizes: Sizes, db: Path, log: Callable[[str], None]) -> dict[str, Any]:
    n = sizes.list_keys
    dbbuild.build(db, {"list": dbbuild.many_keys(n)})
    with serve(db).start() as server:
        http = Http(server.url)
        try:
            totals, pages = [], []
            for _ in range(sizes.repeats):
                cursor, seen, total = "", 0, 0.0
                while True:
                    path = "/memory/list?limit=1000" + (f"&cursor={cursor}" if cursor else "")
                    data, t = http.ok("GET", path)
                    pages.append(t)
                    total += t
                    seen += data["count"]
                    cursor = data["next_cursor"]
                    if not cursor:
                        break
                if seen != n:
                    raise RuntimeError(f"listing returned {seen} keys, not {n}")
                totals.append(total)
        finally:
            http.close()
    figures = {"keys": n, "page_size": 1000, "total_s": summary(totals), "page": _latency(pages)}
    log(f"list {n}: {figures['total_s']}")
    return figures


def _startup_figures(sizes: Sizes, db: Path, log: Callable[[str], None]) -> dict[str, Any]:
    began = time.perf_counter()
    spread = dbbuild.spread_events(sizes.startup_events, namespaces=100, keys=1000)
    heads = dbbuild.build(db, spread)
    build_s = time.perf_counter() - began
    log(f"built {db.name} ({sum(heads.values())} events) in {build_s:.1f} s")
    times, rss = [], []
    for _ in range(sizes.repeats):
        server = serve(db)
        with server.start():
            assert server.startup_s is not None
            times.append(server.startup_s)
            http = Http(server.url)
            try:
                # A few reads across namespaces, so the figure is not only an idle process.
                for ns in list(heads)[:: max(1, len(heads) // 10)]:
                    data, _ = http.ok("GET", f"/namespaces/{ns}")
                    if data["revision"] != heads[ns]:
                        raise RuntimeError(f"{ns}: head {data['revision']} != {heads[ns]}")
                    http.ok("GET", f"/memory/{ns}?limit=100")
            finally:
                http.close()
            rss.append(memory_kb(server.pid)[0] / 1024)
    figures = {
        "events": sum(heads.values()),
        "build_s": round(build_s, 1),
        "startup_s": summary(times),
        "rss_mb": summary(rss, 1),
    }
    log(f"startup: {figures}")
    return figures
