"""Walk-forward evaluation: retrain per test year, concatenate the out-of-sample signals, backtest them against
Buy & Hold and the baselines on the same window, and score the pooled classification (the CNN-TA paper's tables).

Per-ticker models by default (one fold set per ticker); ``pooled=True`` trains one model per fold on every ticker.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tradeops.config import ModelConfig, Settings
from tradeops.data import store as st
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.splits import FoldSkippedWarning, walk_forward
from tradeops.features.store import FeatureSet
from tradeops.model.backtest import Costs
from tradeops.model.windows import (
    WindowData,
    WindowModel,
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
    """One walk-forward run. ``predictions`` / ``val_predictions``: every fold's test / validation rows (``ticker,
    date, p_BUY, p_SELL, p_HOLD, signal, y_true, who, test_year, seed``; one block per seed); the table and the
    evaluation score the first seed's test signals. ``timing``: wall and training seconds (see :func:`timing_of`)."""

    preset: str
    tickers: list[str]
    mode: str
    test_years: list[int]
    pooled: bool
    folds: list[dict]
    table: pd.DataFrame  # ticker x strategy -> annualised return (mode), plus model Sharpe/trades
    evaluation: dict
    skipped: list[str]
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    val_predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    lightgbm: pd.DataFrame | None = None
    seeds: list[int] = field(default_factory=list)
    timing: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "preset": self.preset,
            "tickers": self.tickers,
            "mode": self.mode,
            "test_years": self.test_years,
            "pooled": self.pooled,
            "seeds": self.seeds,
            "folds": self.folds,
            "skipped": self.skipped,
            "table": self.table.reset_index().to_dict("records"),
            "evaluation": self.evaluation,
            "timing": self.timing,
        }


@dataclass(frozen=True)
class FoldJob:
    """Everything one fold needs, picklable so folds can run in worker processes (:func:`run_fold`)."""

    who: str
    data: WindowData
    preset: str
    names: tuple[str, ...]
    cfg: ModelConfig
    epochs: int | None
    seeds: tuple[int, ...]


@dataclass
class FoldOutcome:
    """One fold's results: ``info`` (the fold's row of ``WalkForwardResult.folds``), test and validation
    predictions (long, one block per seed), the LightGBM baseline's test signals, and seconds spent training."""

    info: dict
    test: pd.DataFrame
    val: pd.DataFrame
    lightgbm: pd.DataFrame | None
    cnn_seconds: float
    lgbm_seconds: float
    trained_samples: int
    seconds: float


def run_fold(job: FoldJob) -> FoldOutcome:
    """Fit one CNN per seed on the fold's fit rows (validation rows steer early stopping), predict the validation
    and test rows, and fit the LightGBM baseline when ``cfg.baselines``. Pure computation: same job, same result
    (bit-identical at the same torch thread count, in any process)."""
    from tradeops.model.training import lightgbm_signals

    started = time.perf_counter()
    data, fold = job.data, job.data.fold
    tests: list[pd.DataFrame] = []
    vals: list[pd.DataFrame] = []
    cnn_seconds, samples, best_epochs = 0.0, 0, []
    first: WindowModel | None = None
    for seed in job.seeds:
        cfg = job.cfg if seed == job.cfg.seed else job.cfg.model_copy(update={"seed": seed})
        window = fit_window(data, job.preset, job.names, cfg, epochs=job.epochs)
        cnn_seconds += window.classifier.fit_seconds_
        samples += window.classifier.trained_samples_
        best_epochs.append(int(window.classifier.best_epoch_))
        for rows, out in ((data.test, tests), (data.val, vals)):
            if len(rows):
                preds = predict_rows(window.classifier.predict_proba, window.transform, rows)
                out.append(preds.assign(who=job.who, test_year=int(fold.test_start.year), seed=seed))
        first = first or window
    if first is None:
        raise TradeopsError(f"{job.who}: fold {fold.test_start.year} has no seed to train")
    lgbm, lgbm_seconds = None, 0.0
    if job.cfg.baselines:
        t0 = time.perf_counter()
        lgbm = lightgbm_signals(data, first.transform, list(first.transform.feature_names_in_), job.cfg.seed)
        lgbm_seconds = time.perf_counter() - t0
    info = {
        "who": job.who,
        "test_year": int(fold.test_start.year),
        "fit": f"{fold.train_start.date()}..{fold.train_end.date()}",
        "val": f"{fold.val_start.date()}..{fold.val_end.date()}"
        if fold.val_start is not None and fold.val_end is not None
        else None,
        "test": f"{fold.test_start.date()}..{fold.test_end.date()}",
        "fit_rows": first.fit_rows,
        "val_rows": first.val_rows,
        "test_rows": len(data.test),
        "best_epoch": best_epochs[0],
        "best_epochs": best_epochs,
        "cnn_fit_seconds": round(cnn_seconds, 3),
        "lightgbm_fit_seconds": round(lgbm_seconds, 3),
        "trained_samples": samples,
    }
    empty = tests[0].iloc[:0]
    return FoldOutcome(
        info,
        pd.concat(tests, ignore_index=True),
        pd.concat(vals, ignore_index=True) if vals else empty,
        lgbm,
        cnn_seconds,
        lgbm_seconds,
        samples,
        time.perf_counter() - started,
    )


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_folds(jobs: list[FoldJob], workers: int, threads: int) -> list[FoldOutcome]:
    """Run ``jobs`` in order (``workers == 1``) or over a pool of ``workers`` spawned processes with ``threads``
    torch threads each; outcomes come back in job order either way, so results do not depend on ``workers``."""
    if workers <= 1 or len(jobs) <= 1:
        return [run_fold(j) for j in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=mp.get_context("spawn"),
        initializer=_worker_init,
        initargs=(threads,),
    ) as pool:
        return list(pool.map(run_fold, jobs))


