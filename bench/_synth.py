"""Synthetic universes for benchmarks: geometric random walks over real XNYS sessions (deterministic)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradeops.data.clean import sessions


def synthetic_bars(n_tickers: int, years: int, seed: int = 7):
    """Yield (ticker, DataFrame) with Yahoo-style columns Date, Open, High, Low, Close, Adj Close, Volume."""
    end = pd.Timestamp("2023-12-29")
    dates = sessions("XNYS", end - pd.DateOffset(years=years) + pd.Timedelta(days=1), end)
    rng = np.random.default_rng(seed)
    n = len(dates)
    for i in range(n_tickers):
        r = rng.normal(0.0003, 0.018, n)
        close = 50 * np.exp(np.cumsum(r))
        open_ = close * np.exp(rng.normal(0, 0.005, n))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, n)))
        vol = rng.integers(100_000, 5_000_000, n)
        div = np.cumprod(np.where(rng.random(n) < 0.016, 0.995, 1.0)[::-1])[::-1]  # quarterly-ish dividends
        adj = close * np.concatenate([div[1:], [1.0]])
        yield (
            f"T{i:04d}",
            pd.DataFrame(
                {
                    "Date": dates,
                    "Open": open_.round(4),
                    "High": high.round(4),
                    "Low": low.round(4),
                    "Close": close.round(4),
                    "Adj Close": adj.round(6),
                    "Volume": vol,
                }
            ),
        )
