"""The ceiling: a bare Starlette app with the server's hot routes and no storage at all.

It answers ``PUT /memory/{ns}/{key}``, ``GET /memory/{ns}/{key}`` and ``GET /memory/{ns}`` with
bodies shaped like the server's, decoding the request JSON and encoding the response the way a
plain Starlette handler does. Whatever it does per request is a cost the real server pays too, so
its throughput under the same uvicorn settings bounds ours: the ratio of ours to it is the figure
that matters on a shared, noisy machine.

Run: ``python -m bench.ceiling --port 8123 [--loop auto] [--http auto]``.
"""

from __future__ import annotations

import argparse
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Every GET answers with one fixed item, so the CAS scenario sees a well-formed version.
_NOW = time.time()


async def put_value(request: Request) -> JSONResponse:
    body = await request.json()
    value = body["value"]
    return JSONResponse(
        {
            "namespace": request.path_params["ns"],
            "key": request.path_params["key"],
            "stored": True,
            "bytes": len(str(value)),
            "version": 1,
            "created_revision": 1,
        },
        headers={"ETag": '"1"'},
    )


async def get_value(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "namespace": request.path_params["ns"],
            "key": request.path_params["key"],
            "value": 0,
            "created_at": _NOW,
            "updated_at": _NOW,
            "version": 1,
            "created_revision": 1,
        },
        headers={"ETag": '"1"'},
    )


async def list_keys(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "namespace": request.path_params["ns"],
            "count": 0,
            "keys": [],
            "next_cursor": None,
            "revision": 0,
        }
    )


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/memory/{ns}", list_keys, methods=["GET"]),
        Route("/memory/{ns}/{key}", get_value, methods=["GET"]),
        Route("/memory/{ns}/{key}", put_value, methods=["PUT"]),
    ]
)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    args = parser.parse_args(argv)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop=args.loop,
        http=args.http,
        workers=1,
        # As ``botwire serve`` runs uvicorn: no access log, no Server header.
        log_level="info",
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
