"""LangGraph checkpointers compared: a 200-step graph run with ``BotWireSaver`` against
LangGraph's ``SqliteSaver`` (a local file) and ``PostgresSaver`` (the local PostgreSQL).

The graph loops one node ``steps`` times (one superstep each, so one checkpoint put and one
``put_writes`` per step): the node adds 1 to a counter and appends a 100-byte line to a log
channel (a list that grows, as a conversation's messages do, so the channel blob grows too).
Every saver runs the same graph with ``invoke`` (LangGraph's default durability), on a fresh
thread per repeat, in this process; BotWireSaver talks to ``botwire serve`` on 127.0.0.1 on a
fresh SQLite file, and on a temporary PostgreSQL database when one is reachable. The figure
is steps per second (median of the repeats, with min-max).

``python -m bench.langgraph [--steps 200] [--repeats 3]`` runs only this; ``python -m bench``
runs it after the other figures unless ``--no-langgraph``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import operator
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from . import pgdb
from .procs import ServerProcess, free_port, quota_free_env, server_argv

STEPS = 200
LINE = "x" * 100


class State(TypedDict):
    count: int
    log: Annotated[list[str], operator.add]


def build(checkpointer: Any, steps: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    def step(state: State) -> dict[str, Any]:
        return {"count": state["count"] + 1, "log": [LINE]}

    def more(state: State) -> str:
        return "step" if state["count"] < steps else END

    graph = StateGraph(State)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", more, ["step", END])
    return graph.compile(checkpointer=checkpointer)


def run_once(checkpointer: Any, steps: int) -> float:
    """Steps per second of one run on a fresh thread; checks that the state came back."""
    app = build(checkpointer, steps)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": steps + 10}
    began = time.perf_counter()
    app.invoke({"count": 0, "log": []}, config)
    elapsed = time.perf_counter() - began
    state = app.get_state(config).values
    if state["count"] != steps or len(state["log"]) != steps:
        raise RuntimeError(f"the run ended at count={state['count']}, not {steps}")
    return steps / elapsed


@contextlib.contextmanager
def _botwire(db_url: str) -> Iterator[Any]:
    from botwire.langgraph import BotWireSaver

    port = free_port()
    server = ServerProcess("botwire", server_argv(port, db_url), port, quota_free_env())
    with server.start():
        saver = BotWireSaver(server.url)
        yield saver
        saver.memory.close()


@contextlib.contextmanager
def _sqlite(path: Path) -> Iterator[Any]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(path)) as saver:
        yield saver


@contextlib.contextmanager
def _postgres(url: str) -> Iterator[Any]:
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        yield saver


def _installed(module: str, log: Callable[[str], None]) -> bool:
    """LangGraph's savers come with the bench extra (``make bench`` installs it)."""
    if importlib.util.find_spec(module.rsplit(".", 1)[0]) and importlib.util.find_spec(module):
        return True
    log(f"langgraph: {module} is not installed (pip install -e '.[bench]'); left out")
    return False


def _temp_database(admin_url: str, suffix: str) -> pgdb.TempDatabase:
    database = pgdb.TempDatabase(admin_url)
    database.name = f"{database.name}_lg_{suffix}"
    database.url = pgdb.with_database(admin_url, database.name)
    return database


def _postgres_reachable(admin_url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(admin_url, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means: leave PostgreSQL out
        return False


def run_langgraph(
    *,
    steps: int = STEPS,
    repeats: int = 3,
    workdir: Path,
    postgres_admin_url: str | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``{"steps", "repeats", "savers": [{"name", "steps_per_s", "min", "max"}]}``."""
    with contextlib.ExitStack() as stack:
        savers: list[tuple[str, Any]] = []
        sqlite_server = stack.enter_context(_botwire(f"sqlite:///{workdir / 'lg-botwire.db'}"))
        savers.append(("BotWireSaver (server on SQLite)", sqlite_server))
        use_pg = postgres_admin_url is not None and _postgres_reachable(postgres_admin_url)
        if use_pg and postgres_admin_url is not None and pgdb.backend_available():
            url = stack.enter_context(_temp_database(postgres_admin_url, "botwire"))
            savers.append(
                ("BotWireSaver (server on PostgreSQL)", stack.enter_context(_botwire(url)))
            )
        if _installed("langgraph.checkpoint.sqlite", log):
            sqlite_saver = stack.enter_context(_sqlite(workdir / "lg.sqlite"))
            savers.append(("SqliteSaver (local file)", sqlite_saver))
        if (
            use_pg
            and postgres_admin_url is not None
            and _installed("langgraph.checkpoint.postgres", log)
        ):
            url = stack.enter_context(_temp_database(postgres_admin_url, "langgraph"))
            savers.append(("PostgresSaver (local PostgreSQL)", stack.enter_context(_postgres(url))))
        figures: dict[str, list[float]] = {name: [] for name, _ in savers}
        for name, saver in savers:
            run_once(saver, min(steps, 20))  # warm-up: imports, connections, tables
            log(f"langgraph: {name} warmed up")
        # Repeat by repeat, every saver in turn: noise from other work hits them alike.
        for repeat in range(repeats):
            for name, saver in savers:
                rate = run_once(saver, steps)
                figures[name].append(rate)
                log(f"langgraph: {name}, repeat {repeat + 1}: {rate:.0f} steps/s")
    return {
        "steps": steps,
        "repeats": repeats,
        "savers": [
            {
                "name": name,
                "steps_per_s": round(statistics.median(rates), 1),
                "min": round(min(rates), 1),
                "max": round(max(rates), 1),
            }
            for name, rates in figures.items()
        ],
    }


def rows(results: dict[str, Any] | None) -> list[list[str]]:
    if not results:
        return []
    return [
        [s["name"], f"{s['steps_per_s']:.0f} steps/s ({s['min']:.0f}-{s['max']:.0f})"]
        for s in results["savers"]
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.langgraph", description=__doc__)
    p.add_argument("--steps", type=int, default=STEPS, help=f"steps per run ({STEPS})")
    p.add_argument("--repeats", type=int, default=3, help="runs per saver (3)")
    p.add_argument("--postgres-admin-url", default=pgdb.DEFAULT_ADMIN_URL)
    p.add_argument("--no-postgres", action="store_true")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="botwire-bench-lg-") as tmp:
        results = run_langgraph(
            steps=args.steps,
            repeats=args.repeats,
            workdir=Path(tmp),
            postgres_admin_url=None if args.no_postgres else args.postgres_admin_url,
            log=log,
        )
    print(f"LangGraph: a {results['steps']}-step graph run, median of {results['repeats']}")
    for name, figure in rows(results):
        print(f"  {name:40s} {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