#: Multiply-adds of one 15x15 CNN-TA forward pass (conv1 13*13*32*9, conv2 11*11*64*32*9, dense 1600*128, out 128*3);
#: a training step costs ~3 forward passes (forward, input and weight gradients), 2 FLOP per multiply-add.
CNN_TA_FORWARD_MACS = 13 * 13 * 32 * 9 + 11 * 11 * 64 * 32 * 9 + 1600 * 128 + 128 * 3
TRAIN_FLOP_PER_SAMPLE = 3 * 2 * CNN_TA_FORWARD_MACS


def timing_of(outcomes: list[FoldOutcome], wall: float, workers: int, threads: int) -> dict:
    """Wall seconds, CNN / LightGBM training seconds (summed over folds), the share of the run's core-time outside
    CNN training (``1 - cnn_seconds / (wall * max(1, workers))``: loading, transforms, prediction, baselines,
    backtests, process start-up) and the achieved training GFLOP/s (:data:`TRAIN_FLOP_PER_SAMPLE` per visited row)."""
    cnn = sum(o.cnn_seconds for o in outcomes)
    lgbm = sum(o.lgbm_seconds for o in outcomes)
    samples = sum(o.trained_samples for o in outcomes)
    lanes = max(1, min(workers, len(outcomes)))
    return {
        "wall_seconds": round(wall, 3),
        "cnn_fit_seconds": round(cnn, 3),
        "lightgbm_fit_seconds": round(lgbm, 3),
        "workers": workers,
        "torch_threads": threads,
        "folds": len(outcomes),
        "trained_samples": samples,
        "outside_cnn_training_share": round(1.0 - cnn / (wall * lanes), 4) if wall > 0 else float("nan"),
        "outside_training_share": round(1.0 - (cnn + lgbm) / (wall * lanes), 4) if wall > 0 else float("nan"),
        "train_gflops": round(samples * TRAIN_FLOP_PER_SAMPLE / cnn / 1e9, 2) if cnn > 0 else float("nan"),
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
    seeds: list[int] | None = None,
    workers: int = 1,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> WalkForwardResult:
    """Retrain per test year and score the concatenated test signals (see the module docstring).

    ``seeds``: one CNN per seed and fold (default ``[model.seed]``); the table scores the first. ``workers``: fold
    processes (1: this process); ``threads``: torch threads per fold (default ``model.torch_threads``). Results are
    the same for any ``workers`` at the same ``threads``.
    """
    from tradeops.model.training import ensure_features, load_frame

    started = time.perf_counter()
    check_arguments(mode=mode, train_years=train_years, test_years=test_years)
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    cfg = settings.model
    seeds = list(dict.fromkeys(seeds or [cfg.seed]))
    threads = int(threads if threads is not None else cfg.torch_threads)
    if threads < 0 or (workers > 1 and threads < 1):
        raise UsageError(f"--threads must be >= 1 with --workers > 1 (>= 0 otherwise), got {threads}")
    cfg = cfg.model_copy(update={"seed": seeds[0], "torch_threads": threads})
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
    jobs, skipped = [], []
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
        jobs += [
            FoldJob(who, split_rows(rows, fs.names, fold), preset, tuple(fs.names), cfg, epochs, tuple(seeds))
            for fold in folds
        ]
    if not jobs:
        raise TradeopsError("walk-forward produced no fold: check --test-years against the stored history")
    if progress:
        progress(f"{len(jobs)} folds on {min(workers, len(jobs))} worker(s)")
    if workers <= 1:
        outcomes = []
        for job in jobs:
            if progress:
                progress(f"{job.who} {job.data.fold.test_start.year}")
            outcomes.append(run_fold(job))
    else:
        outcomes = run_folds(jobs, workers, threads)
    all_preds = pd.concat([o.test for o in outcomes], ignore_index=True)
    val_preds = pd.concat([o.val for o in outcomes], ignore_index=True)
    lgbm = [o.lightgbm for o in outcomes if o.lightgbm is not None]
    preds = all_preds.loc[all_preds["seed"] == seeds[0]].sort_values(["ticker", "date"], kind="stable")
    extra = {"lightgbm": pd.concat(lgbm, ignore_index=True)} if lgbm else None
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
        [o.info for o in outcomes],
        table,
        evaluation.to_dict() | {"versions": versions.to_dict(), "per_ticker": per_ticker_f1(preds)},
        skipped,
        predictions=all_preds,
        val_predictions=val_preds,
        lightgbm=extra["lightgbm"] if extra else None,
        seeds=seeds,
        timing=timing_of(outcomes, time.perf_counter() - started, workers, threads),
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
