"""Servers under test: start on a free loopback port, wait for health, sample memory, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def botwire_command() -> list[str]:
    """``botwire`` from the virtualenv running the bench (the same interpreter and packages)."""
    script = Path(sys.executable).with_name("botwire")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "botwire_client.cli"]


def server_argv(port: int, db_url: str) -> list[str]:
    """``botwire serve`` on 127.0.0.1:``port`` with the database at ``db_url``."""
    return [*botwire_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--db", db_url]


def quota_free_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server under load: default settings except the write quotas."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env.update(
        BOTWIRE_WRITES_PER_DAY="0",
        BOTWIRE_NAMESPACE_MAX_BYTES="0",
    )
    env.update(extra or {})
    return env


class ServerProcess:
    """One server process on 127.0.0.1:``port``; ``start`` returns once ``/healthz`` answers 200."""

    def __init__(self, name: str, argv: Sequence[str], port: int, env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        # Pids of processes doing this server's work elsewhere (its database's backends).
        self.helpers: Callable[[], list[int]] | None = None
        self._log = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> ServerProcess:
        began = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        while True:
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self._log.decode()[-3000:]}"
                )
            if health(self.url) == 200:
                self.startup_s = time.perf_counter() - began
                return self
            if time.perf_counter() - began > timeout:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer /healthz within {timeout} s")
            time.sleep(0.005)

    def _drain(self) -> None:
        # Keep the pipe empty so a chatty server never blocks on its own log.
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log = (self._log + line)[-20_000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.stop()
        if exc_type is not None:
            # The server's own account of a failure is the most useful thing to show.
            tail = self._log.decode(errors="replace")[-4000:]
            print(f"--- {self.name} log ---\n{tail}", file=sys.stderr)


def health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB of ``pid`` and its children (0, 0 once it is gone)."""
    rss = hwm = 0
    for p in [pid, *_children(pid)]:
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss, hwm


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            raw = (task / "children").read_text().split()
            for child in map(int, raw):
                found += [child, *_children(child)]
    except OSError:
        pass
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) and its children so far."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        fields = stat.rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


_TICKS = os.sysconf("SC_CLK_TCK")


def postgres_backends(database: str) -> list[int]:
    """Pids of the PostgreSQL backends connected to ``database`` (found by their process title,
    ``postgres: ... <user> <database> <client> <state>``, so no query disturbs the run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            found.append(int(entry.name))
    return found


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {p: cpu_seconds(p) for p in pids}


class MemorySampler:
    """Samples a process's resident memory in a thread while a load runs; ``peak_mb`` after.

    Also takes the CPU time the process used meanwhile (``cpu_s``): CPU per request is far less
    sensitive than requests/s to other work competing for the same cores.
    """

    def __init__(
        self,
        pid: int,
        interval: float = 0.1,
        *,
        helpers: Callable[[], list[int]] | None = None,
    ) -> None:
        self.pid = pid
        self.interval = interval
        # Processes working for this one (PostgreSQL backends); their CPU is ``helpers_cpu_s``.
        self.helpers = helpers
        self.helpers_cpu_s = 0.0
        self._helpers_start: dict[int, float] = {}
        self.peak_rss_kb = 0
        self.hwm_kb = 0
        self.cpu_s = 0.0
        self._cpu_start = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, hwm = memory_kb(self.pid)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.hwm_kb = max(self.hwm_kb, hwm)
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._cpu_start = cpu_seconds(self.pid)
        if self.helpers is not None:
            self._helpers_start = _cpu_by_pid(self.helpers())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        rss, hwm = memory_kb(self.pid)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.hwm_kb = max(self.hwm_kb, hwm)
        self.cpu_s = cpu_seconds(self.pid) - self._cpu_start
        if self.helpers is not None:
            # A backend that ended meanwhile is lost; one that started counts from zero.
            end = _cpu_by_pid(self.helpers())
            self.helpers_cpu_s = sum(c - self._helpers_start.get(p, 0.0) for p, c in end.items())

    @property
    def peak_mb(self) -> float:
        return round(self.peak_rss_kb / 1024, 1)

    @property
    def hwm_mb(self) -> float:
        return round(self.hwm_kb / 1024, 1)
