"""Monitoring report: one self-contained HTML page (the service's ``/dashboard``) of what the monitor has seen.

Sections, stacked once per served model: status, drift over time, top drifted features of the last pass, live
quality of champion vs challenger, equity of champion, challenger and Buy & Hold over the last pass's window,
alerts and actions (timeline and table), and the latest pass's metrics with the reason for each missing value.
Every figure says "no data yet: <why>" instead of drawing an empty or broken chart. plotly.js is inlined once
(the first figure carries it), so the page opens offline: no CDN, no external CSS or JS.

Time conventions: ``as_of`` is the trading date a monitoring pass looks back from (x axis of every time series);
``at`` is the UTC time an event was recorded. :func:`render_monitoring_report` is pure (inputs in, HTML out).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tradeops.errors import TradeopsError
from tradeops.monitor.metrics import METRIC_NAMES, Metric
from tradeops.report.features import _CSS, _LAYOUT, _FigureRenderer, _table

__all__ = ["DRIFT_METRICS", "MAX_EVENT_ROWS", "SECTIONS", "render_monitoring_report"]

#: (anchor, heading) of each per-model section, in page order; anchors get ``-<model index>`` appended.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("drift", "Drift over time"),
    ("top-features", "Top drifted features (last pass)"),
    ("quality", "Live quality: champion vs challenger"),
    ("equity", "Equity: champion, challenger and Buy & Hold (last pass)"),
    ("alerts", "Alerts and actions"),
    ("metrics", "Metrics of the latest pass"),
)
#: Heading of the banner section at the top of the page.
STATUS_HEADING = "Status"

#: Drift metrics drawn over time; the first on its own panel (PSI is unbounded), the others share a [0, 1] panel.
DRIFT_METRICS: tuple[str, ...] = ("data.psi_max", "data.psi_drifted_share", "data.ks_drifted_share", "data.domain_auc")
#: The events table shows at most this many events per model, newest first.
MAX_EVENT_ROWS = 50

_QUALITY = {"champion": "quality.champion.macro_f1", "challenger": "quality.challenger.macro_f1"}
_HISTORY_COLUMNS = ("as_of", "model", "name", "value")
_SEVERITY_COLORS = {"info": "#1f77b4", "warning": "#ff7f0e", "critical": "#d62728"}
_OTHER_SEVERITY_COLOR = "#7f7f7f"
_STATUS_SYMBOLS = {"fired": "circle", "suppressed": "circle-open", "done": "diamond", "failed": "x"}
_LINE_COLORS = {"champion": "#1f77b4", "challenger": "#ff7f0e", "buy_and_hold": "#7f7f7f"}
_EXTRA_CSS = """
.banner{padding:.8rem 1.2rem;border-radius:6px;font-weight:600;margin:1rem 0;font-size:1.1rem}
.banner.halted{background:#d62728;color:#fff}
.banner.ok{background:#e6f4ea;color:#1e6b34;border:1px solid #b7dfc2}
.banner.unknown{background:#eee;color:#333;border:1px solid #ccc}
p.nodata{color:#8a5a00;background:#fff8e1;border:1px solid #f0dca0;border-radius:4px;padding:.5rem .8rem}
h2.model{margin-top:2.5rem;border-bottom:2px solid #ccc}
td.st-failed{color:#d62728;font-weight:600} td.st-fired{color:#b35900;font-weight:600}
td.st-done{color:#1e6b34} td.st-suppressed{color:#777}
details pre{white-space:pre-wrap;max-width:40rem;font-size:.75rem}
"""


def render_monitoring_report(
    *,
    title: str,
    generated_at: datetime,
    metric_history: pd.DataFrame,
    events: Sequence[Mapping[str, Any]],
    latest: Sequence[Metric],
    status: Mapping[str, Any],
) -> str:
    """Render the monitoring page as a self-contained HTML string.

    ``metric_history``: one row per pass x metric, columns ``as_of`` (trading date), ``model``, ``name``, ``value``
    (float, NaN or None when missing) and optionally ``reason``; an empty frame (even without columns) means no pass
    recorded yet. ``events``: monitor events (``at`` UTC, ``as_of``, ``model``, ``rule``, ``metric``, ``value``,
    ``threshold``, ``comparison``, ``severity``, ``action``, ``status``, ``reason``, ``evidence``, ``result``).
    ``latest``: the last pass's metrics (equity curves in the evidence of ``trading.champion.return``, per-feature
    drift in that of ``data.psi_max``). ``status``: ``halted``, ``reason``, ``models`` and ``open_alerts``.
    Raises :class:`TradeopsError` when an input has the wrong shape (missing columns, non-numeric values).
    """
    history = _normalise_history(metric_history)
    events = list(events)
    for i, ev in enumerate(events):
        if not isinstance(ev, Mapping):
            raise TradeopsError(f"monitoring report: events[{i}] must be a mapping, got {type(ev).__name__}")
    latest = list(latest)
    for i, m in enumerate(latest):
        if not isinstance(m, Metric):
            raise TradeopsError(f"monitoring report: latest[{i}] must be a Metric, got {type(m).__name__}")
    if not isinstance(status, Mapping):
        raise TradeopsError(f"monitoring report: status must be a mapping, got {type(status).__name__}")

    figures = _FigureRenderer()
    models = _models(status, history, events, latest)
    body = [_status_section(status, generated_at, models)]
    if not models:
        body.append(_nodata("no monitoring pass has recorded a model, metric or event"))
    for i, model in enumerate(models):
        body.append(
            _model_sections(
                i,
                model,
                history[history["model"] == model],
                [e for e in events if _str(e.get("model")) == model],
                [m for m in latest if m.model == model],
                figures,
            )
        )
    unassigned = [e for e in events if not _str(e.get("model"))]
    if unassigned:
        body.append(
            '<section>\n<h2 id="events-global">Events not tied to a model</h2>\n'
            + _events_table(unassigned)
            + "\n</section>"
        )
    nav = "".join(f'<li><a href="#model-{i}">{_esc(m)}</a></li>' for i, m in enumerate(models))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}{_EXTRA_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="note">Generated {_esc(_when(generated_at))}. Time series are drawn by <code>as_of</code>, the '
        "trading date each monitoring pass looks back from. Self-contained page: no network access needed.</p>\n"
        + (f"<nav><ol>{nav}</ol></nav>\n" if len(models) > 1 else "")
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


# --- inputs ------------------------------------------------------------------------------------------------------


def _normalise_history(frame: pd.DataFrame) -> pd.DataFrame:
    """``as_of`` (datetime64, day), ``model``, ``name`` (str), ``value`` (float, NaN = missing), ``reason`` (str)."""
    if not isinstance(frame, pd.DataFrame):
        raise TradeopsError(f"monitoring report: metric_history must be a DataFrame, got {type(frame).__name__}")
    empty = pd.DataFrame(
        {
            "as_of": pd.Series(dtype="datetime64[ns]"),
            "model": pd.Series(dtype=object),
            "name": pd.Series(dtype=object),
            "value": pd.Series(dtype=np.float64),
            "reason": pd.Series(dtype=object),
        }
    )
    if len(frame) == 0:
        return empty
    lacking = [c for c in _HISTORY_COLUMNS if c not in frame.columns]
    if lacking:
        raise TradeopsError(f"monitoring report: metric_history lacks column(s) {lacking} (needs {_HISTORY_COLUMNS})")
    try:
        as_of = pd.to_datetime(frame["as_of"]).dt.normalize()
    except (ValueError, TypeError) as exc:
        raise TradeopsError(f"monitoring report: metric_history.as_of must hold dates: {exc}") from exc
    try:
        value = pd.to_numeric(frame["value"], errors="raise").astype(np.float64)
    except (ValueError, TypeError) as exc:
        raise TradeopsError(f"monitoring report: metric_history.value must be numbers or missing: {exc}") from exc
    reason = frame["reason"] if "reason" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    out = pd.DataFrame(
        {
            "as_of": as_of.to_numpy(),
            "model": frame["model"].astype(str).to_numpy(),
            "name": frame["name"].astype(str).to_numpy(),
            "value": value.where(np.isfinite(value)).to_numpy(),
            "reason": reason.where(reason.notna(), None).to_numpy(dtype=object),
        }
    )
    return out.sort_values(["model", "name", "as_of"], kind="stable").reset_index(drop=True)


def _models(
    status: Mapping[str, Any], history: pd.DataFrame, events: Sequence[Mapping[str, Any]], latest: Sequence[Metric]
) -> list[str]:
    """Served models first (status order), then any other model seen in the latest pass, history or events."""
    seen: dict[str, None] = {}
    served = status.get("models") or {}
    if not isinstance(served, Mapping):
        raise TradeopsError(f"monitoring report: status['models'] must be a mapping, got {type(served).__name__}")
    for name in served:
        seen[str(name)] = None
    for name in [m.model for m in latest] + sorted(set(history["model"])) + [_str(e.get("model")) for e in events]:
        if name:
            seen.setdefault(name, None)
    return list(seen)


# --- status ------------------------------------------------------------------------------------------------------


def _status_section(status: Mapping[str, Any], generated_at: datetime, models: Sequence[str]) -> str:
    halted = status.get("halted")
    if halted is True:
        reason = _str(status.get("reason")) or "no reason recorded"
        banner = f'<div class="banner halted" id="halted">HALTED: {_esc(reason)}</div>'
    elif halted is False:
        banner = '<div class="banner ok">Serving: not halted.</div>'
    else:
        banner = '<div class="banner unknown">Status unknown: the last pass recorded no kill-switch state.</div>'
    open_alerts = status.get("open_alerts")
    alerts = f"{open_alerts} open alert(s)." if open_alerts is not None else "Open alerts: not recorded."
    served = status.get("models") or {}
    rows = []
    for name in models:
        aliases = served.get(name) if isinstance(served, Mapping) else None
        aliases = aliases if isinstance(aliases, Mapping) else {}
        rows.append(
            (
                name,
                _str(aliases.get("champion")) or "–",
                _str(aliases.get("challenger")) or "none",
            )
        )
    table = _table(["model", "champion version", "challenger version"], rows) if rows else ""
    return (
        f'<section>\n<h2 id="status">{_esc(STATUS_HEADING)}</h2>\n{banner}\n'
        f"<p>{_esc(alerts)} Page generated {_esc(_when(generated_at))}.</p>\n{table}\n</section>"
    )


# --- per model ---------------------------------------------------------------------------------------------------


def _model_sections(
    index: int,
    model: str,
    history: pd.DataFrame,
    events: list[Mapping[str, Any]],
    latest: list[Metric],
    figures: _FigureRenderer,
) -> str:
    by_name = {m.name: m for m in latest}
    parts = [
        _drift(index, model, history, figures),
        _top_features(index, model, by_name.get("data.psi_max"), latest, figures),
        _quality(index, model, history, figures),
        _equity(index, model, by_name.get("trading.champion.return"), latest, figures),
        _alerts(index, model, events, figures),
        _metrics_table(index, model, latest),
    ]
    head = f'<h2 class="model" id="model-{index}">Model {_esc(model)}</h2>'
    return head + "\n" + "\n".join(parts)


def _section(anchor: str, index: int, body: str) -> str:
    heading = dict(SECTIONS)[anchor]
    return f'<section>\n<h3 id="{anchor}-{index}">{_esc(heading)}</h3>\n{body}\n</section>'


def drift_figure(rows: pd.DataFrame, *, prefix: bool = False) -> go.Figure:
    """PSI max on the top panel, the [0, 1] drift metrics below, one line per (model, metric) of ``rows``
    (``as_of``, ``model``, ``name``, ``value``); ``prefix`` names each line ``model: metric``."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("largest per-feature PSI", "drifted shares and domain-classifier AUC"),
    )
    for model in sorted(set(rows["model"])):
        for name in DRIFT_METRICS:
            one = rows[(rows["name"] == name) & (rows["model"] == model)]
            if one.empty:
                continue
            label = _esc(f"{model}: {name}" if prefix else name)
            fig.add_trace(
                go.Scatter(
                    x=one["as_of"],
                    y=one["value"],
                    mode="lines+markers",
                    name=label,
                    hovertemplate=f"{label} %{{x|%Y-%m-%d}}: %{{y:.4g}}<extra></extra>",
                ),
                1 if name == "data.psi_max" else 2,
                1,
            )
    return fig


def _drift(index: int, model: str, history: pd.DataFrame, figures: _FigureRenderer) -> str:
    rows = history[history["name"].isin(DRIFT_METRICS)]
    why = _why_empty(rows, model, "drift metrics")
    if why:
        return _section("drift", index, _nodata(why))
    fig = drift_figure(rows)
    fig.update_layout(**_LAYOUT, height=460, legend={"orientation": "h", "y": -0.12})
    fig.update_yaxes(range=[0, 1.05], row=2, col=1)
    return _section(
        "drift",
        index,
        '<p class="note">PSI above ~0.2 is usually read as a shift; shares are fractions of the features; a domain '
        "AUC of 0.5 means reference and recent rows are indistinguishable.</p>"
        + _missing_note(rows)
        + figures.render(fig, f"fig-drift-{index}"),
    )


def _top_features(index: int, model: str, psi: Metric | None, latest: list[Metric], figures: _FigureRenderer) -> str:
    if psi is None:
        why = "the last pass recorded no data.psi_max" if latest else f"no monitoring pass has run for {model}"
        return _section("top-features", index, _nodata(why))
    if psi.value is None:
        return _section("top-features", index, _nodata(f"data.psi_max is missing: {psi.reason}"))
    top = psi.evidence.get("top_features")
    if not isinstance(top, list) or not top:
        return _section("top-features", index, _nodata("the last pass recorded no per-feature drift evidence"))
    names: list[str] = []
    values: list[float] = []
    pvalues: list[str] = []
    skipped = 0
    for item in top:
        value = _number(item.get("psi")) if isinstance(item, Mapping) else None
        if value is None or not isinstance(item, Mapping):
            skipped += 1
            continue
        names.append(_esc(_str(item.get("feature")) or "?"))
        values.append(value)
        p = _number(item.get("ks_pvalue"))
        pvalues.append("–" if p is None else f"{p:.3g}")
    if not values:
        return _section("top-features", index, _nodata("no feature of the last pass has a finite PSI"))
    fig = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            marker_color="#1f77b4",
            customdata=pvalues,
            hovertemplate="%{y}: PSI %{x:.4g}, KS p-value %{customdata}<extra></extra>",
        )
    )
    fig.update_layout(**_LAYOUT, height=120 + 22 * len(names), xaxis_title="PSI")
    fig.update_yaxes(autorange="reversed")
    note = f" {skipped} feature(s) without a finite PSI are left out." if skipped else ""
    return _section(
        "top-features",
        index,
        f'<p class="note">Window {_esc(psi.window or "not recorded")}; largest PSI first.{_esc(note)}</p>'
        + figures.render(fig, f"fig-top-features-{index}"),
    )


def _quality(index: int, model: str, history: pd.DataFrame, figures: _FigureRenderer) -> str:
    rows = history[history["name"].isin(list(_QUALITY.values()))]
    why = _why_empty(rows, model, "quality metrics (macro F1)")
    if why:
        return _section("quality", index, _nodata(why))
    fig = go.Figure()
    for role, name in _QUALITY.items():
        one = rows[rows["name"] == name]
        if one.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=one["as_of"],
                y=one["value"],
                mode="lines+markers",
                name=role,
                line={"color": _LINE_COLORS[role]},
                hovertemplate=f"{role} macro F1 %{{x|%Y-%m-%d}}: %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(**_LAYOUT, height=340, yaxis={"title": "macro F1", "range": [0, 1.02]})
    return _section(
        "quality",
        index,
        '<p class="note">Macro F1 on labels matured by each pass\'s <code>as_of</code> (no label from later).</p>'
        + _missing_note(rows)
        + figures.render(fig, f"fig-quality-{index}"),
    )


def _equity(index: int, model: str, ret: Metric | None, latest: list[Metric], figures: _FigureRenderer) -> str:
    if ret is None:
        why = (
            "the last pass recorded no trading.champion.return" if latest else f"no monitoring pass has run for {model}"
        )
        return _section("equity", index, _nodata(why))
    equity = ret.evidence.get("equity")
    if not isinstance(equity, Mapping):
        why = f"trading.champion.return is missing: {ret.reason}" if ret.value is None else "no equity curve recorded"
        return _section("equity", index, _nodata(why))
    dates = equity.get("dates")
    if not isinstance(dates, list) or not dates:
        return _section("equity", index, _nodata("the equity evidence holds no dates"))
    fig = go.Figure()
    problems: list[str] = []
    for role, label in (("champion", "champion"), ("challenger", "challenger"), ("buy_and_hold", "Buy & Hold")):
        curve = equity.get(role)
        if curve is None:
            if role != "challenger":
                problems.append(f"no {label} curve recorded")
            continue
        if not isinstance(curve, list) or len(curve) != len(dates):
            n = len(curve) if isinstance(curve, list) else type(curve).__name__
            problems.append(f"{label} curve has {n} values for {len(dates)} dates, not drawn")
            continue
        y = [_number(v) for v in curve]
        fig.add_trace(
            go.Scatter(
                x=pd.to_datetime(pd.Series(dates)),
                y=[np.nan if v is None else v for v in y],
                mode="lines",
                name=label,
                line={"color": _LINE_COLORS[role], "dash": "dot" if role == "buy_and_hold" else "solid"},
                hovertemplate=f"{label} %{{x|%Y-%m-%d}}: %{{y:.4f}}<extra></extra>",
            )
        )
    if not fig.data:
        return _section("equity", index, _nodata("; ".join(problems)))
    fig.update_layout(**_LAYOUT, height=360, yaxis_title="equity (1.0 at window start)")
    note = f" {'; '.join(problems)}." if problems else ""
    return _section(
        "equity",
        index,
        f'<p class="note">Paper trading over {_esc(ret.window or "the last window")}, normalised to 1.0 at the '
        f"window start.{_esc(note)}</p>" + figures.render(fig, f"fig-equity-{index}"),
    )


def event_frame(
    events: Sequence[Mapping[str, Any]], hover: Callable[[Mapping[str, Any]], str]
) -> tuple[pd.DataFrame, int]:
    """Dated events as rows ``as_of``, ``rule``, ``severity``, ``status``, ``text`` (hover), and how many had no
    ``as_of``."""
    frame = pd.DataFrame(
        {
            "as_of": pd.to_datetime(pd.Series([e.get("as_of") for e in events], dtype=object), errors="coerce"),
            "rule": [_str(e.get("rule")) or "?" for e in events],
            "severity": [_str(e.get("severity")) or "unknown" for e in events],
            "status": [_str(e.get("status")) or "unknown" for e in events],
            "text": [hover(e) for e in events],
        }
    )
    undated = int(frame["as_of"].isna().sum())
    return frame[frame["as_of"].notna()], undated


def alerts_figure(frame: pd.DataFrame) -> go.Figure:
    """Events on a timeline, one row per rule: colour = severity, symbol = status (see :func:`event_frame`)."""
    fig = go.Figure()
    for severity in _ordered_severities(frame["severity"]):
        one = frame[frame["severity"] == severity]
        c = _SEVERITY_COLORS.get(severity, _OTHER_SEVERITY_COLOR)
        fig.add_trace(
            go.Scatter(
                x=one["as_of"],
                y=[_esc(r) for r in one["rule"]],
                mode="markers",
                name=_esc(severity),
                marker={
                    "size": 12,
                    "color": c,
                    "symbol": [_STATUS_SYMBOLS.get(s, "square") for s in one["status"]],
                    "line": {"width": 2, "color": c},
                },
                text=one["text"].tolist(),
                hovertemplate="%{text}<extra></extra>",
            )
        )
    n_rules = frame["rule"].nunique()
    fig.update_layout(**_LAYOUT, height=160 + 30 * max(n_rules, 1), xaxis_title="as_of", legend_title="severity")
    return fig


def _alerts(index: int, model: str, events: list[Mapping[str, Any]], figures: _FigureRenderer) -> str:
    if not events:
        return _section("alerts", index, _nodata(f"no alert or action recorded for {model}"))
    frame, undated = event_frame(events, _hover)
    fig = alerts_figure(frame)
    chart = (
        figures.render(fig, f"fig-alerts-{index}")
        if not frame.empty
        else _nodata("no event of this model carries an as_of date")
    )
    undated_note = f" {undated} event(s) without an as_of date are only in the table." if undated else ""
    return _section(
        "alerts",
        index,
        '<p class="note">Colour: severity. Symbol: status (filled circle fired, open circle suppressed, diamond '
        f"done, cross failed).{_esc(undated_note)}</p>" + chart + _events_table(events),
    )


def _events_table(events: list[Mapping[str, Any]]) -> str:
    ordered = sorted(events, key=lambda e: (_when(e.get("at")), _day(e.get("as_of"))), reverse=True)
    shown = ordered[:MAX_EVENT_ROWS]
    head = "".join(
        f"<th>{_esc(c)}</th>"
        for c in (
            "at (UTC)",
            "as_of",
            "rule",
            "metric",
            "value",
            "threshold",
            "severity",
            "action",
            "status",
            "reason",
            "result",
            "evidence",
        )
    )
    rows = []
    for e in shown:
        status = _str(e.get("status")) or "unknown"
        comparison = _str(e.get("comparison"))
        threshold = _fmt(e.get("threshold"))
        cells = [
            _td(_when(e.get("at"))),
            _td(_day(e.get("as_of"))),
            _td(_str(e.get("rule"))),
            _td(_str(e.get("metric"))),
            f'<td class="num">{_esc(_fmt(e.get("value")))}</td>',
            _td(f"{comparison} {threshold}".strip()),
            _td(_str(e.get("severity"))),
            _td(_str(e.get("action"))),
            f'<td class="st-{_esc(status)}">{_esc(status)}</td>',
            _td(_str(e.get("reason")) or "–"),
            _td(_json(e.get("result")) if e.get("result") not in (None, {}, "") else "–"),
            _details(e.get("evidence")),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>\n")
    more = (
        f'<p class="note">Newest {len(shown)} of {len(events)} events shown.</p>'
        if len(events) > len(shown)
        else f'<p class="note">{len(events)} event(s), newest first.</p>'
    )
    return (
        more
        + f'<div class="scroll"><table class="events"><thead><tr>{head}</tr></thead><tbody>\n'
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _metrics_table(index: int, model: str, latest: list[Metric]) -> str:
    if not latest:
        return _section("metrics", index, _nodata(f"no monitoring pass has run for {model}"))
    order = {name: i for i, name in enumerate(METRIC_NAMES)}
    ranked = sorted(latest, key=lambda m: (order.get(m.name, len(order)), m.name))
    rows = [(m.name, m.value if m.value is not None else "missing", m.window or "–", m.reason or "–") for m in ranked]
    n_missing = sum(1 for m in latest if m.value is None)
    return _section(
        "metrics",
        index,
        f'<p class="note">{len(latest)} metric(s), {n_missing} missing (each says why).</p>'
        + _table(["metric", "value", "window", "reason (when missing)"], rows, scroll=True),
    )


# --- small helpers -----------------------------------------------------------------------------------------------


def _why_empty(rows: pd.DataFrame, model: str, what: str) -> str | None:
    """Why ``rows`` cannot be drawn (``None`` when at least one value exists)."""
    if rows.empty:
        return f"no {what} recorded for {model} yet"
    if rows["value"].notna().any():
        return None
    last = rows.sort_values("as_of", kind="stable").iloc[-1]
    reason = last["reason"] or "no reason recorded"
    return f"every recorded value of the {what} of {model} is missing (last pass: {last['name']}: {reason})"


def _missing_note(rows: pd.DataFrame) -> str:
    gone = rows[rows["value"].isna()]
    if gone.empty:
        return ""
    return (
        f'<p class="note">{len(gone)} value(s) missing, drawn as gaps; latest: '
        f"{_esc(str(gone.iloc[-1]['name']))} on {_esc(_day(gone.iloc[-1]['as_of']))}: "
        f"{_esc(str(gone.iloc[-1]['reason'] or 'no reason recorded'))}.</p>"
    )


def _nodata(why: str) -> str:
    return f'<p class="nodata">no data yet: {_esc(why)}</p>'


def _ordered_severities(values: Iterable[str]) -> list[str]:
    present = set(values)
    known = [s for s in _SEVERITY_COLORS if s in present]
    return known + sorted(present - set(known))


def _hover(e: Mapping[str, Any]) -> str:
    """Hover text of one event; every piece escaped (plotly renders a subset of HTML), joined with ``<br>``."""
    parts = [
        f"rule: {_str(e.get('rule'))}",
        f"metric: {_str(e.get('metric'))} = {_fmt(e.get('value'))} ({_str(e.get('comparison'))} "
        f"{_fmt(e.get('threshold'))})",
        f"severity: {_str(e.get('severity'))}",
        f"action: {_str(e.get('action'))}",
        f"status: {_str(e.get('status'))}",
        f"as_of: {_day(e.get('as_of'))}",
    ]
    if e.get("reason"):
        parts.append(f"reason: {_str(e.get('reason'))}")
    return "<br>".join(_esc(p) for p in parts)


def _details(evidence: Any) -> str:
    if evidence in (None, {}, ""):
        return "<td>–</td>"
    text = _json(evidence, indent=1)
    if len(text) > 4000:
        text = text[:4000] + " … (truncated)"
    return f"<td><details><summary>show</summary><pre>{_esc(text)}</pre></details></td>"


def _json(value: Any, indent: int | None = None) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, indent=indent, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _td(text: str) -> str:
    return f"<td>{_esc(text)}</td>"


def _number(value: Any) -> float | None:
    """A finite float, or ``None`` for a missing, non-numeric or non-finite value."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _pct(value: Any) -> str:
    v = _number(value)
    return "–" if v is None else f"{v + 0.0:.1%}"


def _fixed(value: Any) -> str:
    v = _number(value)
    return "–" if v is None else f"{v + 0.0:.2f}"


def _int(value: Any) -> str:
    v = _number(value)
    return "–" if v is None else str(int(v))


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    v = _number(value)
    if v is None:
        return str(value)
    return f"{v + 0.0:.4g}"


def _day(value: Any) -> str:
    if value is None or value == "":
        return "–"
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    return "–" if pd.isna(ts) else str(ts.date())


def _when(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
