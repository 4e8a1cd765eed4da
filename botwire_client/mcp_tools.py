"""The Model Context Protocol face of BotWire: tools and resources for an assistant's model.

One definition serves both transports. ``botwire mcp`` (``botwire_client.mcp_stdio``) runs it
over stdio against a server at a URL; the server mounts it at ``/mcp`` (streamable HTTP,
``botwire_server.http.mcp_mount``) and then reaches its own routes in process. Either way every
tool is a call of ``Memory`` (``memory_for`` builds one per call, with the caller's token), so
names, limits, access checks and error messages are exactly those of the HTTP API. A server
error becomes an MCP tool error (``isError``) carrying the server's own sentence and code.

Needs the ``mcp`` package (extra ``mcp``; the ``server`` extra includes it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources.templates import ResourceSecurity
from pydantic import BaseModel, Field

from botwire_client import core
from botwire_client.core import Op, Request, _ok, _path
from botwire_client.errors import BotWireError
from botwire_client.memory import Memory
from botwire_client.models import Event

# (context of the call or None on stdio, namespace) -> a Memory acting for the caller.
MemoryFactory = Callable[[Context | None, str], Memory]

INSTRUCTIONS = (
    "BotWire is persistent memory: a namespace holds keys, each key holds one JSON value, and "
    "every write is kept in a history with a revision number, so mistakes can be undone. Use "
    "memory_get before relying on what you think is stored; memory_set overwrites. "
    "memory_rollback and memory_revert_run show what they would change unless you pass "
    "dry_run=false."
)

NAMESPACE_DOC = (
    "The namespace: a separate memory, e.g. one per user, agent or project (1-256 bytes of "
    "text, no control characters). Optional when the server was started with a default "
    "namespace."
)
KEY_DOC = (
    "The key: the name a value is stored under inside the namespace, any text of 1-1024 "
    "bytes without control characters, e.g. 'user_name', 'user:42' or 'notes/2026-11.md'."
)

Namespace = Annotated[str | None, Field(description=NAMESPACE_DOC)]
Key = Annotated[str, Field(description=KEY_DOC)]


class GetResult(BaseModel):
    namespace: str
    key: str
    found: bool = Field(description="False when the key does not exist (value is then null).")
    value: Any = Field(default=None, description="The stored JSON value.")
    version: int | None = Field(default=None, description="The revision of the key's last write.")
    updated_at: str | None = Field(default=None, description="ISO-8601 UTC time of that write.")
    expires_at: str | None = None


class SetResult(BaseModel):
    namespace: str
    key: str
    version: int = Field(description="The key's new version (the namespace's new revision).")


class DeleteResult(BaseModel):
    namespace: str
    key: str
    deleted: bool = Field(description="False when the key did not exist (nothing was written).")


class KeysResult(BaseModel):
    namespace: str
    keys: list[str]
    truncated: bool = Field(description="True when more keys exist than `limit` allowed.")


class HistoryEvent(BaseModel):
    revision: int
    op: str = Field(description="set, delete or expire")
    value: Any = Field(default=None, description="The value written (null for delete/expire).")
    at: str = Field(description="ISO-8601 UTC commit time.")


class HistoryResult(BaseModel):
    namespace: str
    key: str
    events: list[HistoryEvent] = Field(description="Newest first.")


class ChangeOut(BaseModel):
    key: str
    op: str = Field(description="set (the key gets `value` back) or delete (the key goes).")
    value: Any = None


class SkippedOut(BaseModel):
    key: str
    reason: str
    current_version: int | None = None


class RollbackOut(BaseModel):
    namespace: str
    revision: int = Field(description="The new revision, or the unchanged head (dry run).")
    dry_run: bool = Field(description="True: nothing was written; `changed` is the preview.")
    changed: list[ChangeOut]


class RevertOut(RollbackOut):
    skipped: list[SkippedOut] = Field(
        default_factory=list,
        description="Keys left alone because someone else wrote them after the run.",
    )


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def tool_error(exc: BotWireError) -> ToolError:
    """The server's own sentence and code, as a tool error the model can read."""
    body = exc.body if isinstance(exc.body, dict) else {}
    said = body.get("error")
    if said and exc.code:
        return ToolError(f"{said} (code {exc.code}, HTTP {exc.status})")
    return ToolError(str(exc))


def _point(to: int | str) -> int | datetime:
    if isinstance(to, int):
        return to
    text = to.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"to={to!r} is neither a revision number nor an ISO-8601 time such as "
            "2026-11-21T10:00:00Z."
        ) from None
    if moment.tzinfo is None:
        raise ToolError(f"to={to!r} has no timezone; add one, e.g. {text}Z.")
    return moment


