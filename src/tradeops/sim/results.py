"""What a simulation earned: served signals traded with the ``realistic`` fill rule, net of the configured costs.

Series: ``champion`` = what the service answered (the champion's signal, or the challenger's on a canary key, HOLD
while halted), ``challenger`` = the shadow challenger's own signals (from the first day it scored; HOLD where it
did not), ``buy_and_hold`` on the same days. Every figure comes from :func:`tradeops.model.backtest.backtest` /
:func:`~tradeops.model.backtest.buy_and_hold` (one metrics module); the portfolio is the equal-weight mean of the
per-ticker curves, each normalised to 1.0 at its start. Per-year rows are separate backtests of each calendar year
(flat at the year's first session, closed out at its last), so a year's figure does not depend on the year before.
Pure functions: records and bars in, frames out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tradeops.errors import TradeopsError
from tradeops.features.labels import HOLD
from tradeops.model.backtest import BacktestResult, Costs, backtest, buy_and_hold
from tradeops.report.simulation import DAYS_COLUMNS as DAY_COLUMNS  # the report's input is this frame

__all__ = ["SERIES", "served_frame", "equity_frame", "yearly_frame", "headline"]

SERIES: tuple[str, ...] = ("champion", "challenger", "buy_and_hold")


def served_frame(records: Sequence[Mapping[str, Any]], bars: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per answered (date, ticker) of the journal's day records (:data:`DAY_COLUMNS`), with the close."""
    rows = []
    for rec in records:
        for s in rec.get("served", []):
            if s.get("status") != 200:
                continue
            rows.append(
                {
                    "date": pd.Timestamp(rec["date"]),
                    "ticker": s["ticker"],
                    "signal": s["signal"],
                    "answered_by": s["answered_by"],
                    "champion_signal": s.get("champion_signal"),
                    "challenger_signal": s.get("challenger_signal"),
                    "champion_version": s.get("champion_version"),
                    "challenger_version": s.get("challenger_version"),
                    "halted": bool(s.get("halted")),
                }
            )
    frame = pd.DataFrame(rows, columns=[c for c in DAY_COLUMNS if c != "close"])
    if frame.empty:
        return pd.DataFrame(columns=list(DAY_COLUMNS))
    closes = []
    for d, t in zip(frame["date"], frame["ticker"]):
        b = bars.get(t)
        if b is None or d not in b.index:
            raise TradeopsError(f"simulation results: {t} {d.date()}: [bars] a served day has no stored bar")
        closes.append(float(b.at[d, "close"]))
    frame.insert(2, "close", closes)
    return frame


def _signals(g: pd.DataFrame, column: str) -> pd.Series:
    s = pd.Series(g[column].to_numpy(dtype=object), index=pd.DatetimeIndex(g["date"]))
    return s.where(s.notna(), HOLD)


def _runs(
    served: pd.DataFrame, bars: Mapping[str, pd.DataFrame], costs: Costs, start: pd.Timestamp, end: pd.Timestamp
) -> dict[str, dict[str, BacktestResult]]:
    """series -> ticker -> backtest over ``[start, end]`` (the ticker's served days inside it; at least 2)."""
    out: dict[str, dict[str, BacktestResult]] = {s: {} for s in SERIES}
    part = served[(served["date"] >= start) & (served["date"] <= end)]
    for ticker, g in part.groupby("ticker", sort=True):
        t = str(ticker)
        g = g.sort_values("date")
        days = pd.DatetimeIndex(g["date"])
        if len(days) < 2:
            continue
        b = bars[t].loc[days[0] : days[-1]]
        try:
            out["champion"][t] = backtest(b, _signals(g, "signal"), mode="realistic", costs=costs, ticker=t)
            out["buy_and_hold"][t] = buy_and_hold(b, days[0], days[-1], "realistic", costs=costs, ticker=t)
            scored = g[g["challenger_signal"].notna()]
            if len(scored) and len(days[days >= scored["date"].min()]) >= 2:
                first = scored["date"].min()
                gc = g[g["date"] >= first]
                out["challenger"][t] = backtest(
                    b.loc[first:], _signals(gc, "challenger_signal"), mode="realistic", costs=costs, ticker=t
                )
        except ValueError as exc:
            raise TradeopsError(f"simulation results: {exc}") from None
    return out


