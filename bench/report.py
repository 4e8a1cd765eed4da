"""The printed table, the targets and their verdicts, and a Markdown rendering for the README.

``python -m bench.report [bench/results/latest.json]`` prints the Markdown tables of a results file;
``--update-readme README.md`` writes them into the README's generated block instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGET_CONNECTIONS = 64
_COMPARE = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def _http(results: dict[str, Any], target: str, scenario: str, conns: int) -> dict[str, Any] | None:
    for record in results["http"]:
        if (record["target"], record["scenario"], record["connections"]) == (
            target,
            scenario,
            conns,
        ):
            found: dict[str, Any] = record
            return found
    return None


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the performance issue: the figure measured, the bound, met or not."""
    http = results["http"]
    conns = max((r["connections"] for r in http), default=TARGET_CONNECTIONS)
    if any(r["connections"] == TARGET_CONNECTIONS for r in http):
        conns = TARGET_CONNECTIONS
    targets: list[dict[str, Any]] = []

    def add(name: str, measured: float | None, op: str, bound: float, unit: str) -> None:
        met = None if measured is None else _COMPARE[op](measured, bound)
        targets.append(
            {
                "target": name,
                "measured": measured,
                "op": op,
                "bound": bound,
                "unit": unit,
                "met": met,
            }
        )

    present = {r["target"] for r in http} - {"ceiling"}
    backends = [b for b in ("sqlite", "postgresql") if b in present] + sorted(
        present - {"sqlite", "postgresql"}
    )
    for backend in backends:
        put = _http(results, backend, "put", conns)
        get = _http(results, backend, "get", conns)
        c = f"{conns} conn"
        if put and put["ratio"]:
            add(f"{backend}: PUT / ceiling ({c})", put["ratio"]["median"], ">=", 0.7, "x")
        if get and get["ratio"]:
            add(f"{backend}: GET / ceiling ({c})", get["ratio"]["median"], ">=", 0.8, "x")
        # The same ratios from CPU time per request: less disturbed by a busy machine.
        if put and put.get("cpu_ratio"):
            add(
                f"{backend}: PUT / ceiling by CPU per request",
                put["cpu_ratio"]["median"],
                ">=",
                0.7,
                "x",
            )
        if get and get.get("cpu_ratio"):
            add(
                f"{backend}: GET / ceiling by CPU per request",
                get["cpu_ratio"]["median"],
                ">=",
                0.8,
                "x",
            )
        if put:
            add(f"{backend}: PUT p99 ({c})", put["p99_ms"]["median"], "<=", 25.0, "ms")
        if get:
            add(f"{backend}: GET p99 ({c})", get["p99_ms"]["median"], "<=", 10.0, "ms")
        rss = [max(r["rss_mb"], r.get("rss_hwm_mb", 0.0)) for r in http if r["target"] == backend]
        if rss:
            add(f"{backend}: server RSS under load (max)", max(rss), "<", 100.0, "MB")
    chat = results.get("chat_history")
    if chat:
        add(
            f"chat history: last / first 100 appends p50 ({chat.get('messages', 0):,} messages)",
            chat.get("ratio"),
            "<=",
            1.5,
            "x",
        )
    scaling = results.get("scaling") or {}
    failed = scaling.get("errors") or {}
    for group, names in (
        ("history", ["point-in-time read p50, most / fewest versions"]),
        ("rollback", ["rollback of the most changed keys"]),
        ("startup", ["start-up on the large database"]),
    ):
        if group in failed:
            for name in names:
                add(f"{name} (figure failed)", None, "<=", 2.0 if group != "history" else 1.5, "")
    pit = (scaling.get("history") or {}).get("point_in_time") or {}
    if len(pit) >= 2:
        sizes = sorted(pit, key=int)
        lo, hi = pit[sizes[0]]["p50_ms"], pit[sizes[-1]]["p50_ms"]
        add(
            f"point-in-time read p50, {int(sizes[-1]):,} / {int(sizes[0]):,} versions",
            round(hi / lo, 3) if lo else None,
            "<=",
            1.5,
            "x",
        )
    store = (scaling.get("history") or {}).get("point_in_time_store") or {}
    if len(store) >= 2:
        sizes = sorted(store, key=int)
        lo, hi = store[sizes[0]]["p50_ms"], store[sizes[-1]]["p50_ms"]
        add(
            f"same, through the Store without HTTP, {int(sizes[-1]):,} / {int(sizes[0]):,}",
            round(hi / lo, 3) if lo else None,
            "<=",
            1.5,
            "x",
        )
    rollback = scaling.get("rollback") or {}
    if rollback:
        n = max(rollback, key=int)
        add(f"rollback of {int(n):,} changed keys", rollback[n]["median"], "<", 2.0, "s")
    startup = scaling.get("startup")
    if startup:
        add(
            f"start-up on {startup['events']:,} events",
            startup["startup_s"]["median"],
            "<",
            2.0,
            "s",
        )
    pipeline = results.get("pipeline") or {}
    watch = pipeline.get("watch")
    if watch:
        add(
            f"watch: deliveries missed of {watch['expected_deliveries']:,}",
            watch["missing"],
            "<=",
            0,
            "",
        )
    elif "watch" in (pipeline.get("errors") or {}):
        add("watch: deliveries missed (figure failed)", None, "<=", 0, "")
    for fig in results.get("overhead") or []:
        bound = OVERHEAD_BOUNDS.get(fig["name"])
        if bound is not None:
            add(
                f"{fig['name']}: server CPU per {fig['scenario'].upper()}, "
                f"{fig['variant']} over {fig['baseline']}",
                fig["overhead_pct"]["median"],
                "<",
                bound,
                "%",
            )
    return targets


