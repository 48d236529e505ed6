"""Targets: the Sezer & Ozbayoglu (2018) CNN-TA BUY/SELL/HOLD labeller and when each label becomes known.

Time convention: the label of trading date ``t`` with window ``w`` looks ``h = (w - 1)/2`` trading days ahead, so
it is known only after the close of ``t + h`` (:func:`label_known_at`). Labels are targets, never features: their
column names (``label``, ``label_known_at``) are kept apart from feature names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tradeops.validation import check_trading_index

__all__ = [
    "BUY",
    "CLASSES",
    "CLASS_IDS",
    "HOLD",
    "LABEL_COLUMN",
    "LABEL_KNOWN_AT_COLUMN",
    "SELL",
    "decode_labels",
    "encode_labels",
    "label_horizon",
    "label_known_at",
    "label_sezer",
]

BUY, SELL, HOLD = "BUY", "SELL", "HOLD"
#: Class names in id order: BUY=0, SELL=1, HOLD=2.
CLASSES: tuple[str, ...] = (BUY, SELL, HOLD)
CLASS_IDS: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}

LABEL_COLUMN = "label"
LABEL_KNOWN_AT_COLUMN = "label_known_at"


def _who(series: pd.Series) -> str:
    return f"series {series.name!r}: " if series.name is not None else ""


def label_horizon(window: int) -> int:
    """Look-ahead ``h = (window - 1)/2`` in trading days; ``window`` must be an odd int >= 3."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise ValueError(f"label window must be an int, got {window!r}")
    if window < 3 or window % 2 == 0:
        raise ValueError(f"label window must be odd and >= 3 (a centred window), got {window}")
    return (int(window) - 1) // 2


def _check_index(index: pd.Index, who: str) -> None:
    check_trading_index(index, who, "")


def label_sezer(close: pd.Series, window: int = 11) -> pd.Series:
    """CNN-TA labels from adjusted close over a centred window of ``window`` trading days (h = (window-1)/2).

    For each date t with a full window [t-h, t+h]: SELL if the window's maximum is at t (checked first), else BUY if
    its minimum is at t, else HOLD. Ties go to the FIRST occurrence in the window, so a plateau that starts before t
    is not a peak at t, and a constant window is HOLD. The first h and last h dates have no full window and get a
    missing label (``pd.NA``), never HOLD. The label of t is known at the close of t+h.

    Unlike the paper's published code, which searched the whole price history rather than the window for the
    min/max position (turning some peaks/troughs into HOLD), the search is confined to the window; we do not copy
    that bug.

    Returns a ``string``-dtype Series named ``label`` on ``close``'s index with values in :data:`CLASSES` or NA.
    """
    if not isinstance(close, pd.Series):
        raise ValueError(f"close must be a pandas Series, got {type(close).__name__}")
    who = _who(close)
    h = label_horizon(window)
    _check_index(close.index, who)
    if not pd.api.types.is_numeric_dtype(close.dtype) or pd.api.types.is_bool_dtype(close.dtype):
        raise ValueError(f"{who}close must be numeric, got dtype {close.dtype}")
    values = close.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"{who}close is missing or non-finite on {close.index[int(bad[0])].date()} (rule: finite close)"
        )

    n = len(values)
    codes = np.full(n, -1, dtype=np.int8)
    if n >= window:
        win = sliding_window_view(values, window)  # row i covers dates i .. i+window-1, centre i+h
        sell = win.argmax(axis=1) == h  # argmax/argmin return the first occurrence: ties go to the earliest
        buy = ~sell & (win.argmin(axis=1) == h)
        codes[h : n - h] = np.where(sell, CLASS_IDS[SELL], np.where(buy, CLASS_IDS[BUY], CLASS_IDS[HOLD]))
    return decode_labels(pd.Series(codes, index=close.index).where(codes >= 0))


def label_known_at(index: pd.DatetimeIndex, window: int = 11) -> pd.Series:
    """For each date t, the trading date t+h at whose close t's label becomes known (NaT where t+h is beyond index)."""
    h = label_horizon(window)
    _check_index(index, "")
    pos = np.arange(len(index)) + h
    pos[pos >= len(index)] = -1
    known = index.take(pos, allow_fill=True, fill_value=pd.NaT)
    return pd.Series(known, index=index, name=LABEL_KNOWN_AT_COLUMN)


def encode_labels(labels: pd.Series) -> pd.Series:
    """Class names -> ids (BUY=0, SELL=1, HOLD=2) as nullable ``Int8``; missing labels stay ``<NA>``."""
    if not isinstance(labels, pd.Series):
        raise ValueError(f"labels must be a pandas Series, got {type(labels).__name__}")
    missing = labels.isna().to_numpy()
    present = labels[~missing]
    unknown = ~present.isin(CLASSES).to_numpy()
    if unknown.any():
        k = int(np.flatnonzero(unknown)[0])
        raise ValueError(f"unknown label {present.iloc[k]!r} at {present.index[k]}; valid: {', '.join(CLASSES)}")
    out = pd.Series(pd.array([pd.NA] * len(labels), dtype="Int8"), index=labels.index, name=labels.name)
    out[~missing] = present.map(CLASS_IDS).astype("int8").to_numpy()
    return out


def decode_labels(ids: pd.Series | np.ndarray) -> pd.Series:
    """Class ids (0, 1, 2; missing as NA/NaN) -> ``string`` Series of class names named ``label``."""
    s = ids if isinstance(ids, pd.Series) else pd.Series(np.asarray(ids))
    missing = s.isna().to_numpy()
    present = s[~missing]
    try:
        vals = present.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"class ids must be numeric, got dtype {s.dtype}") from None
    ok = np.isin(vals, np.arange(len(CLASSES), dtype=np.float64))
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"unknown class id {present.iloc[k]} at {present.index[k]}; valid ids: 0..{len(CLASSES) - 1}")
    names = np.empty(len(s), dtype=object)
    names[missing] = None
    names[~missing] = np.asarray(CLASSES, dtype=object)[vals.astype(np.int64)]
    name = s.name if isinstance(ids, pd.Series) and s.name is not None else LABEL_COLUMN
    return pd.Series(pd.array(names, dtype="string"), index=s.index, name=name)
