"""Run one seed snippet in this process: ``python runner.py <snippet> run <round>`` or
``python runner.py <snippet> check``. ``BOTWIRE_URL`` points at the server under test.

``run`` puts the framework stand-ins (``stubs/``) first on ``sys.path``, executes the snippet's
file unchanged as a module whose globals start with its context (see ``drivers.py``), then
drives what it defined. ``check`` only reads the server. Any failed assertion exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    name, phase = argv[0], argv[1]
    sys.path.insert(0, str(HERE / "stubs"))
    sys.path.insert(0, str(HERE))
    import drivers

    if phase == "check":
        drivers.CHECKS[name]()
        return 0
    round = int(argv[2])
    path = HERE / f"{name}.py"
    context = drivers.CONTEXTS.get(name)
    namespace = {"__name__": f"seed_{name}", "__file__": str(path)}
    namespace.update(context(round) if context else {})
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    drivers.DRIVERS[name](namespace, round)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
