"""The chat history figure: appends to one session stay flat as the conversation grows.

One ``BotWireChatHistory`` session on a fresh SQLite server gets ``messages`` appends of one
message each (``add_messages``, as ``RunnableWithMessageHistory`` makes them, one turn at a
time); each append is timed. The figure is the ratio of the median of the last 100 appends to
the median of the first 100 (target: at most 1.5x), with the time of a cold read of the whole
session (a new instance) and of a warm read (an instance that read before, then two appends).

Run alone: ``python -m bench.chathistory [--messages 10000]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .scaling import serve

WINDOW = 100


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def run_chat_history(messages: int, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from langchain_core.messages import AIMessage, HumanMessage

    from botwire import BotWireChatHistory

    db = workdir / "chat-history.db"
    with serve(db).start() as server:
        history = BotWireChatHistory("bench-session", base_url=server.url)
        times: list[float] = []
        for i in range(messages):
            message = HumanMessage(f"question {i}") if i % 2 == 0 else AIMessage(f"answer {i}")
            began = time.perf_counter()
            history.add_messages([message])
            times.append(time.perf_counter() - began)
            if (i + 1) % 2000 == 0:
                log(f"chat history: {i + 1:,} appends")
        began = time.perf_counter()
        cold = BotWireChatHistory("bench-session", base_url=server.url).messages
        cold_s = time.perf_counter() - began
        if len(cold) != messages:
            raise AssertionError(f"read back {len(cold)} of {messages} messages")
        warm = BotWireChatHistory("bench-session", base_url=server.url)
        _ = warm.messages
        history.add_messages([HumanMessage("one more"), AIMessage("and another")])
        began = time.perf_counter()
        again = warm.messages
        warm_s = time.perf_counter() - began
        if len(again) != messages + 2:
            raise AssertionError("the warm read missed the last appends")
    first, last = _median_ms(times[:WINDOW]), _median_ms(times[-WINDOW:])
    return {
        "messages": messages,
        "first_100_p50_ms": first,
        "last_100_p50_ms": last,
        "ratio": round(last / first, 3) if first else None,
        "cold_read_s": round(cold_s, 3),
        "warm_read_ms": round(warm_s * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=10_000)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="botwire-chat-") as tmp:
        out = run_chat_history(args.messages, Path(tmp), lambda m: print(m, file=sys.stderr))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
