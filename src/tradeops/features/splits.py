"""Leakage-safe walk-forward splits over trading dates.

Time conventions (ARCHITECTURE.md section 4):

- A row dated ``t`` holds features known after the close of ``t``; its label looks ``horizon`` trading days ahead
  and is known at the close of ``t + horizon`` (the row's ``label_known_at``).
- A fold is fitted at the start of its validation segment (model fit) and judged at the start of its test segment
  (decision time). Training as of a decision time ``T`` uses only rows whose label is known strictly before ``T``.

Layout of one fold on the trading-date axis (``E`` = ``embargo`` trading days that belong to no segment)::

    [ train (fit) ] E [ val ] E [ test ]

Every gap is measured in trading days of the ``dates`` index given to :func:`walk_forward`, so
``position(train_end) + embargo < position(val_start)`` and ``position(val_end) + embargo < position(test_start)``.
Because ``embargo >= horizon``, a label of the last train (val) day is known before the next segment starts on the
pooled calendar; :meth:`Fold.masks` additionally purges every row whose own ``label_known_at`` is not strictly before
the next segment start (a ticker with missing days can learn its label later than the pooled calendar suggests).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "Fold",
    "FoldMasks",
    "FoldSkippedWarning",
    "describe_folds",
    "walk_forward",
]


class FoldSkippedWarning(UserWarning):
    """A requested test window was skipped (no dates, or too little training history)."""


@dataclass(frozen=True, eq=False)
class FoldMasks:
    """Boolean row masks of one fold (numpy arrays aligned positionally with the rows given to ``Fold.masks``)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold; all bounds are trading dates, inclusive.

    ``train_*`` is the part the model is fitted on, ``val_*`` the validation tail (both ``None`` when the split was
    made with ``val_fraction=0``), ``test_*`` the out-of-sample window. Segments are time ordered and separated by
    the embargo; build folds with :func:`walk_forward` rather than by hand.
    """

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    val_start: pd.Timestamp | None
    val_end: pd.Timestamp | None
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def __post_init__(self) -> None:
        if (self.val_start is None) != (self.val_end is None):
            raise ValueError(f"fold {self.index}: val_start and val_end must both be set or both be None")
        bounds = [("train_start", self.train_start), ("train_end", self.train_end)]
        if self.val_start is not None:
            bounds += [("val_start", self.val_start), ("val_end", self.val_end)]
        bounds += [("test_start", self.test_start), ("test_end", self.test_end)]
        for name, value in bounds:
            if not isinstance(value, pd.Timestamp) or pd.isna(value):
                raise ValueError(f"fold {self.index}: {name} must be a pandas Timestamp, got {value!r}")
        for (name_a, a), (name_b, b) in zip(bounds, bounds[1:], strict=False):
            # Starts may equal their own end (one-day segment); consecutive segments must not touch.
            strict = name_a.endswith("_end")
            if (a >= b) if strict else (a > b):
                rel = "<" if strict else "<="
                raise ValueError(f"fold {self.index}: need {name_a} ({a.date()}) {rel} {name_b} ({b.date()})")

    @property
    def fit_time(self) -> pd.Timestamp:
        """The moment training data is cut off: ``val_start``, or ``test_start`` when there is no validation."""
        return self.val_start if self.val_start is not None else self.test_start

    def masks(
        self,
        dates: pd.Series | pd.Index | np.ndarray | Sequence[object],
        label_known_at: pd.Series | pd.Index | np.ndarray | Sequence[object],
    ) -> FoldMasks:
        """Boolean train/val/test masks for rows given by their trading ``dates`` and ``label_known_at``.

        Inputs are aligned by position (row ``i`` of both), not by index. A row is in

        - ``train`` iff ``train_start <= date <= train_end`` and ``label_known_at < val_start`` (``< test_start``
          without validation): the label must be known before the model is fitted;
        - ``val`` iff ``val_start <= date <= val_end`` and ``label_known_at < test_start``;
        - ``test`` iff ``test_start <= date <= test_end`` (labels are only used for scoring, after the fact).

        Rows with a missing ``label_known_at`` (label not known yet) are never in train or val.
        """
        d = _to_datetime_index(dates, "dates")
        k = _to_datetime_index(label_known_at, "label_known_at")
        if len(d) != len(k):
            raise ValueError(f"dates has {len(d)} rows but label_known_at has {len(k)}")
        if d.hasnans:
            first = int(np.flatnonzero(d.isna())[0])
            raise ValueError(f"dates has a missing value at row position {first}")
        known = ~k.isna()
        early = known & (k < d)
        if early.any():
            i = int(np.flatnonzero(early)[0])
            raise ValueError(
                f"row position {i}: label_known_at {k[i]} is before its date {d[i]}; labels cannot be known "
                "before the row's own close"
            )
        train = (d >= self.train_start) & (d <= self.train_end) & known & (k < self.fit_time)
        if self.val_start is not None:
            val = (d >= self.val_start) & (d <= self.val_end) & known & (k < self.test_start)
        else:
            val = np.zeros(len(d), dtype=bool)
        test = (d >= self.test_start) & (d <= self.test_end)
        return FoldMasks(
            train=np.asarray(train, dtype=bool),
            val=np.asarray(val, dtype=bool),
            test=np.asarray(test, dtype=bool),
        )


def walk_forward(
    dates: pd.DatetimeIndex | Sequence[object],
    *,
    test_years: Sequence[int] | None = None,
    test_days: int | None = None,
    train_years: float | None = 5,
    expanding: bool = False,
    embargo: int = 5,
    horizon: int = 5,
    val_fraction: float = 0.1,
    min_train_days: int = 250,
    strict: bool = False,
) -> list[Fold]:
    """Time-ordered walk-forward folds over trading ``dates``.

    ``dates`` are the trading dates available (pooled over tickers is fine: they are de-duplicated and sorted; a
    missing date is an error). Give exactly one of:

    - ``test_years``: one fold per calendar year; the test window is every trading date of that year;
    - ``test_days``: consecutive blocks of ``test_days`` trading dates, starting at the first date with enough
      history for a fold and tiling to the last date (the last block may be shorter).

    The training region of a fold is every date from its start to ``embargo`` trading days before the test start:
    sliding (default) starts ``train_years`` years (rounded to whole months) before the test start, clipped at the
    first date; ``expanding=True`` starts at the first date (``train_years`` is then ignored). Its last
    ``val_fraction`` (rounded, at least one day; ``0`` disables validation) is the validation tail, separated
    from the fit part by another ``embargo`` trading days. ``embargo`` must be ``>= horizon``, the label look-ahead
    in trading days.

    Windows that cannot form a fold (a test year without dates, or a fit part shorter than ``min_train_days``
    trading days) are skipped with a :class:`FoldSkippedWarning` naming the window and reason, or raise
    ``ValueError`` when ``strict=True``. In ``test_days`` mode the blocks before the first feasible one are not
    candidates and are not reported. No fold at all is a ``ValueError``. Fold indices count kept folds from 0.
    """
    idx = _validate_dates(dates)
    _check_int("embargo", embargo, minimum=0)
    _check_int("horizon", horizon, minimum=0)
    _check_int("min_train_days", min_train_days, minimum=1)
    if embargo < horizon:
        raise ValueError(
            f"embargo ({embargo} trading days) must be >= the label horizon ({horizon}): a shorter gap lets "
            "training labels see the test period"
        )
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if (test_years is None) == (test_days is None):
        raise ValueError("give exactly one of test_years (calendar years) or test_days (block length)")
    offset: pd.DateOffset | None = None
    if not expanding:
        if train_years is None:
            raise ValueError("sliding windows need train_years; pass expanding=True for an expanding window")
        if isinstance(train_years, bool) or not isinstance(train_years, (int, float)) or not train_years > 0:
            raise ValueError(f"train_years must be a positive number of years, got {train_years!r}")
        months = round(float(train_years) * 12)
        if months < 1:
            raise ValueError(f"train_years={train_years} is shorter than one month")
        offset = pd.DateOffset(months=months)

    values = idx.asi8  # int64 nanoseconds, for fast searchsorted

    def build(ts: int, te: int) -> tuple[tuple[int, int, int | None, int | None] | None, str]:
        """Positions (fit_start, fit_end, val_start, val_end) for a test window [ts, te], or a reason."""
        b = ts - embargo - 1  # last position of the training region (fit + embargo + val)
        if b < 0:
            return None, f"no trading dates before the {embargo}-day embargo"
        if offset is None:
            a = 0
        else:
            a = int(np.searchsorted(values, (idx[ts] - offset).value, side="left"))
        region = b - a + 1
        if val_fraction > 0:
            n_val = max(1, math.floor(val_fraction * region + 0.5))
            val_start = b - n_val + 1
            vs: int | None = val_start
            fe = val_start - embargo - 1
        else:
            vs = None
            fe = b
        n_fit = fe - a + 1
        if n_fit < min_train_days:
            return None, f"fit part has {max(n_fit, 0)} trading days, need min_train_days={min_train_days}"
        return (a, fe, vs, None if vs is None else b), ""

    windows: list[tuple[int, int, str]] = []  # (test start pos, test end pos, label)
    skipped: list[str] = []
    if test_years is not None:
        years = sorted({_check_int("test_years item", y, minimum=1) for y in test_years})
        if not years:
            raise ValueError("test_years is empty")
        for y in years:
            ts = int(np.searchsorted(values, pd.Timestamp(year=y, month=1, day=1, tz=idx.tz).value, side="left"))
            te = int(np.searchsorted(values, pd.Timestamp(year=y + 1, month=1, day=1, tz=idx.tz).value)) - 1
            if ts > te:
                skipped.append(f"test year {y}: no trading dates in that year")
                continue
            windows.append((ts, te, f"test year {y}"))
    else:
        n_days = _check_int("test_days", test_days, minimum=1)
        first = next((p for p in range(len(idx)) if build(p, min(p + n_days, len(idx)) - 1)[0] is not None), None)
        if first is None:
            raise ValueError(
                f"no fold fits in {len(idx)} trading dates ({idx[0].date()}..{idx[-1].date()}): the fit part "
                f"needs min_train_days={min_train_days} plus validation and {embargo}-day embargoes"
            )
        for ts in range(first, len(idx), n_days):
            te = min(ts + n_days, len(idx)) - 1
            windows.append((ts, te, f"test block {idx[ts].date()}..{idx[te].date()}"))

    folds: list[Fold] = []
    for ts, te, label in windows:
        pos, reason = build(ts, te)
        if pos is None:
            skipped.append(f"{label}: {reason}")
            continue
        a, fe, vs, ve = pos
        folds.append(
            Fold(
                index=len(folds),
                train_start=idx[a],
                train_end=idx[fe],
                val_start=None if vs is None else idx[vs],
                val_end=None if ve is None else idx[ve],
                test_start=idx[ts],
                test_end=idx[te],
            )
        )
    if skipped and strict:
        raise ValueError("walk_forward skipped windows (strict=True): " + "; ".join(skipped))
    for reason in skipped:
        warnings.warn(f"walk_forward skipped {reason}", FoldSkippedWarning, stacklevel=2)
    if not folds:
        raise ValueError("walk_forward produced no fold: " + "; ".join(skipped))
    return folds


def describe_folds(folds: Sequence[Fold], dates: pd.DatetimeIndex | Sequence[object] | None = None) -> pd.DataFrame:
    """One row per fold with its bounds; with ``dates``, also the number of trading dates in each segment."""
    rows = []
    idx = _validate_dates(dates) if dates is not None else None
    for f in folds:
        row: dict[str, object] = {
            "fold": f.index,
            "train_start": f.train_start,
            "train_end": f.train_end,
            "val_start": f.val_start,
            "val_end": f.val_end,
            "test_start": f.test_start,
            "test_end": f.test_end,
        }
        if idx is not None:
            row["n_train"] = int(((idx >= f.train_start) & (idx <= f.train_end)).sum())
            row["n_val"] = 0 if f.val_start is None else int(((idx >= f.val_start) & (idx <= f.val_end)).sum())
            row["n_test"] = int(((idx >= f.test_start) & (idx <= f.test_end)).sum())
        rows.append(row)
    columns = ["fold", "train_start", "train_end", "val_start", "val_end", "test_start", "test_end"]
    if idx is not None:
        columns += ["n_train", "n_val", "n_test"]
    return pd.DataFrame(rows, columns=columns).set_index("fold")


def _to_datetime_index(values: object, name: str) -> pd.DatetimeIndex:
    if not isinstance(values, (pd.Series, pd.Index)):
        values = np.asarray(values)
    try:
        return pd.DatetimeIndex(pd.to_datetime(values))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold dates: {exc}") from exc


def _validate_dates(dates: object) -> pd.DatetimeIndex:
    idx = _to_datetime_index(dates, "dates")
    if len(idx) == 0:
        raise ValueError("dates is empty")
    if idx.hasnans:
        raise ValueError("dates contains a missing value (NaT)")
    return idx.unique().sort_values()


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
