"""Simulation report: one self-contained HTML page of a day-by-day lifecycle simulation (``tradeops simulate``).

Sections (anchors in :data:`SECTIONS`): summary, portfolio and per-ticker equity of champion, challenger and Buy &
Hold (net of costs), each ticker's answered signals on its price chart with halted days shaded, the model-version
timeline (which version was champion / challenger when, with the data versions and the reason of each promotion,
rollback, halt and resume), drift over time, alerts and actions, and per-year metrics. Every figure says
"no data yet: <why>" instead of drawing an empty chart; plotly.js is inlined once (the first figure carries it), so
the page opens offline.

Time conventions: ``date`` is the trading date a decision was served for (after that day's close, from bars <= t);
``as_of`` (drift, alerts, model events) is the trading date a monitoring pass or a registry action looked back from.
:func:`render_simulation_report` is pure (inputs in, HTML string out, no file or network access).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from tradeops.errors import TradeopsError
from tradeops.features.labels import CLASSES
from tradeops.report.features import _CSS, _LAYOUT, _FigureRenderer, _table
from tradeops.report.monitoring import (
    _EXTRA_CSS,
    _LINE_COLORS,
    DRIFT_METRICS,
    _day,
    _esc,
    _events_table,
    _fixed,
    _hover,
    _missing_note,
    _nodata,
    _normalise_history,
    _number,
    _pct,
    _str,
    _when,
    _why_empty,
    alerts_figure,
    drift_figure,
    event_frame,
)

__all__ = [
    "DAYS_COLUMNS",
    "EQUITY_COLUMNS",
    "MODEL_EVENTS",
    "MODEL_KEYS",
    "PORTFOLIO",
    "SECTIONS",
    "SERIES",
    "YEARLY_COLUMNS",
    "render_simulation_report",
]

#: (anchor id, heading) of every section, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "1. Summary"),
    ("equity", "2. Equity: champion, challenger and Buy & Hold (net of costs)"),
    ("signals", "3. Signals on the price chart"),
    ("versions", "4. Model-version timeline"),
    ("drift", "5. Drift over time"),
    ("alerts", "6. Alerts and actions"),
    ("yearly", "7. Per-year metrics"),
)

#: Columns each input frame must have (when it has rows).
DAYS_COLUMNS: tuple[str, ...] = (
    "date",
    "ticker",
    "close",
    "signal",
    "answered_by",
    "champion_signal",
    "challenger_signal",
    "champion_version",
    "challenger_version",
    "halted",
)
EQUITY_COLUMNS: tuple[str, ...] = ("date", "series", "ticker", "equity")
YEARLY_COLUMNS: tuple[str, ...] = ("year", "series", "ticker", "return", "max_drawdown", "sharpe", "trades", "hit_rate")
#: Keys of each entry of ``models`` and the events a model version can record.
MODEL_KEYS: tuple[str, ...] = (
    "name",
    "version",
    "trained_as_of",
    "bars_version",
    "features_version",
    "labels_version",
    "run_id",
    "blessed",
    "events",
)
MODEL_EVENTS: tuple[str, ...] = ("registered", "promoted", "rollback", "halt", "resume")
#: Equity / yearly series, in legend order, and the ``ticker`` value of the whole portfolio.
SERIES: tuple[str, ...] = ("champion", "challenger", "buy_and_hold")
PORTFOLIO = "portfolio"

_ROLES = ("champion", "challenger")
_SERIES_LABELS = {"champion": "champion", "challenger": "challenger", "buy_and_hold": "Buy & Hold"}
_SIGNAL_STYLE = {"BUY": ("triangle-up", "#2ca02c"), "SELL": ("triangle-down", "#d62728")}
_EVENT_SYMBOLS = {
    "registered": "circle-open",
    "promoted": "star",
    "rollback": "x",
    "halt": "square",
    "resume": "diamond",
}
_EVENT_COLORS = {
    "registered": "#7f7f7f",
    "promoted": "#2ca02c",
    "rollback": "#d62728",
    "halt": "#000000",
    "resume": "#1f77b4",
}
_HALT_FILL = {"fillcolor": "#d62728", "opacity": 0.12, "line": {"width": 0}, "layer": "below"}
_DAY_MS = 86_400_000
_WHO = "simulation report"


def render_simulation_report(
    *,
    title: str,
    generated_at: datetime,
    days: pd.DataFrame,
    equity: pd.DataFrame,
    models: list[dict],
    events: list[dict],
    metric_history: pd.DataFrame,
    yearly: pd.DataFrame,
    summary: dict,
) -> str:
    """Render the simulation page as a self-contained HTML string.

    ``days``: one row per (trading date, ticker) served, columns :data:`DAYS_COLUMNS` (``date`` datetime64,
    ``close`` adjusted close, ``signal`` the answered BUY/SELL/HOLD, ``answered_by`` champion/challenger,
    ``challenger_signal``/``challenger_version`` may be missing, ``halted`` bool). ``equity``: long format
    :data:`EQUITY_COLUMNS`, ``series`` one of :data:`SERIES`, ``ticker`` a ticker or ``"portfolio"``, ``equity``
    net of costs, 1.0 at the start. ``models``: one dict per registered version with :data:`MODEL_KEYS` (``events``:
    ``as_of`` YYYY-MM-DD, ``event`` one of :data:`MODEL_EVENTS`, ``reason``). ``events``: monitor events as
    :func:`tradeops.deploy.predlog.events` returns them. ``metric_history``: ``pd.DataFrame(predlog.metric_history
    (engine))``. ``yearly``: :data:`YEARLY_COLUMNS` (``return`` and ``max_drawdown`` fractions, ``hit_rate`` a
    fraction or missing). ``summary``: headline facts shown as a key/value table. An empty frame (even without
    columns) or list means "nothing recorded". Raises :class:`TradeopsError` naming the input and the column or key
    when an input has the wrong shape.
    """
    days_f = _check_days(days)
    equity_f = _check_equity(equity)
    yearly_f = _check_yearly(yearly)
    models_l = _check_models(models)
    events_l = _check_events(events)
    history = _check_history(metric_history)
    if not isinstance(summary, Mapping):
        raise TradeopsError(f"{_WHO}: summary must be a mapping, got {type(summary).__name__}")

    figures = _FigureRenderer()
    body = [
        _summary_section(summary),
        _equity_section(equity_f, days_f, figures),
        _signals_section(days_f, figures),
        _versions_section(days_f, models_l, figures),
        _drift_section(history, models_l, figures),
        _alerts_section(events_l, figures),
        _yearly_section(yearly_f, figures),
    ]
    nav = "".join(f'<li><a href="#{anchor}">{_esc(heading)}</a></li>' for anchor, heading in SECTIONS)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}{_EXTRA_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="note">Generated {_esc(_when(generated_at))}. <code>date</code> is the trading date a decision '
        "was served for (after that day's close, from bars up to that day); <code>as_of</code> is the trading date a "
        "monitoring pass or registry action looked back from. Equity is net of costs and starts at 1.0. "
        "Self-contained page: no network access needed.</p>\n"
        f"<nav><ol>{nav}</ol></nav>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


# --- inputs ------------------------------------------------------------------------------------------------------


def _frame(name: str, frame: Any, columns: Sequence[str]) -> pd.DataFrame | None:
    """``None`` for an empty frame; otherwise the frame, after checking it has every column."""
    if not isinstance(frame, pd.DataFrame):
        raise TradeopsError(f"{_WHO}: {name} must be a DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        return None
    for col in columns:
        if col not in frame.columns:
            raise TradeopsError(f"{_WHO}: {name} lacks column {col!r} (needs {', '.join(columns)})")
    return frame


def _dates(name: str, frame: pd.DataFrame, col: str = "date") -> np.ndarray:
    values = frame[col]
    if not pd.api.types.is_datetime64_dtype(values):
        raise TradeopsError(f"{_WHO}: {name}.{col} must be tz-naive datetime64, got dtype {values.dtype}")
    if values.isna().any():
        raise TradeopsError(f"{_WHO}: {name}.{col} has {int(values.isna().sum())} missing date(s)")
    return values.dt.normalize().to_numpy(dtype="datetime64[ns]")


def _numbers(name: str, frame: pd.DataFrame, col: str) -> np.ndarray:
    values = frame[col]
    if pd.api.types.is_bool_dtype(values):
        raise TradeopsError(f"{_WHO}: {name}.{col} must hold numbers, got booleans")
    try:
        out = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise TradeopsError(f"{_WHO}: {name}.{col} must hold numbers or missing values: {exc}") from exc
    out[~np.isfinite(out)] = np.nan
    return out


def _texts(frame: pd.DataFrame, col: str) -> np.ndarray:
    """Strings, ``None`` where missing."""
    values = frame[col]
    return np.array([None if _missing(v) else str(v) for v in values], dtype=object)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _where(frame: pd.DataFrame, i: int) -> str:
    row = frame.iloc[i]
    return f"{row['ticker']} {_day(row['date'])}"


def _check_choice(name: str, frame: pd.DataFrame, col: str, values: np.ndarray, allowed: Sequence[str]) -> None:
    for i, v in enumerate(values):
        if v is not None and v not in allowed:
            raise TradeopsError(f"{_WHO}: {name}.{col} is {v!r} on {_where(frame, i)}; valid: {', '.join(allowed)}")


def _check_days(frame: Any) -> pd.DataFrame | None:
    """``date`` (datetime64[ns], day), ``ticker``, ``close`` (float), signals and versions (str or None),
    ``halted`` (bool), sorted by ticker and date; ``None`` when no day was served."""
    got = _frame("days", frame, DAYS_COLUMNS)
    if got is None:
        return None
    out = pd.DataFrame(
        {
            "date": _dates("days", got),
            "ticker": got["ticker"].astype(str).to_numpy(),
            "close": _numbers("days", got, "close"),
            **{c: _texts(got, c) for c in DAYS_COLUMNS[3:9]},
        }
    )
    for col in ("signal", "answered_by", "champion_version"):
        absent = [i for i, v in enumerate(out[col]) if v is None]
        if absent:
            raise TradeopsError(f"{_WHO}: days.{col} is missing on {_where(out, absent[0])}")
    _check_choice("days", out, "signal", out["signal"].to_numpy(), CLASSES)
    _check_choice("days", out, "answered_by", out["answered_by"].to_numpy(), _ROLES)
    for col in ("champion_signal", "challenger_signal"):
        _check_choice("days", out, col, out[col].to_numpy(), CLASSES)
    halted = got["halted"]
    if not pd.api.types.is_bool_dtype(halted):
        bad = [i for i, v in enumerate(halted) if not isinstance(v, (bool, np.bool_))]
        if bad:
            raise TradeopsError(
                f"{_WHO}: days.halted must be True or False, got {halted.iloc[bad[0]]!r} on {_where(out, bad[0])}"
            )
    out["halted"] = halted.astype(bool).to_numpy()
    dupes = out.duplicated(["date", "ticker"])
    if dupes.any():
        raise TradeopsError(f"{_WHO}: days has two rows for {_where(out, int(np.flatnonzero(dupes)[0]))}")
    return out.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


def _check_equity(frame: Any) -> pd.DataFrame | None:
    got = _frame("equity", frame, EQUITY_COLUMNS)
    if got is None:
        return None
    out = pd.DataFrame(
        {
            "date": _dates("equity", got),
            "series": got["series"].astype(str).to_numpy(),
            "ticker": got["ticker"].astype(str).to_numpy(),
            "equity": _numbers("equity", got, "equity"),
        }
    )
    _check_choice("equity", out, "series", out["series"].to_numpy(), SERIES)
    dupes = out.duplicated(["date", "series", "ticker"])
    if dupes.any():
        i = int(np.flatnonzero(dupes)[0])
        raise TradeopsError(f"{_WHO}: equity has two {out['series'].iloc[i]} rows for {_where(out, i)}")
    return out.sort_values(["ticker", "series", "date"], kind="stable").reset_index(drop=True)


def _check_yearly(frame: Any) -> pd.DataFrame | None:
    got = _frame("yearly", frame, YEARLY_COLUMNS)
    if got is None:
        return None
    year = _numbers("yearly", got, "year")
    if np.isnan(year).any() or (year != np.round(year)).any():
        raise TradeopsError(f"{_WHO}: yearly.year must hold whole years, got {got['year'].tolist()[:5]}")
    out = pd.DataFrame(
        {
            "year": year.astype(np.int64),
            "series": got["series"].astype(str).to_numpy(),
            "ticker": got["ticker"].astype(str).to_numpy(),
            **{c: _numbers("yearly", got, c) for c in YEARLY_COLUMNS[3:]},
        }
    )
    for i, s in enumerate(out["series"]):
        if s not in SERIES:
            raise TradeopsError(
                f"{_WHO}: yearly.series is {s!r} for {out['ticker'].iloc[i]} {out['year'].iloc[i]}; "
                f"valid: {', '.join(SERIES)}"
            )
    return out


def _check_models(models: Any) -> list[dict[str, Any]]:
    if not isinstance(models, Sequence) or isinstance(models, (str, bytes)):
        raise TradeopsError(f"{_WHO}: models must be a list of dicts, got {type(models).__name__}")
    out = []
    for i, m in enumerate(models):
        if not isinstance(m, Mapping):
            raise TradeopsError(f"{_WHO}: models[{i}] must be a mapping, got {type(m).__name__}")
        for key in MODEL_KEYS:
            if key not in m:
                who = f"{_str(m.get('name')) or '?'} v{_str(m.get('version')) or '?'}"
                raise TradeopsError(f"{_WHO}: models[{i}] ({who}) lacks key {key!r} (needs {', '.join(MODEL_KEYS)})")
        who = f"models[{i}] ({m['name']} v{m['version']})"
        evs = m["events"]
        if not isinstance(evs, Sequence) or isinstance(evs, (str, bytes)):
            raise TradeopsError(f"{_WHO}: {who} events must be a list, got {type(evs).__name__}")
        checked = []
        for j, ev in enumerate(evs):
            if not isinstance(ev, Mapping):
                raise TradeopsError(f"{_WHO}: {who} events[{j}] must be a mapping, got {type(ev).__name__}")
            for key in ("as_of", "event", "reason"):
                if key not in ev:
                    raise TradeopsError(f"{_WHO}: {who} events[{j}] lacks key {key!r} (needs as_of, event, reason)")
            if ev["event"] not in MODEL_EVENTS:
                raise TradeopsError(
                    f"{_WHO}: {who} events[{j}].event is {ev['event']!r}; valid: {', '.join(MODEL_EVENTS)}"
                )
            try:
                as_of = pd.Timestamp(ev["as_of"])
            except (TypeError, ValueError) as exc:
                raise TradeopsError(f"{_WHO}: {who} events[{j}].as_of must be a date: {exc}") from exc
            if pd.isna(as_of):
                raise TradeopsError(f"{_WHO}: {who} events[{j}].as_of is missing")
            checked.append({"as_of": as_of.normalize(), "event": ev["event"], "reason": _str(ev["reason"])})
        out.append({**dict(m), "name": str(m["name"]), "version": str(m["version"]), "events": checked})
    return out


def _check_events(events: Any) -> list[Mapping[str, Any]]:
    if not isinstance(events, Sequence) or isinstance(events, (str, bytes)):
        raise TradeopsError(f"{_WHO}: events must be a list of dicts, got {type(events).__name__}")
    for i, ev in enumerate(events):
        if not isinstance(ev, Mapping):
            raise TradeopsError(f"{_WHO}: events[{i}] must be a mapping, got {type(ev).__name__}")
    return list(events)


def _check_history(frame: Any) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame) and len(frame):
        for col in ("as_of", "model", "name", "value"):
            if col not in frame.columns:
                raise TradeopsError(f"{_WHO}: metric_history lacks column {col!r} (needs as_of, model, name, value)")
    try:
        return _normalise_history(frame)
    except TradeopsError as exc:  # same checks as the monitoring page; name this page in the message
        raise TradeopsError(f"{_WHO}: {str(exc).removeprefix('monitoring report: ')}") from exc


# --- sections ----------------------------------------------------------------------------------------------------


def _section(anchor: str, body: str) -> str:
    heading = dict(SECTIONS)[anchor]
    return f'<section>\n<h2 id="{anchor}">{_esc(heading)}</h2>\n{body}\n</section>'


def _summary_section(summary: Mapping[str, Any]) -> str:
    if not summary:
        return _section("summary", _nodata("the simulation passed no summary facts"))
    rows = [(str(k), _fact(v)) for k, v in summary.items()]
    return _section("summary", _table(["item", "value"], rows))


def _fact(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = _number(value)
        return "–" if v is None else f"{v + 0.0:.6g}"
    if isinstance(value, (datetime, pd.Timestamp)) or hasattr(value, "isoformat"):
        return _when(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fact(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(_fact(v) for v in value)
    return str(value)


def _halted_runs(days: pd.DataFrame | None, ticker: str | None = None) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Runs of consecutive served dates that were halted (for ``ticker``, or any ticker when ``None``)."""
    if days is None:
        return []
    rows = days if ticker is None else days[days["ticker"] == ticker]
    per_day = rows.groupby("date", sort=True)["halted"].any()
    runs: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    start: pd.Timestamp | None = None
    prev: pd.Timestamp | None = None
    for d, h in per_day.items():
        ts = pd.Timestamp(d)
        if h and start is None:
            start = ts
        if not h and start is not None and prev is not None:
            runs.append((start, prev))
            start = None
        prev = ts
    if start is not None and prev is not None:
        runs.append((start, prev))
    return runs


