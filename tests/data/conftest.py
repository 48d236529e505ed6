"""Fixtures of the Data-level tests: fixture bar files as text frames, lakes of test homes, a prepared sample lake."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tradeops.data.store import Lake


@pytest.fixture(scope="session")
def lake_of() -> Callable[[Path], Lake]:
    """``lake_of(home)``: the lake of a tradeops home, as the CLI opens it with ``--home`` (``<home>/lake``)."""
    return lambda home: Lake(str((Path(home) / "lake").resolve()))


def _write_bars(df: pd.DataFrame, directory: Path, ticker: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ticker}.csv"
    df.to_csv(path, index=False, lineterminator="\n")
    return path


@pytest.fixture(scope="session")
def write_bars() -> Callable[[pd.DataFrame, Path, str], Path]:
    """``write_bars(df, dir, ticker)`` writes ``dir/<TICKER>.csv`` (LF line ends, no index) and returns its path."""
    return _write_bars


@pytest.fixture(scope="session")
def copy_home() -> Callable[[Path, Path], Path]:
    """``copy_home(src, dst)`` copies a prepared home (Delta tables, reports) so a test may change it freely."""
    return lambda src, dst: Path(shutil.copytree(src, dst))


def _text_frame(path: Path) -> pd.DataFrame:
    # Strings, so writing the frame back reproduces every value byte for byte.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def ibm_300(bars_fixtures: Path) -> pd.DataFrame:
    """IBM's first 300 sample sessions (2000-03-01..2001-05-08), Yahoo-style, as strings. Copy before changing."""
    return _text_frame(bars_fixtures / "yahoo" / "IBM.csv")


@pytest.fixture(scope="session")
def msft_300(bars_fixtures: Path) -> pd.DataFrame:
    """MSFT's first 300 sample sessions (same dates as ``ibm_300``), Yahoo-style, as strings. Copy before changing."""
    return _text_frame(bars_fixtures / "yahoo" / "MSFT.csv")


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory, tradeops) -> tuple[Path, dict]:
    """A home holding the whole bundled sample, ingested once, and that run's JSON report. READ ONLY: a test that
    writes copies it first with ``copy_home``."""
    base = tmp_path_factory.mktemp("sample")
    result = tradeops(base / "home", "ingest", "--source", "sample", "--json")
    assert result.exit_code == 0, result.output
    return base / "home", result.json()
