"""The CNN-TA paper's protocol held to honest rules: research candidates chosen on validation windows only.

A *candidate* is a walk-forward run (per-instrument or pooled models, one or more seeds) plus a *variant*: how the
class probabilities become trades (argmax, BUY/SELL probability thresholds, holding rules, a seed ensemble).
Every choice a variant makes (its thresholds) is fitted on each fold's validation rows, which lie inside that
fold's training years; candidates are ranked by their validation score; the test years are scored once per
candidate and never feed a choice. Time conventions: a signal of date ``t`` is known after the close of ``t``
(ARCHITECTURE.md section 4); validation windows precede their fold's test year with an embargo in between.

Validation score (per candidate): the mean, over every (fold, ticker) validation window, of the realistic-fill
net annualised return minus Buy & Hold's on the same window (fractions; 0.02 = 2 points a year better).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tradeops.config import Settings
from tradeops.data import store as st
from tradeops.errors import UsageError
from tradeops.model import signal_rules as sr
from tradeops.model.backtest import Costs, backtest
from tradeops.model.walkforward import STRATEGIES, WalkForwardResult, per_ticker_f1, run_walkforward
from tradeops.model.windows import PROBA_COLUMNS, bars_by_ticker, evaluate_signals

FOLD_KEYS = ["who", "test_year"]


@dataclass(frozen=True)
class Variant:
    """How probabilities become signals. ``rule``: ``argmax`` or ``thresholds`` (BUY/SELL probability thresholds
    fitted per fold on validation, :func:`tradeops.model.signal_rules.fit_thresholds`); ``ensemble``: average the
    probabilities of every seed instead of using the first; ``min_hold`` / ``exit_on_hold``: holding rules
    (:func:`tradeops.model.signal_rules.holding_rules`)."""

    name: str
    rule: str = "argmax"
    ensemble: bool = False
    min_hold: int = 0
    exit_on_hold: bool = False


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("argmax"),
        Variant("thresholds", rule="thresholds"),
        Variant("min_hold_10", min_hold=10),
        Variant("exit_on_hold", exit_on_hold=True),
        Variant("ensemble", ensemble=True),
        Variant("ensemble_thresholds", rule="thresholds", ensemble=True),
        Variant("ensemble_min_hold_10", ensemble=True, min_hold=10),
    )
}


def variants_of(names: Sequence[str], n_seeds: int) -> list[Variant]:
    """The named variants (unknown names are a :class:`UsageError`); ensemble variants need more than one seed."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UsageError(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    out = [VARIANTS[n] for n in names]
    if n_seeds < 2 and any(v.ensemble for v in out):
        raise UsageError("--variants: ensemble variants need --seeds with at least two seeds")
    return out


def probabilities(frame: pd.DataFrame, *, ensemble: bool, seed: int) -> pd.DataFrame:
    """One row per (fold, ticker, date): the first seed's probabilities, or the mean over seeds (``ensemble``)."""
    keys = [*FOLD_KEYS, "ticker", "date"]
    if not ensemble:
        return frame.loc[frame["seed"] == seed, [*keys, *PROBA_COLUMNS, "y_true"]].reset_index(drop=True)
    grouped = frame.groupby(keys, sort=False)
    out = grouped[list(PROBA_COLUMNS)].mean().reset_index()
    out["y_true"] = grouped["y_true"].first().to_numpy()
    return out


def _signals(proba: np.ndarray, variant: Variant, thresholds: sr.Thresholds | None) -> np.ndarray:
    if variant.rule == "thresholds":
        assert thresholds is not None
        return sr.threshold_signals(proba, thresholds.buy, thresholds.sell)
    return sr.argmax_signals(proba)


