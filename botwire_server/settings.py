"""Server settings: read once from ``BOTWIRE_*`` environment variables into a typed object.

Nothing else in the server reads ``os.environ``. A bad value raises ``SettingsError`` naming the
variable; the CLI prints it and exits 2. Every CLI flag overrides its variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

T = TypeVar("T")

# A token: "bw_<id>_<secret>". Tokens the server makes have a 12-character id and a
# 52-character secret (32 random bytes in base32); an operator's BOTWIRE_ADMIN_TOKEN needs a
# secret of at least 32 such characters.
TOKEN_RE = re.compile(r"bw_([a-z0-9]{1,32})_([A-Za-z0-9]{32,128})")
AUTH_MODES = ("tokens", "off")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """A setting has a value the server cannot use; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-namespace limits; 0 means unlimited. The daily write quota is off by default: a cap
    that a local server imposes unasked silently stops an agent's memory from saving."""

    writes_per_day: int = 0
    namespace_max_bytes: int = 52_428_800
    value_max_bytes: int = 102_400
    # Per token (a tenant), across all its namespaces; the operator's admin token and writes
    # without a token are not counted.
    token_writes_per_day: int = 0
    token_max_bytes: int = 0


# ``BOTWIRE_LIMITS=free-tier``: the seeds' free tier in one setting; explicit limits override it.
LIMIT_PRESETS: dict[str, Limits] = {
    "free-tier": Limits(
        writes_per_day=1000,
        namespace_max_bytes=52_428_800,
        value_max_bytes=102_400,
        token_writes_per_day=1000,
        token_max_bytes=52_428_800,
    ),
}


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite:///./data/botwire.db"
    limits: Limits = field(default_factory=Limits)
    # A named set of limits (``LIMIT_PRESETS``), or "" for none.
    limits_preset: str = ""
    # PostgreSQL pool size and per-statement timeout.
    pool_min: int = 1
    pool_max: int = 10
    statement_timeout_ms: int = 5000
    # Seconds a graceful shutdown waits for requests in flight.
    shutdown_timeout: float = 10.0
    log_level: str = "info"
    # "text" (one readable line per record) or "json" (one JSON object per line).
    log_format: str = "text"
    # GET /metrics and the request histogram (off: 404 and no per-request cost).
    metrics: str = "on"
    # A bearer token that may read GET /metrics (besides an admin on "*"), or None.
    metrics_token: str | None = None
    # Seconds of history kept per namespace (older history is compacted), or None: all of it.
    retention: float | None = None
    # Seconds between the retention task's passes.
    retention_interval: float = 60.0
    # Seconds between the comment lines that keep an idle watch stream open.
    watch_keepalive: float = 15.0
    # Seconds between the expiry sweeper's rounds.
    expiry_interval: float = 1.0
    # Seconds a connection may take to send a complete request head, and a request its body.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    # Bytes of one request head (request line and headers).
    max_header_bytes: int = 65_536
    # Open connections served at once (lowered to fit the file descriptor limit).
    max_connections: int = 1000
    # "tokens" | "off" | None (None: off when bound to a loopback address, tokens otherwise;
    # see ``auth_mode``).
    auth: str | None = None
    # An operator's token with admin on "*", valid without being in the database.
    admin_token: str | None = None
    # Origins allowed to call the API from a browser; empty: no CORS headers.
    cors_origins: tuple[str, ...] = ()
    # Seconds an idempotent write's outcome is kept for retries (Idempotency-Key).
    idempotency_ttl: float = 86_400.0

    @property
    def metrics_on(self) -> bool:
        return self.metrics == "on"

    def auth_mode(self) -> str:
        """``tokens`` or ``off``: the setting, or by default ``off`` only on a loopback bind."""
        if self.auth is not None:
            return self.auth
        return "off" if is_loopback(self.host) else "tokens"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given non-None fields replaced (CLI flags over environment)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# (variable, field, parser, documentation). The README's settings table is checked against this