# The most a feature may add to a request's server CPU, in percent.
OVERHEAD_BOUNDS = {"token check": 5.0, "metrics": 3.0}


def overhead_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for fig in results.get("overhead") or []:
        cpu, rps = fig["cpu_us_per_request"], fig["rps"]
        base, other = fig["baseline"], fig["variant"]
        rows.append(
            [
                f"{fig['name']}: {fig['scenario'].upper()}, {fig['connections']} conns",
                f"{_spread(fig['overhead_pct'], '{:+.1f}')} % server CPU per request; "
                f"{other} {cpu[other]['median']:.0f} µs vs {base} {cpu[base]['median']:.0f} µs;"
                f" {rps[other]['median']:,.0f} vs {rps[base]['median']:,.0f} req/s; "
                f"errors {fig['errors']}",
            ]
        )
    return rows


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "NOT MET")


def _spread(s: dict[str, float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}-{fmt.format(s['max'])}]"


def http_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in results["http"]:
        ratio = _spread(r["ratio"], "{:.2f}") if r["ratio"] else "-"
        notes = []
        if r["scenario"] == "cas" and "increments_per_s" in r:
            notes.append(
                f"{r['increments_per_s']['median']:,.0f} incr/s, {r['conflicts']} conflicts"
            )
        if "db_cpu_us_per_request" in r:
            notes.append(f"+ database {r['db_cpu_us_per_request']['median']:,.0f} CPU µs/req")
        extra = "; ".join(notes)
        rows.append(
            [
                r["target"],
                r["scenario"],
                str(r["connections"]),
                _spread(r["rps"]),
                f"{r['p50_ms']['median']:.2f}",
                _spread(r["p99_ms"], "{:.1f}"),
                str(r["errors"]),
                f"{r['rss_mb']:.0f}",
                f"{r['cpu_us_per_request']['median']:,.0f}" if "cpu_us_per_request" in r else "-",
                ratio,
                f"{r['cpu_ratio']['median']:.2f}" if r.get("cpu_ratio") else "-",
                extra,
            ]
        )
    return rows


HTTP_HEADER = [
    "target",
    "scenario",
    "conns",
    "req/s median [min-max]",
    "p50 ms",
    "p99 ms median [min-max]",
    "errors",
    "RSS MB",
    "CPU µs/req",
    "ratio to ceiling",
    "CPU ratio",
    "notes",
]


