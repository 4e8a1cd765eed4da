"""The naming rules for namespaces, keys and key prefixes, written once for client and server.

A namespace is 1-256 UTF-8 bytes, a key 1-1024 UTF-8 bytes; neither may hold a control
character (U+0000-U+001F, U+007F) or be ``.`` or ``..``. Anything else is a name: ``user:42``,
``alice@example.com``, ``notes/2026-11.md``, ``café``, a space, an emoji. A prefix (the
``prefix`` of a listing) follows the key rules, except that it may be empty and may be ``.`` or
``..``: those are prefixes of valid keys such as ``.env``.

Why here: the client must check names before sending and the server must refuse bad ones with
the same words, so the rules need one home importable by both. The client is the lower layer
(it needs only ``httpx``, a dependency of every install; the server's dependencies are an
extra), so the server may import from the client package and never the reverse. This module
uses the standard library only.

Each ``*_problem`` function returns the sentence saying which rule ``name`` breaks, or None when
it is valid; each ``check_*`` function returns the valid name or raises ``InvalidName`` (a
``ValueError``) with that sentence. The server answers 400 ``invalid_name`` with it; the client
raises ``InvalidRequest`` with it. In a URL a name is one percent-encoded path segment
(``path_segment``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

NAMESPACE_MAX_BYTES = 256
KEY_MAX_BYTES = 1024
RESERVED = frozenset({".", ".."})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# JSON Schema fragments for the OpenAPI document. JSON Schema counts characters, not bytes:
# maxLength is the byte limit, which every valid name meets (a character is at least one
# byte), and the description states the byte limit the server enforces.
_NO_CONTROL = "^[^\\x00-\\x1F\\x7F]*$"
_RULES = "no control characters (U+0000-U+001F, U+007F)"


def _schema(max_bytes: int, what: str, *, min_length: int) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": min_length,
        "maxLength": max_bytes,
        "pattern": _NO_CONTROL,
        "description": f"{what}: {min_length}-{max_bytes} bytes of UTF-8, {_RULES}.",
    }


NAMESPACE_SCHEMA: dict[str, Any] = {
    **_schema(NAMESPACE_MAX_BYTES, "A namespace", min_length=1),
    "not": {"enum": sorted(RESERVED)},
}
KEY_SCHEMA: dict[str, Any] = {
    **_schema(KEY_MAX_BYTES, "A key", min_length=1),
    "not": {"enum": sorted(RESERVED)},
}
PREFIX_SCHEMA: dict[str, Any] = _schema(KEY_MAX_BYTES, "A key prefix", min_length=0)


class InvalidName(ValueError):
    """A name that breaks the rules; the message says which one."""


def shown(name: str) -> str:
    """``name`` quoted for a message, cut to 80 characters."""
    return repr(name if len(name) <= 80 else name[:80] + "...")


def _problem(
    what: str, name: object, max_bytes: int, *, may_be_empty: bool, reserved: bool
) -> str | None:
    if not isinstance(name, str):
        return f"{what} must be a string, not {type(name).__name__}."
    if not name:
        if may_be_empty:
            return None
        return f"{what} is empty: use 1 to {max_bytes} bytes of UTF-8."
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{what} {shown(name)} is not valid Unicode: it holds a lone surrogate."
    if size > max_bytes:
        return f"{what} {shown(name)} is {size} bytes in UTF-8; the limit is {max_bytes} bytes."
    control = _CONTROL.search(name)
    if control is not None:
        return (
            f"{what} {shown(name)} holds the control character U+{ord(control.group()):04X} at "
            f"position {control.start()}; names may not hold U+0000-U+001F or U+007F."
        )
    if reserved and name in RESERVED:
        return f"{what} {shown(name)} is not allowed: '.' and '..' are never names."
    return None


def namespace_problem(name: object) -> str | None:
    """Why ``name`` is not a valid namespace, or None."""
    return _problem("Namespace", name, NAMESPACE_MAX_BYTES, may_be_empty=False, reserved=True)


def key_problem(name: object) -> str | None:
    """Why ``name`` is not a valid key, or None."""
    return _problem("Key", name, KEY_MAX_BYTES, may_be_empty=False, reserved=True)


def prefix_problem(prefix: object) -> str | None:
    """Why ``prefix`` is not a valid key prefix, or None. The empty prefix is valid."""
    return _problem("Prefix", prefix, KEY_MAX_BYTES, may_be_empty=True, reserved=False)


def check_namespace(name: object) -> str:
    problem = namespace_problem(name)
    if problem is not None:
        raise InvalidName(problem)
    assert isinstance(name, str)
    return name


def check_key(name: object) -> str:
    problem = key_problem(name)
    if problem is not None:
        raise InvalidName(problem)
    assert isinstance(name, str)
    return name


def check_prefix(prefix: object) -> str:
    problem = prefix_problem(prefix)
    if problem is not None:
        raise InvalidName(problem)
    assert isinstance(prefix, str)
    return prefix


def path_segment(name: str) -> str:
    """``name`` as one percent-encoded URL path segment: ``a/b`` -> ``a%2Fb``."""
    return quote(name, safe="")
