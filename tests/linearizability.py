"""A linearizability checker for BotWire's versioned keys, and a recorder of concurrent histories.

The model
=========

Each key is a register that also carries a *version* (the namespace revision of its last write).
Keys are independent registers (linearizability is compositional), so a history is checked one
key at a time. One key's state is ``(value, version, floor)``:

- ``value``: the current value, ``None`` while the key is absent;
- ``version``: its version, 0 while absent, ``None`` when a write whose reply was lost made it
  current (the version is then known only to lie above ``floor``);
- ``floor``: the highest revision this key has been written at; a later write of the key must
  commit at a higher revision, because revisions follow commit order.

A worked example (``|----|`` spans an operation's invoke and complete times)::

    P1  |-- write a -> v3 --|
    P2        |-- read -> a@v3 --|
    P3                               |-- cas(expected 3) b -> conflict, current 5 --|

is linearizable only if some write to this key at revision 5 lands between P2's read and P3's
CAS: with no such operation in the history the checker rejects it.

Operations whose outcome is unknown (a timeout, a connection lost) may have taken effect at any
moment after their invocation, or never: the search may place them anywhere after their invoke
time, or leave them out.

The search is Wing & Gong's, with Lowe's memoisation of ``(set of linearised operations, state)``
pairs: at each step any not-yet-linearised operation that was invoked before every other pending
operation completed may come next, if the model accepts its observed result.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

Kind = Literal["read", "write", "cas", "delete"]
Outcome = Literal["ok", "absent", "conflict", "unknown"]

INFINITY = float("inf")


def now_ns() -> int:
    """A clock shared by every process on this machine (``CLOCK_MONOTONIC`` is system-wide on
    Linux, unlike ``time.monotonic_ns``, whose reference point is only promised per process)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class Op:
    """One completed (or abandoned) client operation on one key.

    ``value``: the value a write or CAS wrote, or a read saw (None: absent).
    ``version``: the revision a write/CAS/delete committed at, the version a read saw, or the
    ``current_version`` a conflict reported. ``expected``: a CAS's ``expected_version``.
    ``complete`` is None when the outcome is unknown.
    """

    process: int
    key: str
    kind: Kind
    outcome: Outcome
    invoke: int
    complete: int | None
    value: str | None = None
    version: int | None = None
    expected: int | None = None

    def describe(self) -> str:
        span = f"[{self.invoke}, {self.complete if self.complete is not None else '?'}]"
        args = f"{self.value!r}" if self.kind in ("write", "cas") else ""
        if self.kind == "cas":
            args += f", expected={self.expected}"
        result: str = self.outcome
        if self.kind == "read" and self.outcome == "ok":
            result = f"{self.value!r}@{self.version}"
        elif self.outcome in ("ok", "conflict") and self.version is not None:
            result = f"{self.outcome}@{self.version}"
        return f"P{self.process} {self.kind}({args}) -> {result} {span}"


State = tuple[str | None, int | None, int]
INITIAL: State = (None, 0, 0)


def _version_is(state: State, version: int) -> State | None:
    """``state`` with its version pinned to ``version``, or None if it cannot be ``version``."""
    value, current, floor = state
    if version == 0:
        return state if value is None else None
    if value is None:
        return None
    if current is None:  # a lost reply: the version is unknown but above the floor
        return (value, version, max(floor, version)) if version > floor else None
    return state if current == version else None


def step(state: State, op: Op) -> State | None:
    """The state after ``op`` if the sequential model allows ``op`` with its observed result."""
    value, _version, floor = state
    unknown = op.outcome == "unknown"
    if op.kind == "read":
        if unknown:
            return state
        if op.outcome == "absent":
            return state if value is None else None
        if op.outcome == "ok" and op.version is not None and value == op.value:
            return _version_is(state, op.version)
        return None
    if op.kind == "write":
        if unknown:
            return (op.value, None, floor)
        if op.outcome == "ok" and op.version is not None and op.version > floor:
            return (op.value, op.version, op.version)
        return None
    if op.kind == "cas":
        expected = op.expected if op.expected is not None else 0
        if op.outcome == "conflict":
            if op.version is None or op.version == expected:
                return None
            return _version_is(state, op.version)
        matched = _version_is(state, expected)
        if matched is None:
            return None
        if unknown:
            return (op.value, None, matched[2])
        if op.outcome == "ok" and op.version is not None and op.version > matched[2]:
            return (op.value, op.version, op.version)
        return None
    if op.kind == "delete":
        if op.outcome == "absent":
            return state if value is None else None
        if value is None:
            return None
        if unknown:
            return (None, 0, floor)
        if op.outcome == "ok" and op.version is not None and op.version > floor:
            return (None, 0, op.version)
        return None
    raise ValueError(f"unknown operation kind {op.kind!r}")


