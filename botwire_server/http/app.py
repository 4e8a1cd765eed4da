"""The Starlette application: routes, the one error handler, the life cycle of the store and of
the service layer over it (watch hub, expiry sweeper), and the shutdown gate."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import auth, service
from ..errors import BotWireServerError, NotFound, Unavailable
from ..settings import Settings
from ..storage import Store, create_store
from . import body, openapi
from .channel_routes import ROUTES as CHANNEL_ROUTES
from .errors import EXCEPTION_HANDLERS, error_response
from .observe import Observe
from .paths import RawPathRouting
from .routes import ROUTES


class Lifecycle:
    """Whether the server is shutting down. Set on SIGTERM (by the CLI's server) and when the
    lifespan ends; from then on new requests are refused with 503 ``shutting_down``.

    ``close`` (on the event loop, not in a signal handler) also ends what would hold the
    shutdown up: a graceful shutdown waits for responses in flight, and a watch stream never
    finishes by itself."""

    __slots__ = ("closing", "_on_close")

    def __init__(self) -> None:
        self.closing = False
        self._on_close: list[Callable[[], None]] = []

    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close.append(callback)

    def close(self) -> None:
        self.closing = True
        for callback in self._on_close:
            callback()


class ShutdownGate:
    """Pure ASGI middleware (no per-request objects) that refuses requests while closing."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.lifecycle.closing and scope["type"] == "http":
            response = error_response(
                Unavailable(
                    "The server is shutting down; retry against another server or after "
                    "it restarts.",
                    code="shutting_down",
                )
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# Routes that hold no data and answer without a token.
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/ui"})


class LazyMcp:
    """``/mcp``, built on its first request: importing the MCP SDK costs more CPU than the
    rest of the server's start, and most servers never see an MCP client. The session
    manager then runs in a task of the lifespan's task group (``running``) until shutdown.
    Without the ``mcp`` package, ``/mcp`` answers 404 saying what to install."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._mount: ASGIApp | None = None
        self._lock = anyio.Lock()
        self._group: anyio.abc.TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                self._mount = None
                group.cancel_scope.cancel()

    async def _ready(self) -> ASGIApp:
        async with self._lock:
            if self._mount is not None:
                return self._mount
            if self._group is None:
                raise Unavailable("MCP runs only while the server's lifespan runs.")
            try:
                module = await anyio.to_thread.run_sync(
                    importlib.import_module, "botwire_server.http.mcp_mount"
                )
            except ImportError as exc:
                raise NotFound(
                    f"This server has no MCP endpoint: the mcp package is missing ({exc}). "
                    "Install it: pip install 'botwire-server[mcp]'.",
                    code="route_not_found",
                ) from exc
            mount: ASGIApp = module.McpMount(self.app, self.settings)
            started = anyio.Event()

            async def run() -> None:
                async with mount.run():  # type: ignore[attr-defined]
                    started.set()
                    await anyio.sleep_forever()

            self._group.start_soon(run)
            await started.wait()
            self._mount = mount
            return mount

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            mount = self._mount or await self._ready()
        except BotWireServerError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await mount(scope, receive, send)


class AuthMiddleware:
    """The one place that authenticates: reads ``Authorization: Bearer <token>``, puts the
    ``Principal`` in the scope (``auth.SCOPE_KEY``), or answers 401 ``unauthenticated``. What a
    principal may do is decided by the service verbs, not here. Public paths (no data) pass
    without a principal; with auth off every request is the implicit admin ``auth.OPEN``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith("/ui/"):
            await self.app(scope, receive, send)
            return
        authenticator: auth.Authenticator = scope["app"].state.service.auth
        if not authenticator.enabled:
            scope[auth.SCOPE_KEY] = auth.OPEN
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        try:
            scope[auth.SCOPE_KEY] = await authenticator.authenticate(header)
        except BotWireServerError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, store: Store | None = None) -> Starlette:
    """The application for ``settings``. Without ``store``, the lifespan creates the store for
    ``settings.database_url``, applies pending migrations, opens it, and closes it at shutdown
    (which finishes queued writes). A given ``store`` must already be open; the caller closes
    it."""
    lifecycle = Lifecycle()
    lifecycle.on_close(lambda: app.state.service.end_streams() if app.state.service else None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = store is None
        active = create_store(settings) if store is None else store
        if own:
            await active.migrate()
            await active.open()
            app.state.service = service.Service(active, settings)
        app.state.store = active
        lifecycle.closing = False
        # The sweeper runs while the store is open; the hub follows its commits.
        app.state.service.start()
        try:
            async with mcp_running(app):
                yield
        finally:
            lifecycle.close()
            await app.state.service.close()
            if own:
                await active.close()

    middleware = [
        Middleware(Observe, metrics=settings.metrics_on),
        Middleware(ShutdownGate, lifecycle=lifecycle),
    ]
    if settings.cors_origins:
        # Outside authentication, so that a browser's preflight (no Authorization) passes.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "PUT", "POST", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "If-Match",
                    "If-None-Match",
                    "BotWire-Run",
                    "BotWire-Agent",
                    "BotWire-Reason",
                    "Idempotency-Key",
                ],
                expose_headers=["ETag", "Retry-After"],
                max_age=600,
            )
        )
    middleware += [Middleware(AuthMiddleware), Middleware(RawPathRouting)]
    app = Starlette(
        routes=ROUTES + CHANNEL_ROUTES,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    # An unknown path is a 404 with the canonical body, never a redirect.
    app.router.redirect_slashes = False
    app.state.store = store
    # A given store is open already: the service serves at once (watches included), also
    # under transports that run no lifespan; the lifespan adds the expiry sweeper.
    app.state.service = None
    if store is not None:
        app.state.service = service.Service(store, settings)
        app.state.service.attach()
    app.state.settings = settings
    app.state.limits = settings.limits
    app.state.body_limit = body.body_limit(settings.limits.value_max_bytes)
    app.state.batch_body_limit = body.batch_body_limit(settings.limits.value_max_bytes)
    app.state.lifecycle = lifecycle
    app.state.openapi = openapi.DOCUMENT_BYTES
    app.state.mcp = LazyMcp(app, settings)
    app.router.routes.append(Route("/mcp", app.state.mcp, methods=["GET", "POST", "DELETE"]))
    return app


@asynccontextmanager
async def mcp_running(app: Starlette) -> AsyncIterator[None]:
    """Room for the MCP session manager's task group, for the application's lifetime."""
    async with app.state.mcp.running():
        yield
