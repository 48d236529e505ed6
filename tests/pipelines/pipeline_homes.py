"""Helpers of the pipelines tests (a module of its own name, importable from any test): tiny homes whose
``raw_bars`` read a csv directory cut from the sample.

``pipeline_settings(home, bars_dir, ...)`` builds settings for a one-ticker (default IBM) universe, 1-epoch training
on a short holdout and lax blessing (like ``trained_ibm``), baselines off; ``write_bars`` writes sample rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from tradeops.config import Settings, load_settings

LAX_BLESSING = {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None}
FAST_MODEL = {"blessing": LAX_BLESSING, "baselines": False, "test_days": 120, "train_years": 2.0}
SAMPLE_LAST = "2013-03-01"


def sample_lines(ticker: str) -> list[str]:
    """The bundled sample's CSV lines of ``ticker`` (header first, dates ascending)."""
    text = resources.files("tradeops.sample_data").joinpath(f"{ticker}.csv").read_text()
    return text.splitlines(keepends=True)


def write_bars(
    bars_dir: Path, tickers: Sequence[str] = ("IBM",), start: str = "2009-01-02", end: str | None = None
) -> Path:
    """Write ``<bars_dir>/<TICKER>.csv`` with the sample's rows dated ``start``..``end`` (Yahoo-style layout)."""
    bars_dir.mkdir(parents=True, exist_ok=True)
    for t in tickers:
        lines = sample_lines(t)
        rows = [ln for ln in lines[1:] if ln[:10] >= start and (end is None or ln[:10] <= end)]
        (bars_dir / f"{t}.csv").write_text(lines[0] + "".join(rows))
    return bars_dir


def pipeline_settings(
    home: Path, bars_dir: Path, *, universe: Sequence[str] = ("IBM",), model: dict | None = None, **pipelines
) -> Settings:
    """Settings of a tiny pipelines home reading ``bars_dir`` (csv source)."""
    cfg = {
        "universe": list(universe),
        "train_tickers": [universe[0]],
        "source": "csv",
        "source_path": str(bars_dir),
        "start_date": "2008-01-02",
        "epochs": 1,
        **pipelines,
    }
    return load_settings(home=home, model={**FAST_MODEL, **(model or {})}, pipelines=cfg)
