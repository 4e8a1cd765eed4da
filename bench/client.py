"""A minimal keep-alive HTTP client for the scaling figures (one request at a time, timed)."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any


class Http:
    def __init__(self, url: str, timeout: float = 120.0) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        """(status, decoded JSON body, seconds the exchange took)."""
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        start = time.perf_counter()
        self.conn.request(method, path, payload, headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        elapsed = time.perf_counter() - start
        return resp.status, json.loads(raw) if raw else None, elapsed

    def ok(self, method: str, path: str, body: Any = None) -> tuple[Any, float]:
        status, data, elapsed = self.call(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {status} {data}")
        return data, elapsed

    def close(self) -> None:
        self.conn.close()
