"""Render `tradeops ... --json` outputs as a Markdown job summary (CI appends it to ``$GITHUB_STEP_SUMMARY``).

Usage: python scripts/ci_summary.py TITLE=FILE.json [TITLE=FILE.json ...]
Every numeric, boolean or short string leaf becomes one row ``path | value``: the summary follows whatever the
commands report, so it needs no change when they report more.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_ROWS = 60
MAX_TEXT = 80


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted path, rendered value)`` of every scalar leaf, depth first; floats to 4 significant digits."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from leaves(sub, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from leaves(sub, f"{path}[{i}]")
    elif isinstance(value, bool) or value is None:
        yield path, str(value).lower()
    elif isinstance(value, float):
        yield path, f"{value:.4g}"
    elif isinstance(value, int):
        yield path, str(value)
    elif isinstance(value, str) and len(value) <= MAX_TEXT:
        yield path, value.replace("|", "\\|")


def section(title: str, document: Any) -> str:
    """One Markdown section: a heading and a two-column table (at most ``MAX_ROWS`` rows, the rest counted)."""
    rows = list(leaves(document))
    lines = [f"### {title}", "", "| field | value |", "|---|---|"]
    lines += [f"| `{path}` | {value} |" for path, value in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"| ... | {len(rows) - MAX_ROWS} more |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if not argv or any("=" not in arg for arg in argv):
        print(__doc__, file=sys.stderr)
        return 2
    for arg in argv:
        title, _, file = arg.partition("=")
        text = Path(file).read_text(encoding="utf-8")
        print(section(title, json.loads(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
