"""Benchmark: feature computation and the end-to-end feature build (rows/s), pinned to ONE core.

For each preset (cnn-ta: 225 features; thesis: the full pool) and dataset (the bundled sample; a synthetic universe,
default 500 tickers x 20 years) it prints one line each:
  compute  -- compute_features over every ticker's stored bars (in memory, no I/O);
  e2e      -- stored bars -> features + labels -> stored Delta tables, then read back (one ticker + row count).

    python bench/features.py [--tickers 500] [--years 20] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

from _synth import synthetic_bars  # noqa: E402
from tradeops.config import load_settings  # noqa: E402
from tradeops.data import store as st  # noqa: E402
from tradeops.data.clean import adjust  # noqa: E402
from tradeops.data.ingest import ingest  # noqa: E402
from tradeops.data.sources import SampleSource  # noqa: E402
from tradeops.features.store import FeatureSet, build_features, read_features, ticker_features  # noqa: E402


def store_synthetic(lake: st.Lake, n_tickers: int, years: int) -> int:
    """Write synthetic adjusted bars straight into the bars table (validation is bench/ingest.py's job)."""
    frames = []
    for ticker, df in synthetic_bars(n_tickers, years):
        parsed = df.rename(
            columns={
                "Date": "date",
                "Open": "open",
                "High": "high",
                "Low": "low",
                "Close": "close",
                "Adj Close": "adj_close",
                "Volume": "volume",
            }
        )
        parsed["volume"] = parsed["volume"].astype("float64")
        parsed["dividend"] = float("nan")
        parsed["split_coefficient"] = float("nan")
        frames.append(adjust(parsed).assign(ticker=ticker, source="synthetic"))
    bars = pd.concat(frames, ignore_index=True)
    lake.append(st.BARS, bars, {"operation": "bench_synthetic"})
    return len(bars)


def bench(name: str, lake: st.Lake) -> None:
    bars = lake.read_bars()
    groups = [(t, g.reset_index(drop=True)) for t, g in bars.groupby("ticker", sort=True)]
    n_rows = len(bars)
    for preset in ("cnn-ta", "thesis"):
        fs = FeatureSet.from_preset(preset)
        t0 = time.perf_counter()
        for t, g in groups:
            ticker_features(g, fs, t)
        dt = time.perf_counter() - t0
        print(
            f"features compute preset={preset} n_features={len(fs.defs)} dataset={name} rows={n_rows} "
            f"seconds={dt:.2f} rows_per_s={n_rows / dt:,.0f}",
            flush=True,
        )
        t0 = time.perf_counter()
        result = build_features(lake, fs)
        first = read_features(lake, fs, [groups[0][0]])
        stored = st.read_delta(lake.table(fs.table), columns=["ticker"]).num_rows
        dt = time.perf_counter() - t0
        if stored != n_rows or len(first) != len(groups[0][1]) or result.rows != n_rows:
            raise SystemExit(f"read-back mismatch: stored {stored}, expected {n_rows}")
        print(
            f"features e2e preset={preset} n_features={len(fs.defs)} dataset={name} rows={n_rows} "
            f"seconds={dt:.2f} rows_per_s={n_rows / dt:,.0f}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # the targets are per core
    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    try:
        settings = load_settings(home=tmp / "sample")
        ingest(SampleSource(), settings)
        bench("sample", st.lake_for(settings))
        if not args.skip_synthetic:
            lake = st.lake_for(load_settings(home=tmp / "synth"))
            store_synthetic(lake, args.tickers, args.years)
            bench(f"synthetic-{args.tickers}x{args.years}y", lake)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
