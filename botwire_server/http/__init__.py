"""The HTTP layer: a Starlette application over one ``Store``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
else:

    def __getattr__(name: str) -> Any:
        # Imported on first use: the service layer imports ``params`` from this package
        # without pulling in the application (which imports the service).
        if name == "create_app":
            from .app import create_app

            return create_app
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app"]
