"""Post-processing rules that turn a classifier's class probabilities into BUY/SELL/HOLD signals.

Probabilities are ``(n, 3)`` arrays whose columns are ``p_BUY, p_SELL, p_HOLD`` (the order of
:data:`~tradeops.features.labels.CLASSES`); row ``i`` is the prediction for one trading date, made after that date's
close. Signals are the strings :data:`BUY`, :data:`SELL`, :data:`HOLD`.

Every rule here is pure and fitted on nothing but what the caller passes: :func:`fit_thresholds` sees validation
probabilities and a caller-supplied score, never test data. :func:`holding_rules` replays the long-only position state
machine of :mod:`tradeops.model.backtest` (flat + BUY opens, long + SELL closes, BUY while long and SELL while flat are
no-ops) and assumes every actionable signal fills (the backtest may still drop a BUY it cannot afford, or a signal on
the window's last day).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradeops.features.labels import BUY, CLASSES, HOLD, SELL
from tradeops.validation import check_trading_index

__all__ = [
    "DEFAULT_GRID",
    "Thresholds",
    "argmax_signals",
    "fit_thresholds",
    "holding_rules",
    "mean_proba",
    "threshold_signals",
]

#: Candidate thresholds for :func:`fit_thresholds` (probabilities; 0.34 is just above a uniform 1/3).
DEFAULT_GRID: tuple[float, ...] = (0.34, 0.40, 0.45, 0.50, 0.55, 0.60, 0.70, 0.80)

_I_BUY, _I_SELL = CLASSES.index(BUY), CLASSES.index(SELL)


def _check_proba(proba: np.ndarray, what: str = "proba") -> np.ndarray:
    """``proba`` as a float64 ``(n, 3)`` array; ``ValueError`` naming the rule when its shape or values are wrong."""
    try:
        arr = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numeric class probabilities, got {type(proba).__name__}") from None
    if arr.ndim != 2 or arr.shape[1] != len(CLASSES):
        raise ValueError(
            f"{what} has shape {arr.shape} (rule: shape (n, {len(CLASSES)}), columns p_{', p_'.join(CLASSES)})"
        )
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"{what} row {int(bad[0])} is not finite: {arr[bad[0]].tolist()} (rule: finite probabilities)")
    return arr


def _check_threshold(value: float, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{where}: {name} = {value!r} (rule: a probability, 0 <= {name} <= 1)")
    return v


def threshold_signals(proba: np.ndarray, buy: float, sell: float) -> np.ndarray:
    """Signals from class probabilities with a confidence threshold per side.

    Rule, per row: BUY where ``p_BUY >= buy`` and ``p_BUY >= p_SELL``; SELL where ``p_SELL >= sell`` and
    ``p_SELL > p_BUY``; HOLD otherwise (``p_HOLD`` itself is not compared). ``buy``/``sell`` are probabilities in
    ``[0, 1]``. This is not :func:`argmax_signals` at ``(1/3, 1/3)``: ``(0.35, 0.05, 0.60)`` is BUY here and HOLD by
    argmax. Returns an object array of ``"BUY"``/``"SELL"``/``"HOLD"``, one per row.
    """
    p = _check_proba(proba)
    b = _check_threshold(buy, "buy", "threshold_signals")
    s = _check_threshold(sell, "sell", "threshold_signals")
    p_buy, p_sell = p[:, _I_BUY], p[:, _I_SELL]
    out = np.full(len(p), HOLD, dtype=object)
    out[(p_buy >= b) & (p_buy >= p_sell)] = BUY
    out[(p_sell >= s) & (p_sell > p_buy)] = SELL
    return out


def argmax_signals(proba: np.ndarray) -> np.ndarray:
    """Signals as the most probable class per row; ties go to the first class in ``CLASSES`` order (BUY, SELL, HOLD).

    Returns an object array of ``"BUY"``/``"SELL"``/``"HOLD"``, one per row.
    """
    p = _check_proba(proba)
    return np.asarray(CLASSES, dtype=object)[np.argmax(p, axis=1)]


@dataclass(frozen=True)
class Thresholds:
    """A pair of :func:`threshold_signals` thresholds (probabilities in ``[0, 1]``)."""

    buy: float
    sell: float

    def __post_init__(self) -> None:
        _check_threshold(self.buy, "buy", "Thresholds")
        _check_threshold(self.sell, "sell", "Thresholds")


def _check_grid(grid: Sequence[float]) -> list[float]:
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence):
        raise ValueError(f"fit_thresholds: grid must be a sequence of probabilities, got {type(grid).__name__}")
    if len(grid) == 0:
        raise ValueError("fit_thresholds: grid is empty (rule: at least one candidate threshold)")
    values = [_check_threshold(g, f"grid[{i}]", "fit_thresholds") for i, g in enumerate(grid)]
    return sorted(set(values))


def fit_thresholds(
    proba: np.ndarray,
    score: Callable[[np.ndarray], float],
    grid: Sequence[float] = DEFAULT_GRID,
) -> Thresholds:
    """The ``(buy, sell)`` pair from ``grid x grid`` whose :func:`threshold_signals` maximise ``score(signals)``.

    ``proba``: the fitting (validation) window's probabilities, ``(n, 3)``; ``score``: a caller-supplied objective of
    the signal array (e.g. the validation window's net backtest return), higher is better. Exhaustive search; duplicate
    grid values count once. Tie rule: among pairs with exactly equal scores the one with the smallest
    ``buy + sell`` wins, then the smallest ``buy`` -- the lower thresholds, i.e. the most trading and the closest to
    argmax behaviour. A score that is not a finite number raises ``ValueError`` naming the pair.
    """
    p = _check_proba(proba)
    if not callable(score):
        raise ValueError(f"fit_thresholds: score must be callable, got {type(score).__name__}")
    values = _check_grid(grid)
    # pairs in tie-rule order (sums rounded so 0.4 + 0.6 and 0.5 + 0.5 compare equal), so the first of equal
    # scores is the winner
    pairs = sorted(((b, s) for b in values for s in values), key=lambda bs: (round(bs[0] + bs[1], 12), bs[0]))
    scores: list[float] = []
    for b, s in pairs:
        raw = score(threshold_signals(p, b, s))
        if isinstance(raw, bool) or not isinstance(raw, (int, float, np.integer, np.floating)):
            raise ValueError(f"fit_thresholds: score at (buy={b}, sell={s}) is {raw!r} (rule: a finite number)")
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"fit_thresholds: score at (buy={b}, sell={s}) is {value} (rule: a finite number)")
        scores.append(value)
    best = pairs[max(range(len(pairs)), key=scores.__getitem__)]  # max keeps the first of equals
    return Thresholds(buy=best[0], sell=best[1])


def _who(signals: pd.Series) -> str:
    return f"signals {signals.name!r}: " if signals.name is not None else "signals: "


def holding_rules(signals: pd.Series, *, min_hold: int = 0, exit_on_hold: bool = False) -> pd.Series:
    """Rewrite one ticker's signals with holding rules, replaying the backtest's long-only position state machine.

    ``signals``: BUY/SELL/HOLD on a strictly increasing DatetimeIndex (signal of ``t`` known after the close of
    ``t``). Positions are counted in the series, not in calendar days or bars: a gap in the dates is not a session.

    * ``min_hold = k``: a SELL fewer than ``k`` positions after the BUY that opened the position becomes HOLD and the
      position is kept, so the earliest exit is ``k`` positions after the entry (``k = 1`` changes nothing: a SELL
      cannot share its BUY's date).
    * ``exit_on_hold``: while long and at least ``min_hold`` positions after the opening BUY, a HOLD becomes SELL --
      stay in only while the model keeps saying BUY.

    Nothing else changes (BUY while long and SELL while flat stay as they are, the backtest ignores them). The defaults
    return the signals unchanged. Returns a Series with the same index, name and dtype.
    """
    if not isinstance(signals, pd.Series):
        raise ValueError(f"signals must be a pandas Series, got {type(signals).__name__}")
    who = _who(signals)
    if isinstance(min_hold, bool) or not isinstance(min_hold, (int, np.integer)) or min_hold < 0:
        raise ValueError(f"{who}min_hold = {min_hold!r} (rule: an int >= 0, in positions of the series)")
    if not isinstance(exit_on_hold, (bool, np.bool_)):
        raise ValueError(f"{who}exit_on_hold must be a bool, got {exit_on_hold!r}")
    check_trading_index(signals.index, who, "")
    values = signals.to_numpy(dtype=object, na_value=None)
    for i, v in enumerate(values):
        if v not in CLASSES:
            raise ValueError(f"{who}unknown signal {v!r} on {signals.index[i].date()} (rule: signal in {CLASSES})")

    k = int(min_hold)
    out = values.copy()
    opened: int | None = None  # position of the BUY that opened the current long; None while flat
    for i, s in enumerate(values):
        if opened is None:
            if s == BUY:
                opened = i
            continue
        held_long_enough = i - opened >= k
        if s == SELL and not held_long_enough:
            out[i] = HOLD
        elif s == HOLD and exit_on_hold and held_long_enough:
            out[i] = SELL
        if out[i] == SELL:
            opened = None
    result = pd.Series(out, index=signals.index, name=signals.name, dtype=object)
    return result if signals.dtype == object else result.astype(signals.dtype)


def mean_proba(probas: Sequence[np.ndarray]) -> np.ndarray:
    """The seed-ensemble probabilities: the float64 element-wise mean of same-shaped ``(n, 3)`` arrays.

    Rows of the mean sum to 1 as far as the members' rows do. An empty sequence, a member of another shape or a
    non-finite value raises ``ValueError`` naming the member.
    """
    if isinstance(probas, np.ndarray) or not isinstance(probas, Sequence):
        raise ValueError(f"mean_proba: probas must be a sequence of (n, 3) arrays, got {type(probas).__name__}")
    if len(probas) == 0:
        raise ValueError("mean_proba: no probabilities to average (rule: at least one ensemble member)")
    arrays = [_check_proba(p, f"mean_proba: probas[{i}]") for i, p in enumerate(probas)]
    shape = arrays[0].shape
    for i, a in enumerate(arrays[1:], start=1):
        if a.shape != shape:
            raise ValueError(
                f"mean_proba: probas[{i}] has shape {a.shape}, probas[0] has {shape} (rule: members of one shape)"
            )
    mean: np.ndarray = np.stack(arrays).mean(axis=0, dtype=np.float64)
    return mean
