"""Load generation: wrk driven by the Lua scripts in ``bench/lua``, or a Python fallback.

Each run happens in a separate process from the server under test and returns one ``LoadResult``.
``errors`` counts non-2xx answers other than CAS conflicts plus socket errors and timeouts;
``conflicts`` counts the 409s of the CAS scenario, which are lost races, not failures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
SCENARIOS = ("put", "get", "mix", "cas")
# Namespaces and keys every scenario works on; ``prepare`` creates the keys GET, mix and CAS read.
NAMESPACE = "bench"
PUT_KEYS = 10_000
MIX_KEYS = 1_000
HOT_KEY = "hot"
COUNTER_KEY = "counter"
VALUE_200 = '"' + "x" * 198 + '"'
# The batch scenario (``bench/pipeline.py``, not part of the HTTP matrix): 100 sets per request.
BATCH_NAMESPACE = "batch"
BATCH_OPS = 100


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    conflicts: int
    increments: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def scenario_args(scenario: str) -> list[str]:
    if scenario == "put":
        return [NAMESPACE, str(PUT_KEYS)]
    if scenario == "get":
        return [NAMESPACE, HOT_KEY]
    if scenario == "mix":
        return [NAMESPACE, str(MIX_KEYS)]
    if scenario == "cas":
        return [NAMESPACE, COUNTER_KEY]
    if scenario == "batch":
        # As many distinct keys as the PUT scenario cycles over.
        return [BATCH_NAMESPACE, str(BATCH_OPS), str(PUT_KEYS // BATCH_OPS)]
    raise ValueError(f"unknown scenario {scenario!r}")


def lua_script(scenario: str, workdir: Path) -> Path:
    """The scenario's script with the shared ``common.lua`` in front (wrk takes one file)."""
    path = workdir / f"{scenario}.lua"
    if not path.exists():
        common = (LUA_DIR / "common.lua").read_text(encoding="utf-8")
        body = (LUA_DIR / f"{scenario}.lua").read_text(encoding="utf-8")
        path.write_text(common + "\n" + body, encoding="utf-8")
    return path


def run_load(
    base_url: str,
    scenario: str,
    *,
    connections: int,
    duration: float,
    workdir: Path,
    generator: str,
    authorization: str | None = None,
) -> LoadResult:
    """Load ``base_url`` with ``scenario`` for ``duration`` seconds from a separate process;
    ``authorization``: an ``Authorization`` header value sent with every request."""
    env = _env(authorization)
    if generator == "wrk":
        return _run_wrk(base_url, scenario, connections, duration, workdir, env)
    return _run_python(base_url, scenario, connections, duration, env)


def _env(authorization: str | None) -> dict[str, str]:
    # The generators read the header from the environment (wrk's Lua has no other way in).
    env = {k: v for k, v in os.environ.items() if k != "BENCH_AUTHORIZATION"}
    if authorization:
        env["BENCH_AUTHORIZATION"] = authorization
    return env


class TimedLoad:
    """A Python-generator load in the background, stopped on demand (``stop``), which returns
    each request's send time (the system's monotonic clock) and latency in seconds beside the
    usual result, for figures over part of the run."""

    def __init__(
        self, base_url: str, scenario: str, *, connections: int, longest: float, workdir: Path
    ) -> None:
        self.path = workdir / f"timeline-{scenario}.json"
        cmd = [sys.executable, "-m", "bench.pyload", base_url, scenario, *scenario_args(scenario)]
        cmd += ["--connections", str(connections), "--duration", str(longest)]
        cmd += ["--timeline", str(self.path)]
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
        self.started = time.monotonic()

    def stop(self) -> None:
        # Not before the generator has had time to start and take over SIGTERM.
        time.sleep(max(0.0, self.started + 1.5 - time.monotonic()))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def finish(self) -> tuple[LoadResult, list[float], list[float]]:
        """Wait for the run's end (``longest`` seconds, or ``stop``) and return its figures."""
        out, _ = self.proc.communicate(timeout=None)
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self.path.unlink()
                return _result(json.loads(line.removeprefix("BENCH_JSON "))), *_timeline(raw)
        raise RuntimeError(f"pyload gave no result (exit {self.proc.returncode})")


def _timeline(raw: dict[str, list[float]]) -> tuple[list[float], list[float]]:
    return raw["start"], raw["latency"]


def _run_wrk(
    base_url: str,
    scenario: str,
    connections: int,
    duration: float,
    workdir: Path,
    env: dict[str, str],
) -> LoadResult:
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk), or use --generator python")
    # One wrk thread: the machine's cores are better spent on the server under test.
    cmd = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua_script(scenario, workdir)),
        base_url,
        "--",
        *scenario_args(scenario),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return _result(json.loads(line.removeprefix("BENCH_JSON ")))
    raise RuntimeError(f"wrk gave no result (exit {out.returncode}): {out.stderr or out.stdout}")


def _run_python(
    base_url: str, scenario: str, connections: int, duration: float, env: dict[str, str]
) -> LoadResult:
    cmd = [
        sys.executable,
        "-m",
        "bench.pyload",
        base_url,
        scenario,
        *scenario_args(scenario),
        "--connections",
        str(connections),
        "--duration",
        str(duration),
    ]
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, cwd=root, env=env
    )
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return _result(json.loads(line.removeprefix("BENCH_JSON ")))
    raise RuntimeError(f"pyload gave no result (exit {out.returncode}): {out.stderr}")


def _result(raw: dict[str, float]) -> LoadResult:
    duration_s = raw["duration_us"] / 1e6
    requests = int(raw["requests"])
    conflicts = int(raw["conflicts"])
    return LoadResult(
        requests=requests,
        duration_s=round(duration_s, 3),
        rps=round(requests / duration_s, 1) if duration_s else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        # wrk counts every status >= 400 as an error; a CAS conflict is an expected answer.
        errors=int(raw["status_errors"]) - conflicts + int(raw["socket_errors"]),
        conflicts=conflicts,
        increments=int(raw["increments"]),
    )
