"""Watch subscribers for the fan-out figure: many Server-Sent Events streams in one process.

``python -m bench.watchload URL NAMESPACE --count 500 --after R`` opens ``count`` HTTP/1.1
connections to ``/namespaces/NAMESPACE/watch?after=R`` (plain sockets, one asyncio protocol per
connection, uvloop when installed), prints ``READY <connected>`` once every response has begun,
and notes the monotonic clock time at which each connection receives each revision's ``id:``
line (the server sends it on the last event of a revision, so the revision has arrived whole).
A line ``STOP <revision>`` on standard input ends the run once every connection has seen that
revision, or after ``--grace`` seconds; the process then prints one ``WATCH_JSON`` line with the
connections, the errors and, per revision, every receive time.

The body is chunked; each page of events is one chunk, so an ``id:`` line never straddles a
chunk header and the stream is scanned as it comes, without decoding the chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from typing import cast
from urllib.parse import quote

_ID = re.compile(rb"\nid: (\d+)\r?\n")


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class Run:
    def __init__(self) -> None:
        self.received: dict[int, list[float]] = {}
        self.errors: list[str] = []
        self.duplicates = 0
        self.ended = 0  # streams the server closed before the run stopped
        self.subscribers: list[Subscriber] = []
        self.progress = asyncio.Event()


class Subscriber(asyncio.Protocol):
    def __init__(self, run: Run, request: bytes) -> None:
        self.run = run
        self.request = request
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.tail = b""
        self.in_body = False
        self.last = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.tail + data
        if not self.in_body:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.tail = buf
                return
            status = buf.split(b" ", 2)[1]
            if status != b"200":
                self._fail(f"HTTP {status.decode(errors='replace')}")
                return
            self.in_body = True
            self.started.set_result(None)
            buf = b"\n" + buf[end + 4 :]
        for match in _ID.finditer(buf):
            revision = int(match[1])
            if revision <= self.last:
                self.run.duplicates += 1
                continue
            self.last = revision
            self.run.received.setdefault(revision, []).append(now)
            self.run.progress.set()
        # Keep the text after the last newline (it may begin an ``id:`` line cut in two).
        self.tail = buf[buf.rfind(b"\n") :] if b"\n" in buf else buf

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.started.done():
            self._fail(f"closed before the response: {exc}")
        else:
            self.run.ended += 1

    def _fail(self, why: str) -> None:
        self.run.errors.append(why)
        if not self.started.done():
            self.started.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()


async def _subscribe(
    run: Run, host: str, port: int, request: bytes, gate: asyncio.Semaphore
) -> None:
    loop = asyncio.get_running_loop()
    async with gate:  # a few hundred connects at a time, within the server's listen backlog
        try:
            _, sub = await loop.create_connection(lambda: Subscriber(run, request), host, port)
            await asyncio.wait_for(sub.started, 60)
        except (OSError, ConnectionError, TimeoutError) as exc:
            run.errors.append(f"{type(exc).__name__}: {exc}")
            return
    run.subscribers.append(sub)


async def _main(args: argparse.Namespace) -> dict[str, object]:
    host, _, port = args.url.removeprefix("http://").partition(":")
    path = f"/namespaces/{quote(args.namespace, safe='')}/watch?after={args.after}"
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    run = Run()
    gate = asyncio.Semaphore(200)
    began = time.monotonic()
    await asyncio.gather(
        *(_subscribe(run, host, int(port), request.encode(), gate) for _ in range(args.count))
    )
    connect_s = time.monotonic() - began
    print(f"READY {len(run.subscribers)}", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    last = int(line.split()[1]) if line.startswith("STOP ") else 0
    deadline = loop.time() + args.grace
    while any(s.last < last for s in run.subscribers) and loop.time() < deadline:
        run.progress.clear()
        try:
            await asyncio.wait_for(run.progress.wait(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            break
    ended_early = run.ended
    for sub in run.subscribers:
        if sub.transport is not None:
            sub.transport.close()
    return {
        "connected": len(run.subscribers),
        "connect_s": round(connect_s, 3),
        "errors": run.errors[:20],
        "error_count": len(run.errors),
        "ended_early": ended_early,
        "duplicates": run.duplicates,
        "received": {str(r): [round(t, 6) for t in ts] for r, ts in run.received.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watchload")
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--after", type=int, default=0)
    parser.add_argument("--grace", type=float, default=10.0, help="seconds to wait after STOP")
    args = parser.parse_args(argv)
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(_main(args))
    else:
        result = uvloop.run(_main(args))
    print("WATCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