def scaling_rows(results: dict[str, Any]) -> list[list[str]]:
    scaling = results.get("scaling") or {}
    rows: list[list[str]] = []
    history = scaling.get("history") or {}
    for n, fig in (history.get("point_in_time") or {}).items():
        store = (history.get("point_in_time_store") or {}).get(n)
        page = (history.get("history_page") or {}).get(n) or {}
        middle = page.get("middle")
        rows.append(
            [
                f"key with {int(n):,} versions",
                f"as_of read p50 {fig['p50_ms']:.2f} ms, p99 {fig['p99_ms']:.2f} ms (HTTP); "
                + (f"store p50 {store['p50_ms']:.3f} ms; " if store else "")
                + f"history page p50 {page['first']['p50_ms']:.2f} ms newest"
                + (f", {middle['p50_ms']:.2f} ms middle" if middle else ""),
            ]
        )
    for n, fig in (scaling.get("rollback") or {}).items():
        rows.append([f"rollback, {int(n):,} changed keys", f"{_spread(fig, '{:.3f}')} s"])
    listing = scaling.get("list")
    if listing:
        rows.append(
            [
                f"list {listing['keys']:,} keys, pages of {listing['page_size']}",
                f"{_spread(listing['total_s'], '{:.2f}')} s in all; page p50 "
                f"{listing['page']['p50_ms']:.2f} ms, p99 {listing['page']['p99_ms']:.2f} ms",
            ]
        )
    for name, error in (scaling.get("errors") or {}).items():
        rows.append([f"{name}: FAILED", error[:300]])
    startup = scaling.get("startup")
    if startup:
        rows.append(
            [
                f"start-up, {startup['events']:,} events",
                f"{_spread(startup['startup_s'], '{:.2f}')} s to /healthz 200; "
                f"RSS {startup['rss_mb']['median']:.0f} MB",
            ]
        )
    return rows


def _ms(fig: dict[str, Any]) -> str:
    return f"p50 {fig['p50_ms']:.1f} / p99 {fig['p99_ms']:.1f} / max {fig['max_ms']:.1f} ms"


def pipeline_rows(results: dict[str, Any]) -> list[list[str]]:
    pipeline = results.get("pipeline") or {}
    rows: list[list[str]] = []

    def cpu(fig: dict[str, Any]) -> float:
        value: float = fig["cpu_us_per_key"]["median"]
        return value

    for backend, fig in (pipeline.get("batch") or {}).items():
        batch, put = fig["batch"], fig["put"]
        rows.append(
            [
                f"{backend}: {fig['ops_per_batch']}-op batches vs PUTs, {fig['clients']} conns",
                f"{_spread(batch['keys_per_s'])} keys/s in batches, "
                f"{_spread(put['keys_per_s'])} by single PUTs: "
                f"{_spread(fig['ratio'], '{:.1f}')}x; CPU µs/key "
                f"{cpu(batch):,.1f} vs {cpu(put):,.0f}; p99 {batch['p99_ms']['median']:.1f} ms "
                f"per batch, {put['p99_ms']['median']:.1f} ms per PUT; "
                f"errors {batch['errors'] + put['errors']}",
            ]
        )
    watch = pipeline.get("watch")
    if watch:
        rows.append(
            [
                f"watch: {watch['watchers']:,} SSE subscribers, {watch['writes']} PUTs "
                f"{1000 * watch['write_interval_s']:.0f} ms apart",
                f"{watch['delivered']:,} of {watch['expected_deliveries']:,} delivered, "
                f"{watch['missing']} missing; from PUT sent {_ms(watch['from_send'])}; "
                f"from PUT answered {_ms(watch['from_ack'])}; {watch['connected']:,} connected "
                f"from {watch['load_processes']} processes (their CPU {watch['load_cpu_s']} s, "
                f"server's {watch['server_cpu_s']} s over {watch['writing_s']} s)",
            ]
        )
    expiry = pipeline.get("expiry")
    if expiry:
        during, without = expiry["during_sweep"], expiry["without_sweep"]
        rows.append(
            [
                f"expiry: {expiry['keys']:,} keys, PUTs from {expiry['clients']} conns",
                f"all expired {_spread(expiry['sweep_s'], '{:.2f}')} s after their TTL "
                f"(first {expiry['first_expired_s']['median']:.2f} s); PUT p50/p99 "
                f"{during['p50_ms']:.1f}/{during['p99_ms']:.1f} ms during the sweep "
                f"({during['samples']:,} PUTs) vs {without['p50_ms']:.1f}/{without['p99_ms']:.1f}"
                f" ms without ({without['samples']:,}); errors {expiry['errors']}; keys loaded "
                f"in {expiry['load_s']['median']:.1f} s"
                + (
                    f", {expiry['late_batches']} batches late" if expiry.get("late_batches") else ""
                ),
            ]
        )
    for name, error in (pipeline.get("errors") or {}).items():
        rows.append([f"{name}: FAILED", error[:300]])
    return rows


