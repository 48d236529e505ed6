"""Long-only backtest of daily BUY/SELL/HOLD signals under a named fill rule.

Time convention: the signal of trading date ``t`` is produced after the close of ``t`` from bars ``<= t``.
Fill rules (ARCHITECTURE.md section 4):

* ``paper`` -- the CNN-TA paper's rule (optimistic): fill at the close of ``t`` itself; $1 fixed fee per
  transaction and no bps costs by default; whole shares only.
* ``realistic`` (default) -- fill at the open of the next trading day ``t+1``; the fill price moves against us by
  ``slippage_bps``; commission ``commission_bps`` of traded value plus ``fixed_per_trade``; fractional shares.

State machine (both modes): flat + BUY -> go all in; long + SELL -> sell everything; BUY while long and SELL while
flat are no-ops. Dates without a signal are HOLD. The evaluated window runs from the first to the last signal date;
a position still open at the end is closed at the window's last close (with the mode's costs). Prices are adjusted
prices in the bars' currency; bps are 1/10,000 of traded value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from tradeops.features.labels import BUY, CLASSES, HOLD, SELL
from tradeops.validation import check_trading_index, check_value_columns

__all__ = [
    "PAPER_COSTS",
    "TRADE_COLUMNS",
    "BacktestResult",
    "Costs",
    "Mode",
    "backtest",
    "buy_and_hold",
    "validate_prices",
]

Mode = Literal["paper", "realistic"]
MODES: tuple[str, ...] = ("paper", "realistic")
TRADING_DAYS_PER_YEAR = 252
DAYS_PER_YEAR = 365.25
#: Columns of :attr:`BacktestResult.trades`, one row per closed round trip.
TRADE_COLUMNS: tuple[str, ...] = (
    "entry_date",
    "entry_price",
    "exit_date",
    "exit_price",
    "shares",
    "pnl",
    "return",
    "costs",
    "closed_at_end",
)


def _who(ticker: str | None) -> str:
    return f"ticker {ticker}: " if ticker else ""


@dataclass(frozen=True)
class Costs:
    """Trading costs per transaction (one buy or one sell).

    ``commission_bps``: commission as basis points of traded value (shares x fill price). ``slippage_bps``: the
    fill price is moved against us by this many bps of the reference price (buy higher, sell lower).
    ``fixed_per_trade``: a fixed fee in currency units per transaction.
    """

    commission_bps: float = 5.0
    slippage_bps: float = 5.0
    fixed_per_trade: float = 0.0

    def __post_init__(self) -> None:
        for name in ("commission_bps", "slippage_bps", "fixed_per_trade"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ValueError(f"Costs.{name} must be a number, got {v!r}")
            if not math.isfinite(float(v)) or float(v) < 0:
                raise ValueError(f"Costs.{name} = {v!r} (rule: finite and >= 0)")
        for name in ("commission_bps", "slippage_bps"):
            if float(getattr(self, name)) >= 10_000:
                raise ValueError(f"Costs.{name} = {getattr(self, name)!r} (rule: < 10000 bps, i.e. under 100%)")


#: The CNN-TA paper's costs: $1 per transaction, nothing else (the default in ``paper`` mode).
PAPER_COSTS = Costs(commission_bps=0.0, slippage_bps=0.0, fixed_per_trade=1.0)


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One backtest over ``[start, end]`` (trading dates, both inclusive).

    ``equity``: cash + shares x close at each window close (currency); its last value is after the end-of-window
    close-out, so it equals ``final_equity``. ``trades``: one row per round trip (:data:`TRADE_COLUMNS`);
    ``entry_price``/``exit_price`` are fill prices with slippage included, ``costs`` the fees of both legs
    (commission + fixed), ``pnl = shares * (exit_price - entry_price) - costs`` and
    ``return = pnl / (shares * entry_price + entry fees)``. ``dropped_signals``: actionable signals that could not
    fill (date index, columns ``signal``, ``reason``). ``buy_and_hold``: the benchmark on the same window, mode and
    costs (``None`` on the benchmark itself).

    Metrics: ``total_return = final_equity / initial_cash - 1``; ``annualized_return`` = CAGR over calendar days
    ``(final/initial) ** (365.25 / days) - 1`` (-1.0 when everything was lost); ``sharpe`` = mean / std (ddof 1)
    of daily equity returns x sqrt(252), rf = 0, the first return measured against ``initial_cash``; a flat curve
    (all returns exactly 0, e.g. no trades) has sharpe 0.0, and ``None`` means undefined (zero spread with a
    non-zero mean); ``max_drawdown`` = min of equity / running peak - 1 with ``initial_cash`` as the first peak
    (<= 0); ``n_trades`` = closed round trips (end-of-window close-outs included); ``trades_per_year`` = n_trades /
    (days / 365.25); ``win_rate`` = share of trades with pnl > 0 and ``avg_trade_return`` = mean trade ``return``
    (both ``None`` with no trades); ``exposure`` = share of window days whose close found a position open.
    """

    mode: str
    ticker: str
    start: pd.Timestamp
    end: pd.Timestamp
    initial_cash: float
    final_equity: float
    costs: Costs
    equity: pd.Series
    trades: pd.DataFrame
    dropped_signals: pd.DataFrame
    total_return: float
    annualized_return: float
    sharpe: float | None
    max_drawdown: float
    n_trades: int
    trades_per_year: float
    win_rate: float | None
    exposure: float
    avg_trade_return: float | None
    buy_and_hold: BacktestResult | None = None

    def metrics(self) -> dict[str, Any]:
        """Scalar metrics as a plain dict (JSON friendly); ``buy_and_hold`` holds the benchmark's metrics or None."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "ticker": self.ticker,
            "start": self.start.date().isoformat(),
            "end": self.end.date().isoformat(),
            "initial_cash": self.initial_cash,
            "final_equity": self.final_equity,
            "total_return": self.total_return,
            "annualized_return": self.annualized_return,
            "sharpe": self.sharpe,
            "max_drawdown": self.max_drawdown,
            "n_trades": self.n_trades,
            "trades_per_year": self.trades_per_year,
            "win_rate": self.win_rate,
            "exposure": self.exposure,
            "avg_trade_return": self.avg_trade_return,
            "n_dropped_signals": int(len(self.dropped_signals)),
        }
        out["buy_and_hold"] = None if self.buy_and_hold is None else self.buy_and_hold.metrics()
        return out


# ---------------------------------------------------------------------------------------------------------------
# validation


def _check_index(index: pd.Index, what: str, who: str) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"{who}{what} index must be a DatetimeIndex of trading dates, got {type(index).__name__}")
    if index.hasnans:
        raise ValueError(f"{who}{what} index contains NaT (rule: dates must be valid)")


def validate_prices(
    bars: pd.DataFrame, columns: tuple[str, ...] = ("open", "close"), *, ticker: str | None = None
) -> None:
    """Raise ``ValueError`` unless ``bars`` has a strictly increasing DatetimeIndex and prices > 0 in ``columns``."""
    who = _who(ticker)
    if not isinstance(bars, pd.DataFrame):
        raise ValueError(f"{who}bars must be a pandas DataFrame, got {type(bars).__name__}")
    missing = [c for c in columns if c not in bars.columns]
    if missing:
        raise ValueError(f"{who}bars are missing columns {missing} (need {list(columns)})")
    if bars.empty:
        raise ValueError(f"{who}bars are empty")
    idx = bars.index
    check_trading_index(idx, who, "bars")
    check_value_columns(bars, columns, who, rule="prices > 0")


def _check_signals(signals: pd.Series, bars_index: pd.DatetimeIndex, who: str) -> pd.Series:
    """Validated signals as an object Series sorted by date."""
    if not isinstance(signals, pd.Series):
        raise ValueError(f"{who}signals must be a pandas Series, got {type(signals).__name__}")
    if signals.empty:
        raise ValueError(f"{who}signals are empty: nothing to backtest")
    idx = signals.index
    _check_index(idx, "signals", who)
    dup = idx.duplicated()
    if dup.any():
        raise ValueError(f"{who}signal date {idx[int(np.flatnonzero(dup)[0])].date()} appears more than once")
    values = signals.astype(object)
    unknown = ~values.isin(CLASSES).to_numpy()
    if unknown.any():
        k = int(np.flatnonzero(unknown)[0])
        raise ValueError(
            f"{who}unknown signal {values.iloc[k]!r} on {idx[k].date()} (rule: signal in {', '.join(CLASSES)}; "
            "leave a date out or use HOLD for no action)"
        )
    absent = ~idx.isin(bars_index)
    if absent.any():
        k = int(np.flatnonzero(absent)[0])
        raise ValueError(f"{who}signal on {idx[k].date()} is not a trading date in bars (rule: signal dates in bars)")
    return values.sort_index()


def _check_args(mode: str, initial_cash: float, costs: Costs | None, ticker: str) -> Costs:
    if mode not in MODES:
        raise ValueError(f"{_who(ticker)}unknown backtest mode {mode!r}; valid: {', '.join(MODES)}")
    if isinstance(initial_cash, bool) or not isinstance(initial_cash, (int, float, np.integer, np.floating)):
        raise ValueError(f"{_who(ticker)}initial_cash must be a number, got {initial_cash!r}")
    if not math.isfinite(float(initial_cash)) or float(initial_cash) <= 0:
        raise ValueError(f"{_who(ticker)}initial_cash = {initial_cash!r} (rule: finite and > 0)")
    if costs is None:
        return PAPER_COSTS if mode == "paper" else Costs()
    if not isinstance(costs, Costs):
        raise ValueError(f"{_who(ticker)}costs must be a Costs instance or None, got {type(costs).__name__}")
    return costs


# ---------------------------------------------------------------------------------------------------------------
# simulation


def _buy(cash: float, ref_price: float, costs: Costs, whole_shares: bool) -> tuple[float, float, float, float] | None:
    """All-in buy: (shares, fill price, fees, cash left), or None when the cash cannot buy anything."""
    fill = ref_price * (1.0 + costs.slippage_bps / 1e4)
    rate = costs.commission_bps / 1e4
    fixed = float(costs.fixed_per_trade)
    budget = cash - fixed
    if budget <= 0:
        return None
    unit = fill * (1.0 + rate)  # cash needed per share, commission included
    if not whole_shares:
        shares = budget / unit
        return shares, fill, shares * fill * rate + fixed, 0.0  # every unit of cash is spent
    shares = math.floor(budget / unit)
    # float division can land just under an exact whole number (9999 / 99.99): take it when it is affordable
    if (shares + 1) * unit <= budget * (1.0 + 1e-12):
        shares += 1
    if shares <= 0:
        return None
    fees = shares * fill * rate + fixed
    return float(shares), fill, fees, max(cash - shares * fill - fees, 0.0)


def _sell(shares: float, ref_price: float, costs: Costs) -> tuple[float, float, float]:
    """Sell everything: (fill price, fees, cash received net of fees)."""
    fill = ref_price * (1.0 - costs.slippage_bps / 1e4)
    gross = shares * fill
    fees = gross * costs.commission_bps / 1e4 + float(costs.fixed_per_trade)
    return fill, fees, gross - fees


def _run(
    bars: pd.DataFrame,
    signals: pd.Series,
    mode: str,
    initial_cash: float,
    costs: Costs,
    ticker: str,
) -> BacktestResult:
    who = _who(ticker)
    start, end = signals.index[0], signals.index[-1]
    i0, i1 = int(bars.index.get_loc(start)), int(bars.index.get_loc(end))
    dates = bars.index[i0 : i1 + 1]
    n = len(dates)
    if n < 2:
        raise ValueError(
            f"{who}the window {start.date()}..{end.date()} has {n} trading day; a backtest needs at least 2 "
            "(rule: window from first to last signal date)"
        )
    opens = bars["open"].to_numpy(dtype=np.float64)[i0 : i1 + 1]
    closes = bars["close"].to_numpy(dtype=np.float64)[i0 : i1 + 1]
    sig = signals.reindex(dates, fill_value=HOLD).to_numpy(dtype=object)
    paper = mode == "paper"

    cash, shares = float(initial_cash), 0.0
    equity = np.empty(n)
    held = np.zeros(n, dtype=bool)
    trades: list[dict[str, Any]] = []
    dropped: list[tuple[pd.Timestamp, str, str]] = []
    entry: dict[str, Any] | None = None
    pending: str | None = None  # realistic mode: the order to fill at the next open

    def open_position(i: int, ref: float, signal_date: pd.Timestamp) -> None:
        nonlocal cash, shares, entry
        bought = _buy(cash, ref, costs, whole_shares=paper)
        if bought is None:
            dropped.append((signal_date, BUY, "cash does not cover one share plus fees"))
            return
        shares, fill, fees, cash = bought
        entry = {"entry_date": dates[i], "entry_price": fill, "shares": shares, "entry_fees": fees}

    def close_position(i: int, ref: float, at_end: bool) -> None:
        nonlocal cash, shares, entry
        if entry is None:  # long always has an entry record; reaching here is a bug, not bad input
            raise RuntimeError(f"{who}internal error: closing a position that was never opened")
        fill, fees, received = _sell(shares, ref, costs)
        cash += received
        total_fees = entry["entry_fees"] + fees
        pnl = shares * (fill - entry["entry_price"]) - total_fees
        outlay = shares * entry["entry_price"] + entry["entry_fees"]
        trades.append(
            {
                "entry_date": entry["entry_date"],
                "entry_price": entry["entry_price"],
                "exit_date": dates[i],
                "exit_price": fill,
                "shares": shares,
                "pnl": pnl,
                "return": pnl / outlay,
                "costs": total_fees,
                "closed_at_end": at_end,
            }
        )
        shares, entry = 0.0, None

    for i in range(n):
        s = sig[i]
        if paper:
            if s == BUY and shares == 0:
                open_position(i, closes[i], dates[i])
            elif s == SELL and shares > 0:
                close_position(i, closes[i], at_end=False)
        else:
            if pending == BUY:
                open_position(i, opens[i], dates[i - 1])
            elif pending == SELL:
                close_position(i, opens[i], at_end=False)
            pending = None
            if (s == BUY and shares == 0) or (s == SELL and shares > 0):
                if i == n - 1:
                    dropped.append((dates[i], s, "no next open in the window"))
                else:
                    pending = s
        held[i] = shares > 0
        equity[i] = cash + shares * closes[i]
    if shares > 0:
        close_position(n - 1, closes[-1], at_end=True)
        equity[-1] = cash

    trades_df = pd.DataFrame(trades, columns=list(TRADE_COLUMNS))
    if not trades:
        trades_df = trades_df.astype(
            {"entry_date": "datetime64[ns]", "exit_date": "datetime64[ns]", "closed_at_end": bool}
            | {c: float for c in ("entry_price", "exit_price", "shares", "pnl", "return", "costs")}
        )
    dropped_df = pd.DataFrame(
        {"signal": [d[1] for d in dropped], "reason": [d[2] for d in dropped]},
        index=pd.DatetimeIndex([d[0] for d in dropped], name="date"),
    )
    equity_s = pd.Series(equity, index=dates, name="equity")
    return _with_metrics(
        mode=mode,
        ticker=ticker,
        initial_cash=float(initial_cash),
        costs=costs,
        equity=equity_s,
        trades=trades_df,
        dropped=dropped_df,
        held=held,
    )


def _with_metrics(
    *,
    mode: str,
    ticker: str,
    initial_cash: float,
    costs: Costs,
    equity: pd.Series,
    trades: pd.DataFrame,
    dropped: pd.DataFrame,
    held: np.ndarray,
) -> BacktestResult:
    eq = equity.to_numpy(dtype=np.float64)
    final = float(eq[-1])
    start, end = equity.index[0], equity.index[-1]
    years = ((end - start) / pd.Timedelta(days=1)) / DAYS_PER_YEAR
    ratio = final / initial_cash
    if ratio <= 0:
        cagr = -1.0  # everything lost: the limit of the CAGR formula
    else:
        with np.errstate(over="ignore"):  # a huge gain over a few days annualises to inf, which is the truth
            cagr = float(np.expm1(np.log(ratio) / years))
    prev = np.concatenate(([initial_cash], eq[:-1]))
    rets = eq / prev - 1.0
    sd = float(np.std(rets, ddof=1))
    mean = float(np.mean(rets))
    if sd > 0:
        sharpe: float | None = mean / sd * math.sqrt(TRADING_DAYS_PER_YEAR)
    elif mean == 0:
        sharpe = 0.0  # a flat curve (no trades): no return, no risk
    else:
        sharpe = None  # identical non-zero returns every day: the ratio is undefined
    peak = np.maximum.accumulate(np.concatenate(([initial_cash], eq)))[1:]
    mdd = float(np.min(eq / peak - 1.0))
    n_trades = int(len(trades))
    return BacktestResult(
        mode=mode,
        ticker=ticker,
        start=start,
        end=end,
        initial_cash=initial_cash,
        final_equity=final,
        costs=costs,
        equity=equity,
        trades=trades,
        dropped_signals=dropped,
        total_return=ratio - 1.0,
        annualized_return=cagr,
        sharpe=sharpe,
        max_drawdown=min(mdd, 0.0),
        n_trades=n_trades,
        trades_per_year=n_trades / years,
        win_rate=float((trades["pnl"] > 0).mean()) if n_trades else None,
        exposure=float(held.mean()),
        avg_trade_return=float(trades["return"].mean()) if n_trades else None,
    )


# ---------------------------------------------------------------------------------------------------------------
# public API


def backtest(
    bars: pd.DataFrame,
    signals: pd.Series,
    *,
    mode: Mode = "realistic",
    initial_cash: float = 10_000.0,
    costs: Costs | None = None,
    ticker: str = "?",
) -> BacktestResult:
    """Long-only backtest of ``signals`` (BUY/SELL/HOLD per trading date, missing dates = HOLD) on ``bars``.

    ``bars``: DatetimeIndex of trading dates, strictly increasing; columns ``open``, ``close`` (adjusted, > 0).
    The window runs from the first to the last signal date (at least 2 trading days).

    ``paper``: signal at t fills at close t; whole shares ``floor((cash - fees) / price)`` (the paper's
    ``floor((cash - 1) / close)`` with its $1 fee); ``costs=None`` means :data:`PAPER_COSTS` ($1 per transaction),
    an explicit ``Costs`` replaces it. ``realistic``: signal at t fills at the open of t+1 with slippage,
    commission and fixed fee (``costs=None`` means ``Costs()``: 5 bps + 5 bps); fractional shares, all cash in;
    a signal on the window's last day has no next open and is dropped. A BUY that cannot buy anything is dropped
    too (see ``dropped_signals``). An open position at the end is closed at the last close with the mode's costs
    (slippage included). The result carries the buy-and-hold benchmark on the same window, mode and costs.
    """
    who = _who(ticker)
    costs = _check_args(mode, initial_cash, costs, ticker)
    validate_prices(bars, ("open", "close"), ticker=ticker)
    sig = _check_signals(signals, bars.index, who)
    result = _run(bars, sig, mode, initial_cash, costs, ticker)
    bench = buy_and_hold(bars, result.start, result.end, mode, initial_cash=initial_cash, costs=costs, ticker=ticker)
    return replace(result, buy_and_hold=bench)


def buy_and_hold(
    bars: pd.DataFrame,
    start: pd.Timestamp | str,
    end: pd.Timestamp | str,
    mode: Mode = "realistic",
    *,
    initial_cash: float = 10_000.0,
    costs: Costs | None = None,
    ticker: str = "?",
) -> BacktestResult:
    """Buy at the first fill of the window ``[start, end]`` and hold to the end, under ``mode`` and ``costs``.

    Identical to :func:`backtest` with a single BUY on ``start`` (``paper``: filled at close of ``start``;
    ``realistic``: at the next open) and the position closed at the last close of ``end``, costs included.
    ``start`` and ``end`` must be trading dates in ``bars``. The result's own ``buy_and_hold`` is ``None``.
    """
    who = _who(ticker)
    costs = _check_args(mode, initial_cash, costs, ticker)
    validate_prices(bars, ("open", "close"), ticker=ticker)
    try:
        t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{who}buy_and_hold start/end must be dates, got {start!r}, {end!r}") from exc
    for name, t in (("start", t0), ("end", t1)):
        if pd.isna(t):
            raise ValueError(f"{who}buy_and_hold {name} is missing (NaT)")
        if t not in bars.index:
            raise ValueError(f"{who}buy_and_hold {name} {t.date()} is not a trading date in bars")
    if t1 <= t0:
        raise ValueError(f"{who}buy_and_hold needs start < end, got {t0.date()}..{t1.date()}")
    signals = pd.Series([BUY, HOLD], index=pd.DatetimeIndex([t0, t1]), dtype=object)
    return _run(bars, signals, mode, initial_cash, costs, ticker)
