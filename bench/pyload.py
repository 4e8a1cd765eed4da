"""A small asyncio load generator with the same scenarios and output as the wrk scripts.

The fallback when wrk is not installed (the smoke test runs without root). It keeps one HTTP/1.1
keep-alive connection per simulated client and prints one ``BENCH_JSON`` line like ``common.lua``.
It is slower than wrk, so its figures are for checking the harness, not for comparison.

Run: ``python -m bench.pyload http://127.0.0.1:8000 put bench 10000 --connections 16``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import time
from collections.abc import Callable
from urllib.parse import urlsplit

_VERSION = re.compile(rb'"version"\s*:\s*(\d+)')
_VALUE = re.compile(rb'"value"\s*:\s*(-?\d+)')
_BODY_200 = b'{"value":"' + b"x" * 198 + b'"}'


def _request(method: str, path: str, host: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if body or method == "PUT":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class Counters:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        # When each request was sent (time.perf_counter, the system's monotonic clock on Linux).
        self.starts: list[float] = []
        self.status_errors = 0
        self.socket_errors = 0
        self.conflicts = 0
        self.increments = 0
        self.deadline = 0.0
        # BENCH_AUTHORIZATION (set by the runner): an Authorization header on every request.
        auth = os.environ.get("BENCH_AUTHORIZATION", "")
        self.header = f"Authorization: {auth}\r\n".encode() if auth else b""

    def stop(self) -> None:
        self.deadline = 0.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _client(
    url: str, next_request: Callable[[], bytes], counters: Counters, cas: bool
) -> None:
    parts = urlsplit(url)
    host = parts.netloc
    path = ""
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    except OSError:
        counters.socket_errors += 1
        return
    token: tuple[int, int] | None = None
    try:
        while time.perf_counter() < counters.deadline:
            if cas:
                path = next_request().decode()
                if token is None:
                    req = _request("GET", path, host)
                else:
                    req = _request(
                        "PUT",
                        path,
                        host,
                        b'{"value":%d}' % (token[1] + 1),
                        f'If-Match: "{token[0]}"\r\n',
                    )
            else:
                req = next_request().replace(b"{host}", host.encode())
            if counters.header:
                # After the request line: the same header on every request, as wrk sends it.
                line, _, rest = req.partition(b"\r\n")
                req = line + b"\r\n" + counters.header + rest
            start = time.perf_counter()
            status, body = await _exchange(reader, writer, req)
            counters.latencies.append(time.perf_counter() - start)
            counters.starts.append(start)
            if cas:
                if status == 200 and b'"stored"' in body:
                    counters.increments += 1
                    token = None
                elif status == 200:
                    version, value = _VERSION.search(body), _VALUE.search(body)
                    token = (int(version[1]) if version else 0, int(value[1]) if value else 0)
                elif status == 409:
                    counters.conflicts += 1
                    counters.status_errors += 1
                    token = None
                else:
                    counters.status_errors += 1
                    token = None
            elif status >= 400:
                counters.status_errors += 1
    except (OSError, asyncio.IncompleteReadError):
        counters.socket_errors += 1
    finally:
        writer.close()


def _generator(scenario: str, args: list[str], seed: int) -> Callable[[], bytes]:
    ns = args[0] if args else "bench"
    rng = random.Random(seed)
    if scenario == "put":
        nkeys = int(args[1]) if len(args) > 1 else 10_000
        reqs = [
            _request("PUT", f"/memory/{ns}/t{seed}-k{i}", "{host}", _BODY_200)
            for i in range(1, nkeys + 1)
        ]
        state = [0]

        def put() -> bytes:
            state[0] = state[0] % len(reqs) + 1
            return reqs[state[0] - 1]

        return put
    if scenario == "batch":
        ops = int(args[1]) if len(args) > 1 else 100
        batches = int(args[2]) if len(args) > 2 else 100
        value = b'"' + b"x" * 198 + b'"'
        reqs = []
        for b in range(batches):
            items = b",".join(
                b'{"op":"set","key":"b%d-k%d","value":%s}' % (seed, b * ops + i, value)
                for i in range(1, ops + 1)
            )
            body = b'{"ops":[' + items + b"]}"
            reqs.append(_request("POST", f"/namespaces/{ns}/batch", "{host}", body))
        state = [0]

        def batch() -> bytes:
            state[0] = state[0] % len(reqs) + 1
            return reqs[state[0] - 1]

        return batch
    if scenario == "get":
        req = _request("GET", f"/memory/{ns}/{args[1] if len(args) > 1 else 'hot'}", "{host}")
        return lambda: req
    if scenario == "mix":
        nkeys = int(args[1]) if len(args) > 1 else 1000
        paths = [f"/memory/{ns}/m-k{i}" for i in range(1, nkeys + 1)]

        def mix() -> bytes:
            path = rng.choice(paths)
            if rng.randrange(10) == 0:
                return _request("PUT", path, "{host}", _BODY_200)
            return _request("GET", path, "{host}")

        return mix
    if scenario == "cas":
        path = f"/memory/{ns}/{args[1] if len(args) > 1 else 'counter'}".encode()
        return lambda: path
    raise SystemExit(f"unknown scenario {scenario!r}")


def _percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _main(
    url: str,
    scenario: str,
    connections: int,
    duration: float,
    args: list[str],
    timeline: str | None = None,
) -> str:
    counters = Counters()
    start = time.perf_counter()
    counters.deadline = start + duration
    # SIGTERM ends the run early, as a full one: each connection stops after its current request.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, counters.stop)
    await asyncio.gather(
        *(
            _client(url, _generator(scenario, args, i + 1), counters, scenario == "cas")
            for i in range(connections)
        )
    )
    elapsed = time.perf_counter() - start
    if timeline:
        # Every request's send time and latency, for figures over part of the run.
        with open(timeline, "w", encoding="utf-8") as f:
            json.dump({"start": counters.starts, "latency": counters.latencies}, f)
    lat = sorted(counters.latencies)
    us = 1e6
    result = {
        "requests": len(lat),
        "duration_us": int(elapsed * us),
        "status_errors": counters.status_errors,
        "socket_errors": counters.socket_errors,
        "p50_us": int(_percentile(lat, 50) * us),
        "p90_us": int(_percentile(lat, 90) * us),
        "p99_us": int(_percentile(lat, 99) * us),
        "max_us": int((lat[-1] if lat else 0) * us),
        "mean_us": (sum(lat) / len(lat) * us) if lat else 0.0,
        "conflicts": counters.conflicts,
        "increments": counters.increments,
    }
    return "BENCH_JSON " + json.dumps(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pyload")
    parser.add_argument("url")
    parser.add_argument("scenario", choices=["put", "get", "mix", "cas", "batch"])
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--timeline", help="write each request's send time and latency to this JSON file"
    )
    parser.add_argument("args", nargs="*")
    ns = parser.parse_args(argv)
    run = _main(ns.url, ns.scenario, ns.connections, ns.duration, ns.args, ns.timeline)
    print(asyncio.run(run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