def build_server(memory_for: MemoryFactory, *, namespace: str | None = None) -> MCPServer:
    """The MCP server: seven tools and two resource templates over ``memory_for``.
    ``namespace``: the default of tools called without one."""
    server: MCPServer = MCPServer("botwire", instructions=INSTRUCTIONS)

    def memory(ctx: Context | None, ns: str | None) -> Memory:
        chosen = ns or namespace
        if not chosen:
            raise ToolError(
                "Pass `namespace`: this server has no default namespace (start `botwire mcp` "
                "with --namespace to set one)."
            )
        try:
            return memory_for(ctx, chosen)
        except BotWireError as exc:  # a name the client refuses before sending anything
            raise tool_error(exc) from exc

    @server.tool(
        description="Read the JSON value stored under a key. Returns found=false (not an "
        "error) when the key does not exist."
    )
    async def memory_get(key: Key, ctx: Context, namespace: Namespace = None) -> GetResult:
        m = memory(ctx, namespace)
        try:
            item = await m.aitem(key)
        except BotWireError as exc:
            raise tool_error(exc) from exc
        if item is None:
            return GetResult(namespace=m.namespace, key=key, found=False)
        return GetResult(
            namespace=m.namespace,
            key=key,
            found=True,
            value=item.value,
            version=item.version,
            updated_at=_iso(item.updated_at),
            expires_at=_iso(item.expires_at),
        )

    @server.tool(
        description="Store a JSON value (object, array, string, number, boolean or null) "
        "under a key, replacing what was there; the old value stays in the key's history. "
        "Pass expected_version to write only if nobody changed the key since you read it "
        "(0: only if it does not exist yet)."
    )
    async def memory_set(
        key: Key,
        value: Annotated[Any, Field(description="Any JSON value; stored and returned exactly.")],
        ctx: Context,
        namespace: Namespace = None,
        expected_version: Annotated[
            int | None,
            Field(ge=0, description="Write only if the key is at this version (0: absent)."),
        ] = None,
        ttl_seconds: Annotated[
            float | None, Field(gt=0, description="Forget the value after this many seconds.")
        ] = None,
    ) -> SetResult:
        m = memory(ctx, namespace)
        try:
            version = await m.aset(key, value, expected_version=expected_version, ttl=ttl_seconds)
        except BotWireError as exc:
            raise tool_error(exc) from exc
        return SetResult(namespace=m.namespace, key=key, version=version)

    @server.tool(
        description="Delete a key. Its history is kept, so memory_rollback can bring it back."
    )
    async def memory_delete(key: Key, ctx: Context, namespace: Namespace = None) -> DeleteResult:
        m = memory(ctx, namespace)
        try:
            deleted = await m.adelete(key)
        except BotWireError as exc:
            raise tool_error(exc) from exc
        return DeleteResult(namespace=m.namespace, key=key, deleted=deleted)

    @server.tool(description="List the keys of a namespace in sorted order.")
    async def memory_list_keys(
        ctx: Context,
        namespace: Namespace = None,
        prefix: Annotated[
            str | None, Field(description="Only keys starting with this text.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many keys.")] = 100,
    ) -> KeysResult:
        m = memory(ctx, namespace)
        try:
            keys, more, _ = await m._arun(first_keys_op(m.namespace, prefix, limit))
        except BotWireError as exc:
            raise tool_error(exc) from exc
        return KeysResult(namespace=m.namespace, keys=keys, truncated=more)

    @server.tool(
        description="The past writes of a key, newest first: each with its revision, op "
        "(set, delete, expire), value and time. Use a revision from here with "
        "memory_rollback."
    )
    async def memory_history(
        key: Key,
        ctx: Context,
        namespace: Namespace = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many events.")] = 20,
    ) -> HistoryResult:
        m = memory(ctx, namespace)
        try:
            events = await m.ahistory(key, limit=limit)
        except BotWireError as exc:
            raise tool_error(exc) from exc
        return HistoryResult(namespace=m.namespace, key=key, events=[_event(e) for e in events])

    @server.tool(
        description="Undo changes: make the namespace (or one key) what it was at an earlier "
        "revision or time, by writing one new revision (history is kept, so a rollback can be "
        "rolled back). DRY RUN BY DEFAULT: it only reports what would change; call again with "
        "dry_run=false to apply."
    )
    async def memory_rollback(
        to: Annotated[
            int | str,
            Field(description="A revision number, or an ISO-8601 time like 2026-11-21T10:00Z."),
        ],
        ctx: Context,
        namespace: Namespace = None,
        key: Annotated[str | None, Field(description="Roll back only this key.")] = None,
        dry_run: Annotated[
            bool, Field(description="True (default): preview only; false: apply.")
        ] = True,
    ) -> RollbackOut:
        m = memory(ctx, namespace)
        try:
            result = await m.arollback(_point(to), key=key, dry_run=dry_run)
        except BotWireError as exc:
            raise tool_error(exc) from exc
        return RollbackOut(
            namespace=m.namespace,
            revision=result.revision,
            dry_run=result.dry_run,
            changed=[ChangeOut(key=c.key, op=c.op, value=c.value) for c in result.changes],
        )

    @server.tool(
        description="Undo everything one agent run wrote (writes tagged with a BotWire-Run "
        "id), except keys someone else wrote afterwards, which are reported as skipped. "
        "DRY RUN BY DEFAULT: call again with dry_run=false to apply."
    )
    async def memory_revert_run(
        run: Annotated[str, Field(description="The run id the writes were tagged with.")],
        ctx: Context,
        namespace: Namespace = None,
        dry_run: Annotated[
            bool, Field(description="True (default): preview only; false: apply.")
        ] = True,
    ) -> RevertOut:
        m = memory(ctx, namespace)
        try:
            result = await m.arevert_run(run, dry_run=dry_run)
        except BotWireError as exc:
            raise tool_error(exc) from exc
        return RevertOut(
            namespace=m.namespace,
            revision=result.revision,
            dry_run=result.dry_run,
            changed=[ChangeOut(key=c.key, op=c.op, value=c.value) for c in result.changes],
            skipped=[
                SkippedOut(key=s.key, reason=s.reason, current_version=s.current_version)
                for s in result.skipped
            ],
        )

    anything = ResourceSecurity(reject_path_traversal=False, reject_absolute_paths=False)

    @server.resource(
        "botwire://{namespace}",
        name="namespace",
        description="A namespace: its head revision and its keys (up to 1000).",
        mime_type="application/json",
        security=anything,
    )
    async def namespace_resource(namespace: str, ctx: Context) -> dict[str, Any]:
        return await _namespace_json(memory(ctx, namespace))

    @server.resource(
        "botwire://{namespace}/{key}",
        name="key",
        description="The JSON value of one key (names percent-encoded: '/' is %2F).",
        mime_type="application/json",
        security=anything,
    )
    async def key_resource(namespace: str, key: str, ctx: Context) -> Any:
        m = memory(ctx, namespace)
        try:
            item = await m.aitem(key)
        except BotWireError as exc:
            raise tool_error(exc) from exc
        if item is None:
            raise ToolError(f"Key {key!r} does not exist in namespace {m.namespace!r}.")
        return item.value

    if namespace:

        @server.resource(
            resource_uri(namespace),
            name=f"namespace {namespace}",
            description="The default namespace: its head revision and its keys (up to 1000).",
            mime_type="application/json",
        )
        async def default_namespace() -> dict[str, Any]:
            return await _namespace_json(memory_for(None, namespace))

    return server


