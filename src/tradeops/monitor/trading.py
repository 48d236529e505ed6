"""Paper trading of what was served: the champion's and the (shadow) challenger's signals traded with the
``realistic`` fill rule (next open, costs) on the stored bars up to ``as_of``, beside Buy & Hold on the same days.

Time convention: the window is the last ``window`` served sessions (distinct ``as_of`` dates across tickers) up to
``as_of``; bars are sliced to that window before anything reads them, so no bar after ``as_of`` is used. A signal
on the window's last session cannot fill before the next open and has no effect yet. A role's own window starts at
the first session it scored (a challenger added mid-window is not charged for the days before it existed); dates a
role did not score inside its window are HOLD.

Portfolio: several tickers form an equal-weight portfolio; each ticker's equity is normalised to 1.0 at the window
start (before the first fill), carried forward over a date it has no bar, and the curves are averaged per date.
Return = last value - 1; drawdown = largest fall below the running peak (peak starts at 1.0), a positive fraction;
hit rate = winning round trips / round trips over all tickers (end-of-window close-outs included, as
:func:`tradeops.model.backtest.backtest` counts them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import HOLD
from tradeops.model.backtest import BacktestResult, Costs, backtest, buy_and_hold
from tradeops.monitor.metrics import Metric
from tradeops.monitor.quality import ROLES, as_of_timestamp, validate_served, window_text

__all__ = ["TRADING_METRICS", "paper_trading"]

_ROLE_METRICS: tuple[str, ...] = ("return", "drawdown", "hit_rate", "excess_return")
#: Every metric :func:`paper_trading` returns, in order.
TRADING_METRICS: tuple[str, ...] = (
    *(f"trading.{r}.{m}" for r in ROLES for m in _ROLE_METRICS),
    "trading.buy_and_hold.return",
)


def _portfolio(curves: list[pd.Series]) -> pd.Series:
    """Equal-weight mean of per-ticker curves (each 1.0 at its start), carried forward over missing bars."""
    return pd.concat(curves, axis=1).sort_index().ffill().mean(axis=1)


def _drawdown(curve: pd.Series) -> float:
    """Maximum drawdown of a curve that starts from 1.0, as a positive fraction (0.12 = 12 % below the peak)."""
    c = curve.to_numpy(dtype=np.float64)
    peak = np.maximum.accumulate(np.concatenate(([1.0], c)))[1:]
    return max(float(-(np.min(c / peak) - 1.0)), 0.0) + 0.0  # + 0.0: no -0.0 in the record


def _ticker_bars(model: str, bars: Mapping[str, pd.DataFrame], ticker: str, days: pd.DatetimeIndex) -> pd.DataFrame:
    """The ticker's bars within ``[days[0], days[-1]]`` (nothing later); every session in ``days`` must have one."""
    who = f"paper trading {model}: ticker {ticker}"
    b = bars.get(ticker)
    if b is None:
        raise TradeopsError(f"{who}: [bars] no stored bars for a served ticker")
    if not isinstance(b, pd.DataFrame) or not isinstance(b.index, pd.DatetimeIndex):
        raise TradeopsError(f"{who}: [bars] must be a DataFrame on a DatetimeIndex of trading dates")
    b = b[(b.index >= days[0]) & (b.index <= days[-1])]
    absent = days[~days.isin(b.index)]
    if len(absent):
        raise TradeopsError(
            f"{who}: [bars] no bar on {absent[0].date()}, a served session of the window "
            f"{window_text(days)} (rule: bars cover every served session)"
        )
    return b


