"""The Starlette application: routes, the one error handler, the store's life cycle and the
shutdown gate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import Unavailable
from ..settings import Settings
from ..storage import Store, create_store
from . import body, openapi
from .errors import EXCEPTION_HANDLERS, error_response
from .paths import RawPathRouting
from .routes import ROUTES


class Lifecycle:
    """Whether the server is shutting down. Set on SIGTERM (by the CLI's server) and when the
    lifespan ends; from then on new requests are refused with 503 ``shutting_down``."""

    __slots__ = ("closing",)

    def __init__(self) -> None:
        self.closing = False


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


def create_app(settings: Settings, *, store: Store | None = None) -> Starlette:
    """The application for ``settings``. Without ``store``, the lifespan creates the store for
    ``settings.database_url``, applies pending migrations, opens it, and closes it at shutdown
    (which finishes queued writes). A given ``store`` must already be open; the caller closes
    it."""
    lifecycle = Lifecycle()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = store is None
        active = create_store(settings) if store is None else store
        if own:
            await active.migrate()
            await active.open()
        app.state.store = active
        lifecycle.closing = False
        try:
            yield
        finally:
            lifecycle.closing = True
            if own:
                await active.close()

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(ShutdownGate, lifecycle=lifecycle), Middleware(RawPathRouting)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    # An unknown path is a 404 with the canonical body, never a redirect.
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.settings = settings
    app.state.limits = settings.limits
    app.state.body_limit = body.body_limit(settings.limits.value_max_bytes)
    app.state.lifecycle = lifecycle
    app.state.openapi = openapi.DOCUMENT_BYTES
    return app
