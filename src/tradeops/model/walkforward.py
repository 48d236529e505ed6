"""Walk-forward evaluation: retrain per test year, concatenate the out-of-sample signals, backtest them against
Buy & Hold and the baselines on the same window, and score the pooled classification (the CNN-TA paper's tables).

Per-ticker models by default (one fold set per ticker); ``pooled=True`` trains one model per fold on every ticker.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradeops.config import Settings
from tradeops.data import store as st
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.splits import FoldSkippedWarning, walk_forward
from tradeops.features.store import FeatureSet
from tradeops.model.backtest import Costs
from tradeops.model.windows import (
    bars_by_ticker,
    evaluate_signals,
    fit_window,
    horizon_of,
    predict_rows,
    split_rows,
)

STRATEGIES = ("model", "buy_and_hold", "lightgbm", "rsi_14_30_70", "sma_50_cross")


@dataclass
class WalkForwardResult:
    preset: str
    tickers: list[str]
    mode: str
    test_years: list[int]
    pooled: bool
    folds: list[dict]
    table: pd.DataFrame  # ticker x strategy -> annualised return (mode), plus model Sharpe/trades
    evaluation: dict
    skipped: list[str]

    def to_dict(self) -> dict:
        return {
            "preset": self.preset,
            "tickers": self.tickers,
            "mode": self.mode,
            "test_years": self.test_years,
            "pooled": self.pooled,
            "folds": self.folds,
            "skipped": self.skipped,
            "table": self.table.reset_index().to_dict("records"),
            "evaluation": self.evaluation,
        }


def run_walkforward(
    settings: Settings,
    *,
    preset: str,
    tickers: list[str],
    test_years: list[int],
    train_years: float,
    mode: str = "realistic",
    pooled: bool = False,
    epochs: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> WalkForwardResult:
    """Retrain per test year and score the concatenated test signals (see the module docstring)."""
    from tradeops.model.training import ensure_features, lightgbm_signals, load_frame

    check_arguments(mode=mode, train_years=train_years, test_years=test_years)
    cfg = settings.model
    fs = FeatureSet.from_preset(preset, settings.features.windows, settings.features.label_window)
    lake = st.lake_for(settings)
    tickers = sorted(set(tickers))
    check_years_in_data(stored_years(lake, tickers), test_years)
    versions = ensure_features(lake, fs, tickers)
    frame = load_frame(lake, fs, tickers)
    groups = (
        [(",".join(tickers), frame)]
        if pooled
        else [(t, g.reset_index(drop=True)) for t, g in frame.groupby("ticker", sort=True)]
    )
    all_preds, all_lgbm, folds_out, skipped = [], [], [], []
    for who, rows in groups:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FoldSkippedWarning)
            try:
                folds = walk_forward(
                    pd.DatetimeIndex(rows["date"].unique()),
                    test_years=test_years,
                    train_years=train_years,
                    embargo=cfg.embargo,
                    horizon=horizon_of(fs.label_window),
                    val_fraction=cfg.val_fraction,
                )
            except ValueError as exc:
                raise TradeopsError(f"{who}: [walkforward] {exc}") from exc
        skipped += [f"{who}: {w.message}" for w in caught if issubclass(w.category, FoldSkippedWarning)]
        for fold in folds:
            if progress:
                progress(f"{who} {fold.test_start.year}")
            data = split_rows(rows, fs.names, fold)
            window = fit_window(data, preset, fs.names, cfg, epochs=epochs)
            preds = predict_rows(window.classifier.predict_proba, window.transform, data.test)
            all_preds.append(preds)
            if cfg.baselines:
                all_lgbm.append(
                    lightgbm_signals(data, window.transform, list(window.transform.feature_names_in_), cfg.seed)
                )
            folds_out.append(
                {
                    "who": who,
                    "test_year": int(fold.test_start.year),
                    "fit": f"{fold.train_start.date()}..{fold.train_end.date()}",
                    "val": f"{fold.val_start.date()}..{fold.val_end.date()}"
                    if fold.val_start is not None and fold.val_end is not None
                    else None,
                    "test": f"{fold.test_start.date()}..{fold.test_end.date()}",
                    "fit_rows": window.fit_rows,
                    "val_rows": window.val_rows,
                    "test_rows": len(data.test),
                    "best_epoch": int(window.classifier.best_epoch_),
                }
            )
    if not all_preds:
        raise TradeopsError("walk-forward produced no fold: check --test-years against the stored history")
    preds = pd.concat(all_preds, ignore_index=True).sort_values(["ticker", "date"], kind="stable")
    extra = {"lightgbm": pd.concat(all_lgbm, ignore_index=True)} if all_lgbm else None
    costs = Costs(cfg.costs.commission_bps, cfg.costs.slippage_bps, cfg.costs.fixed_per_trade)
    bars = bars_by_ticker(lake.read_bars(tickers, version=versions.bars))
    evaluation = evaluate_signals(preds, bars, costs, extra=extra)
    table = returns_table(evaluation.backtests, mode)
    return WalkForwardResult(
        preset,
        tickers,
        mode,
        list(test_years),
        pooled,
        folds_out,
        table,
        evaluation.to_dict() | {"versions": versions.to_dict(), "per_ticker": per_ticker_f1(preds)},
        skipped,
    )


def check_arguments(*, mode: str, train_years: float, test_years: list[int]) -> None:
    """Usage checks that need nothing but the arguments (run before any work; :class:`UsageError`, exit 2)."""
    if mode not in ("paper", "realistic"):
        raise UsageError(f"--mode must be paper or realistic, got {mode!r}")
    if not np.isfinite(train_years) or train_years <= 0:
        raise UsageError(f"--train-years must be a positive number of years, got {train_years:g}")
    if not test_years:
        raise UsageError("--test-years names no year")


def stored_years(lake: st.Lake, tickers: list[str]) -> dict[str, tuple[int, int]]:
    """First and last calendar year of the stored bars per ticker (only the date column is read)."""
    if lake.version(st.BARS) is None:
        raise UsageError("no bars stored yet: run `tradeops ingest` first")
    dates = lake.read(st.BARS, tickers=tickers, columns=["ticker", "date"])
    out = {}
    for t, g in dates.groupby("ticker"):
        d = pd.to_datetime(g["date"])
        out[str(t)] = (int(d.min().year), int(d.max().year))
    missing = [t for t in tickers if t not in out]
    if missing:
        raise UsageError(f"no bars stored for {', '.join(missing)}: ingest them first")
    return out


def check_years_in_data(spans: dict[str, tuple[int, int]], test_years: list[int]) -> None:
    """Every test year must fall inside the stored history of at least one ticker (:class:`UsageError`)."""
    outside = [y for y in test_years if not any(a <= y <= b for a, b in spans.values())]
    if outside:
        have = ", ".join(f"{t} {a}-{b}" for t, (a, b) in sorted(spans.items()))
        raise UsageError(f"--test-years: {', '.join(map(str, outside))} outside the stored history ({have})")


def returns_table(backtests: dict, mode: str) -> pd.DataFrame:
    """Annualised return per ticker and strategy in ``mode`` (rows: tickers; the paper's table layout)."""
    rows = []
    for ticker, strategies in backtests.items():
        row = {"ticker": ticker}
        for name in STRATEGIES:
            if name in strategies:
                row[name] = strategies[name][mode]["annualized_return"]
        m = strategies["model"][mode]
        row.update(
            {
                "model_sharpe": m["sharpe"],
                "model_max_drawdown": m["max_drawdown"],
                "model_trades_per_year": m["trades_per_year"],
                "model_win_rate": m["win_rate"],
            }
        )
        rows.append(row)
    return pd.DataFrame(rows).set_index("ticker")


def per_ticker_f1(preds: pd.DataFrame) -> dict:
    from tradeops.features.labels import encode_labels
    from tradeops.model.evaluate import classification_metrics

    out = {}
    for t, g in preds.loc[preds["y_true"].notna()].groupby("ticker"):
        m = classification_metrics(
            encode_labels(g["y_true"]).to_numpy(dtype=np.int64), encode_labels(g["signal"]).to_numpy(dtype=np.int64)
        )
        out[str(t)] = {k: m[k] for k in ("f1_BUY", "f1_SELL", "f1_HOLD", "macro_f1", "accuracy")}
    return out
