"""The HTTP scenarios: every target loaded with every scenario at every connection count.

Targets run side by side and are loaded in turn, repeat by repeat, so that a burst of noise from
other work on a shared machine hits ours and the ceiling alike; the ratio of each repeat is taken
before the median.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .load import (
    COUNTER_KEY,
    HOT_KEY,
    MIX_KEYS,
    NAMESPACE,
    VALUE_200,
    LoadResult,
    run_load,
)
from .procs import MemorySampler, ServerProcess
from .stats import summary


def prepare(url: str, authorization: str | None = None) -> None:
    """Create the keys the GET, mix and CAS scenarios read."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    try:
        puts = [(HOT_KEY, VALUE_200), (COUNTER_KEY, "0")]
        puts += [(f"m-k{i}", VALUE_200) for i in range(1, MIX_KEYS + 1)]
        for key, value in puts:
            conn.request("PUT", f"/memory/{NAMESPACE}/{key}", f'{{"value":{value}}}', headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"preparing {key} on {url}: HTTP {resp.status}")
    finally:
        conn.close()


def counter_value(url: str) -> int:
    """The CAS scenario's counter as the server holds it now."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", f"/memory/{NAMESPACE}/{COUNTER_KEY}")
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"reading the counter on {url}: HTTP {resp.status}")
    value: int = body["value"]
    return value


def run_matrix(
    targets: Sequence[ServerProcess],
    *,
    scenarios: Sequence[str],
    connections: Sequence[int],
    repeats: int,
    duration: float,
    warmup: float,
    workdir: Path,
    generator: str,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One record per (target, scenario, connections) with medians, spreads and every run."""
    for target in targets:
        prepare(target.url)
    records: list[dict[str, Any]] = []
    for scenario in scenarios:
        if warmup > 0:
            for target in targets:
                run_load(
                    target.url,
                    scenario,
                    connections=max(connections),
                    duration=warmup,
                    workdir=workdir,
                    generator=generator,
                )
        for conns in connections:
            runs: dict[str, list[tuple[LoadResult, float, float]]] = {t.name: [] for t in targets}
            before = {t.name: counter_value(t.url) for t in targets} if scenario == "cas" else {}
            hwm: dict[str, float] = {}
            db_cpu: dict[str, list[float]] = {}
            for _ in range(repeats):
                for target in targets:
                    with MemorySampler(target.pid, helpers=target.helpers) as mem:
                        result = run_load(
                            target.url,
                            scenario,
                            connections=conns,
                            duration=duration,
                            workdir=workdir,
                            generator=generator,
                        )
                    cpu_us = 1e6 * mem.cpu_s / result.requests if result.requests else 0.0
                    runs[target.name].append((result, mem.peak_mb, cpu_us))
                    if target.helpers is not None and result.requests:
                        db_cpu.setdefault(target.name, []).append(
                            1e6 * mem.helpers_cpu_s / result.requests
                        )
                    hwm[target.name] = max(hwm.get(target.name, 0.0), mem.hwm_mb)
            ceiling = [(r.rps, cpu) for r, _, cpu in runs.get("ceiling", [])]
            for target in targets:
                record = _record(target.name, scenario, conns, runs[target.name], ceiling)
                # The kernel's high-water mark catches a peak between two samples.
                record["rss_hwm_mb"] = hwm[target.name]
                if target.name in db_cpu:
                    # CPU per request of the database's own processes (PostgreSQL backends).
                    record["db_cpu_us_per_request"] = summary(db_cpu[target.name], 1)
                if scenario == "cas" and target.name != "ceiling":
                    # Every acknowledged increment must be in the counter; a few more may be,
                    # from requests still in flight when a run ended (at most one per connection).
                    record["counter_delta"] = counter_value(target.url) - before[target.name]
                records.append(record)
                log(_line(record))
    return records


def _record(
    name: str,
    scenario: str,
    conns: int,
    runs: list[tuple[LoadResult, float, float]],
    ceiling: list[tuple[float, float]],
) -> dict[str, Any]:
    results = [r for r, _, _ in runs]
    cpu = [c for _, _, c in runs]
    record: dict[str, Any] = {
        "target": name,
        "scenario": scenario,
        "connections": conns,
        "rps": summary([r.rps for r in results], 1),
        "p50_ms": summary([r.p50_ms for r in results]),
        "p99_ms": summary([r.p99_ms for r in results]),
        "errors": sum(r.errors for r in results),
        "conflicts": sum(r.conflicts for r in results),
        "requests": sum(r.requests for r in results),
        "rss_mb": max(rss for _, rss, _ in runs),
        # Server CPU time per request (all threads), in microseconds.
        "cpu_us_per_request": summary(cpu, 1),
        "ratio": None,
        "cpu_ratio": None,
        "runs": [{**r.as_dict(), "rss_mb": rss, "cpu_us": c} for r, rss, c in runs],
    }
    if scenario == "cas":
        record["increments"] = sum(r.increments for r in results)
        record["increments_per_s"] = summary(
            [r.increments / r.duration_s if r.duration_s else 0.0 for r in results], 1
        )
    if name != "ceiling" and len(ceiling) == len(results):
        pairs = list(zip(results, cpu, ceiling, strict=True))
        record["ratio"] = summary([r.rps / c_rps if c_rps else 0.0 for r, _, (c_rps, _) in pairs])
        # The ceiling's CPU per request over ours: the throughput ratio both would reach if each
        # had a core to itself, a figure that other load on the machine disturbs much less.
        record["cpu_ratio"] = summary(
            [c_cpu / ours if ours else 0.0 for _, ours, (_, c_cpu) in pairs]
        )
    return record


def _line(record: dict[str, Any]) -> str:
    ratio = record["ratio"]
    return json.dumps(
        {
            "target": record["target"],
            "scenario": record["scenario"],
            "c": record["connections"],
            "rps": record["rps"]["median"],
            "p99": record["p99_ms"]["median"],
            "err": record["errors"],
            "ratio": ratio["median"] if ratio else None,
        }
    )
