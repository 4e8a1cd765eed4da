"""Namespace tuples and keys of LangGraph's store as BotWire names, injectively and back.

A LangGraph namespace is a tuple of labels (``("users", "ada", "memories")``): non-empty strings
without ``.``. A LangGraph key is any string. BotWire names may not hold control characters,
and a key may be neither empty nor ``.``/``..``. The mapping::

    namespace ("users", "ada/x", "memories")  ->  "lg:users/ada%2Fx/memories"
    key "notes"                               ->  "notes"
    key "50%"   key "a\\nb"   key ""   key "."  ->  "50%25"   "a%0Ab"   "%"   "%2E"

The BotWire namespace is ``root + ":"`` followed by the labels joined with ``/``; in a label,
``%``, ``/`` and the control characters U+0000-U+001F, U+007F are percent-encoded (``%2F``). In a
key ``%`` and the control characters are encoded, ``.`` and ``..`` become ``%2E`` and
``%2E%2E``, and the empty key is ``%`` alone (which no encoded key is otherwise). Every ``%`` in
a name starts an escape that the encoding wrote, so decoding is unambiguous: distinct tuples give
distinct names. A name must still fit BotWire's limits (256 bytes for a namespace, 1024 for a
key), or the call raises ``InvalidRequest``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

DEFAULT_ROOT = "lg"

_LABEL_UNSAFE = re.compile(r"[%/\x00-\x1f\x7f]")
_KEY_UNSAFE = re.compile(r"[%\x00-\x1f\x7f]")


def _escape(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"


def namespace_name(root: str, namespace: tuple[str, ...]) -> str:
    """The BotWire namespace of a LangGraph namespace tuple."""
    return root + ":" + "/".join(_LABEL_UNSAFE.sub(_escape, label) for label in namespace)


def labels_prefix(root: str, labels: tuple[str, ...]) -> str:
    """The name prefix shared by every namespace that starts with ``labels`` (and by some
    that do not: ``("a",)`` gives ``lg:a``, also a prefix of ``lg:ab``; filter the answers)."""
    return namespace_name(root, labels)


def namespace_tuple(root: str, name: str) -> tuple[str, ...] | None:
    """The tuple a BotWire namespace stands for, or None when it is not one of ``root``'s."""
    head = root + ":"
    if not name.startswith(head) or len(name) == len(head):
        return None
    return tuple(unquote(label) for label in name[len(head) :].split("/"))


def key_name(key: str) -> str:
    if key == "":
        return "%"
    if key in (".", ".."):
        return "%2E" * len(key)
    return _KEY_UNSAFE.sub(_escape, key)


def key_of(name: str) -> str:
    return "" if name == "%" else unquote(name)