@dataclass
class Verdict:
    """The outcome of checking one key. ``explored`` counts search states visited."""

    key: str
    ok: bool
    explored: int
    undecided: bool = False
    # When not linearizable: the longest prefix the search could order, and the operations
    # that could have come next but none of which the model accepted.
    prefix: list[Op] = field(default_factory=list)
    stuck: list[Op] = field(default_factory=list)

    def explain(self) -> str:
        if self.ok:
            return f"key {self.key!r}: linearizable ({self.explored} states explored)"
        if self.undecided:
            return f"key {self.key!r}: gave up after {self.explored} states"
        lines = [f"key {self.key!r}: NOT linearizable; longest valid order ends with:"]
        lines += ["  " + op.describe() for op in self.prefix[-8:]]
        lines.append("none of these can come next:")
        lines += ["  " + op.describe() for op in self.stuck]
        return "\n".join(lines)


def check_key(key: str, ops: Sequence[Op], *, max_states: int = 2_000_000) -> Verdict:
    """Is this one key's history linearizable with respect to the versioned-register model?"""
    ops = sorted(ops, key=lambda o: o.invoke)
    n = len(ops)
    complete = [INFINITY if o.complete is None else float(o.complete) for o in ops]
    required = 0
    for i, o in enumerate(ops):
        if o.complete is not None:
            required |= 1 << i

    # Lowe's memo, keyed by (linearised required ops, state). An unknown-outcome op is optional,
    # so having linearised FEWER of them leaves more choices: a frame is pruned when a frame
    # with the same key and a subset of its unknown ops has been expanded already.
    seen: dict[tuple[int, State], list[int]] = {}
    # Depth-first: each frame is (mask of linearised ops, state, order so far as a tuple).
    stack: list[tuple[int, State, tuple[int, ...]]] = [(0, INITIAL, ())]
    best: tuple[int, ...] = ()
    best_stuck: list[int] = []
    explored = 0
    while stack:
        mask, state, order = stack.pop()
        if mask & required == required:
            return Verdict(key, True, explored)
        optional = mask & ~required
        earlier = seen.setdefault((mask & required, state), [])
        if any(u & ~optional == 0 for u in earlier):
            continue
        earlier.append(optional)
        explored += 1
        if explored > max_states:
            return Verdict(key, False, explored, undecided=True)
        # An operation may come next only if no other pending operation completed before it was
        # invoked: the earliest completion among pending known operations bounds the candidates.
        horizon = INFINITY
        for i in range(n):
            if not mask >> i & 1 and complete[i] < horizon:
                horizon = complete[i]
        candidates: list[int] = []
        for i in range(n):
            if ops[i].invoke > horizon:
                break  # sorted by invoke: every later op was invoked later still
            if not mask >> i & 1:
                candidates.append(i)
        moved = False
        # The stack pops last-pushed first: try known-outcome ops in invoke order first, and an
        # unknown-outcome op only once those fail (most lost writes never need placing).
        for i in sorted(candidates, key=lambda i: (ops[i].complete is not None, -i)):
            nxt = step(state, ops[i])
            if nxt is not None:
                moved = True
                stack.append((mask | 1 << i, nxt, order + (i,)))
        if not moved and len(order) >= len(best):
            best, best_stuck = order, candidates
    return Verdict(
        key,
        False,
        explored,
        prefix=[ops[i] for i in best],
        stuck=[ops[i] for i in best_stuck],
    )


def check(history: Iterable[Op], *, max_states: int = 2_000_000) -> list[Verdict]:
    """Check every key of ``history``; one verdict per key."""
    by_key: dict[str, list[Op]] = {}
    for op in history:
        by_key.setdefault(op.key, []).append(op)
    return [check_key(k, ops, max_states=max_states) for k, ops in sorted(by_key.items())]


