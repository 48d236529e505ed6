"""The docs match the code: every `tradeops ...` command they show exists (its ``--help`` runs), and the generated
references (configuration, HTTP API) are what their generators write from the config model and the OpenAPI spec."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from types import ModuleType

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
GLOBAL_OPTIONS_WITH_VALUE = {"--home", "--config"}


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_spans(text: str) -> list[str]:
    """Lines of fenced code blocks and inline code spans: where the docs show commands (prose may say 'tradeops')."""
    spans = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S):
        spans += block.splitlines()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans += re.findall(r"`([^`\n]+)`", prose)
    return spans


def mentioned_commands(text: str) -> set[tuple[str, ...]]:
    """``("pipelines", "run")`` for every ``tradeops pipelines run JOB ...`` in code: the leading lowercase words."""
    root = typer.main.get_command(_app())
    found: set[tuple[str, ...]] = set()
    for span in _code_spans(text):
        for match in re.finditer(r"(?:^|[\s$(/])tradeops((?:\s+[^\s|;&#)]+)+)", span):
            try:
                tokens = shlex.split(match.group(1), comments=True)
            except ValueError:
                tokens = match.group(1).split()
            path: list[str] = []
            node = root
            i = 0
            while i < len(tokens):
                token = tokens[i]
                if not path and token in GLOBAL_OPTIONS_WITH_VALUE:
                    i += 2
                    continue
                if not re.fullmatch(r"[a-z][a-z0-9_-]*", token) or not hasattr(node, "commands"):
                    break
                path.append(token)
                node = node.commands.get(token)  # type: ignore[attr-defined]
                if node is None:
                    break
                i += 1
            if path:
                found.add(tuple(path))
    return found


def _app():
    from tradeops.cli.main import app

    return app


def test_the_extractor_reads_paths_and_skips_options() -> None:
    text = (
        "run `tradeops --home h pipelines run train --date 2020-01-02`\n"
        "```\n$ tradeops keys create --role reader\n```\nprose: tradeops turns data into signals"
    )
    assert mentioned_commands(text) == {("pipelines", "run"), ("keys", "create")}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_in_the_docs_exists(tradeops, tmp_path, doc: Path) -> None:
    commands = mentioned_commands(doc.read_text(encoding="utf-8"))
    for path in sorted(commands):
        result = tradeops(tmp_path / "home", *path, "--help")
        assert result.exit_code == 0, f"{doc.name}: `tradeops {' '.join(path)}` does not exist:\n{result.output}"


def test_the_docs_show_the_main_commands() -> None:
    """The tutorial and runbook are where a user finds these; a rename must update them."""
    shown = set().union(*(mentioned_commands(d.read_text(encoding="utf-8")) for d in DOCS))
    for path in [("demo",), ("serve",), ("monitor",), ("promote",), ("rollback",), ("keys", "create")]:
        assert path in shown, f"docs never show `tradeops {' '.join(path)}`"


def test_configuration_reference_matches_the_config_model() -> None:
    generated = _script("gen_config_docs").render()
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == generated, "docs/configuration.md is stale: run python scripts/gen_config_docs.py"
    from tradeops.config import Settings

    for name in Settings.model_fields:
        assert f"`{name}`" in committed


def test_api_reference_matches_the_openapi_spec() -> None:
    gen = _script("gen_api_docs")
    committed = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert committed == gen.render(gen.openapi_spec()), "docs/api.md is stale: run python scripts/gen_api_docs.py"