def _halt_shapes(runs: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list[dict[str, Any]]:
    half = pd.Timedelta(hours=12)
    return [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": (a - half).isoformat(),
            "x1": (b + half).isoformat(),
            "y0": 0,
            "y1": 1,
            **_HALT_FILL,
        }
        for a, b in runs
    ]


def _selector(labels: Sequence[str], traces_per: Sequence[int], layouts: Sequence[dict[str, Any]]) -> list[dict]:
    """A dropdown that shows the traces of one label at a time (``traces_per[i]`` traces each, in order)."""
    total = sum(traces_per)
    buttons = []
    offset = 0
    for label, n, layout in zip(labels, traces_per, layouts, strict=True):
        visible = [offset <= k < offset + n for k in range(total)]
        buttons.append(
            {
                "label": _esc(label),
                "method": "update",
                "args": [{"visible": visible}, {"xaxis.autorange": True, "yaxis.autorange": True, **layout}],
            }
        )
        offset += n
    return [{"buttons": buttons, "direction": "down", "x": 0, "xanchor": "left", "y": 1.15, "yanchor": "top"}]


def _equity_section(equity: pd.DataFrame | None, days: pd.DataFrame | None, figures: _FigureRenderer) -> str:
    intro = (
        '<p class="note">Equity of each series net of trading costs, 1.0 at the start of the simulation. '
        "Champion and challenger are paper-traded on their own signals; Buy &amp; Hold buys on the first day. "
        "Shaded: days on which serving was halted.</p>"
    )
    if equity is None:
        return _section("equity", intro + _nodata("the simulation recorded no equity curve"))
    halts = _halt_shapes(_halted_runs(days))
    port = equity[equity["ticker"] == PORTFOLIO]
    if port.empty:
        portfolio = _nodata(f"equity has no portfolio rows (ticker {PORTFOLIO!r})")
    else:
        fig = go.Figure()
        for series in SERIES:
            one = port[port["series"] == series]
            if not one.empty:
                fig.add_trace(_equity_trace(one, series, visible=True))
        fig.update_layout(
            **_LAYOUT, height=400, yaxis_title="equity (1.0 at start, net of costs)", shapes=halts, title="portfolio"
        )
        portfolio = figures.render(fig, "fig-equity-portfolio")
    tickers = sorted(set(equity["ticker"]) - {PORTFOLIO})
    if not tickers:
        per_ticker = _nodata("equity has no per-ticker rows")
    else:
        fig = go.Figure()
        counts = []
        for k, ticker in enumerate(tickers):
            rows = equity[equity["ticker"] == ticker]
            n = 0
            for series in SERIES:
                one = rows[rows["series"] == series]
                if not one.empty:
                    fig.add_trace(_equity_trace(one, series, visible=k == 0))
                    n += 1
            counts.append(n)
        layouts = [{"shapes": _halt_shapes(_halted_runs(days, t)), "title.text": _esc(t)} for t in tickers]
        fig.update_layout(
            **_LAYOUT,
            height=400,
            yaxis_title="equity (1.0 at start, net of costs)",
            shapes=layouts[0]["shapes"],
            title={"text": _esc(tickers[0]), "x": 0.5},
            updatemenus=_selector(tickers, counts, layouts),
        )
        per_ticker = (
            f'<p class="note">Per ticker ({len(tickers)}: {_esc(", ".join(tickers))}); pick one in the menu.</p>'
            + figures.render(fig, "fig-equity-tickers")
        )
    return _section("equity", intro + portfolio + per_ticker)


