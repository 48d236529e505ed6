"""The README only shows commands that exist: every `tradeops ...` it mentions resolves and its --help runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]+)`")
_MENTION = re.compile(r"(?:^|[\s(|;&])tradeops((?:\s+[a-z][a-z0-9-]*)+)", re.M)


def code_of(markdown: str) -> str:
    """The text of every fenced block and inline code span (prose is not a command)."""
    blocks = _FENCE.findall(markdown)
    rest = _FENCE.sub("", markdown)
    return "\n".join(blocks + _INLINE.findall(rest))


def readme_commands(text: str) -> set[tuple[str, ...]]:
    """Command paths (``("features", "build")``) of every `tradeops <words>` mention in ``text``."""
    from tradeops.cli.main import app

    root = typer.main.get_command(app)
    paths: set[tuple[str, ...]] = set()
    for match in _MENTION.finditer(code_of(text)):
        words = match.group(1).split()
        node = root
        path: list[str] = []
        for w in words:
            if w in getattr(node, "commands", {}):
                node = node.commands[w]
                path.append(w)
            else:
                break
        paths.add(tuple(path) if path else (words[0],))
    return paths


def _mentions() -> list[tuple[str, ...]]:
    return sorted(readme_commands(README.read_text(encoding="utf-8")))


def test_readme_mentions_commands():
    assert ("ingest",) in _mentions() and ("features", "build") in _mentions()


@pytest.mark.parametrize("path", _mentions(), ids=" ".join)
def test_every_command_the_readme_mentions_exists(tradeops, tmp_path, path):
    result = tradeops(tmp_path / "home", *path, "--help")
    assert result.exit_code == 0, f"README mentions `tradeops {' '.join(path)}`, which does not run:\n{result.output}"
    assert "Usage" in result.stdout
