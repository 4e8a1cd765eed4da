"""A tiny run of the benchmark suite (``make bench``), so the harness cannot rot unnoticed.

Durations and sizes are minimal and nothing here looks at speed: the checks are that every
figure is reported, well formed and consistent (no request failed, every acknowledged CAS
increment is in the counter, targets are evaluated).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if (
    str(ROOT) not in sys.path
):  # ``bench`` is a directory of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.profile import summarise  # noqa: E402
from bench.report import evaluate_targets, render_markdown  # noqa: E402

SCENARIOS = {"put", "get", "mix", "cas"}


def run_bench(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "bench", "--duration", "1", "--repeats", "1", "--warmup", "0"]
    cmd += ["--connections", "2", "--postgres", "no", "--no-chart", "--out", str(out)]
    cmd += ["--no-chat"]  # the chat history figure has its own smoke test
    cmd += ["--no-langgraph", *args] if "--langgraph-steps" not in args else list(args)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "latest.json").read_text(encoding="utf-8")), proc.stdout


def check_http(results: dict[str, Any], scenarios: set[str]) -> None:
    cells = {(r["target"], r["scenario"], r["connections"]) for r in results["http"]}
    assert cells == {(t, s, 2) for t in ("ceiling", "sqlite") for s in scenarios}
    for r in results["http"]:
        assert r["requests"] > 0 and r["rps"]["median"] > 0, r
        assert r["rps"]["min"] <= r["rps"]["median"] <= r["rps"]["max"]
        assert 0 < r["p50_ms"]["median"] <= r["p99_ms"]["median"], r
        assert r["errors"] == 0, r
        assert 0 < r["rss_mb"] <= r["rss_hwm_mb"], r
        assert r["cpu_us_per_request"]["median"] > 0, r
        assert (r["cpu_ratio"] is None) == (r["target"] == "ceiling")
        assert len(r["runs"]) == 1
        assert (r["ratio"] is None) == (r["target"] == "ceiling")
        if r["ratio"]:
            assert r["ratio"]["median"] > 0
        if r["scenario"] == "cas" and r["target"] == "sqlite":
            # Each acknowledged increment is in the counter, plus at most one request in flight
            # per connection when the run stopped.
            assert r["increments"] > 0
            assert r["increments"] <= r["counter_delta"] <= r["increments"] + 2, r


@pytest.mark.e2e
def test_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, "--quick", "--no-pipeline", "--no-overhead")
    assert results["meta"]["generator"] in {"wrk", "python"}
    assert set(results["meta"]["source"]) == {"commit", "server_modified"}
    check_http(results, SCENARIOS)

    scaling = results["scaling"]
    assert scaling["errors"] == {}
    history = scaling["history"]
    for figure in ("point_in_time", "point_in_time_store", "history_page"):
        assert set(history[figure]) == {"10", "300"}, figure
    for n in ("10", "300"):
        assert history["point_in_time"][n]["samples"] == 20
        assert history["point_in_time"][n]["p50_ms"] > 0
        assert history["history_page"][n]["first"]["p50_ms"] > 0
    assert history["history_page"]["300"]["middle"]["p50_ms"] > 0
    assert set(scaling["rollback"]) == {"10", "50"}
    assert all(
        f["median"] > 0 and f["changed_keys"] == int(n) for n, f in scaling["rollback"].items()
    )
    assert scaling["list"]["keys"] == 500 and scaling["list"]["total_s"]["median"] > 0
    assert scaling["startup"]["events"] == 2000
    assert (
        scaling["startup"]["startup_s"]["median"] > 0 and scaling["startup"]["rss_mb"]["median"] > 0
    )

    names = [t["target"] for t in results["targets"]]
    assert names == [
        "sqlite: PUT / ceiling (2 conn)",
        "sqlite: GET / ceiling (2 conn)",
        "sqlite: PUT / ceiling by CPU per request",
        "sqlite: GET / ceiling by CPU per request",
        "sqlite: PUT p99 (2 conn)",
        "sqlite: GET p99 (2 conn)",
        "sqlite: server RSS under load (max)",
        "point-in-time read p50, 300 / 10 versions",
        "same, through the Store without HTTP, 300 / 10",
        "rollback of 50 changed keys",
        "start-up on 2,000 events",
    ]
    assert all(t["measured"] is not None and isinstance(t["met"], bool) for t in results["targets"])
    assert "req/s median" in printed and "verdict" in printed
    assert "| target | scenario |" in render_markdown(results)


@pytest.mark.e2e
@pytest.mark.slow
def test_smoke_langgraph_figures(tmp_path: Path) -> None:
    args = ("--no-http", "--no-scaling", "--no-pipeline", "--no-overhead", "--langgraph-steps", "5")
    results, printed = run_bench(tmp_path, *args)
    graph = results["langgraph"]
    assert graph["steps"] == 5 and graph["repeats"] == 1
    names = [s["name"] for s in graph["savers"]]
    assert names[0] == "BotWireSaver (server on SQLite)"
    for saver in graph["savers"]:
        assert 0 < saver["min"] <= saver["steps_per_s"] <= saver["max"], saver
    assert "LangGraph, 5-step graph run" in printed


@pytest.mark.e2e
def test_python_load_generator_drives_the_same_scenarios(tmp_path: Path) -> None:
    results, printed = run_bench(
        tmp_path,
        *("--generator", "python", "--no-scaling", "--no-pipeline", "--scenarios", "put,cas"),
        *("--overhead", "token check"),
    )
    assert results["meta"]["generator"] == "python"
    assert results["scaling"] is None
    check_http(results, {"put", "cas"})
    # The token check's cost: GETs carrying a real token against a server with tokens on
    # (a 401 would count as an error), over the same GETs with auth off.
    (fig,) = results["overhead"]
    assert (fig["name"], fig["scenario"], fig["errors"]) == ("token check", "get", 0)
    for side in ("auth off", "tokens"):
        assert fig["cpu_us_per_request"][side]["median"] > 0
        assert fig["rps"][side]["median"] > 0
    (target,) = [t for t in results["targets"] if t["target"].startswith("token check")]
    assert target["measured"] == fig["overhead_pct"]["median"] and target["bound"] == 5.0
    assert "cost of a feature" in printed


@pytest.mark.e2e
def test_smoke_pipeline_figures(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, "--quick", "--no-http", "--no-scaling", "--no-overhead")
    assert results["http"] == [] and results["scaling"] is None
    pipeline = results["pipeline"]
    assert pipeline["errors"] == {}
    batch = pipeline["batch"]["sqlite"]
    assert batch["ops_per_batch"] == 100 and batch["clients"] == 2
    for mode in ("batch", "put"):
        assert batch[mode]["errors"] == 0
        assert batch[mode]["keys_per_s"]["median"] > 0
        assert batch[mode]["cpu_us_per_key"]["median"] > 0
    # Keys per second of batches are 100 times their requests per second.
    assert batch["batch"]["keys_per_s"]["median"] == pytest.approx(
        100 * batch["batch"]["requests_per_s"]["median"], rel=1e-3
    )
    assert batch["ratio"]["median"] > 0

    watch = pipeline["watch"]
    assert watch["connected"] == watch["watchers"] == 20
    assert watch["expected_deliveries"] == 20 * 5 == watch["delivered"]
    assert watch["missing"] == watch["duplicates"] == watch["stream_errors"] == 0
    assert 0 < watch["from_send"]["p50_ms"] <= watch["from_send"]["max_ms"]
    assert watch["from_send"]["samples"] == 100

    expiry = pipeline["expiry"]
    assert expiry["keys"] == 500 and expiry["errors"] == 0
    assert expiry["sweep_s"]["median"] > 0
    assert expiry["without_sweep"]["samples"] > 0 and expiry["without_sweep"]["p99_ms"] > 0

    assert [t["target"] for t in results["targets"]] == ["watch: deliveries missed of 100"]
    assert results["targets"][0]["met"] is True
    assert "keys/s in batches" in printed and "SSE subscribers" in printed
    assert "| pipeline | figure |" in render_markdown(results)


@pytest.mark.e2e
@pytest.mark.slow
def test_smoke_chat_history_figure() -> None:
    cmd = [sys.executable, "-m", "bench.chathistory", "--messages", "300"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    figure = json.loads(proc.stdout)
    assert figure["messages"] == 300
    assert 0 < figure["first_100_p50_ms"] and 0 < figure["last_100_p50_ms"]
    assert figure["ratio"] == pytest.approx(
        figure["last_100_p50_ms"] / figure["first_100_p50_ms"], rel=1e-2
    )
    assert figure["cold_read_s"] > 0 and figure["warm_read_ms"] > 0
    (target,) = evaluate_targets(
        {"http": [], "scaling": None, "pipeline": None, "chat_history": figure}
    )
    assert target["target"].startswith("chat history: last / first 100 appends")
    assert target["met"] == (figure["ratio"] <= 1.5)


def test_profile_summary_percentages() -> None:
    collapsed = "\n".join(
        [
            "thread (1): MainThread;main (a.py:1);route (botwire_server/http/routes.py:5) 6",
            "thread (1): MainThread;main (a.py:1);write (asyncio/selector_events.py:9) 2",
            "thread (2): writer;loop (botwire_server/storage/sqlite.py:3) 2",
        ]
    )
    summary = summarise(collapsed)
    assert summary["samples"] == 10
    assert summary["threads"] == [("MainThread", 80.0), ("writer", 20.0)]
    assert dict(summary["self_by_package"]) == {
        "botwire_server.http": 60.0,
        "asyncio (event loop, transports)": 20.0,
        "botwire_server.storage": 20.0,
    }
    # main() is in every sample of its thread: an entry frame, not a finding.
    assert "main (a.py:1)" not in dict(summary["inclusive_functions"])


def test_targets_verdicts_follow_the_bounds() -> None:
    def cell(scenario: str, ratio: float, p99: float) -> dict[str, Any]:
        spread = {"median": ratio, "min": ratio, "max": ratio}
        return {
            "target": "sqlite",
            "scenario": scenario,
            "connections": 64,
            "ratio": spread,
            "p99_ms": {"median": p99, "min": p99, "max": p99},
            "rss_mb": 120.0,
            "cpu_ratio": {"median": 1.0, "min": 1.0, "max": 1.0},
        }

    results = {"http": [cell("put", 0.7, 25.0), cell("get", 0.79, 10.5)], "scaling": None}
    verdicts = {t["target"]: t["met"] for t in evaluate_targets(results)}
    assert verdicts == {
        "sqlite: PUT / ceiling (64 conn)": True,
        "sqlite: GET / ceiling (64 conn)": False,
        "sqlite: PUT / ceiling by CPU per request": True,
        "sqlite: GET / ceiling by CPU per request": True,
        "sqlite: PUT p99 (64 conn)": True,
        "sqlite: GET p99 (64 conn)": False,
        "sqlite: server RSS under load (max)": False,
    }
