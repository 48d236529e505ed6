"""Shared input validators for frames of daily bars and series indexed by trading date (numpy and pandas only).

One place for the rules that indicators, labels and backtests all enforce, so none of them has to import another's
module (or TA-Lib) to reuse a check. Each raises ``ValueError`` naming the ticker (when given), the date and the
rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["BAR_COLUMNS", "check_trading_index", "check_value_columns", "validate_bars", "who_prefix"]

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
_PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")


def who_prefix(ticker: str | None) -> str:
    """``"ticker T: "`` for error messages (empty without a ticker)."""
    return f"ticker {ticker}: " if ticker else ""


def check_trading_index(idx: pd.Index, who: str = "", what: str = "bars") -> None:
    """Raise ``ValueError`` unless ``idx`` is a DatetimeIndex of trading dates: no NaT, strictly increasing."""
    what = f"{what} " if what else ""
    if not isinstance(idx, pd.DatetimeIndex):
        raise ValueError(f"{who}{what}index must be a DatetimeIndex of trading dates, got {type(idx).__name__}")
    if idx.hasnans:
        raise ValueError(f"{who}{what}index contains NaT (rule: dates must be valid)")
    if len(idx) > 1:
        bad = np.flatnonzero(np.diff(idx.asi8) <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(
                f"{who}{what}dates must be strictly increasing and unique: {idx[i].date()} follows "
                f"{idx[i - 1].date()} (rule: strictly increasing dates)"
            )


def validate_bars(bars: pd.DataFrame, *, ticker: str | None = None) -> None:
    """Raise ``ValueError`` unless ``bars`` is one ticker's daily OHLCV frame fit for indicators.

    Rules: DatetimeIndex strictly increasing (unique, no NaT); columns open/high/low/close/volume numeric and
    finite; prices > 0; volume >= 0.
    """
    who = who_prefix(ticker)
    if not isinstance(bars, pd.DataFrame):
        raise ValueError(f"{who}bars must be a pandas DataFrame, got {type(bars).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"{who}bars are missing columns {missing} (need {list(BAR_COLUMNS)})")
    idx = bars.index
    check_trading_index(idx, who, "bars")
    check_value_columns(bars, _PRICE_COLUMNS, who, rule="prices > 0", strictly_positive=True)
    check_value_columns(
        bars, [c for c in BAR_COLUMNS if c not in _PRICE_COLUMNS], who, rule="volume >= 0", strictly_positive=False
    )


def check_value_columns(
    bars: pd.DataFrame, columns: Sequence[str], who: str, *, rule: str, strictly_positive: bool = True
) -> None:
    """Raise ``ValueError`` naming column, date and rule unless each column is numeric, finite and > 0
    (``>= 0`` when ``strictly_positive`` is False)."""
    idx = bars.index
    for col in columns:
        s = bars[col]
        if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            raise ValueError(f"{who}column {col!r} must be numeric, got dtype {s.dtype}")
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad_mask = ~np.isfinite(v)
        if bad_mask.any():
            i = int(np.flatnonzero(bad_mask)[0])
            raise ValueError(f"{who}{col} is missing or non-finite on {idx[i].date()} (rule: finite values)")
        bad_mask = v <= 0 if strictly_positive else v < 0
        if bad_mask.any():
            i = int(np.flatnonzero(bad_mask)[0])
            raise ValueError(f"{who}{col} = {float(v[i])!r} on {idx[i].date()} (rule: {rule})")