def revision_order_violations(history: Iterable[Op]) -> list[tuple[Op, Op]]:
    """Pairs of committed writes (any keys of one namespace) that real time orders one way and
    revisions the other, or that share a revision: revisions must follow commit order."""
    writes = sorted(
        (o for o in history if o.kind != "read" and o.outcome == "ok" and o.complete is not None),
        key=lambda o: o.invoke,
    )
    bad: list[tuple[Op, Op]] = []
    by_revision: dict[int, Op] = {}
    for o in writes:
        assert o.version is not None
        if o.version in by_revision:
            bad.append((by_revision[o.version], o))
        by_revision[o.version] = o
    # a completed before b was invoked => a.version < b.version. Sorting by completion and
    # keeping the running maximum version finds every violation's witness in one pass.
    by_complete = sorted(writes, key=lambda o: o.complete or 0)
    j = 0
    top: Op | None = None
    for b in writes:
        while j < len(by_complete) and (by_complete[j].complete or 0) < b.invoke:
            cand = by_complete[j]
            if top is None or (cand.version or 0) > (top.version or 0):
                top = cand
            j += 1
        if top is not None and (top.version or 0) > (b.version or 0):
            bad.append((top, b))
    return bad


# -- recording a history against a running server ----------------------------------------------


def record(
    base_url: str,
    namespace: str,
    keys: Sequence[str],
    *,
    process: int,
    operations: int,
    seed: int,
    timeout: float = 10.0,
    duration: float | None = None,
) -> list[dict[str, object]]:
    """Run ``operations`` random reads, writes, CAS writes and deletes on ``keys`` and return
    them as dicts (picklable, for ``multiprocessing``). Values are unique per operation, so a
    read names the write it saw. A refused connection is left out (nothing was sent); any
    other transport failure is recorded as an unknown outcome; a reply
    the contract does not allow is recorded with ``kind`` intact and ``outcome`` set to
    ``"unexpected:<status>"`` so the test can fail on it. With ``duration`` (seconds), it also
    stops once that much time has passed."""
    import httpx

    deadline = None if duration is None else time.monotonic() + duration

    rng = random.Random(seed)
    known: dict[str, int] = {}  # the last version this process saw per key, for plausible CAS
    out: list[dict[str, object]] = []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for n in range(operations):
            if deadline is not None and time.monotonic() > deadline:
                break
            key = rng.choice(keys)
            url = f"/memory/{namespace}/{key}"
            roll = rng.random()
            value = f"p{process}-{n}"
            rec: dict[str, object] = {"process": process, "key": key}
            invoke = now_ns()
            try:
                if roll < 0.4:
                    rec["kind"] = "read"
                    r = client.get(url)
                    if r.status_code == 200:
                        body = r.json()
                        rec.update(outcome="ok", value=body["value"], version=body["version"])
                        known[key] = body["version"]
                    elif r.status_code == 404:
                        rec.update(outcome="absent")
                        known[key] = 0
                    else:
                        rec.update(outcome=f"unexpected:{r.status_code}")
                elif roll < 0.65:
                    rec.update(kind="write", value=value)
                    r = client.put(url, json={"value": value})
                    if r.status_code == 200:
                        rec.update(outcome="ok", version=r.json()["version"])
                        known[key] = r.json()["version"]
                    else:
                        rec.update(outcome=f"unexpected:{r.status_code}")
                elif roll < 0.9:
                    expected = known.get(key, 0)
                    if rng.random() < 0.2:
                        expected = rng.choice([0, expected + 1, max(0, expected - 1)])
                    rec.update(kind="cas", value=value, expected=expected)
                    r = client.put(url, json={"value": value, "expected_version": expected})
                    if r.status_code == 200:
                        rec.update(outcome="ok", version=r.json()["version"])
                        known[key] = r.json()["version"]
                    elif r.status_code == 409:
                        rec.update(outcome="conflict", version=r.json()["current_version"])
                        known[key] = r.json()["current_version"]
                    else:
                        rec.update(outcome=f"unexpected:{r.status_code}")
                else:
                    rec["kind"] = "delete"
                    r = client.delete(url)
                    if r.status_code == 200:
                        rec.update(outcome="ok", version=r.json()["version"])
                        known[key] = 0
                    elif r.status_code == 404:
                        rec.update(outcome="absent")
                    else:
                        rec.update(outcome=f"unexpected:{r.status_code}")
                rec["complete"] = now_ns()
            except httpx.ConnectError:
                # No connection, so no request was sent: the operation did not happen. (The
                # server is down or restarting; a crash test expects this.)
                time.sleep(0.05)
                continue
            except httpx.TransportError:
                rec.update(outcome="unknown", complete=None)
            rec["invoke"] = invoke
            out.append(rec)
    return out


def from_records(records: Iterable[dict[str, object]]) -> list[Op]:
    return [Op(**rec) for rec in records]  # type: ignore[arg-type]


def dump(history: Sequence[Op]) -> str:
    """The history as JSON lines, for a failing test's report."""
    return "\n".join(json.dumps(asdict(op)) for op in history)