def _role_run(
    model: str,
    role: str,
    rows: pd.DataFrame,
    bars: Mapping[str, pd.DataFrame],
    sessions: pd.DatetimeIndex,
    costs: Costs,
) -> tuple[list[BacktestResult], pd.DatetimeIndex]:
    """One backtest per ticker the role scored, from its first scored session to the window's last."""
    col = f"{role}_signal"
    scored = rows[rows[col].notna()]
    days = sessions[sessions >= scored["as_of"].min()]
    results: list[BacktestResult] = []
    for ticker, g in scored.groupby("ticker", sort=True):
        t = str(ticker)
        b = _ticker_bars(model, bars, t, pd.DatetimeIndex(g["as_of"]).union(days[[0, -1]]))
        sig = pd.Series(g[col].to_numpy(dtype=object), index=pd.DatetimeIndex(g["as_of"]))
        sig = sig.reindex(sig.index.union(days[[0, -1]])).fillna(HOLD)  # the window always spans the role's days
        try:
            results.append(backtest(b, sig, mode="realistic", costs=costs, ticker=t))
        except ValueError as exc:
            raise TradeopsError(f"paper trading {model} ({role}): {exc}") from None
    return results, days


def _ticker_evidence(r: BacktestResult) -> dict[str, Any]:
    return {"total_return": r.total_return, "max_drawdown": r.max_drawdown, "n_trades": r.n_trades}


def _on(curve: pd.Series, dates: pd.DatetimeIndex) -> list[float | None]:
    """``curve`` on ``dates``: carried forward inside its span, ``None`` before it starts."""
    v = curve.reindex(curve.index.union(dates)).ffill().reindex(dates)
    v[dates < curve.index[0]] = np.nan
    return [None if pd.isna(x) else float(x) for x in v.to_numpy()]


