"""Shared test helpers: the committed bar fixtures and an in-process ``tradeops`` CLI runner.

Every CLI call names its own ``--home`` so each test owns its state, and runs with the developer's ``TRADEOPS_*``
variables removed and no ``tradeops.yaml``; nothing here touches the network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

BARS_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bars"


@pytest.fixture(scope="session")
def bars_fixtures() -> Path:
    """``tests/fixtures/bars`` (see its ``make_fixtures.py`` for how each file was cut from the sample)."""
    return BARS_FIXTURES


class CliResult:
    """Outcome of one in-process ``tradeops`` call."""

    def __init__(self, result):
        self.exit_code: int = result.exit_code
        self.stdout: str = result.stdout
        self.stderr: str = result.stderr
        self.output: str = result.output  # stdout and stderr interleaved, as a terminal shows them
        self.exception = result.exception

    def json(self) -> dict:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<CliResult exit={self.exit_code}>\n{self.output}"


@pytest.fixture(scope="session")
def tradeops(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., CliResult]:
    """``tradeops(home, *args, env=None)`` runs ``tradeops --home HOME *args`` in-process (``home=None``: no
    ``--home``) with an isolated environment plus ``env`` (a value of ``None`` removes a variable).

    An uncaught exception fails the test: a crash must never pass for "exit code 1, data rejected".
    """
    from typer.testing import CliRunner

    from tradeops.cli.main import app

    runner = CliRunner()
    no_config = tmp_path_factory.mktemp("no-config") / "tradeops.yaml"

    def run(home: Path | None, *args, env: dict[str, str | None] | None = None) -> CliResult:
        argv = ([] if home is None else ["--home", str(home)]) + [str(a) for a in args]
        isolated: dict[str, str | None] = {
            k: None for k in os.environ if k.startswith("TRADEOPS_") or k == "ALPHAVANTAGE_API_KEY"
        }
        isolated["TRADEOPS_CONFIG"] = str(no_config)
        result = runner.invoke(app, argv, env=isolated | (env or {}))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"tradeops {' '.join(argv)} crashed:\n{result.output}") from result.exception
        return CliResult(result)

    return run


@pytest.fixture(scope="session")
def trained_ibm(tmp_path_factory: pytest.TempPathFactory):
    """A home holding the sample's IBM bars and one registered, champion CNN-TA model (2 epochs, lax blessing).

    READ ONLY and shared by the whole session (training is the slowest step of the suite): MLflow records absolute
    artifact paths, so a copy would still point here. Returns ``(settings, train outcome)``.
    """
    from datetime import date

    from tradeops.config import load_settings
    from tradeops.data.ingest import ingest
    from tradeops.data.sources import SampleSource
    from tradeops.model.training import train_model

    home = tmp_path_factory.mktemp("trained-ibm") / "home"
    lax = {
        "blessing": {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None},
        "baselines": False,
    }
    settings = load_settings(home=home, model=lax)
    ingest(SampleSource(), settings, ["IBM"], today=date(2026, 11, 26))
    outcome = train_model(settings, preset="cnn-ta", tickers=["IBM"], epochs=2)
    return settings, outcome
