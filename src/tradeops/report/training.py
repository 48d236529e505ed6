"""Training report: one self-contained HTML page of what one training run logged (``reports/training.html``).

Sections (anchors in :data:`SECTIONS`): summary (run, data versions, windows, headline metrics), confusion matrix,
precision / recall / F1 per class, metrics per slice (ticker, year, volatility regime), training curves per epoch,
backtest against the baselines net of costs (table, chart and, when given, equity curves) and the model card. Every
figure says "no data yet: <why>" instead of drawing an empty chart; plotly.js is inlined once, so the page opens
offline.

Inputs are the run's own artifacts: the bundle ``meta``, ``evaluation/evaluation.json`` (``Evaluation.to_dict()``),
``training/history.json`` (``classifier.history_``), ``evaluation/slices.csv`` and ``MODEL_CARD.md``. All scores are
on the test window (after the embargo), never on rows the model was fitted on. :func:`render_training_report` is
pure; :func:`backtest_equity` recomputes the test window's equity curves from the signals (pure as well), and
:func:`candidate_report` joins the two for :func:`tradeops.model.training.register_candidate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tradeops.errors import TradeopsError
from tradeops.model.evaluate import SLICE_COLUMNS
from tradeops.report.features import _CSS, _LAYOUT, _FigureRenderer, _table
from tradeops.report.monitoring import _EXTRA_CSS, _esc, _fixed, _int, _json, _nodata, _number, _pct, _str, _when

__all__ = [
    "EQUITY_COLUMNS",
    "META_KEYS",
    "SECTIONS",
    "backtest_equity",
    "candidate_report",
    "render_training_report",
]

#: (anchor id, heading) of every section, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "1. Summary"),
    ("confusion", "2. Confusion matrix (test window)"),
    ("per-class", "3. Precision, recall and F1 per class"),
    ("slices", "4. Metrics per slice"),
    ("curves", "5. Training curves"),
    ("backtest", "6. Backtest vs baselines (net of costs)"),
    ("model-card", "7. Model card"),
)
#: Keys ``meta`` must have (the bundle meta of :func:`tradeops.model.training.register_candidate` has them all).
META_KEYS: tuple[str, ...] = ("name", "run_id", "feature_set_version", "tickers", "fold", "table_versions")
#: Columns of an equity frame (:func:`backtest_equity`): ``equity`` is equity / initial cash, net of costs.
EQUITY_COLUMNS: tuple[str, ...] = ("date", "ticker", "strategy", "equity")

_WHO = "training report"
_FIRST_STRATEGIES = ("model", "buy_and_hold")
_STRATEGY_COLORS = {"model": "#1f77b4", "buy_and_hold": "#7f7f7f"}
_CLASS_METRICS = ("precision", "recall", "f1", "support")


def render_training_report(
    *,
    title: str,
    generated_at: datetime,
    meta: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    slices: pd.DataFrame,
    model_card: str,
    equity: pd.DataFrame | None = None,
) -> str:
    """Render one training run as a self-contained HTML string.

    ``meta``: the bundle meta (at least :data:`META_KEYS`; ``fold`` holds ISO dates). ``evaluation``:
    ``Evaluation.to_dict()`` (``classification`` with ``classes``, ``confusion_matrix`` rows = true class, columns
    = predicted, ``per_class``; ``backtests`` ticker -> strategy -> ``{"paper", "realistic"}`` metrics; ``summary``).
    ``history``: one record per epoch (``epoch``, ``train_loss``, and ``val_*`` with a validation split).
    ``slices``: the rows of ``evaluation/slices.csv`` (:data:`tradeops.model.evaluate.SLICE_COLUMNS`; may be
    empty). ``model_card``: the card's markdown. ``equity``: optional :data:`EQUITY_COLUMNS` frame of the test
    window's realistic-mode equity (:func:`backtest_equity`). Raises :class:`TradeopsError` naming the input and the
    key or column when an input has the wrong shape.
    """
    if not isinstance(meta, Mapping):
        raise TradeopsError(f"{_WHO}: meta must be a mapping, got {type(meta).__name__}")
    for key in META_KEYS:
        if key not in meta:
            raise TradeopsError(f"{_WHO}: meta lacks key {key!r} (needs {', '.join(META_KEYS)})")
    classification, backtests, summary = _check_evaluation(evaluation)
    epochs = _check_history(history)
    slices_f = _check_slices(slices)
    if not isinstance(model_card, str):
        raise TradeopsError(f"{_WHO}: model_card must be a string, got {type(model_card).__name__}")
    equity_f = _check_equity(equity)

    figures = _FigureRenderer()
    body = [
        _summary_section(meta, summary),
        _confusion_section(classification, figures),
        _per_class_section(classification),
        _slices_section(slices_f, figures),
        _curves_section(epochs, figures),
        _backtest_section(backtests, equity_f, figures),
        _card_section(model_card),
    ]
    nav = "".join(f'<li><a href="#{anchor}">{_esc(heading)}</a></li>' for anchor, heading in SECTIONS)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}{_EXTRA_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="note">Generated {_esc(_when(generated_at))} for run <code>{_esc(_str(meta["run_id"]))}</code>. '
        "Every score is on the test window, after the embargo; nothing the model was fitted on. "
        "Self-contained page: no network access needed.</p>\n"
        f"<nav><ol>{nav}</ol></nav>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def backtest_equity(preds: pd.DataFrame, bars: Mapping[str, pd.DataFrame], costs: Any) -> pd.DataFrame:
    """Realistic-mode equity curves of the test window, as :func:`tradeops.model.windows.backtest_signals` scores
    it: the model's signals, Buy & Hold and each rule baseline per ticker (rules warmed up on the bars before the
    window). ``preds``: ticker, date, signal; ``bars``: ticker -> adjusted open/close by date; ``costs``: a
    :class:`tradeops.model.backtest.Costs`. Returns :data:`EQUITY_COLUMNS`, equity / initial cash at each close."""
    from tradeops.model.backtest import backtest
    from tradeops.model.baselines import BASELINES

    parts = []
    for ticker, g in preds.groupby("ticker", sort=True):
        if ticker not in bars:
            raise TradeopsError(f"{_WHO}: {ticker}: no stored bars to backtest the signals on")
        b = bars[ticker]
        s = pd.Series(g["signal"].to_numpy(), index=pd.DatetimeIndex(g["date"]))
        window = b.loc[s.index.min() : s.index.max()]
        if len(window) < 2:
            continue
        model = backtest(b, s, mode="realistic", costs=costs, ticker=str(ticker))
        curves = {"model": model}
        if model.buy_and_hold is not None:
            curves["buy_and_hold"] = model.buy_and_hold
        for name, rule in BASELINES.items():
            if name != "buy_and_hold":
                rule_s = rule(b.loc[: s.index.max()]).loc[window.index]
                curves[name] = backtest(b, rule_s, mode="realistic", costs=costs, ticker=str(ticker))
        for name, result in curves.items():
            parts.append(
                pd.DataFrame(
                    {
                        "date": result.equity.index.to_numpy(dtype="datetime64[ns]"),
                        "ticker": str(ticker),
                        "strategy": name,
                        "equity": result.equity.to_numpy(dtype=np.float64) / float(result.initial_cash),
                    }
                )
            )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "date" else object) for c in EQUITY_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def candidate_report(
    *,
    meta: Mapping[str, Any],
    evaluation: Any,
    history: Sequence[Mapping[str, Any]],
    model_card: str,
    preds: pd.DataFrame,
    bars: Mapping[str, pd.DataFrame],
    costs: Any,
    generated_at: datetime | None = None,
) -> str:
    """The training page of a candidate from the in-memory objects of one run (``evaluation``: the
    :class:`tradeops.model.windows.Evaluation`; slices from its ``classification["slices"]``); ``generated_at``
    defaults to now (UTC)."""
    return render_training_report(
        title=f"Training report: {meta.get('name', '?')} (run {meta.get('run_id', '?')})",
        generated_at=generated_at or datetime.now(UTC),
        meta=meta,
        evaluation=evaluation.to_dict(),
        history=history,
        slices=pd.DataFrame(evaluation.classification.get("slices") or [], columns=list(SLICE_COLUMNS)),
        model_card=model_card,
        equity=backtest_equity(preds, bars, costs),
    )


# --- inputs ------------------------------------------------------------------------------------------------------


def _check_evaluation(evaluation: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    if not isinstance(evaluation, Mapping):
        raise TradeopsError(f"{_WHO}: evaluation must be a mapping, got {type(evaluation).__name__}")
    for key in ("classification", "backtests"):
        if not isinstance(evaluation.get(key), Mapping):
            raise TradeopsError(f"{_WHO}: evaluation lacks key {key!r} (a mapping; Evaluation.to_dict() has it)")
    cls = dict(evaluation["classification"])
    for key in ("classes", "confusion_matrix", "per_class"):
        if key not in cls:
            raise TradeopsError(f"{_WHO}: evaluation['classification'] lacks key {key!r}")
    classes = [str(c) for c in cls["classes"]]
    k = len(classes)
    try:
        cm = np.asarray(cls["confusion_matrix"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TradeopsError(f"{_WHO}: evaluation['classification']['confusion_matrix'] must hold counts") from exc
    if cm.shape != (k, k):
        raise TradeopsError(
            f"{_WHO}: confusion_matrix must be {k}x{k} (rows true, columns predicted, classes {classes}), "
            f"got shape {cm.shape}"
        )
    if not np.isfinite(cm).all() or (cm < 0).any() or (cm != np.round(cm)).any():
        raise TradeopsError(f"{_WHO}: confusion_matrix must hold non-negative whole counts")
    per_class = cls["per_class"]
    if not isinstance(per_class, Mapping):
        raise TradeopsError(f"{_WHO}: evaluation['classification']['per_class'] must be a mapping")
    for c in classes:
        if not isinstance(per_class.get(c), Mapping):
            raise TradeopsError(f"{_WHO}: evaluation['classification']['per_class'] lacks class {c!r}")
        for key in _CLASS_METRICS:
            if key not in per_class[c]:
                raise TradeopsError(f"{_WHO}: per_class[{c!r}] lacks key {key!r} (needs {', '.join(_CLASS_METRICS)})")
    cls["classes"] = classes
    cls["confusion_matrix"] = cm.astype(np.int64)
    backtests = dict(evaluation["backtests"])
    for ticker, strategies in backtests.items():
        if not isinstance(strategies, Mapping):
            raise TradeopsError(f"{_WHO}: backtests[{ticker!r}] must map strategy -> metrics")
        for name, modes in strategies.items():
            if not isinstance(modes, Mapping) or "realistic" not in modes:
                raise TradeopsError(f"{_WHO}: backtests[{ticker!r}][{name!r}] lacks key 'realistic'")
    summary = evaluation.get("summary") or {}
    if not isinstance(summary, Mapping):
        raise TradeopsError(f"{_WHO}: evaluation['summary'] must be a mapping, got {type(summary).__name__}")
    return cls, backtests, dict(summary)


def _check_history(history: Any) -> pd.DataFrame:
    """One row per epoch (sorted), float columns; empty frame when nothing was recorded."""
    if not isinstance(history, Sequence) or isinstance(history, (str, bytes)):
        raise TradeopsError(f"{_WHO}: history must be a list of per-epoch records, got {type(history).__name__}")
    records = []
    for i, rec in enumerate(history):
        if not isinstance(rec, Mapping):
            raise TradeopsError(f"{_WHO}: history[{i}] must be a mapping, got {type(rec).__name__}")
        if "epoch" not in rec:
            raise TradeopsError(f"{_WHO}: history[{i}] lacks key 'epoch'")
        row: dict[str, float] = {}
        for key, value in rec.items():
            if value is None:
                row[str(key)] = np.nan
                continue
            v = _number(value)
            if v is None and not (isinstance(value, float) and not np.isfinite(value)):
                raise TradeopsError(f"{_WHO}: history[{i}][{key!r}] must be a number, got {value!r}")
            row[str(key)] = np.nan if v is None else v
        records.append(row)
    if not records:
        return pd.DataFrame()
    return pd.DataFrame(records).sort_values("epoch", kind="stable").reset_index(drop=True)


def _check_slices(slices: Any) -> pd.DataFrame | None:
    if not isinstance(slices, pd.DataFrame):
        raise TradeopsError(f"{_WHO}: slices must be a DataFrame, got {type(slices).__name__}")
    if len(slices) == 0:
        return None
    for col in SLICE_COLUMNS:
        if col not in slices.columns:
            raise TradeopsError(f"{_WHO}: slices lacks column {col!r} (needs {', '.join(SLICE_COLUMNS)})")
    out = pd.DataFrame({"slice": slices["slice"].astype(str), "value": slices["value"].astype(str)})
    for col in SLICE_COLUMNS[2:]:
        try:
            out[col] = pd.to_numeric(slices[col], errors="raise").astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TradeopsError(f"{_WHO}: slices.{col} must hold numbers: {exc}") from exc
    return out.reset_index(drop=True)


def _check_equity(equity: Any) -> pd.DataFrame | None:
    if equity is None:
        return None
    if not isinstance(equity, pd.DataFrame):
        raise TradeopsError(f"{_WHO}: equity must be a DataFrame or None, got {type(equity).__name__}")
    if len(equity) == 0:
        return None
    for col in EQUITY_COLUMNS:
        if col not in equity.columns:
            raise TradeopsError(f"{_WHO}: equity lacks column {col!r} (needs {', '.join(EQUITY_COLUMNS)})")
    if not pd.api.types.is_datetime64_dtype(equity["date"]):
        raise TradeopsError(f"{_WHO}: equity.date must be tz-naive datetime64, got dtype {equity['date'].dtype}")
    try:
        values = pd.to_numeric(equity["equity"], errors="raise").astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TradeopsError(f"{_WHO}: equity.equity must hold numbers: {exc}") from exc
    return pd.DataFrame(
        {
            "date": equity["date"].to_numpy(dtype="datetime64[ns]"),
            "ticker": equity["ticker"].astype(str).to_numpy(),
            "strategy": equity["strategy"].astype(str).to_numpy(),
            "equity": values.to_numpy(),
        }
    ).sort_values(["ticker", "strategy", "date"], kind="stable")


# --- sections ----------------------------------------------------------------------------------------------------


def _section(anchor: str, body: str) -> str:
    heading = dict(SECTIONS)[anchor]
    return f'<section>\n<h2 id="{anchor}">{_esc(heading)}</h2>\n{body}\n</section>'


def _summary_section(meta: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    fold = meta["fold"] if isinstance(meta["fold"], Mapping) else {}
    versions = meta["table_versions"] if isinstance(meta["table_versions"], Mapping) else {}
    tickers = meta["tickers"]
    tickers_text = ", ".join(str(t) for t in tickers) if isinstance(tickers, Sequence) else str(tickers)
    facts: list[tuple[str, object]] = [
        ("model", _str(meta["name"])),
        ("run id", _str(meta["run_id"])),
        ("preset", _str(meta.get("preset")) or "–"),
        ("feature-set version", _str(meta["feature_set_version"])),
        ("tickers", tickers_text),
        (
            "table versions",
            ", ".join(f"{k} v{v}" for k, v in versions.items()) or _str(meta["table_versions"]),
        ),
        ("fit window", _span(fold, "train")),
        ("validation window", _span(fold, "val")),
        ("test window", _span(fold, "test")),
        ("trained as of", _str(meta.get("as_of")) or "–"),
    ]
    for key, label in (
        ("label_window", "label window (trading days)"),
        ("git_commit", "git commit"),
        ("tradeops_version", "tradeops version"),
        ("seed", "seed"),
        ("torch_num_threads", "torch threads"),
        ("weights_sha256", "weights sha256"),
    ):
        if key in meta:
            facts.append((label, _str(meta[key]) or "–"))
    metrics = [(str(k), _metric(v)) for k, v in summary.items()]
    config = meta.get("config")
    details = (
        f"<details><summary>training configuration</summary><pre>{_esc(_json(config, indent=1))}</pre></details>"
        if config
        else ""
    )
    return _section(
        "summary",
        _table(["item", "value"], facts)
        + ("<h3>Headline metrics (test window)</h3>" + _table(["metric", "value"], metrics) if metrics else "")
        + details,
    )


def _span(fold: Mapping[str, Any], part: str) -> str:
    start, end = fold.get(f"{part}_start"), fold.get(f"{part}_end")
    if start is None and end is None:
        return "none" if part == "val" else "–"
    return f"{_str(start)[:10]} .. {_str(end)[:10]}"


def _metric(value: Any) -> str:
    v = _number(value)
    if v is None:
        return "–" if value is None or isinstance(value, float) else str(value)
    return f"{v + 0.0:.4f}"


def _confusion_section(cls: Mapping[str, Any], figures: _FigureRenderer) -> str:
    classes: list[str] = cls["classes"]
    cm: np.ndarray = cls["confusion_matrix"]
    total = int(cm.sum())
    if total == 0:
        return _section("confusion", _nodata("the confusion matrix counts no labelled test row"))
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    text = [[f"{int(cm[i, j])}<br>{share[i, j]:.0%}" for j in range(len(classes))] for i in range(len(classes))]
    fig = go.Figure(
        go.Heatmap(
            z=cm.tolist(),
            x=[f"pred {_esc(c)}" for c in classes],
            y=[f"true {_esc(c)}" for c in classes],
            text=text,
            texttemplate="%{text}",
            customdata=share.tolist(),
            colorscale="Blues",
            hovertemplate="%{y}, %{x}: %{z} rows (%{customdata:.1%} of the true class)<extra></extra>",
        )
    )
    fig.update_layout(**_LAYOUT, height=380, width=520)
    fig.update_yaxes(autorange="reversed")
    table = _table(
        ["true \\ predicted", *classes, "total"],
        [(f"true {c}", *(int(v) for v in cm[i]), int(cm[i].sum())) for i, c in enumerate(classes)],
    )
    return _section(
        "confusion",
        f'<p class="note">{total} labelled test rows; rows are the true class, columns the predicted one; each cell '
        "shows the count and its share of the true class (the recall on the diagonal).</p>"
        + figures.render(fig, "fig-confusion")
        + table,
    )


def _per_class_section(cls: Mapping[str, Any]) -> str:
    classes: list[str] = cls["classes"]
    per = cls["per_class"]
    rows: list[tuple[object, ...]] = [
        (
            c,
            float(per[c]["precision"]),
            float(per[c]["recall"]),
            float(per[c]["f1"]),
            int(per[c]["support"]),
        )
        for c in classes
    ]
    n = int(cls.get("n", sum(int(per[c]["support"]) for c in classes)))
    if "macro_f1" in cls:
        rows.append(("macro average", "–", "–", float(cls["macro_f1"]), n))
    if "weighted_f1" in cls:
        rows.append(("weighted average", "–", "–", float(cls["weighted_f1"]), n))
    accuracy = f" Accuracy {float(cls['accuracy']):.4f}." if "accuracy" in cls else ""
    return _section(
        "per-class",
        f'<p class="note">Support: labelled test rows of the class.{_esc(accuracy)} A class never predicted has '
        "precision 0 and a class never true has recall 0: real zeros, not a masked error.</p>"
        + _table(["class", "precision", "recall", "F1", "support"], rows),
    )


def _slices_section(slices: pd.DataFrame | None, figures: _FigureRenderer) -> str:
    if slices is None:
        return _section("slices", _nodata("the run recorded no slice metrics"))
    fig = go.Figure()
    x = [slices["slice"].map(_esc).tolist(), slices["value"].map(_esc).tolist()]
    for col, color in (("macro_f1", "#1f77b4"), ("f1_BUY", "#2ca02c"), ("f1_SELL", "#d62728")):
        fig.add_trace(
            go.Bar(
                x=x,
                y=slices[col],
                name=col,
                marker_color=color,
                customdata=slices["n"].astype(int),
                hovertemplate=f"{col} %{{x}}: %{{y:.3f}} (%{{customdata}} rows)<extra></extra>",
            )
        )
    fig.update_layout(**_LAYOUT, height=380, barmode="group", yaxis={"range": [0, 1.02]})
    table = _table(
        list(SLICE_COLUMNS),
        [(r.slice, r.value, int(r.n), *(float(getattr(r, c)) for c in SLICE_COLUMNS[3:])) for r in slices.itertuples()],
        scroll=True,
    )
    return _section(
        "slices",
        '<p class="note">The labelled test rows per ticker, calendar year and volatility regime (terciles of 20-day '
        "realised volatility fitted on the fit window). Small slices (see n) are noisy.</p>"
        + figures.render(fig, "fig-slices")
        + table,
    )


def _curves_section(epochs: pd.DataFrame, figures: _FigureRenderer) -> str:
    if epochs.empty:
        return _section("curves", _nodata("the classifier recorded no epoch"))
    metrics = [c for c in epochs.columns if c != "epoch" and epochs[c].notna().any()]
    if not metrics:
        return _section("curves", _nodata("the per-epoch records hold no value besides the epoch"))
    losses = [c for c in metrics if "loss" in c]
    scores = [c for c in metrics if c not in losses]
    fig = make_subplots(
        rows=2 if losses and scores else 1,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=[t for t, cols in (("loss", losses), ("validation scores", scores)) if cols],
    )
    for row, cols in enumerate([c for c in (losses, scores) if c], start=1):
        for col in cols:
            fig.add_trace(
                go.Scatter(
                    x=epochs["epoch"],
                    y=epochs[col],
                    mode="lines+markers",
                    name=_esc(col),
                    hovertemplate=f"{_esc(col)} epoch %{{x}}: %{{y:.4f}}<extra></extra>",
                ),
                row,
                1,
            )
    fig.update_layout(**_LAYOUT, height=460 if losses and scores else 320, legend={"orientation": "h", "y": -0.12})
    fig.update_xaxes(title_text="epoch", row=2 if losses and scores else 1, col=1)
    if len(epochs) <= 20:  # whole epochs only, not 1.2, 1.4, ...
        fig.update_xaxes(dtick=1)
    no_val = "" if any(c.startswith("val_") for c in metrics) else " No validation split: training loss only."
    table = _table(
        ["epoch", *metrics],
        [(int(r["epoch"]), *(float(r[c]) for c in metrics)) for _, r in epochs.iterrows()],
        scroll=True,
    )
    return _section(
        "curves",
        f'<p class="note">{len(epochs)} epoch(s).{_esc(no_val)}</p>' + figures.render(fig, "fig-curves") + table,
    )


def _strategies(backtests: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names = {str(n) for strategies in backtests.values() for n in strategies}
    return [n for n in _FIRST_STRATEGIES if n in names] + sorted(names - set(_FIRST_STRATEGIES))


def _backtest_section(
    backtests: Mapping[str, Mapping[str, Any]], equity: pd.DataFrame | None, figures: _FigureRenderer
) -> str:
    intro = (
        '<p class="note">Long-only, one ticker at a time. <code>realistic</code> (net of costs): fill at the next '
        "day's open with commission and slippage; <code>paper</code>: the CNN-TA paper's optimistic rule, fill at the "
        "signal day's close. Baselines trade the same window with the same costs.</p>"
    )
    if not backtests:
        return _section("backtest", intro + _nodata("no ticker had two or more trading days in the test window"))
    order = _strategies(backtests)
    rows = []
    for ticker in sorted(backtests):
        for name in order:
            modes = backtests[ticker].get(name)
            if modes is None:
                continue
            r = modes.get("realistic") or {}
            p = modes.get("paper") or {}
            rows.append(
                (
                    ticker,
                    name,
                    _pct(r.get("total_return")),
                    _pct(r.get("annualized_return")),
                    _fixed(r.get("sharpe")),
                    _pct(r.get("max_drawdown")),
                    _int(r.get("n_trades")),
                    _pct(r.get("win_rate")),
                    _pct(r.get("exposure")),
                    _pct(p.get("annualized_return")),
                )
            )
    table = _table(
        [
            "ticker",
            "strategy",
            "total return (net)",
            "annualised return (net)",
            "Sharpe (net)",
            "max drawdown (net)",
            "trades",
            "win rate",
            "exposure",
            "annualised return (paper)",
        ],
        rows,
        scroll=True,
    )
    bars = go.Figure()
    tickers = sorted(backtests)
    for name in order:
        values = []
        for t in tickers:
            realistic = (backtests[t].get(name) or {}).get("realistic") or {}
            v = _number(realistic.get("annualized_return"))
            values.append(np.nan if v is None else v)
        bars.add_trace(
            go.Bar(
                x=[_esc(t) for t in tickers],
                y=values,
                name=_esc(name),
                marker_color=_STRATEGY_COLORS.get(name),
                hovertemplate=f"{_esc(name)} %{{x}}: %{{y:.1%}} a year (net)<extra></extra>",
            )
        )
    bars.update_layout(
        **_LAYOUT, height=340, barmode="group", yaxis={"title": "annualised return", "tickformat": ".0%"}
    )
    return _section(
        "backtest",
        intro
        + table
        + figures.render(bars, "fig-backtest")
        + "<h3>Equity on the test window</h3>"
        + _equity_chart(equity, order, figures),
    )


def _equity_chart(equity: pd.DataFrame | None, order: list[str], figures: _FigureRenderer) -> str:
    if equity is None:
        return _nodata("no equity curve was passed (the run logs scalar backtest metrics only)")
    tickers = sorted(set(equity["ticker"]))
    names = [n for n in order if n in set(equity["strategy"])]
    names += sorted(set(equity["strategy"]) - set(names))
    fig = go.Figure()
    counts = []
    for k, ticker in enumerate(tickers):
        rows = equity[equity["ticker"] == ticker]
        n = 0
        for name in names:
            one = rows[rows["strategy"] == name]
            if one.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=one["date"],
                    y=one["equity"],
                    mode="lines",
                    name=_esc(name),
                    visible=k == 0,
                    line={"color": _STRATEGY_COLORS.get(name), "dash": "dot" if name == "buy_and_hold" else "solid"},
                    hovertemplate=f"{_esc(name)} %{{x|%Y-%m-%d}}: %{{y:.4f}}<extra></extra>",
                )
            )
            n += 1
        counts.append(n)
    total = sum(counts)
    buttons = []
    offset = 0
    for ticker, n in zip(tickers, counts, strict=True):
        visible = [offset <= i < offset + n for i in range(total)]
        buttons.append(
            {
                "label": _esc(ticker),
                "method": "update",
                "args": [{"visible": visible}, {"title.text": _esc(ticker), "yaxis.autorange": True}],
            }
        )
        offset += n
    fig.update_layout(
        **_LAYOUT,
        height=380,
        title={"text": _esc(tickers[0]), "x": 0.5},
        yaxis_title="equity / initial cash (net of costs)",
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0, "xanchor": "left", "y": 1.15}],
    )
    return (
        f'<p class="note">Realistic mode, per ticker ({_esc(", ".join(tickers))}); pick one in the menu.</p>'
        + figures.render(fig, "fig-equity")
    )


def _card_section(card: str) -> str:
    if not card.strip():
        return _section("model-card", _nodata("the run logged an empty model card"))
    return _section(
        "model-card",
        '<div class="card">'
        + _markdown(card)
        + "</div><details><summary>markdown source</summary><pre>"
        + _esc(card)
        + "</pre></details>",
    )


# --- a small markdown subset (headings, lists, pipe tables, paragraphs, `code`, **bold**); everything escaped ---

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_ITEM = re.compile(r"^\s{0,3}[-*]\s+(.*)$")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def _inline(text: str) -> str:
    out = _esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _markdown(text: str) -> str:
    """Render the model card's markdown subset as HTML; headings move down two levels (h1 -> h3)."""
    html_parts: list[str] = []
    block: list[str] = []
    kind: str | None = None

    def flush() -> None:
        nonlocal block, kind
        if kind == "p":
            html_parts.append("<p>" + _inline(" ".join(block)) + "</p>")
        elif kind == "ul":
            html_parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block) + "</ul>")
        elif kind == "table":
            head, *rest = block
            body = [r for r in rest if not _TABLE_RULE.match(r.strip())]
            html_parts.append(
                "<table><thead><tr>"
                + "".join(f"<th>{_inline(c)}</th>" for c in _cells(head))
                + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in body)
                + "</tbody></table>"
            )
        block, kind = [], None

    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            flush()
            continue
        heading = _HEADING.match(stripped)
        item = _ITEM.match(line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 2, 6)
            html_parts.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif stripped.startswith("|"):
            if kind != "table":
                flush()
                kind = "table"
            block.append(stripped)
        elif item:
            if kind != "ul":
                flush()
                kind = "ul"
            block.append(item.group(1))
        elif kind == "ul" and line[:1].isspace():
            block[-1] += " " + stripped  # a wrapped list item
        else:
            if kind != "p":
                flush()
                kind = "p"
            block.append(stripped)
    flush()
    return "\n".join(html_parts)
