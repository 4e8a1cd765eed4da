"""Filters over JSON values: the ``filter`` of a filtered listing (``POST /namespaces/{ns}/query``).

A filter is a JSON object matched against a stored value, in the shape LangGraph's stores use::

    {"kind": "note"}                       the value's field "kind" equals "note"
    {"score": {"$gte": 3, "$lt": 10}}      a number with 3 <= score < 10 (every operator holds)
    {"user": {"name": "ada", "age": 36}}   nested path: value["user"]["name"] == "ada" and ...
    {"tags": ["a", "b"]}                   an array equal to ["a", "b"], element by element
    {"status": {"$ne": "done"}}            anything but "done" (an absent field included)

Rules, written once here (the memory, SQLite and PostgreSQL stores all evaluate filters with this
module, in the server process):

- Every field of the filter must match (and). A value that is not an object matches no non-empty
  filter; an absent field counts as ``null``.
- An object whose keys start with ``$`` is a set of operators: ``$eq $ne $gt $gte $lt $lte``; any
  other ``$`` key is refused (400). An object without ``$`` keys matches nested fields.
- Equality is JSON equality: numbers by value (``1`` equals ``1.0``), ``true`` is not ``1``,
  arrays element by element, objects key by key.
- ``$gt $gte $lt $lte`` compare numbers as numbers and strings as strings (code point order,
  so ISO-8601 times compare correctly); anything else (a missing field, ``null``, a number
  against a string, a boolean) does not match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidInput

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
MAX_FILTER_DEPTH = 32

Matcher = Callable[[Any], bool]


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput(f"Bad filter: {detail}", code="invalid_body")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, booleans apart from numbers, containers deeply."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _ordered(op: str, bound: Any) -> Matcher:
    if _is_number(bound):
        same: Callable[[Any], bool] = _is_number
    elif isinstance(bound, str):

        def same(x: Any) -> bool:
            return isinstance(x, str)

    else:
        raise _invalid(f"{op} needs a number or a string, not {type(bound).__name__}.")
    if op == "$gt":
        return lambda x: same(x) and x > bound
    if op == "$gte":
        return lambda x: same(x) and x >= bound
    if op == "$lt":
        return lambda x: same(x) and x < bound
    return lambda x: same(x) and x <= bound


def _operator(op: str, operand: Any) -> Matcher:
    if op == "$eq":
        return lambda x: json_equal(x, operand)
    if op == "$ne":
        return lambda x: not json_equal(x, operand)
    if op in OPERATORS:
        return _ordered(op, operand)
    raise _invalid(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}.")


def _matcher(spec: Any, depth: int) -> Matcher:
    if depth > MAX_FILTER_DEPTH:
        raise _invalid(f"it nests more than {MAX_FILTER_DEPTH} levels deep.")
    if isinstance(spec, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in spec):
            tests = [_operator(op, operand) for op, operand in spec.items()]
            return lambda x: all(t(x) for t in tests)
        fields = [(k, _matcher(v, depth + 1)) for k, v in spec.items()]
        return lambda x: isinstance(x, dict) and all(t(x.get(k)) for k, t in fields)
    if isinstance(spec, list):
        items = [_matcher(v, depth + 1) for v in spec]
        return lambda x: (
            isinstance(x, list)
            and len(x) == len(items)
            and all(t(v) for t, v in zip(items, x, strict=True))
        )
    return lambda x: json_equal(x, spec)


def compile_filter(spec: Mapping[str, Any] | None) -> Matcher:
    """A function telling whether a decoded value matches ``spec``; raises ``InvalidInput``
    (400 ``invalid_body``) for a malformed filter. An empty or missing filter matches all."""
    if not spec:
        return lambda value: True
    if not isinstance(spec, Mapping):
        raise _invalid(f"a filter is a JSON object, not {type(spec).__name__}.")
    if any(isinstance(k, str) and k.startswith("$") for k in spec):
        raise _invalid("the top level names fields; put operators under a field.")
    return _matcher(dict(spec), 0)
