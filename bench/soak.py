"""Soak run: many connections of mixed traffic against one server for a long time.

Passes when no request failed (no transport error, no 5xx, no status the operation does not
allow) and the server's resident memory stayed flat: the mean RSS of the last fifth of the run
is within ``--rss-tolerance`` (default 5 %, at least 5 MiB) of the mean of the first fifth
after warm-up. Prints a JSON report (also written to ``--out``) and exits 1 on failure.

    python -m bench.soak                       # 64 connections, 10 minutes, temporary SQLite
    python -m bench.soak --duration 90         # a short run
    python -m bench.soak --db postgresql://postgres@127.0.0.1:5432/soak

The traffic, per request: 45 % read a key, 20 % set, 10 % set with ``expected_version`` (a
409 is an allowed outcome), 5 % delete (404 allowed), 5 % list, 5 % history, 5 % namespace
info, 5 % snapshot page; over 8 namespaces of 200 keys, values of 10 B to 2 KiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

NAMESPACES = [f"soak-{i}" for i in range(8)]
KEYS = [f"key-{i:03d}" for i in range(200)]
# (operation, weight, statuses that are a correct answer)
MIX: list[tuple[str, int, frozenset[int]]] = [
    ("get", 45, frozenset({200, 404})),
    ("set", 20, frozenset({200})),
    ("cas", 10, frozenset({200, 409})),
    ("delete", 5, frozenset({200, 404})),
    ("list", 5, frozenset({200})),
    ("history", 5, frozenset({200})),
    ("info", 5, frozenset({200})),
    ("snapshot", 5, frozenset({200})),
]


@dataclass
class Tally:
    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 20:
            self.examples.append(detail)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(db: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    # A soak measures stability, not the free tier: no quotas in the way.
    env.update(BOTWIRE_WRITES_PER_DAY="0", BOTWIRE_NAMESPACE_MAX_BYTES="0")
    argv = [sys.executable, "-m", "botwire_server", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--db", db]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become healthy within 60 s")


def pick(rng: random.Random) -> tuple[str, str, str]:
    """(operation, namespace, key) for the next request."""
    op = rng.choices([m[0] for m in MIX], weights=[m[1] for m in MIX])[0]
    return op, rng.choice(NAMESPACES), rng.choice(KEYS)


async def one_request(
    client: httpx.AsyncClient,
    rng: random.Random,
    versions: dict[tuple[str, str], int],
    op: str,
    ns: str,
    key: str,
) -> httpx.Response:
    path = f"/memory/{ns}/{key}"
    value = "v" * rng.randint(10, 2048)
    if op == "get":
        r = await client.get(path)
        if r.status_code == 200:
            versions[ns, key] = r.json()["version"]
    elif op == "set":
        r = await client.put(path, json={"value": value})
    elif op == "cas":
        expected = versions.get((ns, key), 0)
        r = await client.put(path, json={"value": value, "expected_version": expected})
        if r.status_code == 200:
            versions[ns, key] = r.json()["version"]
    elif op == "delete":
        r = await client.delete(path)
    elif op == "list":
        r = await client.get(f"/memory/{ns}", params={"limit": 50, "prefix": key[:6]})
    elif op == "history":
        r = await client.get(f"{path}/history", params={"limit": 20})
    elif op == "info":
        r = await client.get(f"/namespaces/{ns}")
    else:
        r = await client.get(f"/namespaces/{ns}/snapshot", params={"limit": 50})
    return r


async def worker(
    client: httpx.AsyncClient, n: int, stop_at: float, tally: Tally, seed: int
) -> None:
    rng = random.Random(seed * 7919 + n)
    versions: dict[tuple[str, str], int] = {}
    allowed = {name: statuses for name, _, statuses in MIX}
    while time.monotonic() < stop_at:
        op, ns, key = pick(rng)
        try:
            r = await one_request(client, rng, versions, op, ns, key)
        except httpx.HTTPError as exc:
            left = round(stop_at - time.monotonic(), 1)
            detail = f"{op} {ns}/{key}, {left} s before the end: {type(exc).__name__} {exc!r}"
            tally.error("transport", detail)
            await asyncio.sleep(0.1)
            continue
        tally.ops[op] += 1
        if r.status_code not in allowed[op]:
            tally.error(f"{op} {r.status_code}", f"{r.request.method} {r.url}: {r.text[:200]}")


async def sample_rss(pid: int, every: float, stop_at: float, out: list[tuple[float, int]]) -> None:
    start = time.monotonic()
    while True:
        out.append((time.monotonic() - start, rss_kib(pid)))
        if time.monotonic() + every > stop_at:
            return
        await asyncio.sleep(every)


def slope_kib_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mt) * (r - mr) for t, r in samples) / var * 60


def judge_memory(
    samples: list[tuple[float, int]], warmup: float, tolerance: float
) -> dict[str, Any]:
    steady = [s for s in samples if s[0] >= warmup] or samples
    fifth = max(1, len(steady) // 5)
    early = sum(r for _, r in steady[:fifth]) / fifth
    late = sum(r for _, r in steady[-fifth:]) / fifth
    allowed = max(5 * 1024, early * tolerance)
    return {
        "rss_first_kib": samples[0][1],
        "rss_last_kib": samples[-1][1],
        "rss_max_kib": max(r for _, r in samples),
        "rss_early_mean_kib": round(early),
        "rss_late_mean_kib": round(late),
        "rss_growth_kib": round(late - early),
        "rss_growth_allowed_kib": round(allowed),
        "slope_kib_per_min": round(slope_kib_per_min(steady), 1),
        "samples": len(samples),
        "flat": late - early <= allowed,
    }


async def soak(
    url: str, pid: int, *, duration: float, connections: int, every: float, seed: int
) -> tuple[Tally, list[tuple[float, int]], float]:
    tally = Tally()
    samples: list[tuple[float, int]] = []
    # An idle connection must be dropped by the client before the server's keep-alive timeout
    # (uvicorn: 5 s) closes it, or a request sent just as the server closes fails with
    # "Server disconnected without sending a response". httpx's default expiry is also 5 s.
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
    )
    started = time.monotonic()
    stop_at = started + duration
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(
            sample_rss(pid, every, stop_at, samples),
            *(worker(client, n, stop_at, tally, seed) for n in range(connections)),
        )
    return tally, samples, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="RSS sampling, seconds")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds (default 10 %%, at least 60)"
    )
    parser.add_argument("--rss-tolerance", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the full JSON report (with RSS series)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="botwire-soak-") as tmp:
        db = args.db or f"sqlite:///{tmp}/soak.db"
        port = free_port()
        log = Path(tmp) / "server.log"
        proc = start_server(db, port, log)
        try:
            tally, samples, elapsed = asyncio.run(
                soak(
                    f"http://127.0.0.1:{port}",
                    proc.pid,
                    duration=args.duration,
                    connections=args.connections,
                    every=args.sample_every,
                    seed=args.seed,
                )
            )
            alive = proc.poll() is None
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server_log = log.read_text(errors="replace").splitlines()[-30:]

    # SQLite's page caches (2 MiB per connection) fill during the first minute or so.
    default_warmup = min(max(60.0, args.duration / 10), args.duration / 2)
    warmup = args.warmup if args.warmup is not None else default_warmup
    memory = judge_memory(samples, warmup, args.rss_tolerance)
    total = sum(tally.ops.values())
    report = {
        "duration_s": round(elapsed, 1),
        "connections": args.connections,
        "database": "postgresql" if db.startswith("postgres") else "sqlite",
        "requests": total,
        "requests_per_s": round(total / elapsed, 1) if elapsed else 0,
        "by_operation": dict(tally.ops),
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(tally.errors),
        "error_examples": tally.examples,
        "server_alive_at_end": alive,
        "server_log_tail": server_log if tally.errors or not alive else [],
        "memory": memory,
        "rss_samples_kib": [[round(t, 1), r] for t, r in samples],
    }
    report["passed"] = not report["errors"] and memory["flat"] and alive
    # The RSS series goes to the file only; the summary fits a terminal.
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples_kib"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
