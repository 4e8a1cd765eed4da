"""``botwire mcp``: the Model Context Protocol over stdio, a thin process in front of a server.

An assistant (Claude Desktop, an IDE agent) starts it as a subprocess and speaks MCP on its
stdin and stdout; every tool call becomes HTTP requests of ``botwire_client.Memory`` to the
server at ``--url`` (default ``BOTWIRE_URL``, then http://127.0.0.1:8000), with ``--token``
(default ``BOTWIRE_TOKEN``). ``--namespace`` is the namespace of tools called without one.
Nothing but MCP may be written to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from botwire_client import core


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="botwire mcp",
        description="Serve BotWire memory to an assistant over the Model Context Protocol (stdio).",
    )
    parser.add_argument("--namespace", help="default namespace of the tools")
    parser.add_argument(
        "--url", help="server URL (default: $BOTWIRE_URL, else http://127.0.0.1:8000)"
    )
    parser.add_argument("--token", help="API token bw_<id>_<secret> (default: $BOTWIRE_TOKEN)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        from botwire_client.mcp_tools import build_server
    except ImportError as exc:
        print(
            f"botwire mcp needs the mcp package ({exc}). Install it: "
            "pip install 'botwire-server[mcp]'",
            file=sys.stderr,
        )
        return 2
    from botwire_client.errors import BotWireError
    from botwire_client.memory import Memory

    url = args.url or os.environ.get("BOTWIRE_URL") or core.DEFAULT_URL
    token = args.token or os.environ.get("BOTWIRE_TOKEN") or None
    try:
        core.check_base_url(url, "--url" if args.url else "BOTWIRE_URL")
        core.check_token(token)
        if args.namespace is not None:
            core.check_namespace(args.namespace)
    except BotWireError as exc:
        print(f"botwire mcp: {exc}", file=sys.stderr)
        return 2
    memories: dict[str, Memory] = {}

    def memory_for(_ctx: object, namespace: str) -> Memory:
        # One client per namespace, kept for the process's life: its connections are reused.
        m = memories.get(namespace)
        if m is None:
            m = Memory(namespace, url, token=token, timeout=args.timeout)
            memories[namespace] = m
        return m

    build_server(memory_for, namespace=args.namespace).run("stdio")
    return 0
