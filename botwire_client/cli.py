"""The ``botwire`` command: ``serve``, ``migrate``, ``token``, ``export``, ``import`` and
``backup`` run on the server side; the rest is the client.

Client commands print JSON on stdout, and on failure one JSON object
``{"error", "code", "status"}`` on stderr, with an exit code scripts can branch on:

    0  success
    1  not found (get, delete, history of an absent key)
    2  usage: bad arguments, names or values (also the server's 400s)
    3  version conflict (--expected-version did not hold)
    4  any other server error (quota, compacted revision, 5xx)
    5  server unreachable or unavailable (after retries)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botwire_client.errors import (
    BotWireError,
    ConflictError,
    InvalidRequest,
    ServerUnavailable,
)
from botwire_client.memory import Memory
from botwire_client.models import Event

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_CONFLICT, EXIT_SERVER, EXIT_UNREACHABLE = range(6)
CLIENT_COMMANDS = (
    "get",
    "set",
    "delete",
    "keys",
    "history",
    "head",
    "snapshot",
    "rollback",
    "revert-run",
)


class _Absent(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exit code is 2: usage, as ours
        self.print_usage(sys.stderr)
        _fail({"error": message, "code": "usage"})
        raise SystemExit(EXIT_USAGE)


def _fail(body: dict[str, Any]) -> None:
    print(json.dumps(body, ensure_ascii=False), file=sys.stderr)


def _out(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False))


def _point(text: str) -> int | datetime:
    """``--as-of`` / rollback target: a revision, or an ISO-8601 timestamp with a zone."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a revision nor an ISO-8601 timestamp"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no timezone; add one, e.g. {text}Z or {text}+02:00"
        )
    return moment


def _event(e: Event) -> dict[str, Any]:
    at = e.at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"revision": e.revision, "op": e.op, "value": e.value, "at": at}