def _equity_trace(rows: pd.DataFrame, series: str, *, visible: bool) -> go.Scatter:
    label = _SERIES_LABELS[series]
    return go.Scatter(
        x=rows["date"],
        y=rows["equity"],
        mode="lines",
        name=_esc(label),
        visible=visible,
        line={"color": _LINE_COLORS[series], "dash": "dot" if series == "buy_and_hold" else "solid"},
        hovertemplate=f"{_esc(label)} %{{x|%Y-%m-%d}}: %{{y:.4f}}<extra></extra>",
    )


def _signals_section(days: pd.DataFrame | None, figures: _FigureRenderer) -> str:
    if days is None:
        return _section("signals", _nodata("no day was served"))
    tickers = sorted(set(days["ticker"]))
    fig = go.Figure()
    rows = []
    for k, ticker in enumerate(tickers):
        one = days[days["ticker"] == ticker]
        fig.add_trace(
            go.Scatter(
                x=one["date"],
                y=one["close"],
                mode="lines",
                name="adjusted close",
                visible=k == 0,
                line={"color": "#555", "width": 1.2},
                hovertemplate="close %{x|%Y-%m-%d}: %{y:.2f}<extra></extra>",
            )
        )
        for signal, (symbol, color) in _SIGNAL_STYLE.items():
            hits = one[one["signal"] == signal]
            fig.add_trace(
                go.Scatter(
                    x=hits["date"],
                    y=hits["close"],
                    mode="markers",
                    name=signal,
                    visible=k == 0,
                    marker={"symbol": symbol, "size": 10, "color": color, "line": {"width": 1, "color": "#222"}},
                    text=[_signal_hover(r) for r in hits.itertuples(index=False)],
                    hovertemplate="%{text}<extra></extra>",
                )
            )
        counts = one["signal"].value_counts()
        rows.append(
            (
                ticker,
                len(one),
                *(int(counts.get(c, 0)) for c in CLASSES),
                int((one["answered_by"] == "challenger").sum()),
                int(((one["challenger_signal"].notna()) & (one["challenger_signal"] != one["champion_signal"])).sum()),
                int(one["halted"].sum()),
            )
        )
    layouts = [{"shapes": _halt_shapes(_halted_runs(days, t)), "title.text": _esc(t)} for t in tickers]
    fig.update_layout(
        **_LAYOUT,
        height=440,
        yaxis_title="adjusted close",
        shapes=layouts[0]["shapes"],
        title={"text": _esc(tickers[0]), "x": 0.5},
        updatemenus=_selector(tickers, [3] * len(tickers), layouts),
        legend={"orientation": "h", "y": -0.12},
    )
    table = _table(
        [
            "ticker",
            "days served",
            *(f"{c} answered" for c in CLASSES),
            "answered by challenger",
            "challenger disagreed",
            "halted days",
        ],
        rows,
    )
    return _section(
        "signals",
        '<p class="note">Markers: the answered signal of each day (BUY ▲, SELL ▼; HOLD unmarked), placed at that '
        "day's adjusted close; hover for who answered and both models' signals. Shaded: halted days. Pick a ticker "
        "in the menu.</p>" + figures.render(fig, "fig-signals") + table,
    )