def _hold(frame: pd.DataFrame, variant: Variant, by: list[str]) -> pd.DataFrame:
    """Apply the variant's holding rules per ``by`` group (date order)."""
    if not variant.min_hold and not variant.exit_on_hold:
        return frame
    frame = frame.sort_values([*by, "date"], kind="stable").reset_index(drop=True)
    parts = []
    for _, g in frame.groupby(by, sort=False):
        s = pd.Series(g["signal"].to_numpy(), index=pd.DatetimeIndex(g["date"]), name="signal")
        parts.append(sr.holding_rules(s, min_hold=variant.min_hold, exit_on_hold=variant.exit_on_hold).to_numpy())
    frame["signal"] = np.concatenate(parts) if parts else frame["signal"]
    return frame


def window_excess(signals: pd.DataFrame, bars: dict[str, pd.DataFrame], costs: Costs) -> list[float]:
    """Net (realistic fills) annualised return minus Buy & Hold's, per (fold, ticker) window of ``signals``."""
    out = []
    for (_who, _year, ticker), g in signals.groupby([*FOLD_KEYS, "ticker"], sort=True):
        s = pd.Series(g["signal"].to_numpy(), index=pd.DatetimeIndex(g["date"]))
        if len(s) < 2:
            continue
        m = backtest(bars[str(ticker)], s, mode="realistic", costs=costs, ticker=str(ticker)).metrics()
        out.append(float(m["annualized_return"] - m["buy_and_hold"]["annualized_return"]))
    return out


def validation_score(signals: pd.DataFrame, bars: dict[str, pd.DataFrame], costs: Costs) -> float:
    """Mean of :func:`window_excess` over the validation windows (see the module docstring)."""
    excess = window_excess(signals, bars, costs)
    if not excess:
        raise UsageError("no validation window with two or more rows: set model.val_fraction > 0")
    return float(np.mean(excess))


def variant_signals(
    result: WalkForwardResult, variant: Variant, bars: dict[str, pd.DataFrame], costs: Costs
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]]]:
    """Test and validation signals of ``variant`` on ``result`` (thresholds fitted per fold on that fold's
    validation rows), and the fitted thresholds per fold (``"<who> <year>" -> {"buy", "sell"}``)."""
    seed = result.seeds[0]
    test = probabilities(result.predictions, ensemble=variant.ensemble, seed=seed)
    val = probabilities(result.val_predictions, ensemble=variant.ensemble, seed=seed)
    fitted: dict[str, dict[str, float]] = {}
    test_parts, val_parts = [], []
    for key, t in test.groupby(FOLD_KEYS, sort=True):
        v = val.loc[(val["who"] == key[0]) & (val["test_year"] == key[1])]
        thresholds = None
        if variant.rule == "thresholds":
            if v.empty:
                raise UsageError(f"{key[0]} {key[1]}: no validation rows to fit thresholds on")
            pv = v[list(PROBA_COLUMNS)].to_numpy()

            def score(signals: np.ndarray, v: pd.DataFrame = v) -> float:
                return validation_score(_hold(v.assign(signal=signals), variant, [*FOLD_KEYS, "ticker"]), bars, costs)

            thresholds = sr.fit_thresholds(pv, score)
            fitted[f"{key[0]} {key[1]}"] = {"buy": thresholds.buy, "sell": thresholds.sell}
        test_parts.append(t.assign(signal=_signals(t[list(PROBA_COLUMNS)].to_numpy(), variant, thresholds)))
        if not v.empty:
            val_parts.append(v.assign(signal=_signals(v[list(PROBA_COLUMNS)].to_numpy(), variant, thresholds)))
    test_s = _hold(pd.concat(test_parts, ignore_index=True), variant, ["ticker"])
    val_s = _hold(pd.concat(val_parts, ignore_index=True), variant, [*FOLD_KEYS, "ticker"])
    return test_s.sort_values(["ticker", "date"], kind="stable"), val_s, fitted


