"""Feature exploration report: one self-contained HTML page that makes the model's input assumptions visible.

Sections: summary, class balance per ticker and year, indicator distributions per ticker, correlations, selection
scores (or, without a fitted selection, a descriptive class-mean table), feature dictionary (with a note on each
feature that duplicates another, e.g. CMO = rescaled RSI). plotly.js is inlined once, so the page opens offline.
Time conventions (stated on the page): a feature at trading date t uses bars <= t; the label of t is known at the
close of t + h trading days.

:func:`features_report` is pure (frames in, HTML string out, no file or network access);
:func:`write_features_report` adds the atomic file write.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from tradeops.features.definitions import EQUIVALENT_INDICATORS, FeatureDef, equivalent_feature
from tradeops.features.labels import CLASSES, LABEL_COLUMN, LABEL_KNOWN_AT_COLUMN
from tradeops.features.selection import SelectionResult
from tradeops.features.store import class_balance

__all__ = [
    "MAX_POINTS_PER_TICKER",
    "MAX_POINTS_TOTAL",
    "SECTIONS",
    "duplicate_notes",
    "features_report",
    "representative_features",
    "write_features_report",
]

#: (anchor id, heading) of every section, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "1. Summary"),
    ("class-balance", "2. Class balance per ticker and year"),
    ("distributions", "3. Indicator distributions per ticker"),
    ("correlations", "4. Correlations"),
    ("selection", "5. Selection scores"),
    ("dictionary", "6. Feature dictionary"),
)

#: Distribution plots draw at most this many sampled rows per ticker and feature ...
MAX_POINTS_PER_TICKER = 2_000
#: ... and at most this many in all (plotly.js alone is ~4.8 MB; this keeps the sampled data under ~1 MB).
MAX_POINTS_TOTAL = 150_000

_KEY = ["ticker", "date"]
_SEED = 0
_TOP_PAIRS = 10
_CLASS_COLORS = {"BUY": "#2ca02c", "SELL": "#d62728", "HOLD": "#9e9e9e"}
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 40, "b": 40}, "font": {"size": 11}}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#f7f7f7}
main{max-width:1200px;margin:0 auto;padding:1rem 2rem 4rem}
section{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:.25rem 1.25rem 1rem;margin:1.25rem 0}
h2{margin-top:.9rem}
p.note{color:#555;font-size:.9rem}
table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e8e8e8;padding:.2rem .6rem;text-align:left;vertical-align:top}
th{background:#f2f2f2;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:30rem;overflow:auto;border:1px solid #eee;display:inline-block;max-width:100%}
nav ol{columns:2;font-size:.9rem}
code{background:#f2f2f2;padding:0 .2rem;border-radius:3px}
"""


