"""Training windows: split -> fit the transform and the CNN on the training window -> predict the test window ->
evaluate (classification + backtests + baselines). Pure computation over frames; tracking and registry live in
:mod:`tradeops.model.tracking` and :mod:`tradeops.model.registry`.

Time conventions (ARCHITECTURE.md section 4): a fold's fit rows have labels known before validation starts, the
validation rows before the test starts, with an embargo of ``embargo`` trading days between segments; the scaler,
feature selection and network see fit rows only (validation only steers early stopping).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from tradeops.config import ModelConfig
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import CLASSES, LABEL_COLUMN, LABEL_KNOWN_AT_COLUMN, encode_labels, label_horizon
from tradeops.features.splits import Fold
from tradeops.features.transform import ImageTransform
from tradeops.model.backtest import Costs, backtest
from tradeops.model.baselines import BASELINES
from tradeops.model.cnn import CNNClassifier, Recipe
from tradeops.model.evaluate import classification_metrics

PROBA_COLUMNS = tuple(f"p_{c}" for c in CLASSES)


def holdout_fold(
    dates: pd.DatetimeIndex, *, test_days: int, train_years: float, embargo: int, val_fraction: float, horizon: int = 5
) -> Fold:
    """The most recent ``test_days`` trading dates as test; ``[fit] E [val] E`` before it over ``train_years``.

    ``dates`` are the unique trading dates available (sorted). Raises a usage error when the history is too short.
    """
    if embargo < horizon:
        raise UsageError(f"embargo {embargo} < label horizon {horizon}: labels would leak across the split")
    d = pd.DatetimeIndex(dates).unique().sort_values()
    n = len(d)
    ts = n - test_days
    if ts <= embargo + 1:
        raise UsageError(
            f"{n} trading dates are too few for a {test_days}-day test window after "
            f"{train_years:g} years of training (need >= 250 fit days)"
        )
    region_end = ts - embargo - 1
    start_date = d[ts] - pd.DateOffset(months=int(round(train_years * 12)))
    region_start = int(d.searchsorted(start_date))
    region = region_end - region_start + 1
    val_len = int(round(val_fraction * region)) if val_fraction > 0 else 0
    fit_end = region_end - (val_len + embargo if val_len else 0)
    if ts <= 0 or fit_end - region_start + 1 < 250:
        raise UsageError(
            f"{n} trading dates are too few for a {test_days}-day test window after "
            f"{train_years:g} years of training (need >= 250 fit days)"
        )
    val = (d[region_end - val_len + 1], d[region_end]) if val_len else (None, None)
    return Fold(0, d[region_start], d[fit_end], val[0], val[1], d[ts], d[n - 1])


@dataclass
class WindowData:
    """One fold's rows. ``test`` keeps every test row with complete features (labels may be missing at the end)."""

    fold: Fold
    fit: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split_rows(frame: pd.DataFrame, names: Sequence[str], fold: Fold) -> WindowData:
    """Rows of ``frame`` (ticker, date, features..., label, label_known_at) in the fold, warm-up rows dropped."""
    masks = fold.masks(frame["date"], frame[LABEL_KNOWN_AT_COLUMN])
    complete = frame[list(names)].notna().all(axis=1).to_numpy()
    labelled = frame[LABEL_COLUMN].notna().to_numpy()
    return WindowData(
        fold,
        frame.loc[masks.train & complete & labelled].reset_index(drop=True),
        frame.loc[masks.val & complete & labelled].reset_index(drop=True),
        frame.loc[masks.test & complete].reset_index(drop=True),
    )


def _ids(labels: pd.Series) -> np.ndarray:
    return encode_labels(labels).to_numpy(dtype=np.int64)


@dataclass
class WindowModel:
    transform: ImageTransform
    classifier: CNNClassifier
    fit_rows: int
    val_rows: int


def make_transform(preset: str, names: Sequence[str], side: int = 15, seed: int = 0) -> ImageTransform:
    """cnn-ta: the fixed 225 features in the paper's order; thesis: selection of side*side on the fit rows."""
    if preset == "cnn-ta":
        return ImageTransform(side=side, feature_names=list(names))
    return ImageTransform(side=side, select=True, random_state=seed)


