"""What a feature costs a request: server CPU per request with it on, over the same without.

Two servers on the same backend run side by side, one as the baseline and one with the feature
(its settings and, for auth, the header each request carries), and are loaded in turn, repeat by
repeat, like the HTTP matrix; each repeat's ratio is taken before the median, so a burst of other
work on a shared machine hits both. CPU per request, not requests/s: on two shared cores it is the
figure that noise disturbs least.

The figures (``FIGURES``), each with ``BOTWIRE_LOG_LEVEL=warning`` on both sides unless the
access line is what is measured:

- token check: a GET with ``Authorization: Bearer bw_<id>_<secret>`` against ``BOTWIRE_AUTH=
  tokens`` (a token created in the database beforehand, as an operator does, so the check is
  the real one: parse, cache lookup, hash compare, grant match), over the same GET, auth off;
- metrics: GETs and PUTs with ``BOTWIRE_METRICS=on`` over ``off``;
- access line: GETs at ``BOTWIRE_LOG_LEVEL=info`` (the default: one line per request) over
  ``warning`` (none), for information.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .httpbench import prepare
from .load import run_load
from .procs import MemorySampler, ServerProcess, botwire_command, free_port, quota_free_env
from .procs import server_argv as _server_argv
from .stats import summary


@dataclass(frozen=True)
class Variant:
    """A server configuration: its extra settings and the Authorization header of its requests."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    # Called with the database URL before the server starts; returns the Authorization header.
    authorize: Callable[[str], str | None] | None = None


def create_token(db_url: str) -> str:
    """A token with write access on every namespace, made by ``botwire token create``."""
    done = subprocess.run(
        [*botwire_command(), "token", "create", "--db", db_url, "--name", "bench"]
        + ["--grant", "*:write"],
        capture_output=True,
        text=True,
        timeout=60,
        env=quota_free_env(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"botwire token create failed: {done.stderr}")
    token = done.stdout.split()[0]
    if not token.startswith("bw_"):
        raise RuntimeError(f"botwire token create printed no token: {done.stdout!r}")
    return f"Bearer {token}"


QUIET = {"BOTWIRE_LOG_LEVEL": "warning"}
TOKEN_CHECK = (
    Variant("auth off", {**QUIET, "BOTWIRE_AUTH": "off"}),
    Variant("tokens", {**QUIET, "BOTWIRE_AUTH": "tokens"}, create_token),
)
METRICS = (
    Variant("metrics off", {**QUIET, "BOTWIRE_METRICS": "off"}),
    Variant("metrics on", {**QUIET, "BOTWIRE_METRICS": "on"}),
)
ACCESS_LINE = (
    Variant("no access lines", QUIET),
    Variant("access lines", {"BOTWIRE_LOG_LEVEL": "info"}),
)
# (name, scenario, baseline, variant): what ``make bench`` measures.
FIGURES = (
    ("token check", "get", *TOKEN_CHECK),
    ("metrics", "get", *METRICS),
    ("metrics", "put", *METRICS),
    ("access line", "get", *ACCESS_LINE),
)


def run_overhead(
    name: str,
    baseline: Variant,
    variant: Variant,
    *,
    scenario: str,
    connections: int,
    repeats: int,
    duration: float,
    warmup: float,
    workdir: Path,
    generator: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Server CPU per request of ``variant`` over ``baseline`` (SQLite), with both figures."""
    servers: list[tuple[Variant, ServerProcess, str | None]] = []
    try:
        for v in (baseline, variant):
            db_file = f"overhead-{name}-{scenario}-{len(servers)}.db".replace(" ", "-")
            db_url = f"sqlite:///{workdir / db_file}"
            header = v.authorize(db_url) if v.authorize else None
            port = free_port()
            server = ServerProcess(v.name, _server_argv(port, db_url), port, quota_free_env(v.env))
            servers.append((v, server.start(), header))
            prepare(server.url, header)
        if warmup > 0:
            for _, server, header in servers:
                run_load(
                    server.url,
                    scenario,
                    connections=connections,
                    duration=warmup,
                    workdir=workdir,
                    generator=generator,
                    authorization=header,
                )
        cpu: dict[str, list[float]] = {v.name: [] for v, _, _ in servers}
        rps: dict[str, list[float]] = {v.name: [] for v, _, _ in servers}
        errors = 0
        for _ in range(repeats):
            for v, server, header in servers:
                with MemorySampler(server.pid) as sampled:
                    result = run_load(
                        server.url,
                        scenario,
                        connections=connections,
                        duration=duration,
                        workdir=workdir,
                        generator=generator,
                        authorization=header,
                    )
                errors += result.errors
                cpu[v.name].append(
                    1e6 * sampled.cpu_s / result.requests if result.requests else 0.0
                )
                rps[v.name].append(result.rps)
    finally:
        for _, server, _ in servers:
            server.stop()
    base, other = cpu[baseline.name], cpu[variant.name]
    figure = {
        "name": name,
        "scenario": scenario,
        "connections": connections,
        "baseline": baseline.name,
        "variant": variant.name,
        "cpu_us_per_request": {n: summary(values, 1) for n, values in cpu.items()},
        "rps": {n: summary(values, 1) for n, values in rps.items()},
        # Per repeat, in percent: (variant CPU / baseline CPU - 1) * 100.
        "overhead_pct": summary(
            [100 * (o / b - 1) if b else 0.0 for b, o in zip(base, other, strict=True)], 1
        ),
        "errors": errors,
    }
    log(
        f"overhead {name}: {figure['overhead_pct']['median']:+.1f}% server CPU per "
        f"{scenario.upper()} ({variant.name} over {baseline.name}), errors {errors}"
    )
    return figure
