"""The one currency of monitoring: a :class:`Metric` per (model, name) at a monitoring date.

Every monitor returns metrics; rules compare them with thresholds; the audit and the report store and draw them.
``value`` is ``None`` when the metric cannot be computed yet (too few matured labels, no served rows): ``reason``
then says why, and rules skip it (never a silent 0.0).

Metric names (dotted; ``<role>`` is ``champion`` or ``challenger``):

- data: ``data.nonfinite_rate`` (share of NaN/inf values in served feature rows), ``data.rejected_rate`` (share of
  logged requests answered with a 4xx), ``data.psi_max`` (largest per-feature PSI), ``data.psi_drifted_share``
  (share of features with PSI above ``monitor.psi_threshold``), ``data.ks_drifted_share`` (share of features whose KS
  p-value is below ``monitor.ks_pvalue``), ``data.domain_auc`` (ROC AUC of a classifier telling reference rows from
  recent served rows; 0.5 = indistinguishable), ``data.staleness_days`` (trading sessions between the newest stored
  bar and the monitoring date, worst ticker);
- predictions: ``predictions.signal_mix_psi`` (PSI of the served BUY/SELL/HOLD mix against the training-time test
  window's), ``predictions.proba_ks_max`` (largest KS statistic of the three class probabilities vs the test window);
- quality (labels matured by the monitoring date only): ``quality.<role>.macro_f1``, ``quality.<role>.accuracy``,
  ``quality.macro_f1_gap`` (challenger minus champion); per-class precision/recall/F1 in ``evidence``;
- trading (paper trading, ``realistic`` fills, costs from ``model.costs``): ``trading.<role>.return`` (total return
  over the window, fraction), ``trading.<role>.drawdown`` (maximum drawdown over the window as a positive fraction,
  0.12 = 12 % below the running peak), ``trading.<role>.hit_rate`` (share of closed round trips with a profit),
  ``trading.buy_and_hold.return``, ``trading.<role>.excess_return`` (return minus Buy & Hold's);
- service: ``service.error_rate`` (share of 5xx), ``service.latency_p99_ms``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

METRIC_NAMES: tuple[str, ...] = (
    "data.nonfinite_rate",
    "data.rejected_rate",
    "data.psi_max",
    "data.psi_drifted_share",
    "data.ks_drifted_share",
    "data.domain_auc",
    "data.staleness_days",
    "predictions.signal_mix_psi",
    "predictions.proba_ks_max",
    *(f"quality.{r}.{m}" for r in ("champion", "challenger") for m in ("macro_f1", "accuracy")),
    "quality.macro_f1_gap",
    *(f"trading.{r}.{m}" for r in ("champion", "challenger") for m in ("return", "drawdown", "hit_rate")),
    "trading.buy_and_hold.return",
    *(f"trading.{r}.excess_return" for r in ("champion", "challenger")),
    "service.error_rate",
    "service.latency_p99_ms",
)


@dataclass(frozen=True)
class Metric:
    """One monitored value of one served model at one monitoring date.

    ``window``: what it was computed over, e.g. ``"2012-05-03..2012-06-01 (20 sessions)"``. ``evidence``: JSON-safe
    details (per-feature values, per-class scores, model and table versions) stored with any alert it raises.
    """

    model: str
    name: str
    value: float | None
    window: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"metric {self.name} of {self.model}: value {self.value} is not finite")
        if self.value is None and not self.reason:
            raise ValueError(f"metric {self.name} of {self.model}: a missing value must say why (reason)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "name": self.name,
            "value": self.value,
            "window": self.window,
            "evidence": self.evidence,
            "reason": self.reason,
        }


def missing(model: str, name: str, reason: str, *, window: str = "") -> Metric:
    """A metric that cannot be computed, and why."""
    return Metric(model, name, None, window, {}, reason)
