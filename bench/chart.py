"""The PNG chart of a results structure (matplotlib, from the ``bench`` extra)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

SCENARIOS = ("put", "get", "mix", "cas")
COLOURS = {"ceiling": "#9e9e9e", "sqlite": "#1f77b4", "postgresql": "#2ca02c"}


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = results["http"]
    targets = [
        t for t in ("ceiling", "sqlite", "postgresql") if any(r["target"] == t for r in http)
    ]
    conns_all = sorted({r["connections"] for r in http}) or [64]
    top = 64 if 64 in conns_all else max(conns_all)

    def rec(target: str, scenario: str, conns: int) -> dict[str, Any] | None:
        for r in http:
            if (r["target"], r["scenario"], r["connections"]) == (target, scenario, conns):
                found: dict[str, Any] = r
                return found
        return None

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle(
        f"BotWire Server benchmark ({results['meta']['started_at']}, "
        f"medians of {results['meta']['options']['repeats']} runs, bars: min-max)",
        fontsize=12,
    )

    # (a) throughput at the top connection count, per scenario and target.
    ax = axes[0][0]
    width = 0.8 / max(1, len(targets))
    for i, target in enumerate(targets):
        xs, ys, lo, hi = [], [], [], []
        for j, scenario in enumerate(SCENARIOS):
            r = rec(target, scenario, top)
            if r is None:
                continue
            xs.append(j + (i - (len(targets) - 1) / 2) * width)
            ys.append(r["rps"]["median"])
            lo.append(r["rps"]["median"] - r["rps"]["min"])
            hi.append(r["rps"]["max"] - r["rps"]["median"])
        ax.bar(xs, ys, width, yerr=[lo, hi], label=target, color=COLOURS[target], capsize=3)
        for x, y, up in zip(xs, ys, hi, strict=True):
            ax.annotate(f"{y:,.0f}", (x, y + up), ha="center", va="bottom", fontsize=6.5)
    ax.set_xticks(range(len(SCENARIOS)), [s.upper() for s in SCENARIOS])
    ax.set_ylabel("requests/s")
    ax.set_title(f"Throughput at {top} connections")
    _legend(ax, fontsize=8)

    # (b) ratio to the ceiling against connections, with the targets.
    ax = axes[0][1]
    for target in targets:
        if target == "ceiling":
            continue
        for scenario, marker in zip(SCENARIOS, "osD^", strict=True):
            pts = [(c, rec(target, scenario, c)) for c in conns_all]
            xy = [(c, r["ratio"]["median"]) for c, r in pts if r and r["ratio"]]
            if xy:
                ax.plot(
                    [x for x, _ in xy],
                    [y for _, y in xy],
                    marker=marker,
                    linestyle="-" if target == "sqlite" else "--",
                    color=COLOURS[target],
                    label=f"{target} {scenario.upper()}",
                )
    ax.axhline(0.7, color="#d62728", linestyle=":", linewidth=1, label="PUT target 0.7")
    ax.axhline(0.8, color="#ff7f0e", linestyle=":", linewidth=1, label="GET target 0.8")
    ax.set_xscale("log", base=2)
    ax.set_xticks(conns_all, [str(c) for c in conns_all])
    ax.set_xlabel("connections")
    ax.set_ylabel("ours / ceiling (requests/s)")
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]) * 1.45)  # headroom for the legend
    ax.set_title("Ratio to the bare Starlette ceiling (median of per-repeat ratios)")
    _legend(ax, fontsize=7, ncol=4, loc="upper center")

    # (c) p99 latency at the top connection count (log scale), with the targets.
    ax = axes[1][0]
    for i, target in enumerate(targets):
        xs, ys = [], []
        for j, scenario in enumerate(SCENARIOS):
            r = rec(target, scenario, top)
            if r is not None:
                xs.append(j + (i - (len(targets) - 1) / 2) * width)
                ys.append(max(r["p99_ms"]["median"], 0.01))
        ax.bar(xs, ys, width, label=target, color=COLOURS[target])
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(f"{y:.0f}", (x, y), ha="center", va="bottom", fontsize=6.5)
    ax.axhline(25, color="#d62728", linestyle=":", linewidth=1.2, label="PUT p99 target 25 ms")
    ax.axhline(10, color="#ff7f0e", linestyle=":", linewidth=1.2, label="GET p99 target 10 ms")
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 8)  # headroom for the legend
    ax.set_xticks(range(len(SCENARIOS)), [s.upper() for s in SCENARIOS])
    ax.set_ylabel("p99 latency, ms (log)")
    ax.set_title(f"p99 latency at {top} connections")
    _legend(ax, fontsize=7, ncol=3, loc="upper center")

    # (d) scaling: latency against history length, and the one-off figures as text.
    ax = axes[1][1]
    history = ((results.get("scaling") or {}).get("history")) or {}
    series: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], float | None]]] = [
        ("as_of read (HTTP)", history.get("point_in_time") or {}, lambda f: f["p50_ms"]),
        ("as_of read (store)", history.get("point_in_time_store") or {}, lambda f: f["p50_ms"]),
        (
            "history page, newest",
            history.get("history_page") or {},
            lambda f: f["first"]["p50_ms"],
        ),
        (
            "history page, middle",
            history.get("history_page") or {},
            lambda f: f["middle"]["p50_ms"] if f.get("middle") else None,
        ),
    ]
    for label, figs, pick in series:
        xy = [(int(n), pick(f)) for n, f in figs.items() if pick(f) is not None]
        if xy:
            ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("versions of the key")
    ax.set_ylabel("p50 latency, ms (log)")
    ax.set_title("Scaling with history length (SQLite)")
    notes = []
    scaling = results.get("scaling") or {}
    for n, f in (scaling.get("rollback") or {}).items():
        notes.append(f"rollback {int(n):,} keys: {f['median']:.2f} s")
    if scaling.get("list"):
        li = scaling["list"]
        notes.append(f"list {li['keys']:,} keys: {li['total_s']['median']:.2f} s")
    if scaling.get("startup"):
        st = scaling["startup"]
        notes.append(
            f"start-up, {st['events']:,} events: {st['startup_s']['median']:.2f} s, "
            f"{st['rss_mb']['median']:.0f} MB"
        )
    if ax.lines:
        ax.set_ylim(0.001, 50)  # room above the lines for the notes, below them for the legend
    if notes:
        ax.text(
            0.02,
            0.97,
            "\n".join(notes),
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#cccccc"},
        )
    _legend(ax, fontsize=7, ncol=2, loc="lower center")

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _legend(ax: Any, **kwargs: Any) -> None:
    # A panel without data (a run with --no-http, say) gets no empty legend box.
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)
