"""Numbered SQL migrations, shared by the SQL backends.

Files live in ``migrations/<dialect>/NNNN_name.sql`` at the repository root (an installed wheel
carries them as ``botwire_server/_migrations``). They are applied in order, each in one transaction
together with its row in ``schema_migrations``; an applied file is never edited, a change is a new
file.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def migrations_dir(dialect: str) -> Path:
    for root in (_HERE.parents[1] / "migrations", _HERE.parent / "_migrations"):
        if (root / dialect).is_dir():
            return root / dialect
    raise FileNotFoundError(f"no migrations found for {dialect!r}")


def migration_files(dialect: str) -> list[tuple[str, str]]:
    """(name, sql) for each migration of ``dialect``, in the order they apply."""
    files = sorted(migrations_dir(dialect).glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [(path.stem, path.read_text(encoding="utf-8")) for path in files]
