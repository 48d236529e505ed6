"""`--help` of every command: runs without reading the config, and shows boolean flags as flags."""

from __future__ import annotations

import pytest
import typer


def _paths() -> list[tuple[str, ...]]:
    from tradeops.cli.main import app

    out: list[tuple[str, ...]] = []

    def walk(node, prefix: tuple[str, ...]) -> None:
        for name, sub in getattr(node, "commands", {}).items():
            out.append((*prefix, name))
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return out


@pytest.mark.parametrize("path", _paths(), ids=" ".join)
def test_help_shows_boolean_flags_as_flags(tradeops, tmp_path, path):
    """Regression: `--json <bool>` suggested a value that was then rejected."""
    result = tradeops(tmp_path / "home", *path, "--help")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    assert not (tmp_path / "home").exists()  # help creates no state
