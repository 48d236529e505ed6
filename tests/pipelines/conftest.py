"""Fixtures of the pipelines tests (helpers in ``pipeline_homes``): tiny homes whose ``raw_bars`` read a csv
directory cut from the sample."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from pipeline_homes import pipeline_settings, write_bars

from tradeops.config import Settings


@pytest.fixture
def pipeline_home(tmp_path: Path) -> Settings:
    """Settings for a fresh home with IBM bars 2009-01-02..2013-03-01 in a csv directory (universe: IBM)."""
    return pipeline_settings(tmp_path / "home", write_bars(tmp_path / "bars"))


@pytest.fixture
def make_pipeline_home(tmp_path: Path) -> Callable[..., Settings]:
    """``make_pipeline_home(name, tickers=("IBM",), start=..., end=..., **pipelines)`` -> settings of a new home."""

    def make(name: str = "home", tickers: Sequence[str] = ("IBM",), start: str = "2009-01-02", end=None, **kw):
        bars = write_bars(tmp_path / f"{name}-bars", tickers, start, end)
        return pipeline_settings(tmp_path / name, bars, universe=tickers, **kw)

    return make