def _signal_hover(r: Any) -> str:
    parts = [
        f"{_day(r.date)} {r.ticker}: {r.signal} (answered by {r.answered_by})",
        f"close {r.close:.2f}",
        f"champion v{r.champion_version}: {r.champion_signal or '–'}",
        f"challenger v{r.challenger_version}: {r.challenger_signal or '–'}"
        if r.challenger_version
        else "no challenger",
    ]
    if r.halted:
        parts.append("halted")
    return "<br>".join(_esc(p) for p in parts)


def _role_runs(days: pd.DataFrame, role: str) -> list[tuple[pd.Timestamp, pd.Timestamp, str, int]]:
    """(first date, end, version label, days) of each run of consecutive served dates with the same ``role``
    version; ``end`` is the next run's first date (the day after the last date for the last run). Dates on which
    tickers disagree get the versions joined ("3, 4"); dates without a version of the role are left out."""
    col = f"{role}_version"
    per_day = days.groupby("date", sort=True)[col].agg(lambda s: ", ".join(sorted({v for v in s if v is not None})))
    dates = [pd.Timestamp(d) for d in per_day.index]
    labels = list(per_day.to_numpy())
    runs = []
    i = 0
    while i < len(dates):
        j = i
        while j + 1 < len(dates) and labels[j + 1] == labels[i]:
            j += 1
        end = dates[j + 1] if j + 1 < len(dates) else dates[j] + pd.Timedelta(days=1)
        if labels[i]:
            runs.append((dates[i], end, labels[i], j - i + 1))
        i = j + 1
    return runs


