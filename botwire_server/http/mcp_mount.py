"""``/mcp``: the Model Context Protocol over streamable HTTP, inside the server's application.

The tools and resources are ``botwire_client.mcp_tools``; here each call's ``Memory`` reaches
this very application in process (``httpx.ASGITransport``, no socket), carrying the bearer
token of the HTTP request that brought the call. So ``/mcp`` sits behind the same
``AuthMiddleware`` as every route (a missing or bad token is a 401 before MCP sees the
request), and each tool call passes the same service verbs and access checks as the REST API
(a token without the grant gets the 403 sentence as a tool error).

The session manager runs stateless with JSON responses: any server process can answer any
request (no session affinity behind a load balancer), and nothing outlives a request. Its task
group runs in the application's lifespan (``McpMount.run``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import ASGIApp, Receive, Scope, Send

from botwire_client.mcp_tools import build_server
from botwire_client.memory import Memory

from ..settings import Settings

# The application as seen by the in-process client (never resolved: no socket is opened).
INTERNAL_URL = "http://botwire.internal"


def _bearer(ctx: Context | None) -> str | None:
    if ctx is None:
        return None
    request: Any = ctx.request_context.request
    header = None if request is None else request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = str(header).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class McpMount:
    """The ``/mcp`` ASGI app over ``app`` (the whole application, for in-process calls)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        transport = httpx.ASGITransport(app=app)

        def memory_for(ctx: Context | None, namespace: str) -> Memory:
            return Memory(
                namespace, INTERNAL_URL, token=_bearer(ctx), retries=0, async_transport=transport
            )

        self.server = build_server(memory_for)
        # Builds the session manager; on a loopback host the SDK also turns on its DNS
        # rebinding protection (a web page must not reach a local server through a name).
        self.server.streamable_http_app(stateless_http=True, json_response=True, host=settings.host)
        self.manager: StreamableHTTPSessionManager = self.server.session_manager

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)