def first_keys_op(
    namespace: str, prefix: str | None, limit: int
) -> Op[tuple[list[str], bool, int]]:
    """One page of keys: (the first ``limit`` keys, whether more follow, the revision read).
    A model asks for a handful; a namespace may hold millions."""
    params = {"limit": str(limit)}
    if prefix:
        params["prefix"] = core.check_prefix(prefix) or ""
    req = Request("GET", _path("memory", namespace), params=params)
    data = _ok((yield req), req)
    keys = [entry["key"] if isinstance(entry, dict) else entry for entry in data["keys"]]
    return keys, bool(data.get("next_cursor")), int(data.get("revision") or 0)


async def _namespace_json(m: Memory) -> dict[str, Any]:
    try:
        keys, more, revision = await m._arun(first_keys_op(m.namespace, None, 1000))
    except BotWireError as exc:
        raise tool_error(exc) from exc
    return {"namespace": m.namespace, "revision": revision, "keys": keys, "more_keys": more}


def _event(e: Event) -> HistoryEvent:
    at = _iso(e.at)
    assert at is not None
    return HistoryEvent(revision=e.revision, op=e.op, value=e.value, at=at)


def resource_uri(namespace: str, key: str | None = None) -> str:
    """The resource URI of a namespace or a key, each name one percent-encoded segment."""
    uri = "botwire://" + quote(namespace, safe="")
    return uri if key is None else uri + "/" + quote(key, safe="")


TOOL_NAMES: tuple[str, ...] = (
    "memory_get",
    "memory_set",
    "memory_delete",
    "memory_list_keys",
    "memory_history",
    "memory_rollback",
    "memory_revert_run",
)
