"""Benchmark: ingest + validate + store throughput (rows/s).

Prints one result line per dataset:
  the bundled sample (5 tickers, 12k rows) and a synthetic universe (default 500 tickers x 20 years of XNYS sessions,
  Yahoo-style CSV files written to a temp dir first; writing them is not timed).

    python bench/ingest.py [--tickers 500] [--years 20] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tradeops.config import load_settings
from tradeops.data.clean import sessions
from tradeops.data.ingest import ingest
from tradeops.data.sources import CsvSource, SampleSource


def synthetic_universe(out: Path, n_tickers: int, years: int, seed: int = 7) -> int:
    """Write ``n_tickers`` Yahoo-style CSVs of geometric random walks over real XNYS sessions; returns rows."""
    end = pd.Timestamp("2023-12-29")
    dates = sessions("XNYS", end - pd.DateOffset(years=years) + pd.Timedelta(days=1), end)
    rng = np.random.default_rng(seed)
    n = len(dates)
    date_s = dates.strftime("%Y-%m-%d")
    for i in range(n_tickers):
        r = rng.normal(0.0003, 0.018, n)
        close = 50 * np.exp(np.cumsum(r))
        open_ = close * np.exp(rng.normal(0, 0.005, n))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, n)))
        vol = rng.integers(100_000, 5_000_000, n)
        div = np.cumprod(np.where(rng.random(n) < 0.016, 0.995, 1.0)[::-1])[::-1]  # quarterly-ish dividends
        adj = close * np.concatenate([div[1:], [1.0]])
        df = pd.DataFrame({"Date": date_s, "Open": open_.round(4), "High": high.round(4), "Low": low.round(4),
                           "Close": close.round(4), "Adj Close": adj.round(6), "Volume": vol})
        df.to_csv(out / f"T{i:04d}.csv", index=False)
    return n * n_tickers


def run(name: str, source, home: Path) -> None:
    settings = load_settings(home=home)
    t0 = time.perf_counter()
    report = ingest(source, settings)
    dt = time.perf_counter() - t0
    rows = sum(r.rows_written for r in report.results)
    bad = sum(r.status == "quarantined" for r in report.results)
    print(f"ingest dataset={name} tickers={len(report.results)} rows={rows} quarantined={bad} "
          f"seconds={dt:.2f} rows_per_s={rows / dt:,.0f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    try:
        run("sample", SampleSource(), tmp / "home-sample")
        if not args.skip_synthetic:
            src = tmp / "csv"
            src.mkdir()
            synthetic_universe(src, args.tickers, args.years)
            run(f"synthetic-{args.tickers}x{args.years}y", CsvSource(src), tmp / "home-synth")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
