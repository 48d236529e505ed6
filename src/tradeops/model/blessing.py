"""Blessing: decide whether a candidate model may be promoted (TFX-Evaluator style, trading-aware).

A candidate is blessed iff every check passes:

1. Absolute thresholds on the candidate's own metrics: ``recall_BUY >= min_recall_buy``,
   ``recall_SELL >= min_recall_sell``, ``macro_f1 >= min_macro_f1`` and, unless ``min_net_sharpe`` is None,
   ``net_sharpe >= min_net_sharpe`` (Sharpe after costs in the backtest's realistic mode). A required metric that
   is absent, NaN or not a finite number fails its check; it never passes by default.
2. With a champion: both must have been scored on the same evaluation windows (``require_same_windows``), and the
   candidate must beat the champion on ``primary_metric`` by at least ``champion_margin``, an absolute difference in
   the metric's own units (``candidate - champion`` when higher is better, ``champion - candidate`` otherwise).
   Without a champion the comparison is skipped ("no champion: absolute thresholds only").

Pure functions over plain values: nothing here reads the registry or a backtest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "NO_CHAMPION",
    "BlessingConfig",
    "Candidate",
    "Check",
    "Decision",
    "bless",
]

NO_CHAMPION = "no champion: absolute thresholds only"
CHAMPION_CHECK = "champion"
SKIPPED = "skipped"

# Differences of two floats (candidate - champion) carry rounding error: 0.75 - 0.70 is 0.04999999999999993.
_ABS_TOL = 1e-12
_REL_TOL = 1e-9


class BlessingConfig(BaseModel):
    """Blessing thresholds. Recalls and macro-F1 are fractions in [0, 1]; Sharpe is annualised, after costs.

    ``champion_margin`` is an absolute difference in ``primary_metric``'s units (0.05 Sharpe, not 5 %).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    min_recall_buy: float = Field(0.10, ge=0.0, le=1.0)
    min_recall_sell: float = Field(0.10, ge=0.0, le=1.0)
    min_macro_f1: float = Field(0.30, ge=0.0, le=1.0)
    min_net_sharpe: float | None = 0.0
    primary_metric: str = Field("net_sharpe", min_length=1)
    higher_is_better: bool = True
    champion_margin: float = Field(0.05, ge=0.0)
    require_same_windows: bool = True


@dataclass(frozen=True)
class Candidate:
    """A scored model: ``metrics`` by name (e.g. ``recall_BUY``, ``macro_f1``, ``net_sharpe``) and the evaluation
    windows it was scored on, e.g. ``("IBM:2011-01-03..2012-12-31",)``. Entries of ``metrics`` that no check reads
    are carried along unread.
    """

    metrics: dict[str, float] = field(hash=False)
    windows: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.metrics, Mapping):
            raise ValueError(f"metrics must be a mapping of metric name to value, got {type(self.metrics).__name__}")
        bad_keys = [k for k in self.metrics if not isinstance(k, str)]
        if bad_keys:
            raise ValueError(f"metric names must be strings, got {bad_keys[0]!r}")
        if isinstance(self.windows, str) or not isinstance(self.windows, (tuple, list)):
            raise ValueError(
                f"windows must be a tuple of window names like 'IBM:2011-01-03..2012-12-31', got {self.windows!r}"
            )
        if not self.windows:
            raise ValueError("windows is empty: name the evaluation windows the candidate was scored on")
        bad = [w for w in self.windows if not isinstance(w, str) or not w.strip()]
        if bad:
            raise ValueError(f"every window must be a non-empty string, got {bad[0]!r}")
        object.__setattr__(self, "metrics", dict(self.metrics))  # a private copy: later edits by the caller don't leak
        object.__setattr__(self, "windows", tuple(self.windows))


@dataclass(frozen=True)
class Check:
    """One blessing check. ``value`` is the candidate's metric (None when missing), ``threshold`` the bar it is held
    to (for the champion check: the champion's value shifted by the margin), ``comparator`` ``">="``, ``"<="`` or
    ``"skipped"`` (a skipped check counts as passed), ``message`` a human sentence.
    """

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    comparator: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; a non-finite number becomes None."""
        return {
            "name": self.name,
            "passed": bool(self.passed),
            "value": _json_number(self.value),
            "threshold": _json_number(self.threshold),
            "comparator": self.comparator,
            "message": self.message,
        }


@dataclass(frozen=True)
class Decision:
    """Outcome of :func:`bless`. ``reasons``: the failed checks' messages when rejected, every message when blessed."""

    blessed: bool
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that did not pass."""
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``json.dumps(..., allow_nan=False)`` accepts it)."""
        return {
            "blessed": bool(self.blessed),
            "reasons": list(self.reasons),
            "checks": [c.to_dict() for c in self.checks],
        }


# --------------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------------


