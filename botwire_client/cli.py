"""The ``botwire`` command: ``serve`` and ``migrate`` run the server; the rest is the client."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in {"serve", "migrate"}:
        from botwire_server.cli import main as server_main

        return server_main(args)
    print("usage: botwire {serve,migrate} ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
