"""``python -m botwire_server serve|migrate ...``: the same as the ``botwire`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
