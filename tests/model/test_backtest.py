"""Backtest fill rules, costs and metrics on hand-made price paths; expected numbers are worked out in each test."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeops.model.backtest import TRADE_COLUMNS, Costs, backtest, buy_and_hold

ZERO = Costs(commission_bps=0.0, slippage_bps=0.0, fixed_per_trade=0.0)


def make_bars(closes, opens=None, start="2021-01-04", index=None) -> pd.DataFrame:
    closes = [float(c) for c in closes]
    opens = closes if opens is None else [float(o) for o in opens]
    idx = pd.DatetimeIndex(index) if index is not None else pd.bdate_range(start, periods=len(closes))
    return pd.DataFrame({"open": opens, "close": closes}, index=idx)


def make_signals(bars: pd.DataFrame, by_position: dict[int, str]) -> pd.Series:
    return pd.Series({bars.index[i]: s for i, s in sorted(by_position.items())}, dtype=object)


# --- paper mode -------------------------------------------------------------------------------------------------


def test_paper_fills_at_signal_close_with_one_dollar_fees_and_whole_shares():
    bars = make_bars(closes=[10, 12, 11, 15, 14], opens=[9.5, 11, 12, 14, 16])
    sig = make_signals(bars, {0: "BUY", 3: "SELL", 4: "HOLD"})
    r = backtest(bars, sig, mode="paper", ticker="AAA")

    # BUY at close 10: floor((10000 - 1) / 10) = 999 shares for 9990 + $1 fee -> cash 9
    # SELL at close 15: 999 * 15 - $1 = 14984 -> cash 14993
    assert r.mode == "paper" and r.costs == Costs(0.0, 0.0, 1.0)
    assert r.equity.tolist() == pytest.approx([9 + 999 * 10, 9 + 999 * 12, 9 + 999 * 11, 14993, 14993])
    assert r.final_equity == pytest.approx(14993)
    assert r.total_return == pytest.approx(0.4993)
    assert list(r.trades.columns) == list(TRADE_COLUMNS)
    t = r.trades.iloc[0]
    assert (t.entry_date, t.exit_date) == (bars.index[0], bars.index[3])
    assert (t.entry_price, t.exit_price, t.shares, t.costs) == (10.0, 15.0, 999.0, 2.0)
    assert t.pnl == pytest.approx(999 * 5 - 2)
    assert t["return"] == pytest.approx((999 * 5 - 2) / 9991)
    assert not t.closed_at_end
    assert r.n_trades == 1 and r.win_rate == 1.0
    assert r.exposure == pytest.approx(3 / 5)  # held at the closes of days 0, 1, 2


def test_paper_whole_shares_survive_float_division():
    # 2.34 / 0.78 is 2.9999999999999996 in floats; the cash buys exactly 3 shares
    bars = make_bars(closes=[0.78, 1.0])
    r = backtest(bars, make_signals(bars, {0: "BUY", 1: "SELL"}), mode="paper", initial_cash=2.34, costs=ZERO)
    assert r.trades.iloc[0].shares == 3.0
    assert r.final_equity == pytest.approx(3.0)


def test_paper_explicit_costs_replace_the_one_dollar_fee():
    bars = make_bars(closes=[10, 20, 20])
    sig = make_signals(bars, {0: "BUY", 1: "SELL", 2: "HOLD"})
    r = backtest(bars, sig, mode="paper", costs=ZERO)
    assert r.trades.iloc[0].shares == 1000.0 and r.trades.iloc[0].costs == 0.0
    assert r.final_equity == pytest.approx(20000.0)


# --- realistic mode ---------------------------------------------------------------------------------------------


def test_realistic_fills_at_next_open_with_slippage_commission_and_fixed_fee():
    costs = Costs(commission_bps=10.0, slippage_bps=20.0, fixed_per_trade=2.0)
    bars = make_bars(closes=[99, 101, 104, 112, 113], opens=[98, 100, 103, 110, 111])
    sig = make_signals(bars, {0: "BUY", 2: "SELL", 4: "HOLD"})
    r = backtest(bars, sig, mode="realistic", costs=costs, ticker="AAA")

    buy_fill = 100 * (1 + 20e-4)  # open of day 1 moved up 20 bps = 100.2
    shares = (10_000 - 2) / (buy_fill * (1 + 10e-4))  # all cash in after the $2 fee, commission 10 bps
    buy_fees = shares * buy_fill * 10e-4 + 2
    sell_fill = 110 * (1 - 20e-4)  # open of day 3 moved down 20 bps = 109.78
    sell_fees = shares * sell_fill * 10e-4 + 2
    cash = shares * sell_fill - sell_fees

    assert r.equity.tolist() == pytest.approx([10_000, shares * 101, shares * 104, cash, cash])
    t = r.trades.iloc[0]
    assert (t.entry_date, t.exit_date) == (bars.index[1], bars.index[3])
    assert t.entry_price == pytest.approx(100.2) and t.exit_price == pytest.approx(109.78)
    assert t.shares == pytest.approx(shares)
    assert t.costs == pytest.approx(buy_fees + sell_fees)
    assert t.pnl == pytest.approx(cash - 10_000)
    assert t.pnl == pytest.approx(shares * (sell_fill - buy_fill) - buy_fees - sell_fees)
    assert t["return"] == pytest.approx((cash - 10_000) / 10_000)  # the whole 10,000 was committed
    assert r.final_equity == pytest.approx(cash)
    assert r.exposure == pytest.approx(2 / 5)  # held at the closes of days 1 and 2


def test_realistic_default_costs_are_five_plus_five_bps():
    bars = make_bars(closes=[10, 10, 10], opens=[10, 10, 10])
    r = backtest(bars, make_signals(bars, {0: "BUY", 2: "HOLD"}))
    assert r.mode == "realistic" and r.costs == Costs(5.0, 5.0, 0.0)
    shares = 10_000 / (10 * 1.0005 * 1.0005)
    proceeds = shares * 10 * 0.9995 * 0.9995  # closed at the last close, slippage and commission charged
    assert r.final_equity == pytest.approx(proceeds)


def test_realistic_buy_on_the_last_day_is_dropped():
    bars = make_bars(closes=[10, 11, 12])
    sig = make_signals(bars, {0: "HOLD", 2: "BUY"})
    r = backtest(bars, sig, mode="realistic", ticker="AAA")
    assert r.n_trades == 0 and r.final_equity == 10_000.0
    assert r.dropped_signals.index.tolist() == [bars.index[2]]
    assert r.dropped_signals.signal.tolist() == ["BUY"]
    assert r.metrics()["n_dropped_signals"] == 1


def test_paper_buy_on_the_last_day_fills_and_is_closed_at_the_same_close():
    bars = make_bars(closes=[10, 11, 12])
    r = backtest(bars, make_signals(bars, {0: "HOLD", 2: "BUY"}), mode="paper")
    assert r.n_trades == 1 and r.trades.iloc[0].pnl == pytest.approx(-2.0)  # two $1 fees, no price move
    assert r.final_equity == pytest.approx(9998.0)


def test_open_position_is_closed_at_the_last_close_with_costs():
    bars = make_bars(closes=[10, 11, 12, 13], opens=[10, 10.5, 11.5, 12.5])
    sig = make_signals(bars, {0: "BUY", 3: "HOLD"})

    paper = backtest(bars, sig, mode="paper")
    t = paper.trades.iloc[0]
    assert t.closed_at_end and t.exit_date == bars.index[3] and t.exit_price == 13.0
    assert paper.final_equity == pytest.approx(10_000 - 1 - 999 * 10 + 999 * 13 - 1)
    assert paper.equity.iloc[-1] == paper.final_equity

    costs = Costs(commission_bps=10.0, slippage_bps=10.0)
    real = backtest(bars, sig, mode="realistic", costs=costs)
    t = real.trades.iloc[0]
    shares = 10_000 / (10.5 * 1.001 * 1.001)
    assert t.closed_at_end and t.exit_price == pytest.approx(13 * 0.999)
    assert real.final_equity == pytest.approx(shares * 13 * 0.999 * 0.999)


def test_buy_while_long_is_ignored():
    bars = make_bars(closes=[10, 5, 8, 12, 12])
    sig = make_signals(bars, {0: "BUY", 1: "BUY", 2: "BUY", 3: "SELL", 4: "HOLD"})
    r = backtest(bars, sig, mode="paper", costs=ZERO)
    assert r.n_trades == 1
    t = r.trades.iloc[0]
    assert (t.entry_date, t.entry_price, t.shares) == (bars.index[0], 10.0, 1000.0)
    assert r.final_equity == pytest.approx(12_000.0)


def test_sell_while_flat_is_ignored():
    bars = make_bars(closes=[10, 8, 5, 10, 10])
    sig = make_signals(bars, {0: "SELL", 1: "SELL", 2: "BUY", 3: "SELL", 4: "SELL"})
    r = backtest(bars, sig, mode="paper", costs=ZERO)
    assert r.equity.tolist() == pytest.approx([10_000, 10_000, 10_000, 20_000, 20_000])
    assert r.n_trades == 1 and r.trades.iloc[0].entry_date == bars.index[2]


def test_no_trades_leaves_a_flat_curve():
    bars = make_bars(closes=[10, 12, 7, 9])
    sig = make_signals(bars, {0: "HOLD", 3: "HOLD"})
    for mode in ("paper", "realistic"):
        r = backtest(bars, sig, mode=mode)
        assert (r.equity == 10_000.0).all()
        assert r.total_return == 0.0 and r.annualized_return == 0.0
        assert r.win_rate is None and r.avg_trade_return is None
        assert r.sharpe == 0.0 and r.max_drawdown == 0.0
        assert r.n_trades == 0 and r.trades_per_year == 0.0 and r.exposure == 0.0
        assert r.trades.empty and list(r.trades.columns) == list(TRADE_COLUMNS)


def test_max_drawdown_and_sharpe_on_a_known_path():
    bars = make_bars(closes=[10, 12, 9, 15, 6, 8])
    r = backtest(bars, make_signals(bars, {0: "BUY", 5: "HOLD"}), mode="paper", costs=ZERO)
    # 1000 shares, no cash left: equity = 1000 x close; worst fall is 15000 -> 6000
    assert r.equity.tolist() == pytest.approx([10_000, 12_000, 9_000, 15_000, 6_000, 8_000])
    assert r.max_drawdown == pytest.approx(6_000 / 15_000 - 1)  # -0.6
    rets = [0.0, 0.2, -0.25, 15 / 9 - 1, 6 / 15 - 1, 8 / 6 - 1]  # first return against initial cash
    assert r.sharpe == pytest.approx(statistics.mean(rets) / statistics.stdev(rets) * math.sqrt(252))
    assert r.exposure == 1.0


def test_max_drawdown_counts_initial_cash_as_the_first_peak():
    bars = make_bars(closes=[10, 8, 9])
    r = backtest(bars, make_signals(bars, {0: "BUY", 2: "HOLD"}), mode="paper", costs=ZERO)
    assert r.max_drawdown == pytest.approx(-0.2)


def test_annualized_return_on_a_two_year_path():
    index = ["2020-01-02", "2021-01-04", "2022-01-03"]  # 732 calendar days
    bars = make_bars(closes=[10, 11, 12.1], index=index)
    r = backtest(bars, make_signals(bars, {0: "BUY", 2: "HOLD"}), mode="paper", costs=ZERO)
    years = 732 / 365.25
    assert r.total_return == pytest.approx(0.21)
    assert r.annualized_return == pytest.approx(1.21 ** (1 / years) - 1)
    assert r.annualized_return == pytest.approx(0.10, abs=5e-4)  # 10% a year over 2.004 years
    assert r.trades_per_year == pytest.approx(1 / years)


@pytest.mark.parametrize("mode", ["paper", "realistic"])
def test_buy_and_hold_equals_one_buy_at_start_and_sell_at_end(mode):
    rng = np.random.default_rng(7)
    closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 60)))
    opens = closes * np.exp(rng.normal(0, 0.005, 60))
    bars = make_bars(closes, opens)
    start, end = bars.index[5], bars.index[50]
    bh = buy_and_hold(bars, start, end, mode, ticker="AAA")
    single = backtest(bars, pd.Series({start: "BUY", end: "SELL"}), mode=mode, ticker="AAA")
    assert bh.final_equity == pytest.approx(single.final_equity, rel=1e-12)
    pd.testing.assert_series_equal(bh.equity, single.equity)
    assert bh.n_trades == 1 and (bh.start, bh.end) == (start, end)
    assert bh.buy_and_hold is None
    # every backtest carries the same benchmark on its window
    assert single.buy_and_hold is not None
    assert single.buy_and_hold.final_equity == pytest.approx(bh.final_equity, rel=1e-12)
    assert single.metrics()["buy_and_hold"]["total_return"] == pytest.approx(bh.total_return)


def test_metrics_are_finite_on_a_random_path():
    rng = np.random.default_rng(3)
    n = 500
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    opens = closes * np.exp(rng.normal(0, 0.004, n))
    bars = make_bars(closes, opens)
    sig = pd.Series(rng.choice(["BUY", "SELL", "HOLD"], n, p=[0.05, 0.05, 0.9]), index=bars.index, dtype=object)
    for mode in ("paper", "realistic"):
        m = backtest(bars, sig, mode=mode).metrics()
        for key in (
            "total_return",
            "annualized_return",
            "sharpe",
            "max_drawdown",
            "trades_per_year",
            "win_rate",
            "exposure",
            "avg_trade_return",
            "final_equity",
        ):
            assert isinstance(m[key], float) and math.isfinite(m[key]), key
        assert m["n_trades"] > 5
        assert -1 < m["max_drawdown"] <= 0 and 0 <= m["exposure"] <= 1 and 0 <= m["win_rate"] <= 1
        assert isinstance(m["buy_and_hold"], dict)


# --- validation -------------------------------------------------------------------------------------------------


def test_unknown_signal_names_ticker_date_and_value():
    bars = make_bars(closes=[10, 11, 12])
    sig = pd.Series(["BUY", "STRONG_BUY", "HOLD"], index=bars.index)
    with pytest.raises(ValueError, match=r"ticker AAA: unknown signal 'STRONG_BUY' on 2021-01-05"):
        backtest(bars, sig, ticker="AAA")
    with pytest.raises(ValueError, match=r"unknown signal nan on 2021-01-05"):
        backtest(bars, pd.Series(["BUY", np.nan, "HOLD"], index=bars.index), ticker="AAA")


def test_signal_on_a_date_not_in_bars_is_rejected():
    bars = make_bars(closes=[10, 11, 12])  # Mon 4 .. Wed 6 Jan 2021
    sig = pd.Series({pd.Timestamp("2021-01-04"): "BUY", pd.Timestamp("2021-01-09"): "SELL"})
    with pytest.raises(ValueError, match=r"ticker AAA: signal on 2021-01-09 is not a trading date in bars"):
        backtest(bars, sig, ticker="AAA")


@pytest.mark.parametrize("column, value", [("close", 0.0), ("open", -1.0), ("close", np.nan)])
def test_non_positive_or_missing_prices_are_rejected(column, value):
    bars = make_bars(closes=[10, 11, 12])
    bars.loc[bars.index[1], column] = value
    with pytest.raises(ValueError, match=rf"ticker AAA: {column} .*2021-01-05"):
        backtest(bars, make_signals(bars, {0: "BUY", 2: "SELL"}), ticker="AAA")


def test_other_bad_inputs_fail_loudly():
    bars = make_bars(closes=[10, 11, 12])
    sig = make_signals(bars, {0: "BUY", 2: "SELL"})
    with pytest.raises(ValueError, match="unknown backtest mode 'close'"):
        backtest(bars, sig, mode="close")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="initial_cash"):
        backtest(bars, sig, initial_cash=0.0)
    with pytest.raises(ValueError, match="slippage_bps"):
        Costs(slippage_bps=-1.0)
    with pytest.raises(ValueError, match="at least 2"):
        backtest(bars, make_signals(bars, {1: "BUY"}), ticker="AAA")
    with pytest.raises(ValueError, match="empty"):
        backtest(bars, pd.Series([], index=pd.DatetimeIndex([]), dtype=object))
    with pytest.raises(ValueError, match="more than once"):
        backtest(bars, pd.Series(["BUY", "SELL"], index=bars.index[[0, 0]]))
    with pytest.raises(ValueError, match="strictly increasing"):
        backtest(bars.iloc[[0, 2, 1]], sig)
    with pytest.raises(ValueError, match="not a trading date"):
        buy_and_hold(bars, "2021-01-02", "2021-01-06")
    with pytest.raises(ValueError, match="start < end"):
        buy_and_hold(bars, bars.index[2], bars.index[0])


# --- properties -------------------------------------------------------------------------------------------------


@st.composite
def paths_and_signals(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.Series]:
    n = draw(st.integers(2, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    vol = draw(st.sampled_from([0.001, 0.03, 0.2]))
    level = draw(st.sampled_from([0.5, 20.0, 3000.0]))
    rng = np.random.default_rng(seed)
    closes = level * np.exp(np.cumsum(rng.normal(0, vol, n)))
    opens = closes * np.exp(rng.normal(0, vol / 2, n))
    bars = make_bars(closes, opens)
    values = draw(st.lists(st.sampled_from(["BUY", "SELL", "HOLD"]), min_size=n, max_size=n))
    sig = pd.Series(values, index=bars.index, dtype=object)
    keep = draw(st.lists(st.booleans(), min_size=n, max_size=n))  # missing dates are HOLD
    keep[0] = keep[-1] = True
    return bars, sig[np.array(keep)]


@settings(max_examples=60, deadline=None)
@given(case=paths_and_signals(), mode=st.sampled_from(["paper", "realistic"]), free=st.booleans())
def test_property_accounting_holds(case, mode, free):
    bars, sig = case
    r = backtest(bars, sig, mode=mode, costs=ZERO if free else None)
    # long only, no leverage, costs no bigger than the position: equity stays positive
    assert (r.equity > 0).all()
    # ends flat: final equity is the cash after the last trade = initial cash + every round trip's pnl
    assert r.equity.iloc[-1] == r.final_equity
    assert r.final_equity == pytest.approx(r.initial_cash + r.trades.pnl.sum(), rel=1e-9)
    # round trips never overlap and run forward in time
    t = r.trades
    assert (t.entry_date <= t.exit_date).all()
    assert (t.entry_date.iloc[1:].to_numpy() >= t.exit_date.iloc[:-1].to_numpy()).all()
    if mode == "paper":
        assert (t.shares == np.floor(t.shares)).all() and (t.shares >= 1).all()
        assert t.entry_price.tolist() == bars.close.loc[t.entry_date].tolist()
    else:
        assert (t.entry_date > r.start).all()  # nothing fills before the first next open
    if free:
        assert (t.costs == 0).all()
        assert t.pnl.to_numpy() == pytest.approx((t.shares * (t.exit_price - t.entry_price)).to_numpy())
    if t.empty:
        assert (r.equity == r.initial_cash).all()
    assert -1 < r.max_drawdown <= 0 and 0 <= r.exposure <= 1
