"""The one place that turns exceptions into the canonical JSON error body.

Every error response, whatever raised it, looks like::

    {"error": "<human sentence>", "code": "<stable_snake_case>", "status": <int>, ...extra}

``BotWireServerError`` subclasses carry their status, code and extra fields; Starlette's own
``HTTPException`` (unknown route, wrong method) is mapped onto the same shape; anything else is
a 500 ``internal_error`` whose details stay in the server log.
"""

from __future__ import annotations

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..errors import (
    BotWireServerError,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    QuotaExceeded,
    Unauthenticated,
)

_encode = msgspec.json.Encoder().encode

# Starlette raises HTTPException only for routing decisions; other statuses keep a generic code.
_HTTP_CODES = {
    400: "invalid_input",
    404: "route_not_found",
    405: "method_not_allowed",
    413: "value_too_large",
    415: "unsupported_media_type",
}


def error_response(exc: BotWireServerError, headers: dict[str, str] | None = None) -> Response:
    """The canonical response for ``exc``; a quota error also sets ``Retry-After``."""
    if isinstance(exc, QuotaExceeded):
        headers = {**(headers or {}), "Retry-After": str(exc.retry_after)}
    elif isinstance(exc, Unauthenticated):
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return Response(
        _encode(exc.body()),
        status_code=exc.status,
        headers=headers,
        media_type="application/json",
    )


async def handle_server_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BotWireServerError)
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: BotWireServerError
    if exc.status_code == 404:
        error = NotFound(
            f"No route matches {request.method} {request.url.path}; "
            "see GET /openapi.json for the API.",
            code="route_not_found",
        )
    elif exc.status_code == 405:
        # Starlette lists a route's methods from a set; sorted, the header is stable.
        allowed = ", ".join(sorted((exc.headers or {}).get("Allow", "").split(", ")))
        error = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}."
        )
        return error_response(error, {"Allow": allowed})
    else:
        body = {
            "error": str(exc.detail),
            "code": _HTTP_CODES.get(exc.status_code, "http_error"),
            "status": exc.status_code,
        }
        return Response(
            _encode(body),
            status_code=exc.status_code,
            headers=exc.headers,
            media_type="application/json",
        )
    return error_response(error, dict(exc.headers) if exc.headers else None)


async def handle_disconnect(request: Request, exc: Exception) -> Response:
    # The client is gone; the response only reaches the log, but it must not be a 500.
    return error_response(
        InvalidInput(
            "The client closed the connection before sending the whole body.",
            code="invalid_body",
        )
    )


def internal_error() -> Response:
    """The 500 of an unexpected exception; the body names no internals."""
    return error_response(
        BotWireServerError("The server failed to handle this request; it has been logged.")
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    # The traceback is logged (http/observe.py), with the request's id.
    return internal_error()


EXCEPTION_HANDLERS = {
    BotWireServerError: handle_server_error,
    HTTPException: handle_http_exception,
    ClientDisconnect: handle_disconnect,
    Exception: handle_unexpected,
}
