"""Sans-I/O operations for the filtered listing and the namespace listing, which the framework
adapters (``langgraph_store``, ``bytestore``, ``autogen_memory``, ``chat_history``) build on.

``query_op`` reads one page of ``POST /namespaces/{ns}/query`` (the filter is evaluated by the
server; ``botwire_server.filters`` has its rules). ``namespaces_op`` pages through
``GET /namespaces`` and returns every namespace with the prefix that the token may read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botwire_client import core
from botwire_client.core import Op, Request, _ok, _path, check_prefix
from botwire_client.models import Item


@dataclass(frozen=True, slots=True)
class Selected:
    """One page of a filtered listing: ``skipped`` matches passed over by the offset, then the
    matching ``items`` in key order; ``more``: whether more matches follow."""

    revision: int
    items: list[Item]
    skipped: int
    more: bool


@dataclass(frozen=True, slots=True)
class NamespaceEntry:
    namespace: str
    revision: int
    keys: int


def query_op(
    namespace: str,
    filter: Mapping[str, Any] | None = None,
    *,
    prefix: str | None = None,
    offset: int = 0,
    limit: int = 10,
    as_of: int | None = None,
) -> Op[Selected]:
    body: dict[str, Any] = {"offset": offset, "limit": limit}
    if filter:
        body["filter"] = dict(filter)
    prefix = check_prefix(prefix)
    if prefix:
        body["prefix"] = prefix
    if as_of is not None:
        body["as_of"] = as_of
    req = Request(
        "POST", _path("namespaces", namespace, "query"), json=body, has_body=True, safe=True
    )
    data = _ok((yield req), req)
    return Selected(
        revision=int(data["revision"]),
        items=[core._extended_item(raw["key"], raw) for raw in data["items"]],
        skipped=int(data["skipped"]),
        more=bool(data["more"]),
    )


def namespaces_op(prefix: str | None = None) -> Op[list[NamespaceEntry]]:
    """Every namespace ever written whose name starts with ``prefix`` (that the token may
    read), in name order; pages through the listing."""
    params: dict[str, str] = {"limit": "1000"}
    prefix = check_prefix(prefix)
    if prefix:
        params["prefix"] = prefix
    out: list[NamespaceEntry] = []
    while True:
        req = Request("GET", "/namespaces", params=dict(params))
        data = _ok((yield req), req)
        out.extend(
            NamespaceEntry(str(n["namespace"]), int(n["revision"]), int(n["keys"]))
            for n in data["namespaces"]
        )
        cursor = data.get("next_cursor")
        if not cursor:
            return out
        params["cursor"] = str(cursor)
