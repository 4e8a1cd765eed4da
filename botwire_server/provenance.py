"""Provenance stamping: the one place a write's context becomes the store's ``Provenance``.

A write request may say on behalf of which run and agent it writes and why (the headers
``BotWire-Run``, ``BotWire-Agent``, ``BotWire-Reason``), and carry an ``Idempotency-Key``. The
service stamps that with what a client cannot choose: ``actor`` (the token's name) and its
token id, the idempotency key's scope (the token: two tokens never share a key; the store
scopes by namespace) and its time to live (``BOTWIRE_IDEMPOTENCY_TTL``). Transports build an
unstamped ``Provenance`` (``request``); ``stamp`` checks and completes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from .auth import Principal
from .errors import InvalidInput
from .storage.base import MICROS, Idempotency, Provenance

MAX_META_CHARS = 256  # BotWire-Run, BotWire-Agent, BotWire-Reason, and a run id in a path
MAX_IDEMPOTENCY_CHARS = 128

HEADERS = {"run": "BotWire-Run", "agent": "BotWire-Agent", "reason": "BotWire-Reason"}


def _check(what: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if not value:
        raise InvalidInput(f"{what} is empty; leave it out instead.", code="invalid_header")
    if len(value) > limit:
        raise InvalidInput(
            f"{what} is {len(value)} characters long; at most {limit} are allowed.",
            code="invalid_header",
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidInput(f"{what} holds a control character.", code="invalid_header")
    return value


def run_id(run: str) -> str:
    """A run id named in a path (``/runs/{run}``): the rules of ``BotWire-Run``."""
    checked = _check("The run id", run, MAX_META_CHARS)
    assert checked is not None
    return checked


def fingerprint(parts: Iterable[bytes]) -> str:
    """A hash of what makes a request this request (method, path, conditions, body)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"%d:" % len(part))
        digest.update(part)
    return digest.hexdigest()


def request(
    *,
    run: str | None = None,
    agent: str | None = None,
    reason: str | None = None,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> Provenance:
    """A write's context as a transport received it, checked: each of run, agent and reason
    at most 256 characters, the idempotency key at most 128, none with control characters."""
    key = _check("Idempotency-Key", idempotency_key, MAX_IDEMPOTENCY_CHARS)
    return Provenance(
        run=_check(HEADERS["run"], run, MAX_META_CHARS),
        agent=_check(HEADERS["agent"], agent, MAX_META_CHARS),
        reason=_check(HEADERS["reason"], reason, MAX_META_CHARS),
        idempotency=None if key is None else Idempotency(key=key, fingerprint=fingerprint),
    )


def stamp(who: Principal, meta: Provenance, *, ttl_seconds: float) -> Provenance:
    """``meta`` with the actor of ``who`` (None when auth is off) and its idempotency key
    scoped to ``who``'s token and given its time to live."""
    actor = who.name if who.id else None
    idem = meta.idempotency
    if idem is not None:
        idem = msgspec.structs.replace(
            idem, key=f"{who.id}/{idem.key}", ttl=max(1, round(ttl_seconds * MICROS))
        )
    # actor_id: the stored token whose per-token limits the write counts against; None for
    # the operator's BOTWIRE_ADMIN_TOKEN (not stored: unlimited) and with auth off.
    actor_id = who.id if who.id and who.stored else None
    return msgspec.structs.replace(meta, actor=actor, actor_id=actor_id, idempotency=idem)


__all__ = [
    "HEADERS",
    "MAX_IDEMPOTENCY_CHARS",
    "MAX_META_CHARS",
    "fingerprint",
    "request",
    "run_id",
    "stamp",
]
