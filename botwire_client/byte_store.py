"""``BotWireByteStore``: LangChain's ``BaseStore[str, bytes]`` (the key-value store behind
``CacheBackedEmbeddings``, LangGraph caches and document stores) in one BotWire namespace.

Each value is one key holding the bytes as a base64 string. Keys are mapped injectively as
``botwire_client.tuple_names.key_name`` does (``%`` and control characters percent-encoded, the
empty key ``%``, ``.`` and ``..`` encoded), so any string is a key. ``mget`` is one multi-get
per 1000 keys, ``mset`` one atomic batch per 1000 pairs, ``mdelete`` a multi-get (which keys
exist) and one batch; ``yield_keys`` pages through the key listing.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator, Sequence

from langchain_core.stores import BaseStore

from botwire_client import core, tuple_names
from botwire_client.core import Op
from botwire_client.errors import ConflictError
from botwire_client.memory import Memory

MAX_CAS_ATTEMPTS = 20


def _server_prefix(prefix: str | None) -> str | None:
    # Whole-key encodings ('', '.', '..') are no prefixes of what they encode: list all then.
    if not prefix or prefix in (".", ".."):
        return None
    return tuple_names.key_name(prefix)


def _mget_op(namespace: str, keys: Sequence[str]) -> Op[list[bytes | None]]:
    names = [tuple_names.key_name(k) for k in keys]
    found = (yield from core.get_many_op(namespace, names, None)) if names else {}
    return [None if n not in found else base64.b64decode(found[n]) for n in names]


def _mset_op(namespace: str, pairs: Sequence[tuple[str, bytes]]) -> Op[None]:
    last = {tuple_names.key_name(k): v for k, v in pairs}  # a repeated key: the last value
    items = list(last.items())
    for start in range(0, len(items), core.BATCH_LIMIT):
        ops = core.BatchOps(namespace)
        for name, value in items[start : start + core.BATCH_LIMIT]:
            if not isinstance(value, bytes | bytearray):
                raise TypeError(f"BotWireByteStore stores bytes, not {type(value).__name__}.")
            ops.set(name, base64.b64encode(value).decode("ascii"), None, None)
        yield from ops.commit_op()


def _mdelete_op(namespace: str, keys: Sequence[str]) -> Op[None]:
    names = list(dict.fromkeys(tuple_names.key_name(k) for k in keys))
    for _attempt in range(MAX_CAS_ATTEMPTS):
        present = (yield from core.items_many_op(namespace, names, None)) if names else {}
        gone = list(present.items())
        try:
            for start in range(0, len(gone), core.BATCH_LIMIT):
                ops = core.BatchOps(namespace)
                for name, item in gone[start : start + core.BATCH_LIMIT]:
                    ops.delete(name, item.version)
                yield from ops.commit_op()
            return
        except ConflictError:
            continue  # a key changed or went away meanwhile: read again
    raise ConflictError(
        f"Could not delete from {namespace!r}: the keys kept changing.", current_version=0
    )


def _keys_op(namespace: str, prefix: str | None) -> Op[list[str]]:
    names = yield from core.list_keys_op(namespace, _server_prefix(prefix), None)
    keys = [tuple_names.key_of(n) for n in names]
    return [k for k in keys if k.startswith(prefix or "")]


class BotWireByteStore(BaseStore[str, bytes]):
    """LangChain ``BaseStore[str, bytes]`` in the BotWire namespace ``namespace``.

    ``base_url`` and ``token`` as for ``Memory``; ``memory`` overrides both (to share its
    connections).
    """

    def __init__(
        self,
        namespace: str,
        base_url: str | None = None,
        *,
        token: str | None = None,
        memory: Memory | None = None,
    ) -> None:
        self.memory = memory if memory is not None else Memory(namespace, base_url, token=token)
        self.namespace = self.memory.namespace

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.memory._run(_mget_op(self.namespace, keys))

    async def amget(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self.memory._arun(_mget_op(self.namespace, keys))

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        self.memory._run(_mset_op(self.namespace, key_value_pairs))

    async def amset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        await self.memory._arun(_mset_op(self.namespace, key_value_pairs))

    def mdelete(self, keys: Sequence[str]) -> None:
        self.memory._run(_mdelete_op(self.namespace, keys))

    async def amdelete(self, keys: Sequence[str]) -> None:
        await self.memory._arun(_mdelete_op(self.namespace, keys))

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        yield from self.memory._run(_keys_op(self.namespace, prefix))

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        for key in await self.memory._arun(_keys_op(self.namespace, prefix)):
            yield key

    def __repr__(self) -> str:
        return f"BotWireByteStore(namespace={self.namespace!r}, base_url={self.memory.base_url!r})"
