"""Baseline rules: expected signal dates on hand-made paths, no look-ahead, and a backtest of each."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeops.model.backtest import backtest
from tradeops.model.baselines import BASELINES, buy_and_hold_signals, rsi_signals, sma_cross_signals


def make_bars(closes, opens=None) -> pd.DataFrame:
    closes = np.asarray(closes, dtype=float)
    opens = closes if opens is None else np.asarray(opens, dtype=float)
    idx = pd.bdate_range("2021-01-04", periods=len(closes))
    return pd.DataFrame(
        {"open": opens, "high": np.maximum(opens, closes), "low": np.minimum(opens, closes), "close": closes},
        index=idx,
    )


def positions(signals: pd.Series, value: str) -> list[int]:
    return np.flatnonzero(signals.to_numpy() == value).tolist()


def test_registry_names():
    assert set(BASELINES) == {"buy_and_hold", "rsi_14_30_70", "sma_50_cross"}


def test_buy_and_hold_signals_buy_once_on_the_first_date():
    bars = make_bars([10, 9, 11, 12])
    s = buy_and_hold_signals(bars)
    assert s.index.equals(bars.index) and s.name == "signal"
    assert s.tolist() == ["BUY", "HOLD", "HOLD", "HOLD"]


def test_rsi_signals_on_a_rise_then_a_fall():
    # closes 10..24 (14 gains of 1), then falls of 1. Wilder RSI(14) at index 14 is 100; after k falls the average
    # gain is (13/14)^k and the average loss 1 - (13/14)^k, so RSI = 100 (13/14)^k:
    # > 70 while k <= 4 (indices 14..18), < 30 from k = 17 (index 31) on.
    closes = list(range(10, 25)) + list(range(23, 3, -1))
    bars = make_bars(closes)
    s = rsi_signals(bars)
    assert len(s) == 35
    assert positions(s, "SELL") == [14, 15, 16, 17, 18]
    assert positions(s, "BUY") == [31, 32, 33, 34]
    assert set(s.iloc[:14]) == {"HOLD"}  # warm-up
    assert BASELINES["rsi_14_30_70"](bars).equals(s)


def test_rsi_levels_are_parameters():
    closes = list(range(10, 25)) + list(range(23, 3, -1))
    s = rsi_signals(make_bars(closes), period=14, low=50, high=90)
    # 100 (13/14)^k > 90 for k <= 1, < 50 for k >= 10
    assert positions(s, "SELL") == [14, 15]
    assert positions(s, "BUY") == list(range(24, 35))


def test_sma_cross_signals_on_a_small_path():
    # SMA(3): idx 2: 10, 3: 10, 4: 10.67, 5: 11.67, 6: 11.33, 7: 10, 8: 8.33, 9: 9
    # idx 3 only touches the SMA (no cross); 4 crosses up; 6 crosses down; 9 crosses up again
    bars = make_bars([10, 10, 10, 10, 12, 13, 9, 8, 8, 11])
    s = sma_cross_signals(bars, period=3)
    assert positions(s, "BUY") == [4, 9]
    assert positions(s, "SELL") == [6]
    assert set(s.iloc[:3]) == {"HOLD"}


def test_sma_50_cross_from_the_registry():
    # flat at 100 for 55 days, 101 for 5 days, then 90: up-cross at 55, down-cross at 60
    bars = make_bars([100.0] * 55 + [101.0] * 5 + [90.0] * 5)
    s = BASELINES["sma_50_cross"](bars)
    assert positions(s, "BUY") == [55]
    assert positions(s, "SELL") == [60]


def test_baselines_reject_bad_input():
    bars = make_bars([10, 11, 12])
    with pytest.raises(ValueError, match="low < high"):
        rsi_signals(bars, low=70, high=30)
    with pytest.raises(ValueError, match="period >= 2"):
        sma_cross_signals(bars, period=1, ticker="AAA")
    with pytest.raises(ValueError, match="ticker AAA: bars are missing columns"):
        buy_and_hold_signals(bars.drop(columns="close"), ticker="AAA")
    bad = bars.copy()
    bad.iloc[1, bad.columns.get_loc("close")] = -1.0
    with pytest.raises(ValueError, match=r"close = -1.0 on 2021-01-05"):
        rsi_signals(bad)
    with pytest.raises(ValueError, match="DatetimeIndex"):
        sma_cross_signals(bars.reset_index(drop=True), period=2)


@st.composite
def bars_with_cut(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """A bar series, a copy whose bars after ``cut`` are replaced by unrelated ones, and ``cut`` (a row number)."""
    n = draw(st.integers(60, 160))
    cut = draw(st.integers(0, n - 2))
    seed, seed_tail = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    vol = draw(st.sampled_from([0.002, 0.02, 0.1]))

    def closes(seed: int) -> np.ndarray:
        return 50 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, vol, n)))

    base = closes(seed)
    other = base.copy()
    other[cut + 1 :] = closes(seed_tail)[cut + 1 :]
    return make_bars(base), make_bars(other), cut


@settings(max_examples=40, deadline=None)
@given(case=bars_with_cut())
def test_no_baseline_reads_a_bar_after_its_date(case):
    bars, changed, cut = case
    for name, rule in BASELINES.items():
        a, b = rule(bars), rule(changed)
        assert a.iloc[: cut + 1].equals(b.iloc[: cut + 1]), name
    for period in (3, 20):
        a, b = sma_cross_signals(bars, period=period), sma_cross_signals(changed, period=period)
        assert a.iloc[: cut + 1].equals(b.iloc[: cut + 1])


@pytest.mark.parametrize("mode", ["paper", "realistic"])
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_backtest_runs_on_each_baseline(name, mode):
    rng = np.random.default_rng(11)
    n = 250
    closes = 80 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, n)))
    opens = closes * np.exp(rng.normal(0, 0.005, n))
    bars = make_bars(closes, opens)
    signals = BASELINES[name](bars)
    r = backtest(bars, signals, mode=mode, ticker="AAA")
    assert (r.start, r.end) == (bars.index[0], bars.index[-1])
    m = r.metrics()
    for key in ("total_return", "annualized_return", "max_drawdown", "trades_per_year", "exposure"):
        assert math.isfinite(m[key]), key
    assert r.n_trades >= 1
    if name == "buy_and_hold":
        # the buy-and-hold baseline is exactly the benchmark every backtest carries
        assert r.n_trades == 1
        assert r.final_equity == pytest.approx(r.buy_and_hold.final_equity, rel=1e-12)