def target_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in results["targets"]:
        measured = "-" if t["measured"] is None else f"{t['measured']:g} {t['unit']}"
        rows.append(
            [t["target"], measured, f"{t['op']} {t['bound']:g} {t['unit']}", _verdict(t["met"])]
        )
    return rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _meta_line(results: dict[str, Any]) -> str:
    m = results["meta"]
    o = m["options"]
    return (
        f"{m['started_at']}, {m['machine']['cpus']} CPUs, load average "
        f"{m['machine']['loadavg_before']} before / {m['machine']['loadavg_after']} after; "
        f"generator {m['generator']}, {o['duration']} s per run, median of {o['repeats']} runs; "
        f"uvicorn loop={m['uvicorn']['loop']} http={m['uvicorn']['http']}"
        + _source_note(m.get("source"))
    )


def _source_note(source: dict[str, Any] | None) -> str:
    if not source or not source.get("commit"):
        return ""
    dirty = " with uncommitted server changes" if source.get("server_modified") else ""
    return f"; commit {source['commit']}{dirty}"


def langgraph_rows(results: dict[str, Any]) -> list[list[str]]:
    from .langgraph import rows

    return rows(results.get("langgraph"))


def render_text(results: dict[str, Any]) -> str:
    parts = [_meta_line(results), "", _text_table(HTTP_HEADER, http_rows(results))]
    scaling = scaling_rows(results)
    if scaling:
        parts += ["", _text_table(["scaling (SQLite)", "figure"], scaling)]
    pipeline = pipeline_rows(results)
    if pipeline:
        parts += ["", _text_table(["pipeline", "figure"], pipeline)]
    overhead = overhead_rows(results)
    if overhead:
        parts += ["", _text_table(["cost of a feature (SQLite)", "figure"], overhead)]
    graph = langgraph_rows(results)
    if graph:
        steps = results["langgraph"]["steps"]
        parts += ["", _text_table([f"LangGraph, {steps}-step graph run", "figure"], graph)]
    parts += ["", _text_table(["target", "measured", "bound", "verdict"], target_rows(results))]
    return "\n".join(parts)


def render_markdown(results: dict[str, Any]) -> str:
    parts = [_meta_line(results), "", _md_table(HTTP_HEADER, http_rows(results))]
    scaling = scaling_rows(results)
    if scaling:
        parts += ["", _md_table(["scaling (SQLite)", "figure"], scaling)]
    pipeline = pipeline_rows(results)
    if pipeline:
        parts += ["", _md_table(["pipeline", "figure"], pipeline)]
    overhead = overhead_rows(results)
    if overhead:
        parts += ["", _md_table(["cost of a feature (SQLite)", "figure"], overhead)]
    graph = langgraph_rows(results)
    if graph:
        steps = results["langgraph"]["steps"]
        parts += ["", _md_table([f"LangGraph, {steps}-step graph run", "figure"], graph)]
    parts += ["", _md_table(["target", "measured", "bound", "verdict"], target_rows(results))]
    return "\n".join(parts)


START, END = "<!-- bench-results:start -->", "<!-- bench-results:end -->"


def update_readme(readme: Path, results: dict[str, Any]) -> None:
    """Replace the README's generated block (between the bench-results markers) with ``results``."""
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest or END not in rest:
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    block = f"{START}\n{render_markdown(results)}\n{END}"
    readme.write_text(head + block + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report [results.json] [--update-readme README.md]``."""
    args = sys.argv[1:] if argv is None else argv
    readme = None
    if "--update-readme" in args:
        i = args.index("--update-readme")
        readme = Path(args[i + 1])
        args = args[:i] + args[i + 2 :]
    path = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    if readme is not None:
        update_readme(readme, results)
    else:
        print(render_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
