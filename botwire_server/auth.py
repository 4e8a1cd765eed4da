"""Tokens, grants and the principal of a request (PRODUCT.md section 8).

A token is ``bw_<id>_<secret>``: the id finds its row (one index seek, never a scan), the
secret is checked against the stored SHA-256 with ``hmac.compare_digest``. The secret is 32
random bytes, so a fast hash is right: a slow KDF defends guessable passwords, and 256 random
bits are out of reach of any guessing, however cheap each guess.

A grant is ``{"namespaces": PATTERN, "access": "read" | "write" | "admin"}``, PATTERN an exact
namespace or a prefix ending in ``*`` (``team-a/*``; ``*`` is every namespace). Access levels
nest: ``read`` (every read, the change feed, watch) < ``write`` (+ set, delete, batch,
rollback) < ``admin`` (+ compaction). A principal's access to a namespace is the highest level
of the grants that match it. Managing tokens and the global stats need ``admin`` on ``*``.

Where each part lives: ``AuthMiddleware`` (``http/app.py``) authenticates the ``Authorization``
header with ``Authenticator.authenticate`` and puts the ``Principal`` in the ASGI scope; the
service verbs take it and call ``Principal.require`` before touching the store. Nothing else
decides. With ``BOTWIRE_AUTH=off`` every request carries ``OPEN``, an implicit admin.

Revocation: verified records are cached per process for ``CACHE_SECONDS`` (2 s), so a GET
costs a dictionary lookup and a hash; a revocation or expiry holds everywhere within that
time (the contract allows 5 s). Watch streams re-check their principal every few seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import MutableMapping, Sequence
from typing import Any, Literal

import msgspec

from .errors import Forbidden, InvalidInput, Unauthenticated
from .settings import TOKEN_RE, Settings
from .storage.base import MICROS, Store, TokenRecord

Access = Literal["read", "write", "admin"]
LEVELS: dict[str, int] = {"read": 1, "write": 2, "admin": 3}
CACHE_SECONDS = 2.0  # a revocation holds on every process within this (the contract: 5 s)
TOUCH_MICROS = 60 * MICROS  # last_used_at is written at most once a minute per token
MAX_GRANTS = 100
MAX_PATTERN_BYTES = 257  # a namespace (256 bytes) or a prefix of one and "*"

_SCOPE_KEY = "botwire.principal"


class Grant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    namespaces: str
    access: Access

    def matches(self, namespace: str) -> bool:
        pattern = self.namespaces
        if pattern.endswith("*"):
            return namespace.startswith(pattern[:-1])
        return namespace == pattern


_grants_decoder = msgspec.json.Decoder(list[Grant])
_encode = msgspec.json.Encoder().encode


def check_grants(grants: Sequence[Grant]) -> list[Grant]:
    """Grants as given, validated: 1-100, each pattern a namespace or a prefix and ``*``."""
    if not 1 <= len(grants) <= MAX_GRANTS:
        raise InvalidInput(
            f"A token holds 1 to {MAX_GRANTS} grants; this one holds {len(grants)}.",
            code="invalid_body",
        )
    for grant in grants:
        pattern = grant.namespaces
        exact = pattern[:-1] if pattern.endswith("*") else pattern
        if "*" in exact or (not exact and pattern != "*"):
            raise InvalidInput(
                f"Grant pattern {pattern!r} is neither a namespace nor a prefix ending in * "
                "(team-a/*, or * for every namespace).",
                code="invalid_body",
            )
        if len(pattern.encode()) > MAX_PATTERN_BYTES or any(
            ord(c) < 0x20 or ord(c) == 0x7F for c in pattern
        ):
            raise InvalidInput(
                f"Grant pattern {pattern!r} is too long or holds a control character.",
                code="invalid_body",
            )
    return list(grants)


def parse_grant(text: str) -> Grant:
    """``PATTERN:ACCESS`` (the CLI's ``--grant team-a/*:write``) as a grant."""
    pattern, sep, access = text.rpartition(":")
    if not sep or access not in LEVELS:
        raise InvalidInput(
            f"{text!r} is not a grant: write PATTERN:ACCESS, e.g. 'team-a/*:write', with "
            "ACCESS read, write or admin."
        )
    (grant,) = check_grants([Grant(pattern, access)])  # type: ignore[arg-type]
    return grant


def decode_grants(text: str | bytes) -> list[Grant]:
    return _grants_decoder.decode(text)


def encode_grants(grants: Sequence[Grant]) -> str:
    return _encode(list(grants)).decode()


def describe(grants: Sequence[Grant]) -> str:
    return ", ".join(f"{g.access} {g.namespaces}" for g in grants) or "nothing"


class Principal:
    """Who makes a request: a token's id, name and grants. ``OPEN`` (auth off) and the
    operator's ``BOTWIRE_ADMIN_TOKEN`` are admins on ``*``."""

    __slots__ = ("id", "name", "grants", "expires_at", "stored")

    def __init__(
        self,
        id: str,
        name: str,
        grants: Sequence[Grant],
        *,
        expires_at: int | None = None,
        stored: bool = True,
    ) -> None:
        self.id = id
        self.name = name
        self.grants = tuple(grants)
        self.expires_at = expires_at
        self.stored = stored  # a database token, which can be revoked

    def level(self, namespace: str) -> int:
        return max((LEVELS[g.access] for g in self.grants if g.matches(namespace)), default=0)

    def may(self, namespace: str, access: Access) -> bool:
        return self.level(namespace) >= LEVELS[access]

    def require(self, namespace: str, access: Access) -> None:
        """Raise ``Forbidden`` unless this principal has ``access`` on ``namespace``. The
        message depends on the token and the request only, never on the store."""
        if self.level(namespace) < LEVELS[access]:
            raise Forbidden(
                f"This token may {describe(self.grants)} but not {access} {namespace!r}. "
                f"Ask an operator for a token with {access} on it."
            )

    def require_global_admin(self, what: str) -> None:
        if not any(g.namespaces == "*" and g.access == "admin" for g in self.grants):
            raise Forbidden(
                f"This token may {describe(self.grants)} but not {what}: that needs admin on *."
            )


ADMIN_GRANTS = (Grant("*", "admin"),)
OPEN = Principal("", "auth off", ADMIN_GRANTS, stored=False)
# The bearer of BOTWIRE_METRICS_TOKEN: no grant, only GET /metrics (``Service.metrics``).
METRICS_READER = Principal("metrics", "BOTWIRE_METRICS_TOKEN", (), stored=False)


def principal_of(scope: MutableMapping[str, Any]) -> Principal:
    """The principal the auth middleware put in the scope; without one (an app built without
    the middleware), nobody: every check fails closed."""
    principal = scope.get(_SCOPE_KEY)
    return principal if isinstance(principal, Principal) else NOBODY


NOBODY = Principal("", "nobody", (), stored=False)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh (id, full token): 12 base32 characters of id, 52 of secret (32 bytes)."""
    token_id = base64.b32encode(secrets.token_bytes(10)).decode()[:12].lower()
    secret = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
    return token_id, f"bw_{token_id}_{secret}"


_UNAUTHENTICATED = (
    "This server needs a token: send 'Authorization: Bearer bw_<id>_<secret>' "
    "(botwire client: Memory(..., token=...) or BOTWIRE_TOKEN)."
)
_BAD_TOKEN = (
    "The token is unknown, expired or revoked; ask an operator for a new one "
    "(botwire token create)."
)


class Authenticator:
    """Turns an ``Authorization`` header into a ``Principal``, with a short cache of records."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.enabled = settings.auth_mode() == "tokens"
        self.clock = store.clock
        self._admin: tuple[str, str] | None = None
        if settings.admin_token:
            match = TOKEN_RE.fullmatch(settings.admin_token)
            assert match is not None  # settings validated it
            self._admin = (match.group(1), hash_secret(match.group(2)))
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}
        self._principals: dict[str, tuple[TokenRecord, Principal]] = {}
        # Header values verified against a record read at most CACHE_SECONDS ago: the hot
        # path of a request is then one dictionary lookup (no regex, no hash), and a
        # revocation still holds within CACHE_SECONDS (each entry ends with its record's).
        self._verified: dict[bytes, tuple[float, Principal]] = {}
        self._metrics = settings.metrics_token.encode() if settings.metrics_token else None

    async def record(self, token_id: str) -> TokenRecord | None:
        """The stored token, read at most once per ``CACHE_SECONDS`` per process."""
        now = time.monotonic()
        cached = self._cache.get(token_id)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        record = await self.store.get_token(token_id)
        if len(self._cache) > 10_000:  # unknown ids must not grow it without bound
            self._cache.clear()
        self._cache[token_id] = (now, record)
        return record

    def forget(self, token_id: str) -> None:
        self._cache.pop(token_id, None)
        for header, (_, principal) in list(self._verified.items()):
            if principal.id == token_id:
                del self._verified[header]

    async def authenticate(self, header: bytes | None) -> Principal:
        """The principal of an ``Authorization`` header value; ``Unauthenticated`` when it is
        missing, malformed, unknown, expired or revoked."""
        if not self.enabled:
            return OPEN
        if header is None:
            raise Unauthenticated(_UNAUTHENTICATED)
        verified = self._verified.get(header)
        if verified is not None:
            until, principal = verified
            expires = principal.expires_at
            if time.monotonic() < until and (expires is None or self.clock() < expires):
                return principal
            del self._verified[header]
        scheme, _, token = header.decode("latin-1").strip().partition(" ")
        if self._metrics is not None and hmac.compare_digest(
            token.strip().encode("latin-1"), self._metrics
        ):
            return METRICS_READER
        match = TOKEN_RE.fullmatch(token.strip()) if scheme.lower() == "bearer" else None
        if match is None:
            raise Unauthenticated(
                "The Authorization header is not 'Bearer bw_<id>_<secret>'. " + _UNAUTHENTICATED
            )
        token_id, secret = match.group(1), match.group(2)
        digest = hash_secret(secret)
        if self._admin is not None and token_id == self._admin[0]:
            if hmac.compare_digest(digest, self._admin[1]):
                return Principal(token_id, "BOTWIRE_ADMIN_TOKEN", ADMIN_GRANTS, stored=False)
            raise Unauthenticated(_BAD_TOKEN)
        record = await self.record(token_id)
        if record is None or not hmac.compare_digest(digest, record.secret_hash):
            raise Unauthenticated(_BAD_TOKEN)
        now = self.clock()
        if not self.usable(record, now):
            raise Unauthenticated(_BAD_TOKEN)
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_MICROS:
            # Cached so that the next requests of this minute do not write again.
            self._cache[token_id] = (
                self._cache.get(token_id, (time.monotonic(), record))[0],
                msgspec.structs.replace(record, last_used_at=now),
            )
            await self.store.touch_token(token_id, at=now)
        # Built once per record read, not per request (no JSON decode of the grants on the
        # hot path); make bench measures what a check costs ("token check").
        built = self._principals.get(token_id)
        if built is None or built[0] is not record:
            if len(self._principals) > 10_000:
                self._principals.clear()
            principal = Principal(
                record.id, record.name, decode_grants(record.grants), expires_at=record.expires_at
            )
            built = self._principals[token_id] = (record, principal)
        if len(self._verified) > 10_000:
            self._verified.clear()
        read_at = self._cache.get(token_id, (time.monotonic(), record))[0]
        self._verified[header] = (read_at + CACHE_SECONDS, built[1])
        return built[1]

    @staticmethod
    def usable(record: TokenRecord, now: int) -> bool:
        return record.revoked_at is None and (record.expires_at is None or now < record.expires_at)

    async def still_valid(self, principal: Principal) -> bool:
        """Whether a principal authenticated earlier may go on (a watch stream asks)."""
        if not principal.stored:
            return True
        record = await self.record(principal.id)
        return record is not None and self.usable(record, self.clock())


SCOPE_KEY = _SCOPE_KEY

__all__ = [
    "ADMIN_GRANTS",
    "Access",
    "Authenticator",
    "CACHE_SECONDS",
    "Grant",
    "METRICS_READER",
    "OPEN",
    "Principal",
    "SCOPE_KEY",
    "check_grants",
    "decode_grants",
    "describe",
    "encode_grants",
    "hash_secret",
    "new_token",
    "parse_grant",
    "principal_of",
]
