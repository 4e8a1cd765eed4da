"""The server's log: ``BOTWIRE_LOG_FORMAT`` (``text`` | ``json``) and ``BOTWIRE_LOG_LEVEL``.

Every record written while a request is handled carries that request's id (``request_id``,
from ``REQUEST_ID``, which ``http.observe`` sets), so an error can be matched to its access
line. A text line and a JSON line of the same access record::

    2026-12-01T20:15:03.123Z INFO botwire_server.access [4f1c...] PUT /memory/{ns}/{key} 200 1.9 ms
    {"time": "2026-12-01T20:15:03.123Z", "level": "INFO", "logger": "botwire_server.access",
     "message": "PUT /memory/{ns}/{key} 200 1.9 ms", "request_id": "4f1c...", "method": "PUT",
     "route": "/memory/{ns}/{key}", "status": 200, "duration_ms": 1.9}

What never reaches a line: a token (headers are not logged), a value, a namespace or a key
(an access line names the route template, not the path; names are user data).
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
TRACE = 5  # uvicorn's level below debug
# Fields of an access record (``extra``) that a JSON line carries as its own keys.
ACCESS_FIELDS = ("method", "route", "status", "duration_ms")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being handled ("-" outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


def _utc(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_utc(record)} {record.levelname} {record.name} "
            f"[{getattr(record, 'request_id', '-')}] {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def level_number(level: str) -> int:
    return TRACE if level == "trace" else logging.getLevelNamesMapping()[level.upper()]


def config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary (uvicorn's ``log_config``): one stderr
    handler in ``log_format`` for uvicorn's loggers and the server's own."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    number = level_number(level)
    logger = {"handlers": ["stderr"], "level": number, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"main": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                "filters": ["request_id"],
            }
        },
        "loggers": {
            "uvicorn": logger,
            "uvicorn.error": {"level": number},
            # The server writes its own access line (with the request id).
            "uvicorn.access": {"handlers": [], "level": logging.CRITICAL + 1, "propagate": False},
            "botwire_server": logger,
        },
    }


__all__ = ["REQUEST_ID", "config", "level_number"]
