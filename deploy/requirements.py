"""Print the requirements of pyproject.toml's base dependencies and the extras named on the
command line, one a line, with the project's own extras (``botwire-server[mcp]`` inside
``server``) expanded: the image installs them, pinned by constraints.txt, before the code.

Run from the directory that holds pyproject.toml: ``python requirements.py server postgres``.
"""

from __future__ import annotations

import re
import sys
import tomllib


def requirements(project: dict[str, object], extras: list[str]) -> list[str]:
    name = str(project["name"])
    optional = project["optional-dependencies"]
    assert isinstance(optional, dict)
    own = re.compile(rf"{re.escape(name)}\[([^\]]+)\]")
    out: list[str] = list(project["dependencies"])  # type: ignore[call-overload]
    seen: set[str] = set()

    def add(extra: str) -> None:
        if extra in seen:
            return
        seen.add(extra)
        for requirement in optional[extra]:
            match = own.fullmatch(requirement.strip())
            if match is None:
                out.append(requirement)
            else:
                for inner in match.group(1).split(","):
                    add(inner.strip())

    for extra in extras:
        add(extra)
    return out


if __name__ == "__main__":
    with open("pyproject.toml", "rb") as f:
        print("\n".join(requirements(tomllib.load(f)["project"], sys.argv[1:])))