@dataclass
class Candidate:
    """One scored candidate: ``scope`` (per-instrument or pooled), the variant, its validation score, and its test
    evaluation (classification + backtests of the model and every baseline, both fill rules)."""

    scope: str
    variant: Variant
    val_score: float
    evaluation: dict
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    per_ticker: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.scope}/{self.variant.name}"

    def test_excess(self) -> float:
        """Mean over instruments of net annualised return minus Buy & Hold's on the test years (realistic)."""
        bt = self.evaluation["backtests"]
        return float(
            np.mean(
                [
                    r["model"]["realistic"]["annualized_return"] - r["buy_and_hold"]["realistic"]["annualized_return"]
                    for r in bt.values()
                ]
            )
        )


def score_candidate(
    scope: str, result: WalkForwardResult, variant: Variant, bars: dict[str, pd.DataFrame], costs: Costs
) -> Candidate:
    """Signals of ``variant`` on ``result``, its validation score, and its one evaluation on the test years."""
    test_s, val_s, fitted = variant_signals(result, variant, bars, costs)
    extra = {"lightgbm": result.lightgbm} if result.lightgbm is not None else None
    evaluation = evaluate_signals(test_s, bars, costs, extra=extra)
    return Candidate(
        scope, variant, validation_score(val_s, bars, costs), evaluation.to_dict(), fitted, per_ticker_f1(test_s)
    )


def select(candidates: Sequence[Candidate]) -> Candidate:
    """The candidate with the highest validation score (the first on ties); test results play no part."""
    if not candidates:
        raise UsageError("no candidate to select from")
    best = max(range(len(candidates)), key=lambda i: (candidates[i].val_score, -i))
    return candidates[best]


PAPER_NAMES = {
    "model": "CNN-TA",
    "buy_and_hold": "Buy&Hold",
    "rsi_14_30_70": "RSI",
    "sma_50_cross": "SMA",
    "lightgbm": "LightGBM",
}


def paper_table(evaluation: dict, mode: str) -> pd.DataFrame:
    """The paper's table: annualised return per instrument and strategy under fill rule ``mode``, with the model's
    trades per year, win rate and idle ratio (share of days out of the market, ``1 - exposure``); then an
    ``average`` row and a ``beats B&H`` row (how many instruments each strategy beat Buy & Hold on)."""
    rows = []
    for ticker, strategies in sorted(evaluation["backtests"].items()):
        row: dict = {"instrument": ticker}
        for key, label in PAPER_NAMES.items():
            if key in strategies:
                row[label] = strategies[key][mode]["annualized_return"]
        m = strategies["model"][mode]
        row["trades/yr"] = m["trades_per_year"]
        row["win rate"] = m["win_rate"]
        row["idle ratio"] = 1.0 - m["exposure"]
        rows.append(row)
    table = pd.DataFrame(rows).set_index("instrument")
    strategies = [PAPER_NAMES[k] for k in STRATEGIES if PAPER_NAMES.get(k) in table.columns]
    avg = table.mean(numeric_only=True).rename("average")
    beats = pd.Series(
        {s: float((table[s] > table["Buy&Hold"]).sum()) for s in strategies if s != "Buy&Hold"}, name="beats B&H"
    )
    out = pd.concat([table, avg.to_frame().T, beats.to_frame().T])
    out.index.name = "instrument"
    return out


def candidate_metrics(candidates: Sequence[Candidate]) -> dict[str, float]:
    """MLflow metrics of scored candidates: ``candidate.<variant>.<figure>`` (validation excess, test excess, net
    and paper-fill annualised return, macro-F1, trades per year); fractions, not percent."""
    out: dict[str, float] = {}
    for c in candidates:
        s = c.evaluation["summary"]
        for key, value in (
            ("val_excess", c.val_score),
            ("test_excess", c.test_excess()),
            ("test_net_annualized_return", s["net_annualized_return"]),
            ("test_paper_annualized_return", s["paper_annualized_return"]),
            ("test_macro_f1", s["macro_f1"]),
            ("test_trades_per_year", s["trades_per_year"]),
        ):
            out[f"candidate.{c.variant.name}.{key}"] = float(value)
    return out


