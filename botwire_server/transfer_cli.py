"""``botwire export``, ``botwire import`` and ``botwire backup``: moving and copying data.

They work on the database directly (``--db`` or ``BOTWIRE_DATABASE_URL``), with the server
running or not. Exit status: 0 done, 1 the database failed, 2 usage or a refusal (an import
that would merge two histories, a bad file). See ``transfer`` for the file format.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from . import transfer
from .cli import redacted
from .errors import BotWireServerError
from .settings import SettingsError, load
from .storage import create_store
from .storage.sqlite import sqlite_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botwire", description="Move and copy BotWire data.")
    sub = parser.add_subparsers(dest="command", required=True)
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", dest="database_url", help="database URL (BOTWIRE_DATABASE_URL)")
    export = sub.add_parser("export", parents=[db], help="write every retained event as JSON Lines")
    export.add_argument(
        "--namespace", action="append", default=[], help="only this namespace (repeatable)"
    )
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    imp = sub.add_parser("import", parents=[db], help="rebuild the events of an export")
    imp.add_argument("file", help="a file written by botwire export ('-': stdin)")
    mode = imp.add_mutually_exclusive_group()
    mode.add_argument(
        "--replace", action="store_true", help="replace namespaces that already have events"
    )
    mode.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave namespaces that already have events as they are",
    )
    backup = sub.add_parser(
        "backup", parents=[db], help="a consistent copy of a live SQLite database"
    )
    backup.add_argument("file", help="the copy to write (replaced if it exists)")
    return parser


@contextmanager
def _output(path: str | None) -> Iterator[IO[bytes]]:
    if path is None or path == "-":
        yield sys.stdout.buffer
        return
    with open(path, "wb") as out:
        yield out


@contextmanager
def _input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    with open(path, "rb") as source:
        yield source


async def _transfer(args: argparse.Namespace, url: str) -> None:
    settings = load().with_overrides(database_url=url)
    store = create_store(settings)
    await store.migrate()
    await store.open()
    try:
        if args.command == "export":
            progress = transfer.Progress("exported")
            with _output(args.output) as out:
                await transfer.export(store, out, namespaces=args.namespace, progress=progress)
            progress.done()
        else:
            existing: transfer.Existing = (
                "replace" if args.replace else "skip" if args.skip_existing else "refuse"
            )
            progress = transfer.Progress("imported")
            with _input(args.file) as source:
                await transfer.import_(
                    store,
                    source,
                    existing=existing,
                    progress=progress,
                    say=lambda text: print(text, file=sys.stderr),
                )
            progress.done()
    finally:
        await store.close()


def backup(source: Path, target: Path) -> int:
    """Copy the SQLite database ``source`` to ``target`` with SQLite's online backup API, in
    one step: the copy is the database as of one moment (a read transaction), taken while
    writers go on (WAL mode lets them). Written beside ``target`` and renamed over it, so a
    failed backup never leaves a half file under that name. Returns the copy's size."""
    if not source.exists():
        raise FileNotFoundError(f"no database at {source}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 10000")
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: every page in one step, one consistent snapshot
            (check,) = dst.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy fails its quick_check: {check}")
        finally:
            dst.close()
    finally:
        src.close()
    with open(partial, "rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, target)
    return target.stat().st_size


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        url = load().with_overrides(database_url=args.database_url).database_url
    except SettingsError as exc:
        print(f"botwire: {exc}", file=sys.stderr)
        return 2
    if args.command == "backup":
        if url.startswith(("postgres://", "postgresql://")):
            print(
                "botwire: backup copies SQLite databases; for PostgreSQL use pg_dump "
                "(see the README's Operations section).",
                file=sys.stderr,
            )
            return 2
        started = time.monotonic()
        try:
            size = backup(sqlite_path(url), Path(args.file))
        except (OSError, sqlite3.Error) as exc:
            print(f"botwire: backup of {redacted(url)} failed: {exc}", file=sys.stderr)
            return 1
        seconds = time.monotonic() - started
        print(f"botwire: backed up {size} bytes to {args.file} in {seconds:.1f} s", file=sys.stderr)
        return 0
    try:
        asyncio.run(_transfer(args, url))
    except BotWireServerError as exc:
        print(f"botwire: {exc.message}", file=sys.stderr)
        return 2 if exc.status in (400, 409) else 1
    except OSError as exc:
        print(f"botwire: {exc}", file=sys.stderr)
        return 2
    return 0
