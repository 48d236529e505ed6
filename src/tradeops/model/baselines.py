"""Rule-based baseline strategies, evaluated with the same :func:`tradeops.model.backtest.backtest` as the model.

Each generator returns a Series named ``signal`` of BUY/SELL/HOLD on ``bars.index``; the signal of trading date
``t`` uses bars ``<= t`` only (it is known after the close of ``t``). Indicator warm-up rows are HOLD.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import talib

from tradeops.features.labels import BUY, HOLD, SELL
from tradeops.model.backtest import validate_prices

__all__ = ["BASELINES", "buy_and_hold_signals", "rsi_signals", "sma_cross_signals"]

SIGNAL_NAME = "signal"


def _who(ticker: str | None) -> str:
    return f"ticker {ticker}: " if ticker else ""


def _close(bars: pd.DataFrame, ticker: str | None) -> np.ndarray:
    validate_prices(bars, ("close",), ticker=ticker)
    return np.ascontiguousarray(bars["close"].to_numpy(dtype=np.float64))


def _check_period(period: int, minimum: int, rule: str, ticker: str | None) -> int:
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)):
        raise ValueError(f"{_who(ticker)}{rule}: period must be an int, got {period!r}")
    if period < minimum:
        raise ValueError(f"{_who(ticker)}{rule}: period = {period} (rule: period >= {minimum})")
    return int(period)


def _signals(index: pd.DatetimeIndex, buy: np.ndarray, sell: np.ndarray) -> pd.Series:
    values = np.where(buy, BUY, np.where(sell, SELL, HOLD)).astype(object)
    return pd.Series(values, index=index, name=SIGNAL_NAME, dtype=object)


def buy_and_hold_signals(bars: pd.DataFrame, *, ticker: str | None = None) -> pd.Series:
    """BUY on the first date, HOLD afterwards; the backtest closes the position at the window's end."""
    close = _close(bars, ticker)
    buy = np.zeros(len(close), dtype=bool)
    buy[0] = True
    return _signals(bars.index, buy, np.zeros_like(buy))


def rsi_signals(
    bars: pd.DataFrame, period: int = 14, low: float = 30.0, high: float = 70.0, *, ticker: str | None = None
) -> pd.Series:
    """Classic RSI rule on close: BUY when RSI(period) < ``low``, SELL when RSI > ``high``, else HOLD.

    RSI is TA-Lib's Wilder RSI (0..100) over closes ``<= t``; the first ``period`` rows (no RSI yet) are HOLD.
    Levels are strict (RSI exactly at ``low`` or ``high`` is HOLD). Repeated BUYs while long are no-ops in the
    backtest, so the rule enters on the first oversold close and exits on the first overbought one.
    """
    rule = "rsi_signals"
    p = _check_period(period, 2, rule, ticker)
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            raise ValueError(f"{_who(ticker)}{rule}: {name} must be a finite number, got {v!r}")
    if not 0 <= low < high <= 100:
        raise ValueError(f"{_who(ticker)}{rule}: low = {low}, high = {high} (rule: 0 <= low < high <= 100)")
    rsi = talib.RSI(_close(bars, ticker), timeperiod=p)
    with np.errstate(invalid="ignore"):  # warm-up NaN compares False -> HOLD
        return _signals(bars.index, rsi < low, rsi > high)


def sma_cross_signals(bars: pd.DataFrame, period: int = 50, *, ticker: str | None = None) -> pd.Series:
    """Close/SMA(period) crossover: BUY when ``close_t > sma_t`` and ``close_{t-1} <= sma_{t-1}``, SELL when
    ``close_t < sma_t`` and ``close_{t-1} >= sma_{t-1}``, else HOLD.

    SMA is the simple mean of the last ``period`` closes (TA-Lib ``SMA``); a cross needs the SMA on both t-1 and t,
    so the first ``period`` rows are HOLD.
    """
    p = _check_period(period, 2, "sma_cross_signals", ticker)
    close = _close(bars, ticker)
    sma = talib.SMA(close, timeperiod=p)
    prev_close = np.concatenate(([np.nan], close[:-1]))
    prev_sma = np.concatenate(([np.nan], sma[:-1]))
    with np.errstate(invalid="ignore"):  # NaN warm-up compares False -> HOLD
        buy = (close > sma) & (prev_close <= prev_sma)
        sell = (close < sma) & (prev_close >= prev_sma)
    return _signals(bars.index, buy, sell)


#: Baselines by stable name; each takes ``bars`` and returns signals on ``bars.index``.
BASELINES: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "buy_and_hold": buy_and_hold_signals,
    "rsi_14_30_70": partial(rsi_signals, period=14, low=30.0, high=70.0),
    "sma_50_cross": partial(sma_cross_signals, period=50),
}