def fit_window(
    data: WindowData,
    preset: str,
    names: Sequence[str],
    cfg: ModelConfig,
    *,
    epochs: int | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    classifier: CNNClassifier | None = None,
) -> WindowModel:
    """Fit the transform on the fit rows, then the CNN (validation rows steer early stopping)."""
    if len(data.fit) == 0:
        raise TradeopsError(f"fold {data.fold.index}: no labelled training rows with complete features")
    y_fit = _ids(data.fit[LABEL_COLUMN])
    missing = [CLASSES[c] for c in range(len(CLASSES)) if c not in set(y_fit.tolist())]
    if missing:
        raise TradeopsError(
            f"fold {data.fold.index}: training window {data.fold.train_start.date()}.."
            f"{data.fold.train_end.date()} has no {', '.join(missing)} label"
        )
    transform = make_transform(preset, names, seed=cfg.seed).fit(data.fit[list(names)], y_fit)
    x_fit = transform.transform(data.fit[list(names)])
    clf = classifier or CNNClassifier(
        recipe=cast(Recipe, cfg.recipe),
        epochs=epochs or cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        num_threads=cfg.torch_threads or None,
        device=cfg.device,
    )
    if clf.recipe == "default" and len(data.val) == 0:
        raise UsageError(
            "the default recipe early-stops on a validation tail: set model.val_fraction > 0 or use recipe 'paper'"
        )
    if len(data.val):
        clf.fit(
            x_fit, y_fit, transform.transform(data.val[list(names)]), _ids(data.val[LABEL_COLUMN]), on_epoch=on_epoch
        )
    else:
        clf.fit(x_fit, y_fit, on_epoch=on_epoch)
    return WindowModel(transform, clf, len(data.fit), len(data.val))


def predict_rows(
    predict_proba: Callable[[np.ndarray], np.ndarray], transform: ImageTransform, rows: pd.DataFrame
) -> pd.DataFrame:
    """ticker, date, p_BUY, p_SELL, p_HOLD, signal (argmax), y_true (label or NA) for ``rows``."""
    proba = predict_proba(transform.transform(rows[list(transform.feature_names_in_)]))
    out = rows[["ticker", "date"]].copy()
    for j, col in enumerate(PROBA_COLUMNS):
        out[col] = proba[:, j].astype(np.float64)
    out["signal"] = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)]
    out["y_true"] = rows[LABEL_COLUMN].to_numpy() if LABEL_COLUMN in rows else pd.NA
    return out


@dataclass
class Evaluation:
    """Scores of one set of signals on one window: classification (labelled rows) and per-ticker backtests."""

    classification: dict
    backtests: dict[str, dict[str, dict]]  # ticker -> strategy -> metrics (paper and realistic)
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"classification": self.classification, "backtests": self.backtests, "summary": self.summary}