def _versions_section(days: pd.DataFrame | None, models: list[dict[str, Any]], figures: _FigureRenderer) -> str:
    if days is None and not models:
        return _section("versions", _nodata("no day was served and no model version was registered"))
    by_version: dict[str, list[dict[str, Any]]] = {}
    for m in models:
        by_version.setdefault(m["version"], []).append(m)
    names = {m["name"] for m in models}
    palette = qualitative.Plotly
    versions_seen = sorted({m["version"] for m in models}, key=_version_key)
    colors: dict[str, str] = {}

    def color(label: str) -> str:
        if label not in colors:
            colors[label] = palette[len(colors) % len(palette)]
        return colors[label]

    for v in versions_seen:
        color(v)
    fig = go.Figure()
    runs: dict[str, list[tuple[pd.Timestamp, pd.Timestamp, str, int]]] = {}
    if days is not None:
        for role in _ROLES:
            runs[role] = _role_runs(days, role)
            if not runs[role]:
                continue
            fig.add_trace(
                go.Bar(
                    orientation="h",
                    y=[role] * len(runs[role]),
                    base=[a.isoformat() for a, _, _, _ in runs[role]],
                    x=[(b - a) / pd.Timedelta(milliseconds=1) for a, b, _, _ in runs[role]],
                    marker={"color": [color(v) for _, _, v, _ in runs[role]], "line": {"width": 1, "color": "#fff"}},
                    text=[_esc(f"v{v}") for _, _, v, _ in runs[role]],
                    textposition="inside",
                    insidetextanchor="middle",
                    name=role,
                    showlegend=False,
                    customdata=[_run_hover(role, r, by_version, len(names) > 1) for r in runs[role]],
                    hovertemplate="%{customdata}<extra></extra>",
                )
            )
    marks = [(m, ev) for m in models for ev in m["events"]]
    for kind in MODEL_EVENTS:
        these = [(m, ev) for m, ev in marks if ev["event"] == kind]
        if not these:
            continue
        fig.add_trace(
            go.Scatter(
                x=[ev["as_of"] for _, ev in these],
                y=["events"] * len(these),
                mode="markers",
                name=kind,
                marker={
                    "symbol": _EVENT_SYMBOLS[kind],
                    "size": 13,
                    "color": _EVENT_COLORS[kind],
                    "line": {"width": 2, "color": _EVENT_COLORS[kind]},
                },
                text=[_event_hover(m, ev) for m, ev in these],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if not fig.data:
        chart = _nodata("no served day names a model version and no model version recorded an event")
    else:
        fig.update_layout(
            **_LAYOUT,
            height=300,
            barmode="overlay",
            xaxis={"type": "date"},
            yaxis={"categoryorder": "array", "categoryarray": ["events", "challenger", "champion"]},
            legend={"orientation": "h", "y": -0.2, "title": "model events"},
        )
        chart = figures.render(fig, "fig-versions")
    table = _versions_table(models, runs) if models else _nodata("no model version was registered")
    event_rows = sorted(
        ((ev["as_of"], m["name"], m["version"], ev["event"], ev["reason"] or "–") for m, ev in marks),
        key=lambda r: (r[0], _version_key(r[2])),
    )
    event_table = (
        _table(
            ["as_of", "model", "version", "event", "reason"],
            [(_day(r[0]), *r[1:]) for r in event_rows],
            scroll=True,
        )
        if event_rows
        else _nodata("no model version recorded a registry event")
    )
    return _section(
        "versions",
        '<p class="note">Bars: which version answered as champion and which shadowed or canaried as challenger on '
        "each served date (from the served days); markers: registry events of each version (hover for the reason). "
        "Hover a bar for the data versions (bars / features / labels tables) it was trained on.</p>"
        + chart
        + "<h3>Model versions</h3>"
        + table
        + "<h3>Registry events</h3>"
        + event_table,
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (10**9, version)


def _model_facts(m: Mapping[str, Any]) -> str:
    return (
        f"trained as of {_day(m['trained_as_of'])}, bars v{_str(m['bars_version'])}, features "
        f"v{_str(m['features_version'])}, labels v{_str(m['labels_version'])}, run {_str(m['run_id'])}, "
        f"{'blessed' if m['blessed'] else 'not blessed'}"
    )


def _run_hover(
    role: str,
    run: tuple[pd.Timestamp, pd.Timestamp, str, int],
    by_version: Mapping[str, list[dict[str, Any]]],
    show_name: bool,
) -> str:
    start, end, label, n = run
    last = end - pd.Timedelta(days=1)
    parts = [f"{role} v{label}: {_day(start)} .. {_day(last) if n == 1 else 'before ' + _day(end)} ({n} day(s))"]
    for v in label.split(", "):
        found = by_version.get(v)
        if not found:
            parts.append(f"v{v}: not in the list of registered versions")
        for m in found or []:
            parts.append((f"{m['name']} " if show_name else "") + f"v{v}: {_model_facts(m)}")
            for ev in m["events"]:
                parts.append(f"  {_day(ev['as_of'])} {ev['event']}: {ev['reason'] or 'no reason recorded'}")
    return "<br>".join(_esc(p) for p in parts)


def _event_hover(m: Mapping[str, Any], ev: Mapping[str, Any]) -> str:
    parts = [
        f"{_day(ev['as_of'])}: {m['name']} v{m['version']} {ev['event']}",
        f"reason: {ev['reason'] or 'no reason recorded'}",
        _model_facts(m),
    ]
    return "<br>".join(_esc(p) for p in parts)


def _versions_table(
    models: list[dict[str, Any]], runs: Mapping[str, list[tuple[pd.Timestamp, pd.Timestamp, str, int]]]
) -> str:
    rows = []
    for m in sorted(models, key=lambda m: (m["name"], _version_key(m["version"]))):
        cells: list[object] = [
            m["name"],
            m["version"],
            _day(m["trained_as_of"]),
            _str(m["bars_version"]),
            _str(m["features_version"]),
            _str(m["labels_version"]),
            _str(m["run_id"]),
            bool(m["blessed"]),
        ]
        for role in _ROLES:
            mine = [r for r in runs.get(role, []) if m["version"] in r[2].split(", ")]
            cells.append(sum(r[3] for r in mine))
            cells.append("; ".join(f"{_day(a)}..{_day(b - pd.Timedelta(days=1))}" for a, b, _, _ in mine) or "–")
        rows.append(cells)
    return _table(
        [
            "model",
            "version",
            "trained as of",
            "bars version",
            "features version",
            "labels version",
            "run id",
            "blessed",
            "days as champion",
            "champion periods",
            "days as challenger",
            "challenger periods",
        ],
        rows,
        scroll=True,
    )


def _drift_section(history: pd.DataFrame, models: list[dict[str, Any]], figures: _FigureRenderer) -> str:
    rows = history[history["name"].isin(DRIFT_METRICS)]
    served = sorted(set(rows["model"])) or sorted({m["name"] for m in models})
    why = _why_empty(rows, ", ".join(served) or "the simulation", "drift metrics")
    if why:
        return _section("drift", _nodata(why))
    fig = drift_figure(rows, prefix=rows["model"].nunique() > 1)
    changes = sorted(
        {(ev["as_of"], ev["event"]) for m in models for ev in m["events"] if ev["event"] in ("promoted", "rollback")}
    )
    for as_of, kind in changes:
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=as_of.isoformat(),
            x1=as_of.isoformat(),
            y0=0,
            y1=1,
            line={"color": _EVENT_COLORS[kind], "dash": "dot", "width": 1},
        )
    fig.update_layout(**_LAYOUT, height=460, legend={"orientation": "h", "y": -0.12})
    fig.update_yaxes(range=[0, 1.05], row=2, col=1)
    lines = " Dotted vertical lines: promotions (green) and rollbacks (red) of a model version." if changes else ""
    return _section(
        "drift",
        '<p class="note">Per monitoring pass (x: <code>as_of</code>). PSI above ~0.2 is usually read as a shift; '
        "shares are fractions of the features; a domain AUC of 0.5 means reference and recent rows are "
        f"indistinguishable.{_esc(lines)}</p>" + _missing_note(rows) + figures.render(fig, "fig-drift"),
    )


def _alerts_section(events: list[Mapping[str, Any]], figures: _FigureRenderer) -> str:
    if not events:
        return _section("alerts", _nodata("no rule fired and no action was taken"))
    frame, undated = event_frame(
        events, lambda e: _hover(e) + (f"<br>model: {_esc(_str(e['model']))}" if e.get("model") else "")
    )
    chart = (
        _nodata("no event carries an as_of date") if frame.empty else figures.render(alerts_figure(frame), "fig-alerts")
    )
    counts = pd.Series([_str(e.get("action")) or "?" for e in events]).value_counts()
    by_action = ", ".join(f"{a} {n}" for a, n in counts.items())
    undated_note = f" {undated} event(s) without an as_of date are only in the table." if undated else ""
    return _section(
        "alerts",
        f'<p class="note">{len(events)} event(s) by action: {_esc(by_action)}. Colour: severity. Symbol: status '
        f"(filled circle fired, open circle suppressed, diamond done, cross failed).{_esc(undated_note)}</p>"
        + chart
        + _events_table(list(events)),
    )


def _yearly_section(yearly: pd.DataFrame | None, figures: _FigureRenderer) -> str:
    if yearly is None:
        return _section("yearly", _nodata("the simulation recorded no per-year metrics"))
    order = {s: i for i, s in enumerate(SERIES)}
    ranked = yearly.assign(_p=(yearly["ticker"] != PORTFOLIO).astype(int), _s=yearly["series"].map(order)).sort_values(
        ["_p", "ticker", "year", "_s"], kind="stable"
    )
    rows = [
        (
            r.ticker,
            int(r.year),
            _SERIES_LABELS[r.series],
            _pct(r.ret),
            _pct(r.max_drawdown),
            _fixed(r.sharpe),
            "–" if np.isnan(r.trades) else int(r.trades),
            _pct(r.hit_rate),
        )
        for r in ranked.rename(columns={"return": "ret"}).itertuples(index=False)
    ]
    port = yearly[yearly["ticker"] == PORTFOLIO]
    if port.empty:
        chart = _nodata(f"yearly has no portfolio rows (ticker {PORTFOLIO!r}) to chart")
    else:
        fig = go.Figure()
        for series in SERIES:
            one = port[port["series"] == series].sort_values("year")
            if one.empty:
                continue
            fig.add_trace(
                go.Bar(
                    x=one["year"].astype(str),
                    y=one["return"],
                    name=_esc(_SERIES_LABELS[series]),
                    marker_color=_LINE_COLORS[series],
                    hovertemplate=f"{_esc(_SERIES_LABELS[series])} %{{x}}: %{{y:.1%}}<extra></extra>",
                )
            )
        fig.update_layout(**_LAYOUT, height=340, barmode="group", yaxis={"title": "return", "tickformat": ".0%"})
        fig.update_xaxes(type="category")
        chart = figures.render(fig, "fig-yearly")
    return _section(
        "yearly",
        '<p class="note">Calendar-year return and maximum drawdown (net of costs), annualised Sharpe, round-trip '
        "trades and hit rate (share of trades with a gain) per series; portfolio first, then each ticker.</p>"
        + chart
        + _table(
            ["ticker", "year", "series", "return", "max drawdown", "Sharpe", "trades", "hit rate"], rows, scroll=True
        ),
    )
