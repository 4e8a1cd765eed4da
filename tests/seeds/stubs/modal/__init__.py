"""Stand-in for ``modal``: ``App(...).function()`` leaves the function callable locally."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class App:
    def __init__(self, name: str, **_: Any) -> None:
        self.name = name

    def function(self, **_: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            return fn

        return register
