"""``botwire token create|list|revoke``: manage API tokens directly in the database.

Works with the server stopped or running (``--db`` or ``BOTWIRE_DATABASE_URL``, migrations
applied first); a revocation holds on every running server within ``auth.CACHE_SECONDS``.
``create`` prints the full token once, on stdout; it is not stored anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

from . import auth, service
from .errors import BotWireServerError
from .settings import SettingsError, load
from .storage import create_store
from .storage.base import TokenRecord

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h or 3600")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botwire token", description="Manage API tokens.")
    sub = parser.add_subparsers(dest="action", required=True)
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", dest="database_url", help="database URL (BOTWIRE_DATABASE_URL)")
    create = sub.add_parser("create", parents=[db], help="create a token and print it once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--grant",
        action="append",
        required=True,
        help="PATTERN:ACCESS, e.g. 'team-a/*:write' (repeatable; ACCESS read, write or admin)",
    )
    create.add_argument("--expires", type=duration, help="e.g. 30d, 12h (default: never)")
    sub.add_parser("list", parents=[db], help="list tokens (no secrets)")
    revoke = sub.add_parser("revoke", parents=[db], help="revoke a token by id")
    revoke.add_argument("id")
    return parser


def _iso(micros: int | None) -> str | None:
    from .http.params import iso

    return None if micros is None else iso(micros)


def _shown(t: TokenRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "grants": json.loads(t.grants),
        "created_at": _iso(t.created_at),
        "expires_at": _iso(t.expires_at),
        "revoked_at": _iso(t.revoked_at),
        "last_used_at": _iso(t.last_used_at),
    }


async def _run(args: argparse.Namespace) -> int:
    settings = load().with_overrides(database_url=args.database_url)
    store = create_store(settings)
    await store.migrate()
    await store.open()
    try:
        if args.action == "create":
            grants = [auth.parse_grant(g) for g in args.grant]
            record, token = await service.create_token(
                store, args.name, grants, expires_in=args.expires
            )
            print(token)
            print(
                f"token {record.id} ({record.name}): {auth.describe(grants)}"
                + (f", expires {_iso(record.expires_at)}" if record.expires_at else "")
                + ". Store it now: it is not shown again.",
                file=sys.stderr,
            )
        elif args.action == "list":
            print(json.dumps([_shown(t) for t in await store.list_tokens()], indent=2))
        else:
            revoked = await store.revoke_token(args.id, at=store.clock())
            if revoked is None:
                print(f"botwire: no token has id {args.id!r}.", file=sys.stderr)
                return 1
            seconds = auth.CACHE_SECONDS
            print(f"revoked {revoked.id}; running servers refuse it within {seconds:g} s.")
    finally:
        await store.close()
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except SettingsError as exc:
        print(f"botwire: {exc}", file=sys.stderr)
        return 2
    except BotWireServerError as exc:
        print(f"botwire: {exc.message}", file=sys.stderr)
        return 2 if exc.status == 400 else 1