def _cmd_get(m: Memory, a: argparse.Namespace) -> Any:
    item = m.item(a.key, as_of=a.as_of)
    if item is None:
        raise _Absent(f"Key {a.key!r} is not in namespace {m.namespace!r}.")
    if not a.item:
        return item.value
    return {
        "key": item.key,
        "value": item.value,
        "version": item.version,
        "created_revision": item.created_revision,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def _cmd_set(m: Memory, a: argparse.Namespace) -> Any:
    raw = sys.stdin.read() if a.value == "-" else a.value
    if a.string:
        value: Any = raw
    else:
        try:
            value = json.loads(raw)
        except ValueError:
            raise InvalidRequest(
                f"VALUE {raw[:40]!r} is not JSON; quote it as JSON (e.g. '\"text\"') or pass "
                "--string to store it as a string."
            ) from None
    version = m.set(a.key, value, expected_version=a.expected_version)
    return {"namespace": m.namespace, "key": a.key, "version": version}


def _cmd_delete(m: Memory, a: argparse.Namespace) -> Any:
    if not m.delete(a.key, expected_version=a.expected_version):
        raise _Absent(f"Key {a.key!r} is not in namespace {m.namespace!r}; nothing deleted.")
    return {"namespace": m.namespace, "key": a.key, "deleted": True}


def _cmd_keys(m: Memory, a: argparse.Namespace) -> Any:
    return m.list_keys(a.prefix, as_of=a.as_of)


def _cmd_history(m: Memory, a: argparse.Namespace) -> Any:
    events = m.history(a.key, limit=None if a.all else a.limit)
    if not events:
        raise _Absent(f"Key {a.key!r} has no history in namespace {m.namespace!r}.")
    return [_event(e) for e in events]


def _cmd_head(m: Memory, a: argparse.Namespace) -> Any:
    return m.head()


def _cmd_snapshot(m: Memory, a: argparse.Namespace) -> Any:
    return m.snapshot(as_of=a.as_of, prefix=a.prefix)


def _cmd_rollback(m: Memory, a: argparse.Namespace) -> Any:
    result = m.rollback(a.to, key=a.key, dry_run=a.dry_run)
    return {
        "namespace": m.namespace,
        "revision": result.revision,
        "dry_run": result.dry_run,
        "changed": [{"key": c.key, "op": c.op, "value": c.value} for c in result.changes],
    }


def _cmd_revert_run(m: Memory, a: argparse.Namespace) -> Any:
    result = m.revert_run(a.target_run, dry_run=a.dry_run)
    return {
        "namespace": m.namespace,
        "run": a.target_run,
        "revision": result.revision,
        "dry_run": result.dry_run,
        "changed": [{"key": c.key, "op": c.op, "value": c.value} for c in result.changes],
        "skipped": [
            {"key": s.key, "reason": s.reason, "current_version": s.current_version}
            for s in result.skipped
        ],
    }


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--url", help="server URL (default: $BOTWIRE_URL, else http://127.0.0.1:8000)"
    )
    common.add_argument(
        "--token", help="API token bw_<id>_<secret> (default: $BOTWIRE_TOKEN; none without it)"
    )
    common.add_argument(
        "--run",
        dest="write_run",
        help="the run id this command's writes belong to (BotWire-Run; undo: revert-run)",
    )
    common.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    common.add_argument(
        "--retries", type=int, default=5, help="repeats of a failed safe request (default 5)"
    )
    parser = _Parser(
        prog="botwire",
        description="BotWire memory from the shell. Output is JSON; exit codes: 0 ok, "
        "1 not found, 2 usage, 3 conflict, 4 other server error, 5 unreachable.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("serve", help="run the server (see `botwire serve --help`)")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("token", help="manage API tokens (see `botwire token --help`)")
    sub.add_parser("mcp", help="serve the Model Context Protocol over stdio (`botwire mcp -h`)")
    sub.add_parser("export", help="export events with history as JSON Lines (server side)")
    sub.add_parser("import", help="import an export, revisions and history kept")
    sub.add_parser("backup", help="a consistent copy of a live SQLite database")

    def command(name: str, run: Callable[[Memory, argparse.Namespace], Any], text: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.add_argument("namespace")
        p.set_defaults(run=run)
        return p

    p = command("get", _cmd_get, "print a key's value")
    p.add_argument("key")
    p.add_argument("--as-of", type=_point, help="revision or ISO-8601 timestamp with zone")
    p.add_argument("--item", action="store_true", help="also print version and timestamps")

    p = command("set", _cmd_set, "store a JSON value ('-': read it from stdin)")
    p.add_argument("key")
    p.add_argument("value")
    p.add_argument("--string", "-s", action="store_true", help="store VALUE as a plain string")
    p.add_argument("--expected-version", type=int, help="0: must not exist; N: must be at N")

    p = command("delete", _cmd_delete, "delete a key")
    p.add_argument("key")
    p.add_argument("--expected-version", type=int)

    p = command("keys", _cmd_keys, "list the keys")
    p.add_argument("--prefix")
    p.add_argument("--as-of", type=_point)

    p = command("history", _cmd_history, "a key's events, newest first")
    p.add_argument("key")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--all", action="store_true", help="every event")

    command("head", _cmd_head, "the namespace's current revision")

    p = command("snapshot", _cmd_snapshot, "every key and value at one revision")
    p.add_argument("--as-of", type=_point)
    p.add_argument("--prefix")

    p = command("rollback", _cmd_rollback, "make the namespace (or --key) as it was at TO")
    p.add_argument("to", type=_point, help="revision or ISO-8601 timestamp with zone")
    p.add_argument("--key")
    p.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")

    p = command(
        "revert-run",
        _cmd_revert_run,
        "undo what RUN wrote, in one revision; keys others wrote since are skipped",
    )
    p.add_argument("target_run", metavar="RUN")
    p.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    return parser


def _exit_code(exc: BotWireError) -> int:
    if isinstance(exc, ConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, InvalidRequest):
        return EXIT_USAGE
    if isinstance(exc, ServerUnavailable):
        return EXIT_UNREACHABLE
    return EXIT_SERVER


def _local_code(exc: BotWireError) -> str:
    """A code for an error raised before any response arrived."""
    if isinstance(exc, InvalidRequest):
        return "invalid_input"
    if isinstance(exc, ServerUnavailable):
        return "unreachable"
    return "client_error"


def client_main(args: list[str]) -> int:
    ns = build_parser().parse_args(args)
    try:
        with Memory(
            ns.namespace,
            ns.url,
            token=ns.token,
            timeout=ns.timeout,
            retries=ns.retries,
            run=ns.write_run,
        ) as memory:
            _out(ns.run(memory, ns))
    except _Absent as exc:
        _fail({"error": str(exc), "code": "key_not_found", "status": 404})
        return EXIT_NOT_FOUND
    except BotWireError as exc:
        code = exc.code or (
            "unreachable" if isinstance(exc, ServerUnavailable) else "invalid_input"
        )
        body: dict[str, Any] = {"error": exc.message, "code": code, "status": exc.status}
        if isinstance(exc, ConflictError):
            body["current_version"] = exc.current_version
        _fail(body)
        return _exit_code(exc)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in {"serve", "migrate"}:
        from botwire_server.cli import main as server_main

        return server_main(args)
    if args and args[0] == "mcp":
        from botwire_client.mcp_stdio import main as mcp_main

        return mcp_main(args[1:])
    if args and args[0] == "token":
        from botwire_server.token_cli import main as token_main

        return token_main(args[1:])
    if args and args[0] in {"export", "import", "backup"}:
        from botwire_server.transfer_cli import main as transfer_main

        return transfer_main(args)
    try:
        return client_main(args)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