def _curve(r: BacktestResult) -> pd.Series:
    return r.equity / r.initial_cash


def equity_frame(served: pd.DataFrame, bars: Mapping[str, pd.DataFrame], costs: Costs) -> pd.DataFrame:
    """Long frame ``date, series, ticker, equity`` (1.0 at each curve's start; ``ticker`` "portfolio" = the
    equal-weight mean of the tickers' curves, carried forward over a day a ticker has no bar)."""
    cols = ["date", "series", "ticker", "equity"]
    if served.empty:
        return pd.DataFrame(columns=cols)
    runs = _runs(served, bars, costs, served["date"].min(), served["date"].max())
    parts = []
    for series, per in runs.items():
        curves = {t: _curve(r) for t, r in per.items()}
        for t, c in curves.items():
            parts.append(pd.DataFrame({"date": c.index, "series": series, "ticker": t, "equity": c.to_numpy()}))
        if curves:
            port = pd.concat(curves.values(), axis=1).sort_index().ffill().mean(axis=1)
            parts.append(pd.DataFrame({"date": port.index, "series": series, "ticker": "portfolio", "equity": port}))
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


def yearly_frame(served: pd.DataFrame, bars: Mapping[str, pd.DataFrame], costs: Costs) -> pd.DataFrame:
    """Per calendar year, series and ticker (and "portfolio"): ``return``, ``max_drawdown`` (<= 0), ``sharpe``,
    ``trades``, ``hit_rate`` of that year's own backtest."""
    cols = ["year", "series", "ticker", "return", "max_drawdown", "sharpe", "trades", "hit_rate"]
    rows: list[dict[str, Any]] = []
    if served.empty:
        return pd.DataFrame(columns=cols)
    for year in sorted({d.year for d in served["date"]}):
        runs = _runs(served, bars, costs, pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31))
        for series, per in runs.items():
            for t, r in per.items():
                rows.append(
                    {
                        "year": year,
                        "series": series,
                        "ticker": t,
                        "return": r.total_return,
                        "max_drawdown": r.max_drawdown,
                        "sharpe": r.sharpe,
                        "trades": r.n_trades,
                        "hit_rate": r.win_rate,
                    }
                )
            if len(per) > 1:
                port = pd.concat([_curve(r) for r in per.values()], axis=1).sort_index().ffill().mean(axis=1)
                n = sum(r.n_trades for r in per.values())
                wins = sum(int((r.trades["pnl"] > 0).sum()) for r in per.values())
                peak = np.maximum.accumulate(np.concatenate(([1.0], port.to_numpy())))[1:]
                rets = port.pct_change().fillna(port.iloc[0] - 1.0)
                sd = float(rets.std(ddof=1))
                rows.append(
                    {
                        "year": year,
                        "series": series,
                        "ticker": "portfolio",
                        "return": float(port.iloc[-1] - 1.0),
                        "max_drawdown": min(float(np.min(port.to_numpy() / peak - 1.0)), 0.0),
                        "sharpe": float(rets.mean() / sd * np.sqrt(252)) if sd > 0 else None,
                        "trades": n,
                        "hit_rate": wins / n if n else None,
                    }
                )
    return pd.DataFrame(rows, columns=cols)


def headline(equity: pd.DataFrame) -> dict[str, float | None]:
    """Final portfolio equity of each series (``None`` for a series that never traded)."""
    out: dict[str, float | None] = {}
    for s in SERIES:
        e = equity[(equity["series"] == s) & (equity["ticker"] == "portfolio")]
        out[s] = None if e.empty else round(float(e.sort_values("date")["equity"].iloc[-1]), 6)
    return out