def bars_by_ticker(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Stored bars -> per-ticker adjusted open/close frames indexed by date (what backtests read)."""
    return {
        t: pd.DataFrame(
            {"open": g["adj_open"].to_numpy(), "close": g["adj_close"].to_numpy()},
            index=pd.DatetimeIndex(g["date"], name="date"),
        )
        for t, g in bars.groupby("ticker", sort=True)
    }


def backtest_signals(
    signals: pd.DataFrame,
    bars: dict[str, pd.DataFrame],
    costs: Costs,
    strategy_signals: dict[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
) -> dict:
    """Backtest ``signals`` (ticker, date, signal) per ticker in both fill modes, plus the rule baselines on the same
    window. Returns ticker -> strategy -> {"paper": metrics, "realistic": metrics}."""
    out: dict[str, dict[str, dict]] = {}
    baselines = BASELINES if strategy_signals is None else strategy_signals
    for ticker, g in signals.groupby("ticker", sort=True):
        if ticker not in bars:
            raise TradeopsError(f"{ticker}: no stored bars to backtest the signals on")
        b = bars[ticker]
        s = pd.Series(g["signal"].to_numpy(), index=pd.DatetimeIndex(g["date"]))
        window = b.loc[s.index.min() : s.index.max()]
        if len(window) < 2:
            continue
        res: dict[str, dict] = {}
        res["model"] = {
            m: backtest(b, s, mode=m, costs=None if m == "paper" else costs, ticker=ticker).metrics()
            for m in ("paper", "realistic")
        }
        res["buy_and_hold"] = {m: v["buy_and_hold"] for m, v in res["model"].items()}
        for name, rule in baselines.items():
            if name == "buy_and_hold":
                continue
            full = rule(b.loc[: s.index.max()])  # rules read bars <= t, so the history before the window warms up
            rule_s = full.loc[window.index]
            res[name] = {
                m: backtest(b, rule_s, mode=m, costs=None if m == "paper" else costs, ticker=ticker).metrics()
                for m in ("paper", "realistic")
            }
        out[str(ticker)] = res
    return out


def evaluate_signals(
    preds: pd.DataFrame, bars: dict[str, pd.DataFrame], costs: Costs, *, extra: dict[str, pd.DataFrame] | None = None
) -> Evaluation:
    """Classification on rows with a known label + backtests; ``extra`` adds other models' signals (e.g. LightGBM)
    as strategies evaluated identically."""
    labelled = preds.loc[preds["y_true"].notna()]
    if len(labelled) == 0:
        raise TradeopsError("no labelled test rows to score (the test window is inside the label horizon)")
    cls = classification_metrics(_ids(labelled["y_true"]), _ids(labelled["signal"]))
    bt = backtest_signals(preds, bars, costs)
    for name, other in (extra or {}).items():
        other_bt = backtest_signals(other, bars, costs, strategy_signals={})
        for ticker, res in other_bt.items():
            bt.setdefault(ticker, {})[name] = res["model"]
    realistic = [r["model"]["realistic"] for r in bt.values()]
    summary = {
        "macro_f1": cls["macro_f1"],
        "accuracy": cls["accuracy"],
        "recall_BUY": cls["recall_BUY"],
        "recall_SELL": cls["recall_SELL"],
        "f1_BUY": cls["f1_BUY"],
        "f1_SELL": cls["f1_SELL"],
        "f1_HOLD": cls["f1_HOLD"],
        # An undefined Sharpe (None) stays NaN so the blessing gate fails on it rather than reading it as 0.
        "net_sharpe": float(np.mean([np.nan if r["sharpe"] is None else r["sharpe"] for r in realistic]))
        if realistic
        else float("nan"),
        "net_annualized_return": float(np.mean([r["annualized_return"] for r in realistic]))
        if realistic
        else float("nan"),
        "paper_annualized_return": float(np.mean([r["model"]["paper"]["annualized_return"] for r in bt.values()]))
        if bt
        else float("nan"),
        "max_drawdown": float(np.min([r["max_drawdown"] for r in realistic])) if realistic else float("nan"),
        "trades_per_year": float(np.mean([r["trades_per_year"] for r in realistic])) if realistic else float("nan"),
        "bh_annualized_return": float(np.mean([r["buy_and_hold"]["annualized_return"] for r in realistic]))
        if realistic
        else float("nan"),
    }
    return Evaluation(cls, bt, summary)


def horizon_of(label_window: int) -> int:
    return label_horizon(label_window)


def slice_metrics(preds: pd.DataFrame, bars: dict[str, pd.DataFrame], fit_dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Classification per ticker, per year and per volatility regime on the labelled test rows.

    The regime cut points (terciles of 20-day realised volatility) are fitted per ticker on the fit window's dates
    only, so the test period's volatility never shapes them.
    """
    from tradeops.model.evaluate import evaluate_slices, volatility_regime

    labelled = preds.loc[preds["y_true"].notna()].copy()
    regimes = []
    for ticker, g in labelled.groupby("ticker", sort=False):
        close = bars[ticker]["close"]
        train_index = close.index.intersection(fit_dates)
        regime = volatility_regime(close, train_index=train_index)
        regimes.append(pd.Series(regime.reindex(pd.DatetimeIndex(g["date"])).to_numpy(), index=g.index))
    labelled["vol_regime"] = pd.concat(regimes) if regimes else pd.Series(dtype=object)
    labelled["y_true"] = _ids(labelled["y_true"])
    labelled["y_pred"] = _ids(labelled["signal"])
    return evaluate_slices(labelled, y_true="y_true", y_pred="y_pred", by=("ticker", "year", "vol_regime"))
