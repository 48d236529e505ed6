"""Classification evaluation of BUY/SELL/HOLD signals: overall metrics, per-slice metrics, volatility regimes.

Classes are the ids of :data:`tradeops.features.labels.CLASSES` (BUY=0, SELL=1, HOLD=2); class names are accepted
too. Every metric is computed over all three classes (scikit-learn ``labels=[0, 1, 2]``, ``zero_division=0``): a class
that is never predicted has precision 0 and a class absent from a slice has recall 0 and F1 0. Those zeros are real
values (the model gave no useful signal for that class there), not a masked error, and they keep macro-F1 comparable
across slices because it always averages the same three classes.

Time convention for regimes: the realised volatility of date ``t`` uses closes up to and including ``t`` only, and
the low/mid/high cut points are fitted on a training window only (ARCHITECTURE.md section 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from tradeops.features.labels import CLASS_IDS, CLASSES

__all__ = [
    "REGIMES",
    "SLICE_COLUMNS",
    "UNKNOWN_REGIME",
    "assign_regime",
    "classification_metrics",
    "confusion_table",
    "evaluate_slices",
    "fit_vol_thresholds",
    "realized_volatility",
    "volatility_regime",
]

_LABELS: list[int] = list(range(len(CLASSES)))

#: Regime names from calm to turbulent; ``UNKNOWN_REGIME`` marks dates without a full volatility window.
REGIMES: tuple[str, ...] = ("low", "mid", "high")
UNKNOWN_REGIME = "unknown"

#: Columns of :func:`evaluate_slices`' result, in order.
SLICE_COLUMNS: tuple[str, ...] = (
    "slice",
    "value",
    "n",
    "accuracy",
    "macro_f1",
    "f1_BUY",
    "f1_SELL",
    "f1_HOLD",
    "recall_BUY",
    "recall_SELL",
)

# Slicing columns that may be absent from the frame: "year" is derived from "date", "vol_regime" is skipped.
_DERIVED_SLICES = frozenset({"year"})
_OPTIONAL_SLICES = frozenset({"vol_regime"})


# --------------------------------------------------------------------------------------------------------------------
# classification metrics
# --------------------------------------------------------------------------------------------------------------------


def _class_ids(y: Any, name: str) -> np.ndarray:
    """1-D class ids (int64) from ids (0, 1, 2) or class names; ValueError on anything else."""
    if y is None or isinstance(y, (str, bytes)) or np.ndim(y) != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class ids, got {type(y).__name__}")
    if isinstance(y, pd.Series):
        s = y.reset_index(drop=True)
    elif isinstance(y, np.ndarray):
        s = pd.Series(y)
    else:
        s = pd.Series(list(y))  # pandas infers int64 for ids and object for names or mixed values
    missing = s.isna().to_numpy()
    if missing.any():
        k = int(np.flatnonzero(missing)[0])
        raise ValueError(f"{name} has a missing class at position {k} ({int(missing.sum())} missing in all)")
    booleans = f"{name} must hold class ids 0..{len(CLASSES) - 1} or names {CLASSES}, got booleans"
    if pd.api.types.is_bool_dtype(s.dtype):
        raise ValueError(booleans)
    if not pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=object)
        is_name = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
        if len(values) and is_name.all():
            unknown = ~np.isin(values, np.asarray(CLASSES, dtype=object))
            if unknown.any():
                k = int(np.flatnonzero(unknown)[0])
                raise ValueError(f"{name} has unknown class {values[k]!r} at position {k}; valid: {', '.join(CLASSES)}")
            return np.fromiter((CLASS_IDS[v] for v in values), dtype=np.int64, count=len(values))
        if any(isinstance(v, (bool, np.bool_)) for v in values):
            raise ValueError(booleans)
    try:
        numeric = s.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} mixes class names and ids or holds non-numeric values") from None
    ok = np.isin(numeric, np.asarray(_LABELS, dtype=np.float64))
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        bad = s.iloc[k]
        bad = bad.item() if isinstance(bad, np.generic) else bad
        raise ValueError(f"{name} has unknown class id {bad!r} at position {k}; valid ids: 0..{len(CLASSES) - 1}")
    return numeric.astype(np.int64)


def classification_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Precision/recall/F1/support per class, macro/weighted F1, accuracy and the confusion matrix.

    ``y_true`` and ``y_pred`` are equal-length 1-D sequences of class ids (BUY=0, SELL=1, HOLD=2) or class names.
    Returns a JSON-ready dict:

    - ``n``, ``accuracy``, ``macro_f1``, ``weighted_f1``;
    - flat per-class keys ``precision_<C>``, ``recall_<C>``, ``f1_<C>``, ``support_<C>`` for C in ``CLASSES``
      (the names :mod:`tradeops.model.blessing` reads), and the same under ``per_class[C]``;
    - ``confusion_matrix``: 3x3 list of ints, rows = true class, columns = predicted class, both in ``CLASSES`` order;
    - ``classes``: the class names in that order.

    A class never predicted has precision 0, a class never true has recall 0 (``zero_division=0``); see the module
    docstring. Empty or mismatched input raises ValueError.
    """
    t = _class_ids(y_true, "y_true")
    p = _class_ids(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true and y_pred differ in length: {len(t)} vs {len(p)}")
    if len(t) == 0:
        raise ValueError("cannot evaluate an empty set of predictions (y_true and y_pred are empty)")

    precision, recall, f1, support = precision_recall_fscore_support(t, p, labels=_LABELS, zero_division=0)
    out: dict[str, Any] = {
        "n": len(t),
        "accuracy": float(accuracy_score(t, p)),
        "macro_f1": float(f1_score(t, p, labels=_LABELS, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(t, p, labels=_LABELS, average="weighted", zero_division=0)),
    }
    per_class: dict[str, dict[str, float | int]] = {}
    for i, cls in enumerate(CLASSES):
        stats: dict[str, float | int] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        per_class[cls] = stats
        for key, value in stats.items():
            out[f"{key}_{cls}"] = value
    out["per_class"] = per_class
    out["confusion_matrix"] = confusion_matrix(t, p, labels=_LABELS).astype(int).tolist()
    out["classes"] = list(CLASSES)
    return out


def confusion_table(cm: Any) -> str:
    """Plain-text 3x3 confusion matrix with class names: rows = true class, columns = predicted, plus row totals."""
    arr = np.asarray(cm)
    k = len(CLASSES)
    if arr.shape != (k, k):
        raise ValueError(f"confusion matrix must be {k}x{k} (rows true, columns predicted), got shape {arr.shape}")
    if arr.dtype == object or pd.api.types.is_bool_dtype(arr.dtype) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"confusion matrix must hold counts, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise ValueError("confusion matrix must hold non-negative whole counts")
    counts = arr.astype(np.int64)
    corner = "true \\ pred"
    header = [corner, *CLASSES, "total"]
    rows = [[cls, *(str(int(v)) for v in counts[i]), str(int(counts[i].sum()))] for i, cls in enumerate(CLASSES)]
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            [cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]
        ).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


# --------------------------------------------------------------------------------------------------------------------
# slices
# --------------------------------------------------------------------------------------------------------------------


def _year_of(frame: pd.DataFrame) -> pd.Series:
    if "date" not in frame.columns:
        raise ValueError("slicing by 'year' needs a 'year' or a 'date' column; the frame has neither")
    dates = frame["date"]
    if not pd.api.types.is_datetime64_any_dtype(dates.dtype):
        try:
            dates = pd.to_datetime(dates)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column 'date' cannot be read as dates: {exc}") from None
    return dates.dt.year


def evaluate_slices(
    frame: pd.DataFrame,
    *,
    y_true: str = "y_true",
    y_pred: str = "y_pred",
    by: Sequence[str] = ("ticker", "year", "vol_regime"),
) -> pd.DataFrame:
    """Metrics per slice: one row per distinct value of each column in ``by`` (columns :data:`SLICE_COLUMNS`).

    ``frame`` holds one row per (ticker, trading date) with class ids (or names) in ``y_true``/``y_pred``. ``year`` is
    derived from ``date`` when the frame has no ``year`` column; ``vol_regime`` is optional and skipped when absent
    (build it with :func:`volatility_regime`). Any other missing slicing column, a missing value in a slicing column
    or an empty frame raises ValueError. Rows follow the order of ``by``, values sorted within a slice.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(by, str):
        raise ValueError(f"by must be a sequence of column names, got the string {by!r}")
    by = list(by)
    if not by:
        raise ValueError("by names no slicing column")
    if len(set(by)) != len(by):
        raise ValueError(f"by names a column twice: {by}")
    for col in (y_true, y_pred):
        if col not in frame.columns:
            raise ValueError(f"frame has no column {col!r}; columns: {list(frame.columns)}")
    if frame.empty:
        raise ValueError("cannot evaluate slices of an empty frame")

    t = _class_ids(frame[y_true], y_true)
    p = _class_ids(frame[y_pred], y_pred)

    keys: dict[str, np.ndarray] = {}
    for col in by:
        if col in frame.columns:
            key = frame[col]
        elif col in _DERIVED_SLICES:
            key = _year_of(frame)
        elif col in _OPTIONAL_SLICES:
            continue
        else:
            raise ValueError(f"cannot slice by {col!r}: the frame has no such column; columns: {list(frame.columns)}")
        n_missing = int(key.isna().sum())
        if n_missing:
            raise ValueError(f"slicing column {col!r} has {n_missing} missing value(s); fill or drop them first")
        keys[col] = key.to_numpy()
    if not keys:
        raise ValueError(f"none of the slicing columns {by} is in the frame; columns: {list(frame.columns)}")

    rows: list[dict[str, Any]] = []
    for col, key in keys.items():
        codes, uniques = pd.factorize(key, sort=True)
        for code, value in enumerate(uniques):
            mask = codes == code
            m = classification_metrics(t[mask], p[mask])
            value = value.item() if isinstance(value, np.generic) else value
            rows.append({"slice": col, "value": value, **{c: m[c] for c in SLICE_COLUMNS[2:]}})
    out = pd.DataFrame(rows, columns=list(SLICE_COLUMNS))
    out["value"] = out["value"].astype(object)
    return out


# --------------------------------------------------------------------------------------------------------------------
# volatility regimes
# --------------------------------------------------------------------------------------------------------------------


def _check_close(close: pd.Series) -> None:
    if not isinstance(close, pd.Series):
        raise ValueError(f"close must be a pandas Series, got {type(close).__name__}")
    who = f"series {close.name!r}: " if close.name is not None else ""
    if not isinstance(close.index, pd.DatetimeIndex):
        raise ValueError(f"{who}index must be a DatetimeIndex of trading dates, got {type(close.index).__name__}")
    if close.index.hasnans or not close.index.is_monotonic_increasing or not close.index.is_unique:
        raise ValueError(f"{who}dates must be valid, unique and strictly increasing (one ticker's bars in order)")
    if not pd.api.types.is_numeric_dtype(close.dtype) or pd.api.types.is_bool_dtype(close.dtype):
        raise ValueError(f"{who}close must be numeric, got dtype {close.dtype}")
    values = close.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{who}close must be finite and > 0; got {values[i]} on {close.index[i].date()}")


def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"volatility window must be an int >= 2 (trading days), got {window!r}")


def realized_volatility(close: pd.Series, window: int = 20) -> pd.Series:
    """Trailing realised volatility: std (ddof=1) of the last ``window`` daily log returns, per day, not annualised.

    The value of date ``t`` uses closes ``t - window .. t`` only; the first ``window`` dates are NaN (warm-up).
    ``close`` is one ticker's adjusted close on a strictly increasing DatetimeIndex.
    """
    _check_close(close)
    _check_window(window)
    log_ret = np.log(close.astype(np.float64)).diff()
    return log_ret.rolling(window, min_periods=window).std(ddof=1).rename("realized_vol")


def _check_quantiles(quantiles: Sequence[float]) -> tuple[float, float]:
    try:
        q_lo, q_hi = (float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise ValueError(f"quantiles must be two numbers (low/mid and mid/high cut), got {quantiles!r}") from None
    if not (0.0 < q_lo < q_hi < 1.0):
        raise ValueError(f"quantiles must satisfy 0 < low < high < 1, got {quantiles!r}")
    return q_lo, q_hi


def fit_vol_thresholds(
    vol: pd.Series,
    *,
    train_index: pd.Index | Sequence[Any] | None = None,
    quantiles: Sequence[float] = (1 / 3, 2 / 3),
) -> tuple[float, float]:
    """Low/mid and mid/high volatility cut points: the ``quantiles`` of ``vol`` over the training window only.

    With ``train_index`` the fit reads ``vol.loc[train_index]`` and nothing else; without it every value of ``vol`` is
    taken to be training data, so pass only the training rows. Warm-up NaNs are ignored; a training window with no
    volatility value raises ValueError.
    """
    if not isinstance(vol, pd.Series):
        raise ValueError(f"vol must be a pandas Series, got {type(vol).__name__}")
    q_lo, q_hi = _check_quantiles(quantiles)
    if train_index is not None:
        train_dates = pd.Index(train_index)
        absent = train_dates.difference(vol.index)
        if len(absent):
            raise ValueError(f"{len(absent)} training date(s) are not in vol's index, first {absent[0]!r}")
        vol = vol.loc[train_index]
    try:
        values = vol.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"vol must be numeric, got dtype {vol.dtype}") from None
    if np.isinf(values).any() or (values < 0).any():
        raise ValueError("vol must be finite and >= 0 (NaN allowed only for warm-up)")
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("no volatility value in the training window (all warm-up NaN or empty); use a longer window")
    lo, hi = np.quantile(values, [q_lo, q_hi])
    return float(lo), float(hi)


def assign_regime(vol: pd.Series, thresholds: tuple[float, float]) -> pd.Series:
    """ "low" if vol <= lo, "mid" if lo < vol <= hi, "high" if vol > hi; NaN (warm-up) -> "unknown".

    Returns a ``string``-dtype Series named ``vol_regime`` on ``vol``'s index.
    """
    if not isinstance(vol, pd.Series):
        raise ValueError(f"vol must be a pandas Series, got {type(vol).__name__}")
    try:
        lo, hi = (float(x) for x in thresholds)
    except (TypeError, ValueError):
        raise ValueError(f"thresholds must be two numbers (lo, hi), got {thresholds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"thresholds must be finite with lo <= hi, got ({lo}, {hi})")
    try:
        values = vol.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"vol must be numeric, got dtype {vol.dtype}") from None
    names = np.select(
        [np.isnan(values), values <= lo, values <= hi],
        [UNKNOWN_REGIME, REGIMES[0], REGIMES[1]],
        default=REGIMES[2],
    ).astype(object)
    return pd.Series(pd.array(names, dtype="string"), index=vol.index, name="vol_regime")


def volatility_regime(
    close: pd.Series,
    window: int = 20,
    quantiles: Sequence[float] = (1 / 3, 2 / 3),
    *,
    thresholds: tuple[float, float] | None = None,
    train_index: pd.Index | Sequence[Any] | None = None,
) -> pd.Series:
    """ "low"/"mid"/"high"/"unknown" per date from trailing realised volatility (:func:`realized_volatility`).

    Give exactly one of ``thresholds`` (cut points fitted earlier, e.g. stored with a model) or ``train_index``
    (dates of ``close`` to fit the ``quantiles`` on, :func:`fit_vol_thresholds`); fitting on the whole series would
    leak the test period's volatility into the cut points, so it is refused. Warm-up dates are "unknown".
    """
    if (thresholds is None) == (train_index is None):
        raise ValueError(
            "give exactly one of thresholds (fitted cut points) or train_index (dates to fit them on); "
            "fitting on the whole series would leak future volatility"
        )
    vol = realized_volatility(close, window)
    if thresholds is None:
        thresholds = fit_vol_thresholds(vol, train_index=train_index, quantiles=quantiles)
    return assign_regime(vol, thresholds)
