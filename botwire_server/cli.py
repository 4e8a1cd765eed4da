"""``botwire serve`` and ``botwire migrate``.

Settings are read once (``settings.load``); every flag overrides its ``BOTWIRE_*`` variable. A
bad setting prints a message naming the variable and exits with status 2; a database that cannot
be reached or migrated exits with status 1. ``serve`` on an address other than loopback also
exits 2 unless authentication is configured (``exposed_without_auth``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import sys
from types import FrameType

from .errors import BotWireServerError
from .settings import Settings, SettingsError, is_loopback, load


def redacted(url: str) -> str:
    """``url`` with any password replaced, fit for a log line."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def exposed_without_auth(settings: Settings, *, has_tokens: bool = False) -> str | None:
    """Why ``botwire serve`` must not start on ``settings.host``, or None when it may.

    A server bound to anything but loopback must authenticate its clients: ``BOTWIRE_AUTH=off``
    says the operator wants it open anyway; otherwise a token must exist to call it with
    (``BOTWIRE_ADMIN_TOKEN``, or ``has_tokens``: tokens already in the database).
    """
    host = settings.host
    if settings.auth_mode() == "off":
        return None
    if settings.admin_token or has_tokens:
        return None
    if is_loopback(host):
        # Only when BOTWIRE_AUTH=tokens was asked for explicitly: no token could call it.
        return (
            f"refusing to serve on {host} with BOTWIRE_AUTH=tokens: no token exists to call it "
            "with. Create one (botwire token create --db <url> --name <name> --grant '*:admin') "
            "or set BOTWIRE_ADMIN_TOKEN to a token of your own (bw_<id>_<secret>)."
        )
    return (
        f"refusing to serve on {host} without authentication: anyone who can reach it could "
        "read and write every namespace. Set BOTWIRE_ADMIN_TOKEN to a token of your own "
        '(bw_<id>_<secret>, for example: python -c "import secrets; '
        "print('bw_admin_' + secrets.token_hex(24))\") and call the server with it; or set "
        "BOTWIRE_AUTH=off to serve without authentication (behind a proxy that authenticates, "
        "or on a trusted network); or bind to 127.0.0.1."
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botwire", description="BotWire Server.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{serve,migrate}")
    serve = commands.add_parser("serve", help="apply pending migrations, then serve the HTTP API")
    serve.add_argument("--host", help="address to listen on (BOTWIRE_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (BOTWIRE_PORT)")
    serve.add_argument("--db", dest="database_url", help="database URL (BOTWIRE_DATABASE_URL)")
    migrate = commands.add_parser("migrate", help="apply pending migrations and exit")
    migrate.add_argument("--db", dest="database_url", help="database URL (BOTWIRE_DATABASE_URL)")
    return parser


async def _migrate(settings: Settings) -> list[str]:
    from .storage import create_store

    store = create_store(settings)
    return await store.migrate()


async def _has_usable_token(settings: Settings) -> bool:
    """Whether the database holds a token that is neither revoked nor expired."""
    from .auth import Authenticator
    from .storage import create_store

    store = create_store(settings)
    await store.open()
    try:
        now = store.clock()
        return any(Authenticator.usable(t, now) for t in await store.list_tokens())
    finally:
        await store.close()


# File descriptors kept for the database, its WAL and journal, log files, the listening
# socket and PostgreSQL pool connections, and not handed to clients.
FD_RESERVE = 64


def raise_fd_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force (None when
    the platform has none)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else soft


def connection_caps(configured: int, fd_limit: int | None, pool_max: int = 0) -> tuple[int, int]:
    """(connections served at once, connections open at most) for ``BOTWIRE_MAX_CONNECTIONS``
    and a file descriptor limit: what the limit leaves after ``FD_RESERVE`` (and the database
    pool), of which a tenth stays free to answer 503 beyond the cap."""
    if fd_limit is None:
        return configured, configured + max(10, configured // 10)
    room = max(2, fd_limit - FD_RESERVE - pool_max)
    cap = min(configured, max(1, room - max(1, room // 10)))
    return cap, room


def _serve(settings: Settings) -> int:
    import logging

    import uvicorn

    from . import logs
    from .http import create_app
    from .http.protocol import Guards, http_protocol

    app = create_app(settings)
    lifecycle = app.state.lifecycle

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Requests that still reach the app from now on get 503 shutting_down; uvicorn
            # stops accepting connections and lets requests in flight finish. Unlike uvicorn's
            # own handler this does not re-raise the signal afterwards, so a graceful stop
            # exits with status 0. A second Ctrl-C still forces the exit.
            lifecycle.closing = True
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # On the event loop now: end the watch streams, which uvicorn would otherwise wait
            # for until its graceful-shutdown timeout.
            lifecycle.close()
            await super().shutdown(sockets)

    fd_limit = raise_fd_limit()
    pool = settings.pool_max if settings.database_url.startswith("postgres") else 0
    cap, max_open = connection_caps(settings.max_connections, fd_limit, pool)
    guards = Guards(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_connections=cap,
        max_open=max_open,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=logs.config(settings.log_format, settings.log_level),
        log_level=logs.level_number(settings.log_level),
        # The server writes its own access line, with the request id (http/observe.py).
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
        lifespan="on",
        server_header=False,
        # Clients (httpx, the 0.2.1 client included) drop idle connections after 5 s, uvicorn by
        # default also after 5 s: a request sent on a connection the server is closing at that
        # moment gets no reply. Keeping idle connections longer than clients do avoids the race.
        timeout_keep_alive=30,
        http=http_protocol(guards),
        # The head size limit also holds where h11 parses (httptools is not installed).
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    log = logging.getLogger("uvicorn.error")
    log.info(
        "Serving at most %d connections at once (BOTWIRE_MAX_CONNECTIONS=%d, file descriptor "
        "limit %s).",
        cap,
        settings.max_connections,
        fd_limit if fd_limit is not None else "none",
    )
    if cap < settings.max_connections:
        log.warning(
            "BOTWIRE_MAX_CONNECTIONS=%d does not fit the file descriptor limit (%s): "
            "lowered to %d; raise the limit (ulimit -n) to serve more.",
            settings.max_connections,
            fd_limit,
            cap,
        )
    if not isinstance(config.http, type):
        log.warning(
            "httptools is not installed: no header or body timeout and no connection cap "
            "(install the server extra)."
        )
    server = Server(config)
    server.run()
    # uvicorn reports a failed startup (for example an unreachable database) by not starting.
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load().with_overrides(
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            database_url=args.database_url,
        )
    except SettingsError as exc:
        print(f"botwire: {exc}", file=sys.stderr)
        return 2
    if not 0 <= settings.port <= 65535:
        print(f"botwire: --port {settings.port} is invalid: use 0-65535.", file=sys.stderr)
        return 2
    try:
        applied = asyncio.run(_migrate(settings))
        # Tokens made with `botwire token create --db` count: only a database without one
        # (and no BOTWIRE_ADMIN_TOKEN) leaves a server with tokens on that nobody can call.
        if args.command == "serve" and exposed_without_auth(settings) is not None:
            refusal = exposed_without_auth(
                settings, has_tokens=asyncio.run(_has_usable_token(settings))
            )
            if refusal is not None:
                print(f"botwire: {refusal}", file=sys.stderr)
                return 2
    except BotWireServerError as exc:
        print(f"botwire: cannot migrate {redacted(settings.database_url)}: {exc}", file=sys.stderr)
        return 1
    if args.command == "serve" and not is_loopback(settings.host) and settings.auth == "off":
        print(
            f"botwire: warning: serving on {settings.host} with BOTWIRE_AUTH=off: every "
            "client that can reach it can read and write every namespace.",
            file=sys.stderr,
        )
    if args.command == "migrate":
        print(
            f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
        )
        return 0
    return _serve(settings)
