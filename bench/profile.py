"""Where the server's time goes on the hot paths: py-spy samples the running server under load.

``python -m bench --profile`` records the SQLite server while wrk drives PUTs and then GETs at 64
connections, writes the collapsed stacks (``profile-<scenario>.txt``, flamegraph input) and a
summary (``profile-<scenario>.md``): self time per package and the top functions, as percentages of
the samples in which a thread of the server was working.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .load import run_load
from .procs import ServerProcess

# py-spy names a frame "function (path:line)", the path relative to its sys.path entry.
PACKAGES = (
    ("(botwire_server/http/", "botwire_server.http"),
    ("(botwire_server/storage/", "botwire_server.storage"),
    ("(botwire_server/", "botwire_server (other)"),
    ("(uvicorn/", "uvicorn"),
    ("(h11/", "h11 (HTTP/1.1 parsing)"),
    ("(httptools/", "httptools"),
    ("(starlette/", "starlette"),
    ("(msgspec/", "msgspec"),
    ("(anyio/", "anyio"),
    ("(sqlite3/", "sqlite3"),
    ("(asyncio/", "asyncio (event loop, transports)"),
    ("(selectors.py", "selectors (epoll)"),
    ("(concurrent/", "thread pool"),
    ("(threading.py", "threading (waits, hand-offs)"),
    ("(queue.py", "threading (waits, hand-offs)"),
    ("(json/", "json"),
)


# Leaf frames where a thread blocks without using the CPU; py-spy's idle detection misses some.
WAITS = (
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "Queue.get (queue.py",
    "EpollSelector.select (selectors.py",
)


def _package(frame: str) -> str:
    for needle, name in PACKAGES:
        if needle in frame:
            return name
    return "other"


def _py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def summarise(collapsed: str, top: int = 15) -> dict[str, Any]:
    """Working samples per thread, self time per package, and the heaviest functions.

    Percentages are of the samples in which a thread of the server was working (every thread
    together; samples blocked in a wait are counted apart), so the event loop thread's share
    and the database thread's share add up to 100.
    """
    threads: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    incl_by_thread: dict[str, Counter[str]] = {}
    self_pkg: Counter[str] = Counter()
    total = waiting = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        if frames[0].startswith("thread ("):
            thread = frames[0].partition(": ")[2] or frames[0]
            frames = frames[1:]
        if not frames:
            continue
        if frames[-1].startswith(WAITS):
            waiting += count
            continue
        total += count
        threads[thread] += count
        self_fn[frames[-1]] += count
        self_pkg[_package(frames[-1])] += count
        per_thread = incl_by_thread.setdefault(thread, Counter())
        for frame in set(frames):
            incl_fn[frame] += count
            per_thread[frame] += count

    def pct(counter: Counter[str], limit: int = top) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(limit)]

    # Frames every sample of a thread passes through (the thread's entry chain) say nothing.
    entry = {
        f
        for thread, counter in incl_by_thread.items()
        for f, n in counter.items()
        if n >= 0.98 * threads[thread]
    }
    return {
        "samples": total,
        "waiting_samples": waiting,
        "threads": pct(threads),
        "self_by_package": pct(self_pkg),
        "self_functions": pct(self_fn),
        "inclusive_functions": pct(
            Counter({f: n for f, n in incl_fn.items() if f not in entry}), 2 * top
        ),
    }


def _markdown(scenario: str, summary: dict[str, Any]) -> str:
    lines = [
        f"# {scenario.upper()} at 64 connections: {summary['samples']} working samples "
        f"({summary['waiting_samples']} more blocked in a wait, left out)",
        "",
    ]
    for title, key in (
        ("Working samples by thread", "threads"),
        ("Self time by package", "self_by_package"),
        ("Top functions, self time", "self_functions"),
        ("Top functions, inclusive", "inclusive_functions"),
    ):
        lines += [f"## {title}", "", "| % | where |", "|---|---|"]
        lines += [f"| {p} | `{name}` |" for name, p in summary[key]]
        lines.append("")
    return "\n".join(lines)


def profile_hot_paths(
    server: ServerProcess,
    out: Path,
    *,
    workdir: Path,
    generator: str,
    log: Callable[[str], None],
    duration: float = 8.0,
) -> dict[str, Any] | None:
    spy = _py_spy()
    if spy is None:
        log("py-spy is not installed (pip install -e '.[bench]'): no profile")
        return None
    out.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    for scenario in ("put", "get"):
        raw = out / f"profile-{scenario}.txt"
        cmd = [spy, "record", "--pid", str(server.pid), "--duration", str(round(duration))]
        cmd += ["--rate", "250", "--format", "raw", "--function", "--threads", "-o", str(raw)]
        recorder = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Load slightly longer than the recording so every sample sees a busy server.
        loader = threading.Thread(
            target=run_load,
            args=(server.url, scenario),
            kwargs={
                "connections": 64,
                "duration": duration + 1,
                "workdir": workdir,
                "generator": generator,
            },
        )
        loader.start()
        _, err = recorder.communicate(timeout=duration + 60)
        loader.join()
        if recorder.returncode != 0 or not raw.exists():
            log(f"py-spy failed on {scenario}: {err.decode(errors='replace')[-500:]}")
            return None
        summary = summarise(raw.read_text(encoding="utf-8"))
        (out / f"profile-{scenario}.md").write_text(_markdown(scenario, summary), encoding="utf-8")
        found[scenario] = summary
        log(f"profile {scenario}: {summary['self_by_package'][:6]}")
    return found
