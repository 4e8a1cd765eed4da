"""Run one seed snippet in this process: ``python runner.py <snippet> <step>...`` where a step
is ``run:<round>`` or ``check``. ``BOTWIRE_URL`` points at the server under test.

A run puts the framework stand-ins (``stubs/``) first on ``sys.path``, executes the snippet's
file unchanged as a module whose globals start with its context (see ``drivers.py``), then
drives what it defined. A check only reads the server. Any failed assertion exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    name, steps = argv[0], argv[1:]
    sys.path.insert(0, str(HERE / "stubs"))
    sys.path.insert(0, str(HERE))
    import drivers

    for step in steps:
        if step == "check":
            drivers.CHECKS[name]()
        else:
            run(drivers, name, int(step.removeprefix("run:")))
    return 0


def run(drivers: Any, name: str, round: int) -> None:
    path = HERE / f"{name}.py"
    context = drivers.CONTEXTS.get(name)
    namespace = {"__name__": f"seed_{name}", "__file__": str(path)}
    namespace.update(context(round) if context else {})
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    drivers.DRIVERS[name](namespace, round)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