def paper_trading(
    model: str,
    served: pd.DataFrame,
    bars: Mapping[str, pd.DataFrame],
    *,
    as_of: pd.Timestamp,
    window: int,
    costs: Costs,
) -> list[Metric]:
    """Paper-trading metrics (:data:`TRADING_METRICS`) of the served signals over the last ``window`` sessions.

    ``served``: one row per (ticker, as_of) (see :func:`tradeops.monitor.quality.validate_served`); rows after
    ``as_of`` are ignored. ``bars``: ticker -> daily bars (``open``, ``close``, adjusted) on a DatetimeIndex; only
    bars inside the window (``<= as_of``) are read, and each served session of a traded ticker must have a bar.
    Per role: ``trading.<role>.return`` (fraction), ``.drawdown`` (positive fraction), ``.hit_rate`` (``None``
    without a round trip) and ``.excess_return`` (return minus Buy & Hold on the role's own days and tickers);
    ``trading.buy_and_hold.return`` over the whole window. Fewer than 2 sessions (for a role: scored from fewer
    than 2 sessions before the end), or a role that scored nothing: ``None`` with a reason. Every metric's evidence
    holds ``equity`` = ``{"dates", "champion", "challenger", "buy_and_hold"}`` (``None`` where a curve is absent or
    before a role started) and the per-ticker results.
    """
    who = f"paper trading {model}"
    stamp = as_of_timestamp(as_of, who)
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise UsageError(f"{who}: window must be an int >= 1 (sessions), got {window!r}")
    if not isinstance(costs, Costs):
        raise UsageError(f"{who}: costs must be a tradeops.model.backtest.Costs, got {type(costs).__name__}")
    if not isinstance(bars, Mapping):
        raise UsageError(f"{who}: bars must be a mapping ticker -> DataFrame, got {type(bars).__name__}")
    rows = validate_served(served, stamp)
    sessions = pd.DatetimeIndex(np.unique(rows["as_of"].to_numpy()))[-int(window) :]
    win = window_text(sessions)
    base: dict[str, Any] = {
        "as_of": stamp.date().isoformat(),
        "window_sessions": int(window),
        "n_sessions": int(len(sessions)),
        "fills": "realistic (next open; a signal on the last session does not fill yet)",
        "costs": {
            "commission_bps": float(costs.commission_bps),
            "slippage_bps": float(costs.slippage_bps),
            "fixed_per_trade": float(costs.fixed_per_trade),
        },
    }
    if len(sessions) < 2:
        why = f"{len(sessions)} served session(s) up to {stamp.date()}; paper trading needs at least 2"
        return [Metric(model, n, None, win, dict(base), why) for n in TRADING_METRICS]
    rows = rows[rows["as_of"] >= sessions[0]]
    base |= {"window_start": sessions[0].date().isoformat(), "window_end": sessions[-1].date().isoformat()}

    holds: dict[str, BacktestResult] = {}
    for ticker in sorted(rows["ticker"].unique()):
        b = _ticker_bars(model, bars, str(ticker), sessions[[0, -1]])
        try:
            holds[str(ticker)] = buy_and_hold(
                b, sessions[0], sessions[-1], "realistic", costs=costs, ticker=str(ticker)
            )
        except ValueError as exc:
            raise TradeopsError(f"{who} (buy and hold): {exc}") from None
    hold_curve = _portfolio([r.equity / r.initial_cash for r in holds.values()])
    hold_ret = float(hold_curve.iloc[-1] - 1.0)
    dates = pd.DatetimeIndex(hold_curve.index)
    equity: dict[str, Any] = {
        "dates": [d.date().isoformat() for d in dates],
        "champion": None,
        "challenger": None,
        "buy_and_hold": [float(x) for x in hold_curve.to_numpy()],
    }
    base["buy_and_hold_per_ticker"] = {t: _ticker_evidence(r) for t, r in holds.items()}

    per_role: dict[str, tuple[dict[str, float | None], str, dict[str, Any], str | None]] = {}
    for role in ROLES:
        scored = rows[rows[f"{role}_signal"].notna()]
        ev: dict[str, Any] = {
            "role": role,
            "versions": sorted({str(v) for v in scored[f"{role}_version"] if v is not None and not pd.isna(v)}),
        }
        if scored.empty:
            per_role[role] = ({}, win, ev, f"no served row in {win} was scored by the {role}")
            continue
        results, days = _role_run(model, role, rows, bars, sessions, costs)
        role_win = window_text(days)
        if len(days) < 2:
            why = f"the {role} scored from {days[0].date()} only, 1 session of {win}; paper trading needs at least 2"
            per_role[role] = ({}, role_win, ev, why)
            continue
        curve = _portfolio([r.equity / r.initial_cash for r in results])
        bench = _portfolio([r.buy_and_hold.equity / r.initial_cash for r in results if r.buy_and_hold is not None])
        bench_ret = float(bench.iloc[-1] - 1.0)
        ret = float(curve.iloc[-1] - 1.0)
        n_trades = sum(r.n_trades for r in results)
        wins = sum(int((r.trades["pnl"] > 0).sum()) for r in results)
        equity[role] = _on(curve, dates)
        ev |= {
            "role_window_start": days[0].date().isoformat(),
            "role_window_end": days[-1].date().isoformat(),
            "role_sessions": int(len(days)),
            "n_signals": int(len(scored)),
            "n_trades": n_trades,
            "n_winning_trades": wins,
            "buy_and_hold_return_same_days": bench_ret,
            "per_ticker": {r.ticker: _ticker_evidence(r) for r in results},
        }
        values: dict[str, float | None] = {
            "return": ret,
            "drawdown": _drawdown(curve),
            "hit_rate": wins / n_trades if n_trades else None,
            "excess_return": ret - bench_ret,
        }
        per_role[role] = (values, role_win, ev, None)

    out: list[Metric] = []
    for role in ROLES:
        values, role_win, ev, skip = per_role[role]
        evidence = {**base, **ev, "equity": equity}
        for m in _ROLE_METRICS:
            name = f"trading.{role}.{m}"
            if skip is not None:
                out.append(Metric(model, name, None, role_win, evidence, skip))
            elif values[m] is None:
                no_trade = f"no closed round trip of the {role} in {role_win}"
                out.append(Metric(model, name, None, role_win, evidence, no_trade))
            else:
                out.append(Metric(model, name, values[m], role_win, evidence))
    hold_ev = {**base, "tickers": sorted(holds), "equity": equity}
    out.append(Metric(model, "trading.buy_and_hold.return", hold_ret, win, hold_ev))
    return out
