"""Where ``BotWireSaver`` keeps a LangGraph thread: one BotWire namespace per thread.

The mapping is injective (two different threads, checkpoint namespaces, checkpoints, channels
or versions never share a key) and needs nothing of LangGraph. Worked example, thread
``user-42``, the root checkpoint namespace ``""`` and a subgraph's ``"tools:6c1e"``::

    namespace  langgraph/threads/user-42                 the thread (prefix + escaped id)
    c//<E>                                                a checkpoint of "" (JSON record)
    c//<E>/w/<task_id>/<idx>                              its pending writes, one key each
    c/tools:6c1e/<E>                                      a checkpoint of the subgraph
    b//messages/<version>                                 a channel value (a "blob")
    namespace  langgraph/threads/#runs                    run index: <run_id>/<thread ns>

``<E>`` is the checkpoint id with its order reversed: each UTF-8 byte ``b`` becomes the two
hex digits of ``255 - b``, then ``z``. LangGraph's ids grow with time, so the newest
checkpoint has the smallest key: one listing with ``prefix=c/<ns>/`` and a small limit
returns the latest checkpoint followed by its writes (a record's writes sort right after it,
before any older checkpoint, because no ``<E>`` is a prefix of another).

Escaping (``escape``): ``%``, ``/`` and control characters become ``%XX`` (their UTF-8
bytes), so a checkpoint namespace, a channel or a version holding ``/`` cannot reach into the
next path segment. A thread id keeps its ``/`` (the namespace is one name), and a leading
``#`` is escaped too: names starting with ``#`` are the saver's own. A thread id whose
escaped form would pass the 256-byte namespace limit maps to ``#`` + its SHA-256 (the record
keeps the full id, and reads check it, so a collision could not go unnoticed).
"""

from __future__ import annotations

import hashlib
import re

from botwire_client import names

DEFAULT_PREFIX = "langgraph/threads/"
RUNS = "#runs"

_ESCAPED = re.compile(r"[%/\x00-\x1f\x7f]")
_ESCAPED_THREAD = re.compile(r"[%\x00-\x1f\x7f]|^#")


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group(0).encode("utf-8", "surrogatepass"))


def escape(text: str) -> str:
    """``text`` with ``%``, ``/`` and control characters as ``%XX``: injective, slash-free."""
    return _ESCAPED.sub(_percent, text)


def thread_namespace(prefix: str, thread_id: str) -> str:
    """The BotWire namespace of a LangGraph thread."""
    name = prefix + _ESCAPED_THREAD.sub(_percent, thread_id)
    try:
        fits = len(name.encode("utf-8")) <= names.NAMESPACE_MAX_BYTES
    except UnicodeEncodeError:  # a lone surrogate cannot travel in a URL
        fits = False
    if fits and names.namespace_problem(name) is None:
        return name
    digest = hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}#{digest}"


def runs_namespace(prefix: str) -> str:
    """The namespace of the run index (``delete_for_runs`` finds a run's threads there)."""
    return prefix + RUNS


def reverse_id(checkpoint_id: str) -> str:
    """The checkpoint id as a key segment that sorts newest first (see the module docstring)."""
    raw = checkpoint_id.encode("utf-8", "surrogatepass")
    return "".join(f"{255 - b:02x}" for b in raw) + "z"


def unreverse_id(segment: str) -> str:
    """The checkpoint id back from ``reverse_id``."""
    body = segment.removesuffix("z")
    raw = bytes(255 - int(body[i : i + 2], 16) for i in range(0, len(body), 2))
    return raw.decode("utf-8", "surrogatepass")


def checkpoints_prefix(checkpoint_ns: str | None) -> str:
    """Every checkpoint of ``checkpoint_ns`` (``None``: of every checkpoint namespace)."""
    return "c/" if checkpoint_ns is None else f"c/{escape(checkpoint_ns)}/"


def checkpoint_key(checkpoint_ns: str, checkpoint_id: str) -> str:
    return f"c/{escape(checkpoint_ns)}/{reverse_id(checkpoint_id)}"


def after_checkpoint(checkpoint_ns: str, checkpoint_id: str) -> str:
    """A key past the checkpoint's record and its writes and before any older checkpoint:
    '~' sorts after the '/' of ``/w/`` and after every hex digit and the final 'z' of an id."""
    return checkpoint_key(checkpoint_ns, checkpoint_id) + "~"


def write_key(checkpoint_ns: str, checkpoint_id: str, task_id: str, idx: int) -> str:
    return f"{checkpoint_key(checkpoint_ns, checkpoint_id)}/w/{escape(task_id)}/{idx}"


def is_write_key(key: str) -> bool:
    return "/w/" in key


def record_key_of_write(key: str) -> str:
    return key[: key.index("/w/")]


def blob_key(checkpoint_ns: str, channel: str, version: object) -> str:
    return f"b/{escape(checkpoint_ns)}/{escape(channel)}/{escape(str(version))}"


BLOBS_PREFIX = "b/"


def run_index_key(run_id: str, namespace: str) -> str:
    return f"{escape(run_id)}/{namespace}"


def run_index_prefix(run_id: str) -> str:
    return f"{escape(run_id)}/"