def _json_number(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _read_metric(metrics: Mapping[str, Any], name: str) -> tuple[float | None, str | None]:
    """(value, None) for a finite real number, else (None, why it is unusable)."""
    if name not in metrics:
        return None, "is missing"
    raw = metrics[name]
    if raw is None:
        return None, "is missing (None)"
    if isinstance(raw, (bool, np.bool_)) or not (isinstance(raw, (int, float)) or hasattr(raw, "__float__")):
        return None, f"is missing (not a number: {raw!r})"
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, f"is missing (not a number: {raw!r})"
    if math.isnan(value):
        return None, "is missing (NaN)"
    if math.isinf(value):
        return None, f"is not a finite number ({value})"
    return value, None


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def _decimals(*pairs: tuple[float, float]) -> int:
    """Fewest decimals (at least 2) that tell each pair's numbers apart, so "0.10 < 0.10" is never printed."""
    for d in range(2, 13):
        if all(_same(a, b) or f"{a:.{d}f}" != f"{b:.{d}f}" for a, b in pairs):
            return d
    return 12


def _at_least(value: float, bar: float) -> bool:
    return value >= bar or _same(value, bar)


def _threshold_check(metrics: Mapping[str, Any], metric: str, rule: str, minimum: float) -> Check:
    value, problem = _read_metric(metrics, metric)
    if value is None:
        msg = f"{metric} {problem}; required >= {minimum:.{_decimals()}f} ({rule})"
        return Check(rule, False, None, minimum, ">=", msg)
    d = _decimals((value, minimum))
    passed = _at_least(value, minimum)
    op = ">=" if passed else "<"
    return Check(rule, passed, value, minimum, ">=", f"{metric} {value:.{d}f} {op} {minimum:.{d}f} ({rule})")


def _window_difference(candidate: Candidate, champion: Candidate) -> str | None:
    mine, theirs = set(candidate.windows), set(champion.windows)
    if mine == theirs:
        return None
    parts = []
    if mine - theirs:
        parts.append("only candidate: " + ", ".join(sorted(mine - theirs)))
    if theirs - mine:
        parts.append("only champion: " + ", ".join(sorted(theirs - mine)))
    return "; ".join(parts)


def _champion_check(candidate: Candidate, champion: Candidate, config: BlessingConfig) -> Check:
    metric, margin = config.primary_metric, config.champion_margin
    op = ">=" if config.higher_is_better else "<="
    cand, cand_problem = _read_metric(candidate.metrics, metric)
    champ, champ_problem = _read_metric(champion.metrics, metric)
    bar = None if champ is None else (champ + margin if config.higher_is_better else champ - margin)

    difference = _window_difference(candidate, champion)
    if difference is not None and config.require_same_windows:
        msg = (
            f"evaluation windows differ from the champion's ({difference}); comparing {metric} on different "
            "windows is not fair (require_same_windows)"
        )
        return Check(CHAMPION_CHECK, False, cand, bar, op, msg)
    if cand is None:
        msg = f"candidate's {metric} {cand_problem}; cannot compare it with the champion"
        return Check(CHAMPION_CHECK, False, None, bar, op, msg)
    if champ is None or bar is None:
        msg = f"champion's {metric} {champ_problem}; cannot compare the candidate with it"
        return Check(CHAMPION_CHECK, False, cand, None, op, msg)

    improvement = cand - champ if config.higher_is_better else champ - cand
    passed = _at_least(improvement, margin)
    d = _decimals((cand, champ), (improvement, margin))
    direction = "" if config.higher_is_better else " (lower is better)"
    if passed:
        msg = (
            f"{metric} {cand:.{d}f} beats champion {champ:.{d}f} by {improvement:.{d}f} >= margin "
            f"{margin:.{d}f}{direction}"
        )
    else:
        msg = (
            f"{metric} {cand:.{d}f} does not beat champion {champ:.{d}f} by margin {margin:.{d}f}{direction}: "
            f"improvement {improvement:.{d}f} < {margin:.{d}f}"
        )
    if difference is not None:
        msg += f" (windows differ, {difference}; require_same_windows is off)"
    return Check(CHAMPION_CHECK, passed, cand, bar, op, msg)


# --------------------------------------------------------------------------------------------------------------------
# bless
# --------------------------------------------------------------------------------------------------------------------


def bless(candidate: Candidate, config: BlessingConfig, champion: Candidate | None = None) -> Decision:
    """Run every blessing check on ``candidate`` (and against ``champion`` when given); blessed iff all pass.

    See the module docstring for the rules. Raises ValueError only for arguments of the wrong type; a missing or NaN
    metric is a failed check, not an error.
    """
    if not isinstance(candidate, Candidate):
        raise ValueError(f"candidate must be a Candidate, got {type(candidate).__name__}")
    if not isinstance(config, BlessingConfig):
        raise ValueError(f"config must be a BlessingConfig, got {type(config).__name__}")
    if champion is not None and not isinstance(champion, Candidate):
        raise ValueError(f"champion must be a Candidate or None, got {type(champion).__name__}")

    m = candidate.metrics
    checks = [
        _threshold_check(m, "recall_BUY", "min_recall_buy", config.min_recall_buy),
        _threshold_check(m, "recall_SELL", "min_recall_sell", config.min_recall_sell),
        _threshold_check(m, "macro_f1", "min_macro_f1", config.min_macro_f1),
    ]
    if config.min_net_sharpe is not None:
        checks.append(_threshold_check(m, "net_sharpe", "min_net_sharpe", config.min_net_sharpe))
    if champion is None:
        checks.append(Check(CHAMPION_CHECK, True, None, None, SKIPPED, NO_CHAMPION))
    else:
        checks.append(_champion_check(candidate, champion, config))

    blessed = all(c.passed for c in checks)
    reasons = tuple(c.message for c in checks if blessed or not c.passed)
    return Decision(blessed=blessed, reasons=reasons, checks=tuple(checks))
