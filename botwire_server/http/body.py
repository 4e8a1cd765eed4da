"""Reading and decoding request bodies.

A body is refused as soon as it is known to be too large: from its ``Content-Length`` before a
byte is read, or while a chunked body streams in. Values are decoded once to validate them and
re-encoded compactly; that compact form is what the store keeps and what ``bytes`` counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from ..errors import InvalidInput
from . import params

T = TypeVar("T")

# Room for the JSON around a value ({"value": ..., "expected_version": ...}) and for whitespace.
ENVELOPE_BYTES = 16 * 1024
# Rollback and compaction bodies hold a few small fields.
SMALL_BODY_BYTES = 16 * 1024
# A multi-get body: up to 1000 keys, each at most a few KiB of JSON even fully escaped.
KEYS_BODY_BYTES = 8 * 1024 * 1024
# A batch: up to 1000 ops, each a value plus room for its key and fields, capped so that one
# request cannot make the server buffer more than this; always room for one value of the
# largest size.
OP_ENVELOPE_BYTES = 2 * 1024
BATCH_BODY_MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100

_encode = msgspec.json.Encoder().encode


def body_limit(value_max_bytes: int) -> int:
    """The largest body accepted for a value limit (0 = unlimited)."""
    return value_max_bytes + ENVELOPE_BYTES if value_max_bytes else 0


def batch_body_limit(value_max_bytes: int) -> int:
    """The largest batch body accepted for a value limit (0 = unlimited, as for PUT):
    1000 x (value limit + 2 KiB), at most 16 MiB, at least the PUT body limit."""
    if not value_max_bytes:
        return 0
    return max(
        body_limit(value_max_bytes),
        min(1000 * (value_max_bytes + OP_ENVELOPE_BYTES), BATCH_BODY_MAX_BYTES),
    )


async def read(
    request: Request,
    limit: int,
    value_limit: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (0 = unlimited). ``value_limit`` names
    the value limit that ``limit`` derives from, for the error message. ``headers``: the
    request's, when the caller already has them (``params.headers``)."""
    if headers is None:
        headers = params.headers(request.scope)
    params.check_json_content_type(headers)
    length = headers.get("content-length")
    if limit and length is not None and length.isdigit() and int(length) > limit:
        raise params.body_too_large(length, limit, value_limit)
    # The messages straight from ``receive``: a body with a Content-Length arrives in one
    # message, which is returned as it is (Starlette's ``Request.body`` goes through an async
    # generator and a join). The server checks Content-Length against the bytes received.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        size += len(chunk)
        if limit and size > limit:
            raise params.body_too_large(f"more than {limit}", limit, value_limit)
        if not more and not chunks:
            return chunk
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)


def decode(data: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode a body into its wire type; every failure is a 400 with a precise code and a
    sentence of ours (msgspec's wording changes between versions and is not the contract)."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidInput(invalid_body(str(exc), decoder.type), code="invalid_body") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise InvalidInput(NOT_JSON, code="invalid_json") from None
    except RecursionError:
        raise _too_deep() from None


NOT_JSON = (
    "The body is not valid JSON: send one UTF-8 encoded JSON document "
    "(NaN and Infinity are not JSON)."
)

# msgspec reports a validation error as one line: what went wrong, then where (" - at `$.x`").
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"missing required field `(?P<name>[^`]+)`")
_UNKNOWN = re.compile(r"unknown field `(?P<name>[^`]+)`")


def invalid_body(detail: str, wire_type: Any) -> str:
    """Our sentence for msgspec's validation error ``detail`` on a body of ``wire_type``: the
    field at fault and what it must be, where that can be told; a generic sentence otherwise.
    Only the location (`` - at `$.a[0].b` ``) and the quoted field names are read from
    ``detail``; the words are ours."""
    fields = _fields(wire_type)
    at = _AT.search(detail)
    path = at.group("path").lstrip(".") if at else ""
    where = f"`{path}`" if path else "it"
    missing = _MISSING.search(detail)
    unknown = _UNKNOWN.search(detail)
    if missing is not None:
        return f"The body is not valid here: {where} lacks the required field `{missing['name']}`."
    if unknown is not None:
        allowed = ", ".join(f"`{name}`" for name in fields)
        listed = f" (the fields are {allowed})" if allowed and not path else ""
        return (
            f"The body is not valid here: {where} has an unknown field `{unknown['name']}`{listed}."
        )
    top = re.match(r"[A-Za-z_][A-Za-z0-9_]*", path)
    field = fields.get(top.group()) if top is not None else None
    if "out of range" in detail or isinstance(field, msgspec.inspect.AnyType):
        # Inside a JSON value any type goes; only a number can be refused.
        return (
            f"The body is not valid here: {where} holds a number too large to store (an "
            "integer may have at most 4300 digits; a float must be below 1.8e308)."
        )
    if field is not None and top is not None and path == top.group():
        return f"The body is not valid here: `{path}` must be {_describe(field)}."
    if path:
        return f"The body is not valid here: `{path}` has the wrong type or value."
    if fields:
        listed = ", ".join(f"`{name}`" for name in fields)
        return f"The body is not valid here: send a JSON object with the fields {listed}."
    return "The body is not valid here: it does not have the shape this route takes."


def _fields(wire_type: Any) -> dict[str, msgspec.inspect.Type]:
    info = msgspec.inspect.type_info(wire_type)
    if not isinstance(info, msgspec.inspect.StructType):
        return {}
    return {f.encode_name: f.type for f in info.fields}


def _describe(t: msgspec.inspect.Type) -> str:
    """A wire type in words, e.g. "an integer >= 0 or null"."""
    if isinstance(t, msgspec.inspect.UnionType):
        return " or ".join(_describe(member) for member in t.types)
    if isinstance(t, msgspec.inspect.IntType):
        if t.ge is not None and t.le is not None:
            return f"an integer from {t.ge} to {t.le}"
        return "an integer" if t.ge is None else f"an integer >= {t.ge}"
    if isinstance(t, msgspec.inspect.StrType):
        return "a string"
    if isinstance(t, msgspec.inspect.BoolType):
        return "true or false"
    if isinstance(t, msgspec.inspect.NoneType):
        return "null"
    if isinstance(t, msgspec.inspect.FloatType):
        return "a number"
    if isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.TupleType)):
        return "an array"
    if isinstance(t, (msgspec.inspect.DictType, msgspec.inspect.StructType)):
        return "an object"
    return "a valid JSON value"


def _too_deep() -> InvalidInput:
    return InvalidInput(
        f"The value nests arrays and objects more than {MAX_DEPTH} levels deep.",
        code="invalid_body",
    )


def encode_value(value: Any, data: bytes) -> bytes:
    """The compact JSON encoding of a decoded ``value`` that came from body ``data``."""
    # Fewer opening brackets than the limit anywhere in the body bounds the depth; only a
    # bracket-heavy body pays for the walk.
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        check_depth(value)
    try:
        return _encode(value)
    except (OverflowError, ValueError):  # e.g. an integer too long to print
        raise InvalidInput(
            "The value cannot be stored: it holds a number too large to write as JSON.",
            code="invalid_body",
        ) from None


def check_depth(value: Any) -> None:
    """Raise when ``value`` nests deeper than ``MAX_DEPTH``; iterative, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in children)
