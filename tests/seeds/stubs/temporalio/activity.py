from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def defn(fn: T | None = None, **_: Any) -> Any:
    return fn if fn is not None else (lambda f: f)
