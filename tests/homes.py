"""Copying a tradeops home for a test that must change it (the shared trained homes are read only)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path


def copy_home(src: Path, dst: Path, *, ignore: tuple[str, ...] = ()) -> Path:
    """Copy a home; MLflow stores absolute artifact paths, so point the copy's store at the copy's artifacts.
    ``ignore``: glob patterns left out of the copy (e.g. ``service.db*``)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*ignore) if ignore else None)
    old, new = f"{src.resolve()}/", f"{dst.resolve()}/"
    with sqlite3.connect(dst / "mlflow.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for _, column, kind, *_ in db.execute(f"PRAGMA table_info('{table}')").fetchall():
                if kind.upper().startswith(("VARCHAR", "TEXT")):
                    db.execute(
                        f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE "{column}" LIKE ?',
                        (old, new, f"%{old}%"),
                    )
    return dst