def candidate_record(c: Candidate) -> dict:
    """A JSON-safe record of one candidate: name, variant, scores, fitted thresholds, both paper tables."""
    return {
        "name": c.name,
        "variant": c.variant.__dict__,
        "val_score": c.val_score,
        "test_excess": c.test_excess(),
        "summary": c.evaluation["summary"],
        "thresholds": c.thresholds,
        "paper": paper_table(c.evaluation, "paper").reset_index().to_dict("records"),
        "realistic": paper_table(c.evaluation, "realistic").reset_index().to_dict("records"),
    }


@dataclass
class ProtocolResult:
    """Walk-forward runs by scope, every scored candidate (runs x variants, in that order) and the one selected on
    validation; ``mlflow_runs``: scope -> parent run id once :func:`log_protocol` recorded it."""

    runs: dict[str, WalkForwardResult]
    candidates: list[Candidate]
    selected: Candidate
    mlflow_runs: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> Candidate:
        """The plain model: per-instrument (or the first scope), first variant (argmax of the first seed)."""
        return self.candidates[0]


def run_protocol(
    settings: Settings,
    *,
    tickers: list[str],
    test_years: list[int],
    train_years: float,
    variants: Sequence[str],
    seeds: list[int],
    pooled: bool = False,
    epochs: int | None = None,
    workers: int = 1,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProtocolResult:
    """Walk-forward per instrument (and pooled), every variant scored on validation and once on test, and the
    candidate selected on validation (:func:`select`). Recipe, costs and baselines come from ``settings.model``."""
    chosen = variants_of(list(variants), len(seeds))
    cfg = settings.model
    costs = Costs(cfg.costs.commission_bps, cfg.costs.slippage_bps, cfg.costs.fixed_per_trade)
    common: dict[str, Any] = dict(
        preset="cnn-ta",
        tickers=tickers,
        test_years=test_years,
        train_years=train_years,
        epochs=epochs,
        seeds=seeds,
        workers=workers,
        threads=threads,
        progress=progress,
    )
    runs = {"per-instrument": run_walkforward(settings, pooled=False, **common)}
    if pooled:
        runs["pooled"] = run_walkforward(settings, pooled=True, **common)
    lake = st.lake_for(settings)
    bars = bars_by_ticker(lake.read_bars(sorted(set(tickers))))
    candidates = []
    for scope, result in runs.items():
        for v in chosen:
            if progress:
                progress(f"scoring {scope}/{v.name}")
            candidates.append(score_candidate(scope, result, v, bars, costs))
    return ProtocolResult(runs, candidates, select(candidates))


def log_protocol(settings: Settings, result: ProtocolResult, config: dict[str, Any]) -> dict[str, str]:
    """One MLflow parent run per walk-forward scope (:func:`tradeops.model.tracking.log_walkforward`, a child run
    per fold) carrying its candidates' figures (:func:`candidate_metrics`), ``candidates.json`` and the selection."""
    from tradeops.model.tracking import RunLog, log_walkforward

    for scope, run in result.runs.items():
        run_id = log_walkforward(settings, run, config={**config, "scope": scope})
        mine = [c for c in result.candidates if c.scope == scope]
        log = RunLog(settings, run_id)
        log.metrics(candidate_metrics(mine))
        log.dict([candidate_record(c) for c in mine], "candidates.json")
        log.tags({"tradeops.protocol.selected": result.selected.name})
        result.mlflow_runs[scope] = run_id
    return result.mlflow_runs


def format_paper_table(table: pd.DataFrame) -> str:
    """:func:`paper_table` as text: returns and rates in percent, trades per year with one decimal, counts whole."""
    out = table.astype(object).copy()
    for col in table.columns:
        if col == "trades/yr":
            out[col] = ["" if pd.isna(v) else f"{v:.1f}" for v in table[col]]
        else:
            out[col] = [
                "" if pd.isna(v) else (f"{v:.0f}" if idx == "beats B&H" else f"{100 * v:.1f}%")
                for idx, v in zip(table.index, table[col], strict=True)
            ]
    return out.to_string()
