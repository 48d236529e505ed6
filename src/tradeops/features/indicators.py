"""Indicator computation for one ticker's bars; formulas are documented in :mod:`tradeops.features.definitions`.

Time convention: the row for trading date ``t`` uses bars ``<= t`` only; warm-up rows are NaN (never filled).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import talib

from tradeops.features.definitions import FeatureDef, impl_version, min_window
from tradeops.validation import BAR_COLUMNS, check_trading_index, check_value_columns, validate_bars, who_prefix

__all__ = ["BAR_COLUMNS", "check_trading_index", "check_value_columns", "compute_features", "validate_bars"]


class _Bars:
    """Contiguous float64 inputs plus a cache of intermediates shared between features (EMA, WMA, sums...)."""

    __slots__ = ("open", "high", "low", "close", "volume", "n", "_cache")

    def __init__(self, bars: pd.DataFrame) -> None:
        def arr(col: str) -> np.ndarray:
            return np.ascontiguousarray(bars[col].to_numpy(dtype=np.float64))

        self.open = arr("open")
        self.high = arr("high")
        self.low = arr("low")
        self.close = arr("close")
        self.volume = arr("volume")
        self.n = len(self.close)
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def _get(self, key: tuple[str, int], make: Callable[[], np.ndarray]) -> np.ndarray:
        got = self._cache.get(key)
        if got is None:
            got = make()
            self._cache[key] = got
        return got

    def ema(self, p: int) -> np.ndarray:
        return self._get(("ema", p), lambda: talib.EMA(self.close, p))

    def wma(self, p: int) -> np.ndarray:
        return self._get(("wma", p), lambda: talib.WMA(self.close, p))

    def sma(self, p: int) -> np.ndarray:
        return self._get(("sma", p), lambda: talib.SMA(self.close, p))

    def std(self, p: int) -> np.ndarray:
        return self._get(("std", p), lambda: talib.STDDEV(self.close, p, 1.0))

    def volume_sum(self, p: int) -> np.ndarray:
        return self._get(("vsum", p), lambda: talib.SUM(self.volume, p))

    def traded_days(self, p: int) -> np.ndarray:
        # Sums of 0/1 are exact, unlike a running sum of volumes, so "no volume in window" is detected exactly.
        return self._get(("vdays", p), lambda: talib.SUM((self.volume > 0).astype(np.float64), p))

    def money_flow_volume(self) -> np.ndarray:
        def make() -> np.ndarray:
            h, lo, c = self.high, self.low, self.close
            rng = h - lo
            clv = np.zeros(self.n)
            np.divide((c - lo) - (h - c), rng, out=clv, where=rng > 0)
            return clv * self.volume

        return self._get(("mfv", 0), make)


def _rel_to_close(b: _Bars, x: np.ndarray, out: np.ndarray) -> None:
    """out = (close - x)/close."""
    np.subtract(b.close, x, out=out)
    np.divide(out, b.close, out=out)


def _scaled(x: np.ndarray, scale: float, shift: float, out: np.ndarray) -> None:
    """out = x*scale + shift."""
    np.multiply(x, scale, out=out)
    if shift:
        np.add(out, shift, out=out)


def _rsi(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.RSI(b.close, n), 1 / 50, -1.0, out)


def _willr(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.WILLR(b.high, b.low, b.close, n), 1 / 100, 0.0, out)


def _wma(b: _Bars, n: int, out: np.ndarray) -> None:
    _rel_to_close(b, b.wma(n), out)


def _ema(b: _Bars, n: int, out: np.ndarray) -> None:
    _rel_to_close(b, b.ema(n), out)


def _sma(b: _Bars, n: int, out: np.ndarray) -> None:
    _rel_to_close(b, b.sma(n), out)


def hull_moving_average(
    close: np.ndarray, n: int, *, wma_half: np.ndarray | None = None, wma_full: np.ndarray | None = None
) -> np.ndarray:
    """HMA_n = WMA(2*WMA(close, n//2) - WMA(close, n), isqrt(n)); price units; NaN for the first n+isqrt(n)-2 rows."""
    half = talib.WMA(close, n // 2) if wma_half is None else wma_half
    full = talib.WMA(close, n) if wma_full is None else wma_full
    raw = 2.0 * half - full
    # TA-Lib's wrapper skips the leading NaNs of ``raw`` (the WMA_n warm-up), so the outer WMA starts there.
    return talib.WMA(raw, math.isqrt(n))


def _hma(b: _Bars, n: int, out: np.ndarray) -> None:
    _rel_to_close(b, hull_moving_average(b.close, n, wma_half=b.wma(n // 2), wma_full=b.wma(n)), out)


def _tema(b: _Bars, n: int, out: np.ndarray) -> None:
    _rel_to_close(b, talib.TEMA(b.close, n), out)


def _cci(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.CCI(b.high, b.low, b.close, n), 1 / 100, 0.0, out)


def _cmo(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.CMO(b.close, n), 1 / 100, 0.0, out)


def _macd(b: _Bars, n: int, out: np.ndarray) -> None:
    np.subtract(b.ema(n), b.ema(2 * n), out=out)
    np.divide(out, b.close, out=out)


def _ppo(b: _Bars, n: int, out: np.ndarray) -> None:
    np.divide(b.ema(n), b.ema(2 * n), out=out)
    np.subtract(out, 1.0, out=out)


def _roc(b: _Bars, n: int, out: np.ndarray) -> None:
    out[:] = talib.ROCP(b.close, n)


def chaikin_money_flow(mfv_sum: np.ndarray, volume_sum: np.ndarray, traded_days: np.ndarray, out: np.ndarray) -> None:
    """out = sum(MFV, n)/sum(volume, n), 0 where the window traded no volume, NaN where the sums are NaN."""
    np.divide(mfv_sum, volume_sum, out=out, where=traded_days > 0)
    out[traded_days == 0] = 0.0
    out[np.isnan(traded_days)] = np.nan


def _cmf(b: _Bars, n: int, out: np.ndarray) -> None:
    chaikin_money_flow(talib.SUM(b.money_flow_volume(), n), b.volume_sum(n), b.traded_days(n), out)


def _dx(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.DX(b.high, b.low, b.close, n), 1 / 100, 0.0, out)


def _sar(b: _Bars, n: int, out: np.ndarray) -> None:
    sar = talib.SAR(b.high, b.low, acceleration=0.2 / n, maximum=2.0 / n)
    np.subtract(sar, b.close, out=out)
    np.divide(out, b.close, out=out)


def _mfi(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.MFI(b.high, b.low, b.close, b.volume, n), 1 / 50, -1.0, out)


def _bb_ratio(num: np.ndarray, sd: np.ndarray, zero_value: float, out: np.ndarray) -> None:
    """out = num/sd, ``zero_value`` where sd == 0, NaN where sd is NaN."""
    np.divide(num, sd, out=out, where=sd > 0)
    out[sd == 0] = zero_value
    out[np.isnan(sd)] = np.nan


def _bbp(b: _Bars, n: int, out: np.ndarray) -> None:
    # %B = (close - (sma - 2sd))/(4sd) = (close - sma)/(4sd) + 0.5
    sd = b.std(n)
    _bb_ratio(b.close - b.sma(n), 4.0 * sd, 0.0, out)
    np.add(out, 0.5, out=out)


def _bbw(b: _Bars, n: int, out: np.ndarray) -> None:
    np.multiply(b.std(n), 4.0, out=out)
    np.divide(out, b.sma(n), out=out)


def _adx(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.ADX(b.high, b.low, b.close, n), 1 / 100, 0.0, out)


def _natr(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.NATR(b.high, b.low, b.close, n), 1 / 100, 0.0, out)


def _aroonosc(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.AROONOSC(b.high, b.low, n), 1 / 100, 0.0, out)


def _trix(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.TRIX(b.close, n), 1 / 100, 0.0, out)


def _ultosc(b: _Bars, n: int, out: np.ndarray) -> None:
    _scaled(talib.ULTOSC(b.high, b.low, b.close, n, 2 * n, 4 * n), 1 / 50, -1.0, out)


def _volz(b: _Bars, n: int, out: np.ndarray) -> None:
    sd = talib.STDDEV(b.volume, n, 1.0)
    _bb_ratio(b.volume - talib.SMA(b.volume, n), sd, 0.0, out)


_COMPUTE: dict[str, Callable[[_Bars, int, np.ndarray], None]] = {
    "RSI": _rsi,
    "WILLR": _willr,
    "WMA": _wma,
    "EMA": _ema,
    "SMA": _sma,
    "HMA": _hma,
    "TEMA": _tema,
    "CCI": _cci,
    "CMO": _cmo,
    "MACD": _macd,
    "PPO": _ppo,
    "ROC": _roc,
    "CMF": _cmf,
    "DX": _dx,
    "SAR": _sar,
    "MFI": _mfi,
    "BBP": _bbp,
    "BBW": _bbw,
    "ADX": _adx,
    "NATR": _natr,
    "AROONOSC": _aroonosc,
    "TRIX": _trix,
    "ULTOSC": _ultosc,
    "VOLZ": _volz,
}


def compute_features(bars: pd.DataFrame, defs: Sequence[FeatureDef], *, ticker: str | None = None) -> pd.DataFrame:
    """Features of ONE ticker's adjusted daily bars, one float64 column per def, in the given order.

    ``bars``: DatetimeIndex of trading dates (strictly increasing), columns open/high/low/close/volume, prices
    already split/dividend adjusted. Row ``t`` uses bars ``<= t`` only; warm-up rows are NaN. ``ticker`` only
    names the series in error messages.
    """
    who = who_prefix(ticker)
    defs = list(defs)
    if not defs:
        raise ValueError(f"{who}no feature definitions given")
    names = [d.name for d in defs]
    if len(set(names)) != len(names):
        dup = sorted({x for x in names if names.count(x) > 1})
        raise ValueError(f"{who}duplicate feature names {dup}")
    for d in defs:
        if not isinstance(d, FeatureDef):
            raise ValueError(f"{who}expected FeatureDef, got {type(d).__name__}")
        if d.indicator not in _COMPUTE:
            raise ValueError(
                f"{who}feature {d.name!r}: unknown indicator {d.indicator!r}; known: {', '.join(_COMPUTE)}"
            )
        if d.impl_version != impl_version(d.indicator):
            # The version hash names impl_version; computing other numbers under it would mislabel a table.
            raise ValueError(
                f"{who}feature {d.name!r}: impl_version {d.impl_version} is not the current implementation "
                f"{impl_version(d.indicator)} of {d.indicator}; rebuild the definitions from "
                "tradeops.features.definitions"
            )
        if d.window < min_window(d.indicator):
            raise ValueError(
                f"{who}feature {d.name!r}: window {d.window} below the minimum {min_window(d.indicator)} "
                f"for {d.indicator}"
            )
    validate_bars(bars, ticker=ticker)

    b = _Bars(bars)
    # Rows are features so each column fills contiguous memory; the transpose is the (rows, features) frame
    # pandas stores as one block without copying.
    values = np.empty((len(defs), b.n), dtype=np.float64)
    if b.n:
        for j, d in enumerate(defs):
            _COMPUTE[d.indicator](b, d.window, values[j])
    return pd.DataFrame(values.T, index=bars.index, columns=pd.Index(names), copy=False)
