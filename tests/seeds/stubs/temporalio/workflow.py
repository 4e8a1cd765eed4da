from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def defn(cls: T | None = None, **_: Any) -> Any:
    return cls if cls is not None else (lambda c: c)


def run(fn: T) -> T:
    return fn


async def execute_activity(
    activity: Callable[..., Any], arg: Any = None, *, args: Sequence[Any] = (), **_: Any
) -> Any:
    call_args = list(args) if args else ([] if arg is None else [arg])
    result = activity(*call_args)
    return await result if inspect.isawaitable(result) else result