# list by tests/test_settings.py, so a setting cannot go undocumented.
def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be an integer {bound}")
        return value

    return parse


def _float_positive(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _nonempty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def is_loopback(host: str) -> bool:
    """Whether ``host`` reaches only this machine: 127.0.0.0/8, ::1 or localhost (another name
    may resolve to any interface)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth(raw: str) -> str:
    value = raw.strip().lower()
    if value not in AUTH_MODES:
        raise ValueError("must be tokens or off")
    return value


def _token(raw: str) -> str:
    if not TOKEN_RE.fullmatch(raw.strip()):
        raise ValueError(
            "must look like bw_<id>_<secret>: id 1-32 of a-z0-9, secret 32-128 of A-Za-z0-9"
        )
    return raw.strip()


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
    return origins


def _log_level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"critical", "error", "warning", "info", "debug", "trace"}:
        raise ValueError("must be one of critical, error, warning, info, debug, trace")
    return value


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError("must be text or json")
    return value


def _on_off(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"on", "off"}:
        raise ValueError("must be on or off")
    return value


def _metrics_token(raw: str) -> str:
    value = raw.strip()
    if len(value) < 16 or not value.isprintable() or " " in value:
        raise ValueError("must be at least 16 printable characters without spaces")
    return value


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(raw: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or plain seconds, > 0."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", raw)
    if match is None or not float(match.group(1)) > 0:
        raise ValueError("must be a duration like 30d, 12h, 90m or 3600 (seconds)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


def _retention(raw: str) -> float | None:
    return None if not raw.strip() else parse_duration(raw)


def _preset(raw: str) -> str:
    value = raw.strip()
    if value not in LIMIT_PRESETS:
        raise ValueError(f"must be {' or '.join(LIMIT_PRESETS)} (or unset)")
    return value


VARIABLES: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
    ("BOTWIRE_HOST", "host", _nonempty, "Address to listen on."),
    ("BOTWIRE_PORT", "port", _int(0, 65535), "Port to listen on."),
    (
        "BOTWIRE_DATABASE_URL",
        "database_url",
        _nonempty,
        "`sqlite:///path`, a plain file path, or `postgresql://user@host:port/db`.",
    ),
    (
        "BOTWIRE_WRITES_PER_DAY",
        "limits.writes_per_day",
        _int(0),
        "Writes per namespace per UTC day; 0 = unlimited.",
    ),
    (
        "BOTWIRE_NAMESPACE_MAX_BYTES",
        "limits.namespace_max_bytes",
        _int(0),
        "Live bytes (keys + values) per namespace; 0 = unlimited.",
    ),
    (
        "BOTWIRE_VALUE_MAX_BYTES",
        "limits.value_max_bytes",
        _int(0),
        "Bytes of one encoded value; 0 = unlimited.",
    ),
    (
        "BOTWIRE_TOKEN_WRITES_PER_DAY",
        "limits.token_writes_per_day",
        _int(0),
        "Writes per token per UTC day, across all namespaces; 0 = unlimited.",
    ),
    (
        "BOTWIRE_TOKEN_MAX_BYTES",
        "limits.token_max_bytes",
        _int(0),
        "Live bytes (keys + values) of the current values a token last wrote, across all "
        "namespaces; 0 = unlimited.",
    ),
    (
        "BOTWIRE_LIMITS",
        "limits_preset",
        _preset,
        "`free-tier`: 1000 writes/day, 50 MB per namespace, 100 KB per value, and per "
        "token 1000 writes/day and 50 MB; explicit limits override it.",
    ),
    ("BOTWIRE_POOL_MIN", "pool_min", _int(1), "PostgreSQL: connections kept open."),
    ("BOTWIRE_POOL_MAX", "pool_max", _int(1), "PostgreSQL: most connections per server."),
    (
        "BOTWIRE_STATEMENT_TIMEOUT_MS",
        "statement_timeout_ms",
        _int(0),
        "PostgreSQL: statement timeout in milliseconds; 0 = none.",
    ),
    (
        "BOTWIRE_SHUTDOWN_TIMEOUT",
        "shutdown_timeout",
        _float_positive,
        "Seconds a graceful shutdown waits for requests in flight.",
    ),
    ("BOTWIRE_LOG_LEVEL", "log_level", _log_level, "Log level of the server."),
    ("BOTWIRE_LOG_FORMAT", "log_format", _log_format, "`text` or `json` (one object a line)."),
    ("BOTWIRE_METRICS", "metrics", _on_off, "`on` or `off`: `GET /metrics`."),
    (
        "BOTWIRE_METRICS_TOKEN",
        "metrics_token",
        _metrics_token,
        "A bearer token that may read `GET /metrics` (besides an admin on `*`).",
    ),
    (
        "BOTWIRE_RETENTION",
        "retention",
        _retention,
        "History older than this (`30d`, `12h`) is compacted; empty keeps everything.",
    ),
    (
        "BOTWIRE_RETENTION_INTERVAL",
        "retention_interval",
        _float_positive,
        "Seconds between passes of the retention task.",
    ),
    (
        "BOTWIRE_WATCH_KEEPALIVE",
        "watch_keepalive",
        _float_positive,
        "Seconds between keep-alive comments on an idle watch stream.",
    ),
    (
        "BOTWIRE_EXPIRY_INTERVAL",
        "expiry_interval",
        _float_positive,
        "Seconds between rounds of the expiry sweeper.",
    ),
    (
        "BOTWIRE_HEADER_TIMEOUT",
        "header_timeout",
        _float_positive,
        "Seconds a connection may take to send a complete request head.",
    ),
    (
        "BOTWIRE_BODY_TIMEOUT",
        "body_timeout",
        _float_positive,
        "Seconds a request may take to send its body after its head.",
    ),
    (
        "BOTWIRE_MAX_HEADER_BYTES",
        "max_header_bytes",
        _int(1024),
        "Bytes of one request head (request line and headers).",
    ),
    (
        "BOTWIRE_MAX_CONNECTIONS",
        "max_connections",
        _int(1),
        "Open connections served at once.",
    ),
    (
        "BOTWIRE_AUTH",
        "auth",
        _auth,
        "`tokens` or `off`; default: `off` on a loopback bind, `tokens` otherwise.",
    ),
    (
        "BOTWIRE_ADMIN_TOKEN",
        "admin_token",
        _token,
        "A token `bw_<id>_<secret>` with admin on `*`, valid without being in the database.",
    ),
    (
        "BOTWIRE_CORS_ORIGINS",
        "cors_origins",
        _origins,
        "Comma-separated origins allowed to call the API from a browser; empty = no CORS.",
    ),
    (
        "BOTWIRE_IDEMPOTENCY_TTL",
        "idempotency_ttl",
        _float_positive,
        "Seconds a write's outcome is kept for retries with the same `Idempotency-Key` "
        "(default 86400: 24 h).",
    ),
)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every ``BOTWIRE_*`` setting once. Raises ``SettingsError`` naming a bad variable."""
    env = os.environ if environ is None else environ
    top: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for name, dest, parse, _doc in VARIABLES:
        raw = env.get(name)
        if raw is None:
            continue
        try:
            value = parse(raw)
        except ValueError as exc:
            reason = str(exc) if not str(exc).startswith("invalid literal") else "not a number"
            raise SettingsError(f"{name}={raw!r} is invalid: {reason}.") from None
        if dest.startswith("limits."):
            limits[dest.removeprefix("limits.")] = value
        else:
            top[dest] = value
    base = LIMIT_PRESETS.get(top.get("limits_preset", ""), Limits())
    settings = Settings(limits=replace(base, **limits), **top)
    if settings.pool_min > settings.pool_max:
        raise SettingsError(
            f"BOTWIRE_POOL_MIN ({settings.pool_min}) must not exceed "
            f"BOTWIRE_POOL_MAX ({settings.pool_max})."
        )
    return settings
