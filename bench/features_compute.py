"""Throughput of tradeops.features.indicators.compute_features on one core.

Synthetic 20-year (5040-row) geometric random walks, one per ticker, computed ticker by ticker.
Prints one line per preset: ``features_compute preset=... rows=... seconds=... rows_per_s=...``.

    OMP_NUM_THREADS=1 .venv/bin/python bench/features_compute.py [--preset cnn-ta|thesis|all] [--tickers 50]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy is imported

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tradeops.features.definitions import PRESETS, definitions_for  # noqa: E402
from tradeops.features.indicators import compute_features  # noqa: E402

ROWS = 5040  # 20 years x 252 trading days


def synthetic_bars(seed: int, rows: int = ROWS) -> pd.DataFrame:
    """Geometric random walk OHLCV with consistent high/low; prices in currency units, volume in shares."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, rows)))
    open_ = close * np.exp(rng.normal(0.0, 0.005, rows))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, rows))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, rows))
    volume = rng.lognormal(13.0, 0.5, rows)
    index = pd.bdate_range("2000-01-03", periods=rows)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="all", choices=[*PRESETS, "all"])
    parser.add_argument("--tickers", type=int, default=50)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    universe = [synthetic_bars(seed) for seed in range(args.tickers)]
    presets = PRESETS if args.preset == "all" else (args.preset,)
    for preset in presets:
        defs = definitions_for(preset)
        compute_features(universe[0], defs)  # warm caches and imports
        start = time.perf_counter()
        for bars in universe:
            compute_features(bars, defs)
        seconds = time.perf_counter() - start
        rows = ROWS * len(universe)
        print(
            f"features_compute preset={preset} features={len(defs)} rows={rows} "
            f"seconds={seconds:.3f} rows_per_s={rows / seconds:,.0f}".replace(",", "")
        )


if __name__ == "__main__":
    main()