def representative_features(registry: Sequence[FeatureDef], max_features_shown: int = 30) -> list[str]:
    """One feature per indicator, its middle window (upper middle for an even count), in registry order; at most
    ``max_features_shown`` names."""
    by_indicator: dict[str, list[FeatureDef]] = {}
    for d in registry:
        by_indicator.setdefault(d.indicator, []).append(d)
    names = [sorted(defs, key=lambda d: d.window)[len(defs) // 2].name for defs in by_indicator.values()]
    return names[:max_features_shown]


def duplicate_notes(registry: Sequence[FeatureDef]) -> dict[str, str]:
    """Feature name -> note for each feature whose values equal another feature of ``registry`` (registry order),
    e.g. ``{"cmo_6": "same values as rsi_6 (CMO/100 = RSI/50 - 1 under Wilder smoothing)"}``."""
    names = {d.name for d in registry}
    notes: dict[str, str] = {}
    for d in registry:
        got = equivalent_feature(d)
        if got is not None and got[0] in names:
            notes[d.name] = f"same values as {got[0]} ({got[1]})"
    return notes


def features_report(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    preset: str,
    feature_set_version: str,
    registry: Sequence[FeatureDef],
    selection: SelectionResult | None = None,
    title: str = "tradeops feature report",
    max_features_shown: int = 30,
) -> str:
    """Render the feature exploration report as a self-contained HTML page (plotly.js inlined once).

    ``features``: ``ticker, date`` (tz-naive datetime64) + one numeric column per ``registry`` definition (NaN in
    warm-up). ``labels``: ``ticker, date, label`` (BUY/SELL/HOLD or missing) and optionally ``label_known_at``.
    ``selection``: the fitted :class:`SelectionResult` to display, if any; none is fitted here. Distribution plots
    sample at most :data:`MAX_POINTS_PER_TICKER` rows per ticker and feature (seed 0, deterministic).
    Raises ``ValueError`` on inputs that do not fit together.
    """
    registry = tuple(registry)
    _check_inputs(features, labels, registry, selection, max_features_shown)
    keys = pd.DataFrame(
        {"ticker": features["ticker"].astype(str).to_numpy(), "date": features["date"].to_numpy(dtype="datetime64[ns]")}
    )
    labelled = _labelled(labels)
    shown = representative_features(registry, max_features_shown)
    shown_values = features[shown].to_numpy(dtype=np.float64)
    shown_values[~np.isfinite(shown_values)] = np.nan
    shown_frame = pd.DataFrame(shown_values, columns=shown)
    defs = {d.name: d for d in registry}
    figures = _FigureRenderer()

    body = [
        _summary(features, keys, labelled, registry, preset=preset, version=feature_set_version),
        _class_balance_section(labelled, figures),
        _distributions_section(keys, shown_frame, defs, figures),
        _correlation_section(shown_frame, figures),
        _selection_section(
            selection, keys, labelled, shown_frame, defs, figures, preset=preset, top=max_features_shown
        ),
        _dictionary_section(registry, shown, selection),
    ]
    nav = "".join(f'<li><a href="#{anchor}">{_esc(heading)}</a></li>' for anchor, heading in SECTIONS)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="note">Preset <code>{_esc(preset)}</code>, feature-set version '
        f"<code>{_esc(feature_set_version)}</code>. Self-contained page: no network access needed.</p>\n"
        f"<nav><ol>{nav}</ol></nav>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def write_features_report(
    path: Path,
    features: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    preset: str,
    feature_set_version: str,
    registry: Sequence[FeatureDef],
    selection: SelectionResult | None = None,
    title: str = "tradeops feature report",
    max_features_shown: int = 30,
) -> Path:
    """Render :func:`features_report` and write it to ``path`` atomically (temp file in the same folder, then
    ``os.replace``): readers see the old page or the new one, never half a page. Returns ``path``."""
    page = features_report(
        features,
        labels,
        preset=preset,
        feature_set_version=feature_set_version,
        registry=registry,
        selection=selection,
        title=title,
        max_features_shown=max_features_shown,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(page)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


# --- validation --------------------------------------------------------------------------------------------------


def _check_inputs(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    registry: Sequence[FeatureDef],
    selection: SelectionResult | None,
    max_features_shown: int,
) -> list[str]:
    """Feature names in registry order, after checking that the inputs fit together."""
    for name, frame, needed in (("features", features, _KEY), ("labels", labels, [*_KEY, LABEL_COLUMN])):
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing} (needs {needed})")
        date_cols = ["date", LABEL_KNOWN_AT_COLUMN] if name == "labels" else ["date"]
        for col in date_cols:
            if col in frame.columns and not pd.api.types.is_datetime64_dtype(frame[col]):
                raise ValueError(f"{name}.{col} must be tz-naive datetime64, got dtype {frame[col].dtype}")
        dupes = frame.duplicated(_KEY)
        if dupes.any():
            row = frame.loc[dupes].iloc[0]
            raise ValueError(
                f"{name} has duplicated (ticker, date) rows, e.g. {row['ticker']} {pd.Timestamp(row['date']).date()}"
            )
    if len(features) == 0:
        raise ValueError("features is empty: build features first")
    if isinstance(max_features_shown, bool) or not isinstance(max_features_shown, int) or max_features_shown < 1:
        raise ValueError(f"max_features_shown must be a positive int, got {max_features_shown!r}")

    registry = list(registry)
    if not registry:
        raise ValueError("registry must list at least one FeatureDef")
    for d in registry:
        if not isinstance(d, FeatureDef):
            raise ValueError(f"registry must hold FeatureDef objects, got {type(d).__name__}")
    names = [d.name for d in registry]
    if len(set(names)) != len(names):
        raise ValueError(f"registry has duplicated names: {sorted({n for n in names if names.count(n) > 1})}")
    columns = [str(c) for c in features.columns if c not in _KEY]
    missing = [n for n in names if n not in set(columns)]
    extra = [c for c in columns if c not in set(names)]
    if missing or extra:
        raise ValueError(
            f"features columns do not match the registry: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''} ({len(missing)}), undocumented {extra[:5]}"
            f"{' ...' if len(extra) > 5 else ''} ({len(extra)})"
        )
    not_numeric = [
        n for n in names if not pd.api.types.is_numeric_dtype(features[n]) or pd.api.types.is_bool_dtype(features[n])
    ]
    if not_numeric:
        raise ValueError(f"feature columns must be numeric: {not_numeric[:5]}")

    present = labels[LABEL_COLUMN].dropna()
    unknown = sorted(set(present.astype(str)) - set(CLASSES))
    if unknown:
        raise ValueError(f"labels has unknown class(es) {unknown}; valid: {', '.join(CLASSES)}")

    if selection is not None:
        if not isinstance(selection, SelectionResult):
            raise ValueError(f"selection must be a SelectionResult or None, got {type(selection).__name__}")
        need = ["f_score", "f_rank", "mi", "mi_rank", "combined_rank", "selected"]
        lacking = [c for c in need if c not in selection.scores.columns]
        if lacking:
            raise ValueError(f"selection.scores lacks column(s) {lacking}")
        unscored = [n for n in selection.names if n not in selection.scores.index]
        if unscored:
            raise ValueError(f"selection names without scores: {unscored[:5]}")
        foreign = [str(n) for n in selection.scores.index if n not in set(names)]
        if foreign:
            raise ValueError(
                f"selection scores features that are not in the registry (another feature set?): {foreign[:5]}"
            )
    return names


def _labelled(labels: pd.DataFrame) -> pd.DataFrame:
    """Rows with a label: ticker (str), date (datetime64[ns]), label (str) and label_known_at when given."""
    rows = labels.loc[labels[LABEL_COLUMN].notna()]
    out = pd.DataFrame(
        {
            "ticker": rows["ticker"].astype(str).to_numpy(),
            "date": rows["date"].to_numpy(dtype="datetime64[ns]"),
            LABEL_COLUMN: rows[LABEL_COLUMN].astype(str).to_numpy(),
        }
    )
    if LABEL_KNOWN_AT_COLUMN in rows.columns:
        out[LABEL_KNOWN_AT_COLUMN] = rows[LABEL_KNOWN_AT_COLUMN].to_numpy(dtype="datetime64[ns]")
    return out


# --- sections ----------------------------------------------------------------------------------------------------


def _summary(
    features: pd.DataFrame,
    keys: pd.DataFrame,
    labelled: pd.DataFrame,
    registry: Sequence[FeatureDef],
    *,
    preset: str,
    version: str,
) -> str:
    names = [d.name for d in registry]
    complete = np.isfinite(features[names].to_numpy(dtype=np.float64)).all(axis=1)
    has_label = keys.merge(labelled[_KEY], on=_KEY, how="left", indicator=True)["_merge"].eq("both").to_numpy()
    frame = keys.assign(complete=complete, labelled=has_label)
    per_ticker = frame.groupby("ticker", sort=True).agg(
        first=("date", "min"),
        last=("date", "max"),
        rows=("date", "size"),
        complete=("complete", "sum"),
        labelled=("labelled", "sum"),
    )
    horizons = _label_horizons(keys, labelled)
    if horizons:
        h_text = " or ".join(str(h) for h in horizons)
        label_rule = (
            f"the label of date t is known at the close of t + h trading days, h = {h_text} "
            "(measured on these rows: label_known_at minus date)"
        )
    else:
        label_rule = "the label of date t is known at the close of t + h trading days (label_known_at)"
    tickers = list(per_ticker.index)
    facts: list[tuple[str, object]] = [
        ("preset", preset),
        ("feature-set version", version),
        ("features", len(names)),
        ("indicators", len({d.indicator for d in registry})),
        ("tickers", f"{len(tickers)}: {', '.join(tickers)}"),
        ("date range", f"{_day(keys['date'].min())} to {_day(keys['date'].max())}"),
        ("rows (ticker x date)", len(keys)),
        ("rows with every feature finite (past warm-up)", int(complete.sum())),
        ("rows with a label", int(has_label.sum())),
        ("feature time convention", "a feature at trading date t uses bars dated <= t only (known at t's close)"),
        ("label time convention", label_rule),
    ]
    facts_table = _table(["item", "value"], facts)
    ticker_table = _table(
        ["ticker", "first date", "last date", "rows", "rows with every feature finite", "rows with a label"],
        [
            (t, _day(r["first"]), _day(r["last"]), int(r["rows"]), int(r["complete"]), int(r["labelled"]))
            for t, r in per_ticker.iterrows()
        ],
    )
    return _section(
        "summary",
        "<p>What this page describes and the time rules every number below obeys. Warm-up rows (an indicator "
        "needs a full window) are NaN, never filled; the last h dates of a ticker have no label yet.</p>"
        + facts_table
        + ticker_table,
    )


def _label_horizons(keys: pd.DataFrame, labelled: pd.DataFrame) -> list[int]:
    """Distinct trading-day gaps between a label's date and its label_known_at, on each ticker's feature dates."""
    if LABEL_KNOWN_AT_COLUMN not in labelled.columns or len(labelled) == 0:
        return []
    dates_by_ticker = {t: np.sort(g.to_numpy()) for t, g in keys.groupby("ticker")["date"]}
    found: set[int] = set()
    for ticker, g in labelled.groupby("ticker"):
        dates = dates_by_ticker.get(str(ticker))
        if dates is None or len(dates) == 0:
            continue
        d = g["date"].to_numpy()
        k = g[LABEL_KNOWN_AT_COLUMN].to_numpy()
        i = np.searchsorted(dates, d)
        j = np.searchsorted(dates, k)
        last = len(dates) - 1
        ok = (i <= last) & (j <= last)
        ok &= (dates[np.minimum(i, last)] == d) & (dates[np.minimum(j, last)] == k)
        found.update(int(x) for x in np.unique((j - i)[ok]))
    return sorted(found)


def _class_balance_section(labelled: pd.DataFrame, figures: _FigureRenderer) -> str:
    intro = (
        "<p>Share of BUY / SELL / HOLD labels per ticker and calendar year (rows with a label only). "
        "A model that beats these base rates is needed before any accuracy number means something; "
        "shifts across years show how stable the label mix is.</p>"
    )
    if len(labelled) == 0:
        return _section("class-balance", intro + '<p class="note">No labelled rows were given.</p>')
    counts = class_balance(labelled)
    total = counts[list(CLASSES)].sum()
    n_all = int(total.sum())
    overall = ", ".join(f"{c} {int(total[c])} ({total[c] / n_all:.1%})" for c in CLASSES)
    tickers = [str(t) for t, _ in counts.index]
    years = [str(y) for _, y in counts.index]
    fig = go.Figure()
    for c in CLASSES:
        share = counts[c] / counts["n"]
        fig.add_trace(
            go.Bar(
                x=[tickers, years],
                y=share.to_numpy(),
                name=c,
                marker_color=_CLASS_COLORS[c],
                customdata=counts[c].to_numpy(),
                hovertemplate=f"{c}: %{{y:.1%}} (%{{customdata}} rows)<extra>%{{x}}</extra>",
            )
        )
    fig.update_layout(
        **_LAYOUT,
        barmode="stack",
        height=380,
        yaxis={"tickformat": ".0%", "range": [0, 1]},
        legend={"orientation": "h", "y": 1.08},
    )
    rows: list[tuple[object, ...]] = []
    for ticker, block in counts.groupby(level="ticker", sort=True):
        for (_, year), r in block.iterrows():
            rows.append(
                (ticker, int(year), *(int(r[c]) for c in CLASSES), int(r["n"]), *(_pct(r[c], r["n"]) for c in CLASSES))
            )
        sums = block[[*CLASSES, "n"]].sum()
        rows.append(
            (
                ticker,
                "all",
                *(int(sums[c]) for c in CLASSES),
                int(sums["n"]),
                *(_pct(sums[c], sums["n"]) for c in CLASSES),
            )
        )
    table = _table(["ticker", "year", *CLASSES, "n", *(f"{c} share" for c in CLASSES)], rows, scroll=True)
    return _section(
        "class-balance",
        intro
        + f"<p>Overall: {_esc(overall)} of {n_all} labelled rows.</p>"
        + figures.render(fig, "fig-class-balance")
        + table,
    )


def _distributions_section(
    keys: pd.DataFrame, shown: pd.DataFrame, defs: dict[str, FeatureDef], figures: _FigureRenderer
) -> str:
    names = list(shown.columns)
    by_ticker = keys.groupby("ticker", sort=True).indices
    tickers = list(by_ticker)
    cap = max(1, min(MAX_POINTS_PER_TICKER, MAX_POINTS_TOTAL // (len(names) * len(tickers))))
    rng = np.random.default_rng(_SEED)
    sampled = {t: _sample(np.asarray(pos), cap, rng) for t, pos in by_ticker.items()}

    n_cols = min(3, len(names))
    n_rows = math.ceil(len(names) / n_cols)
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        subplot_titles=names,
        vertical_spacing=min(0.12, 0.4 / n_rows),
        horizontal_spacing=0.06,
    )
    values = shown.to_numpy(dtype=np.float64)
    for j in range(len(names)):
        row, col = divmod(j, n_cols)
        for k, t in enumerate(tickers):
            v = values[sampled[t], j]
            fig.add_trace(
                go.Box(
                    y=v[~np.isnan(v)].astype(np.float32),
                    name=t,
                    legendgroup=t,
                    showlegend=j == 0,
                    marker={"color": qualitative.Plotly[k % len(qualitative.Plotly)], "size": 2},
                    line={"width": 1},
                    boxpoints="outliers",
                ),
                row + 1,
                col + 1,
            )
    plot_height = 250 * n_rows  # the legend sits in the top margin, above the first row's subplot titles
    fig.update_layout(
        **{**_LAYOUT, "margin": {"l": 60, "r": 20, "t": 80, "b": 30}},
        height=plot_height + 110,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0 + 30 / plot_height},
    )
    fig.update_xaxes(showticklabels=False)

    stats_rows = []
    for j, name in enumerate(names):
        v = values[:, j]
        fin = v[~np.isnan(v)]
        q = np.percentile(fin, [1, 50, 99]) if fin.size else [math.nan] * 3
        stats_rows.append(
            (
                name,
                defs[name].unit,
                int(fin.size),
                int(v.size - fin.size),
                float(fin.mean()) if fin.size else math.nan,
                float(fin.std()) if fin.size else math.nan,
                float(fin.min()) if fin.size else math.nan,
                *q,
                float(fin.max()) if fin.size else math.nan,
            )
        )
    stats = _table(
        ["feature", "unit", "finite rows", "NaN rows (warm-up)", "mean", "std", "min", "p1", "median", "p99", "max"],
        stats_rows,
        scroll=True,
    )
    return _section(
        "distributions",
        "<p>One representative window per indicator (the middle window), boxes per ticker. Features are meant "
        "to be scale-free, so the boxes should overlap across tickers; a ticker whose box sits apart would make "
        f"a pooled model see a ticker effect. Plots use at most {cap} rows per ticker and feature, sampled "
        "without replacement (seed 0); the table below uses every row, pooled over tickers.</p>"
        + figures.render(fig, "fig-distributions")
        + stats,
    )


def _sample(positions: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    if len(positions) <= cap:
        return positions
    return np.sort(rng.choice(positions, size=cap, replace=False))


def _correlation_section(shown: pd.DataFrame, figures: _FigureRenderer) -> str:
    intro = (
        "<p>Spearman rank correlation of the shown features, pooled over tickers, rows with any NaN "
        "(warm-up) dropped. Strongly correlated indicators carry overlapping information: the CNN-TA "
        "image and the selection step both see them side by side.</p>"
    )
    pooled = shown.dropna()
    if shown.shape[1] < 2 or len(pooled) < 3:
        return _section(
            "correlations",
            intro + '<p class="note">Not enough features or complete rows '
            f"({shown.shape[1]} features, {len(pooled)} complete rows) to correlate.</p>",
        )
    corr = pooled.corr(method="spearman")
    names = list(corr.columns)
    fig = go.Figure(
        go.Heatmap(
            z=corr.to_numpy(),
            x=names,
            y=names,
            zmin=-1,
            zmax=1,
            colorscale="RdBu_r",
            texttemplate="%{z:.2f}",
            textfont={"size": 9},
            colorbar={"title": {"text": "rho"}},
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        )
    )
    side = 120 + 28 * len(names)
    fig.update_layout(
        **{**_LAYOUT, "margin": {"l": 90, "r": 20, "t": 30, "b": 90}},
        height=side,
        width=side + 120,
        yaxis={"autorange": "reversed"},
    )
    upper = np.triu(np.ones(corr.shape, dtype=bool), k=1)
    pairs = corr.where(upper).stack().rename("rho").reset_index()
    pairs = pairs.loc[pairs["rho"].abs().sort_values(ascending=False, kind="stable").index].head(_TOP_PAIRS)
    table = _table(["feature", "feature", "Spearman rho"], pairs.itertuples(index=False, name=None))
    return _section(
        "correlations",
        intro
        + f'<p class="note">{len(pooled)} complete rows.</p>'
        + figures.render(fig, "fig-correlations")
        + f"<p>The {len(pairs)} most correlated pairs (by |rho|):</p>"
        + table,
    )


def _selection_section(
    selection: SelectionResult | None,
    keys: pd.DataFrame,
    labelled: pd.DataFrame,
    shown: pd.DataFrame,
    defs: dict[str, FeatureDef],
    figures: _FigureRenderer,
    *,
    preset: str,
    top: int,
) -> str:
    if selection is None:
        return _section("selection", _class_means(keys, labelled, shown, preset))
    scores = selection.scores
    best = scores.sort_values("combined_rank", kind="stable").head(top)
    names = [str(n) for n in best.index]
    colors = ["#1f77b4" if s else "#b0b0b0" for s in best["selected"]]
    f_score = best["f_score"].astype(float).replace([np.inf, -np.inf], np.nan)
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("ANOVA F-score", "mutual information (nats)"),
    )
    rank = best["combined_rank"].to_numpy()
    fig.add_trace(
        go.Bar(
            x=f_score.to_numpy(),
            y=names,
            orientation="h",
            marker_color=colors,
            name="F-score",
            customdata=rank,
            showlegend=False,
            hovertemplate="%{y}: F = %{x:.4g} (combined rank %{customdata})<extra></extra>",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Bar(
            x=best["mi"].astype(float).to_numpy(),
            y=names,
            orientation="h",
            marker_color=colors,
            name="MI",
            customdata=rank,
            showlegend=False,
            hovertemplate="%{y}: MI = %{x:.4g} (combined rank %{customdata})<extra></extra>",
        ),
        1,
        2,
    )
    fig.update_layout(**_LAYOUT, height=120 + 18 * len(names))
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=names)
    n_inf = int(np.isinf(best["f_score"].astype(float)).sum())
    inf_note = f" {n_inf} infinite F-score(s) (perfect separation) are drawn as empty bars." if n_inf else ""
    rows = [
        (
            n,
            defs[n].indicator,
            defs[n].window,
            int(scores.at[n, "combined_rank"]),
            float(scores.at[n, "f_score"]),
            float(scores.at[n, "f_rank"]),
            float(scores.at[n, "mi"]),
            float(scores.at[n, "mi_rank"]),
        )
        for n in selection.names
    ]
    table = _table(
        ["selected feature", "indicator", "window", "combined rank", "F-score", "F rank", "MI (nats)", "MI rank"],
        rows,
        scroll=True,
    )
    return _section(
        "selection",
        f"<p>The fitted selection passed in keeps {len(selection.names)} of {len(scores)} scored features, ranked "
        "by the mean of their ANOVA F and mutual-information ranks. Selection is a fitted step: these scores come "
        "from the training rows it was fitted on. Bars: the "
        f"{len(names)} best by combined rank (blue: selected, grey: not).{_esc(inf_note)}</p>"
        + figures.render(fig, "fig-selection")
        + f"<p>Selected features, in registry order ({len(selection.names)}):</p>"
        + table,
    )


def _class_means(keys: pd.DataFrame, labelled: pd.DataFrame, shown: pd.DataFrame, preset: str) -> str:
    intro = (
        f"<p>No feature selection was fitted for this report: preset <code>{_esc(preset)}</code> is shown "
        "without a selection result (the cnn-ta preset uses its fixed indicator x window set, no "
        "selection). No ranking is computed here, because selection must only see a training window.</p>"
    )
    joined = pd.concat([keys, shown], axis=1).merge(labelled[[*_KEY, LABEL_COLUMN]], on=_KEY, how="inner")
    if len(joined) == 0:
        return intro + '<p class="note">No labelled rows match the feature rows.</p>'
    names = list(shown.columns)
    means = joined.groupby(LABEL_COLUMN)[names].mean().reindex(list(CLASSES))
    counts = joined[LABEL_COLUMN].value_counts().reindex(list(CLASSES), fill_value=0)
    std = joined[names].std()
    rows = [(n, *(float(means.at[c, n]) for c in CLASSES), float(std[n])) for n in names]
    table = _table(
        ["feature", *(f"mean | {c} (n={int(counts[c])})" for c in CLASSES), "std (all labelled)"], rows, scroll=True
    )
    return (
        intro + "<p><strong>Descriptive, whole sample, not used for fitting:</strong> mean of each shown "
        "feature per label class over every labelled row (NaN warm-up values skipped). Differences hint at "
        "what a model could pick up; they are in-sample and say nothing about out-of-sample skill.</p>" + table
    )


def _dictionary_section(registry: Sequence[FeatureDef], shown: list[str], selection: SelectionResult | None) -> str:
    indicators: dict[str, list[FeatureDef]] = {}
    for d in registry:
        indicators.setdefault(d.indicator, []).append(d)
    overview = _table(
        ["indicator", "windows", "unit", "description"],
        [(ind, _windows(ds), ds[0].unit, ds[0].description) for ind, ds in indicators.items()],
    )
    shown_set = set(shown)
    chosen = set(selection.names) if selection is not None else None
    notes = duplicate_notes(registry)
    columns = ["name", "indicator", "window", "formula", "unit", "shown above"]
    if chosen is not None:
        columns.append("selected")
    if notes:
        columns.append("note")
    rows = []
    for d in registry:
        row: list[object] = [d.name, d.indicator, d.window, d.formula, d.unit, d.name in shown_set]
        if chosen is not None:
            row.append(d.name in chosen)
        if notes:
            row.append(notes.get(d.name, ""))
        rows.append(row)
    dup_note = ""
    if notes:
        dups: dict[str, int] = {}
        for d in registry:
            if d.name in notes:
                dups[d.indicator] = dups.get(d.indicator, 0) + 1
        per_indicator = "; ".join(
            f"{ind} ({k} window(s)) equals {EQUIVALENT_INDICATORS[ind][0]} at the same window: "
            f"{EQUIVALENT_INDICATORS[ind][1]}"
            for ind, k in dups.items()
        )
        dup_note = (
            f'<p class="note"><strong>Duplicated features:</strong> {len(notes)} column(s) of this set '
            f"carry the same values as another column (up to float rounding): {_esc(per_indicator)}. "
            "They add nothing beyond the column they equal; see the note column.</p>"
        )
    return _section(
        "dictionary",
        f"<p>Every definition of this feature set ({len(registry)}), the documentation of record from the "
        "registry. Windows are in trading days; every feature uses bars dated &lt;= t only.</p>"
        + dup_note
        + overview
        + _table(columns, rows, scroll=True),
    )


def _windows(defs: list[FeatureDef]) -> str:
    ws = sorted(d.window for d in defs)
    if len(ws) > 2 and ws == list(range(ws[0], ws[-1] + 1)):
        return f"{ws[0]}..{ws[-1]}"
    return ", ".join(str(w) for w in ws)


# --- HTML helpers ------------------------------------------------------------------------------------------------


class _FigureRenderer:
    """Renders figures as HTML fragments; the first one carries plotly.js inline, the rest reference it."""

    def __init__(self) -> None:
        self._js_written = False

    def render(self, fig: go.Figure, div_id: str) -> str:
        out = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=not self._js_written,
            div_id=div_id,
            config=_PLOTLY_CONFIG,
            include_mathjax=False,
        )
        self._js_written = True
        return f'<div class="figure">{out}</div>'


def _section(anchor: str, body: str) -> str:
    heading = dict(SECTIONS)[anchor]
    return f'<section>\n<h2 id="{anchor}">{_esc(heading)}</h2>\n{body}\n</section>'


def _table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, scroll: bool = False) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>\n" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>' if scroll else table


def _cell(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, np.integer)):
        return f'<td class="num">{int(value)}</td>'
    if isinstance(value, (float, np.floating)):
        v = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
        text = "–" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else f"{v:.4g}"
        return f'<td class="num">{text}</td>'
    if value is None or value is pd.NA:
        return "<td>–</td>"
    return f"<td>{_esc(str(value))}</td>"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _day(value: object) -> str:
    return str(pd.Timestamp(value).date()) if pd.notna(value) else "–"


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "–"
