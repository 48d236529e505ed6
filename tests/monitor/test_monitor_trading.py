"""Paper trading of served signals: hand-worked returns/drawdowns (costs 0), Buy & Hold, no look-ahead."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tradeops.errors import TradeopsError
from tradeops.features.labels import BUY, CLASSES, HOLD, SELL
from tradeops.model.backtest import Costs
from tradeops.monitor.trading import TRADING_METRICS, paper_trading

ZERO = Costs(commission_bps=0, slippage_bps=0)
DATES = pd.bdate_range("2024-03-04", periods=10)


def make_bars(opens, closes, dates=DATES) -> pd.DataFrame:
    n = len(opens)
    return pd.DataFrame({"open": np.asarray(opens, float), "close": np.asarray(closes, float)}, index=dates[:n])


def served_frame(ticker, dates, champion, challenger=None) -> pd.DataFrame:
    n = len(dates)
    challenger = [None] * n if challenger is None else challenger
    return pd.DataFrame(
        {
            "ticker": ticker,
            "as_of": dates,
            "champion_signal": champion,
            "challenger_signal": challenger,
            "champion_version": "7",
            "challenger_version": [None if c is None else "8" for c in challenger],
            "answered_by": "champion",
        }
    )


def by_name(metrics) -> dict:
    return {m.name: m for m in metrics}


# Six sessions d0..d5: BUY on d0 fills at the open of d1 (100); closes rise to 120, fall to 90, end at 102.
OPENS = [100, 100, 110, 118, 90, 96]
CLOSES = [100, 110, 120, 90, 96, 102]


def test_buy_then_hold_through_a_fall_has_the_expected_drawdown():
    bars = {"AAA": make_bars(OPENS, CLOSES)}
    served = served_frame("AAA", DATES[:6], [BUY, HOLD, HOLD, HOLD, HOLD, HOLD])
    m = by_name(paper_trading("m", served, bars, as_of=DATES[5], window=60, costs=ZERO))
    # 100 shares at 100: equity 1.0, 1.1, 1.2, 0.9, 0.96, 1.02 -> drawdown 1 - 0.9 / 1.2 = 0.25, return 0.02
    assert m["trading.champion.drawdown"].value == pytest.approx(0.25)
    assert m["trading.champion.return"].value == pytest.approx(0.02)
    assert m["trading.champion.hit_rate"].value == pytest.approx(1.0)  # the close-out at the end made 2
    assert m["trading.buy_and_hold.return"].value == pytest.approx(0.02)  # B&H buys at the same open
    assert m["trading.champion.excess_return"].value == pytest.approx(0.0)
    eq = m["trading.champion.return"].evidence["equity"]
    assert eq["dates"] == [d.date().isoformat() for d in DATES[:6]]
    assert eq["champion"] == pytest.approx([1.0, 1.1, 1.2, 0.9, 0.96, 1.02])
    assert eq["challenger"] is None
    assert m["trading.champion.return"].window == f"{DATES[0].date()}..{DATES[5].date()} (6 sessions)"
    assert m["trading.champion.return"].evidence["per_ticker"]["AAA"]["n_trades"] == 1


def test_sell_fills_at_the_next_open():
    bars = {"AAA": make_bars(OPENS, CLOSES)}
    served = served_frame("AAA", DATES[:6], [BUY, HOLD, SELL, HOLD, HOLD, HOLD])
    m = by_name(paper_trading("m", served, bars, as_of=DATES[5], window=60, costs=ZERO))
    # sold at the open of d3 (118): equity 1.0, 1.1, 1.2, then 1.18 in cash
    assert m["trading.champion.return"].value == pytest.approx(0.18)
    assert m["trading.champion.drawdown"].value == pytest.approx(1 - 1.18 / 1.2)
    assert m["trading.champion.excess_return"].value == pytest.approx(0.18 - 0.02)


def test_rising_market_all_hold():
    opens = np.arange(100.0, 110.0)
    closes = opens + 0.5
    bars = {"AAA": make_bars(opens, closes)}
    served = served_frame("AAA", DATES, [HOLD] * 10)
    m = by_name(paper_trading("m", served, bars, as_of=DATES[-1], window=60, costs=ZERO))
    bh = closes[-1] / opens[1] - 1  # buy at the open after the first session, close out at the last close
    assert m["trading.champion.return"].value == 0.0
    assert m["trading.champion.drawdown"].value == 0.0
    assert m["trading.buy_and_hold.return"].value == pytest.approx(bh)
    assert m["trading.champion.excess_return"].value == pytest.approx(-bh)
    hit = m["trading.champion.hit_rate"]
    assert hit.value is None and "no closed round trip" in hit.reason


def test_challenger_absent_is_none_with_reason():
    bars = {"AAA": make_bars(OPENS, CLOSES)}
    served = served_frame("AAA", DATES[:6], [BUY] + [HOLD] * 5)
    m = by_name(paper_trading("m", served, bars, as_of=DATES[5], window=60, costs=ZERO))
    for name in ("return", "drawdown", "hit_rate", "excess_return"):
        metric = m[f"trading.challenger.{name}"]
        assert metric.value is None and "scored by the challenger" in metric.reason
    assert [x.name for x in m.values()] == list(TRADING_METRICS)


def test_challenger_from_mid_window_trades_its_own_days():
    bars = {"AAA": make_bars(OPENS, CLOSES)}
    challenger = [None, None, BUY, HOLD, HOLD, HOLD]
    served = served_frame("AAA", DATES[:6], [HOLD] * 6, challenger)
    m = by_name(paper_trading("m", served, bars, as_of=DATES[5], window=60, costs=ZERO))
    # from d2: BUY fills at the open of d3 (118), closed at 102 -> return 102/118 - 1; B&H on the same days equal
    assert m["trading.challenger.return"].value == pytest.approx(102 / 118 - 1)
    assert m["trading.challenger.excess_return"].value == pytest.approx(0.0)
    assert m["trading.challenger.hit_rate"].value == 0.0
    assert m["trading.challenger.return"].window == f"{DATES[2].date()}..{DATES[5].date()} (4 sessions)"
    eq = m["trading.champion.return"].evidence["equity"]
    assert eq["challenger"][:2] == [None, None]
    assert eq["challenger"][2:] == pytest.approx([1.0, 90 / 118, 96 / 118, 102 / 118])


def test_equal_weight_portfolio_of_two_tickers():
    flat = make_bars([50.0] * 6, [50.0] * 6)
    bars = {"AAA": make_bars(OPENS, CLOSES), "BBB": flat}
    served = pd.concat(
        [served_frame("AAA", DATES[:6], [BUY] + [HOLD] * 5), served_frame("BBB", DATES[:6], [HOLD] * 6)],
        ignore_index=True,
    )
    m = by_name(paper_trading("m", served, bars, as_of=DATES[5], window=60, costs=ZERO))
    assert m["trading.champion.return"].value == pytest.approx(0.01)  # (0.02 + 0) / 2
    assert m["trading.champion.drawdown"].value == pytest.approx(1 - 0.95 / 1.1)  # mean curve peaks 1.1, falls 0.95
    assert m["trading.buy_and_hold.return"].value == pytest.approx(0.01)


def test_window_keeps_the_last_sessions():
    bars = {"AAA": make_bars(OPENS, CLOSES)}
    served = served_frame("AAA", DATES[:6], [HOLD, HOLD, BUY, HOLD, HOLD, HOLD])
    m = by_name(paper_trading("m", served, bars, as_of=DATES[5], window=4, costs=ZERO))
    assert m["trading.champion.return"].value == pytest.approx(102 / 118 - 1)
    assert m["trading.champion.return"].evidence["window_start"] == DATES[2].date().isoformat()


def test_no_look_ahead_bars_after_as_of_are_never_read():
    rng = np.random.default_rng(3)
    opens = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 10)))
    closes = opens * np.exp(rng.normal(0, 0.01, 10))
    served = served_frame("AAA", DATES, list(rng.choice(CLASSES, 10)), list(rng.choice(CLASSES, 10)))
    as_of = DATES[6]
    base = paper_trading("m", served, {"AAA": make_bars(opens, closes)}, as_of=as_of, window=60, costs=ZERO)
    o2, c2 = opens.copy(), closes.copy()
    o2[7:], c2[7:] = o2[7:] * 3.0, np.nan  # a wild or even broken future would change or break the result if read
    other = paper_trading("m", served, {"AAA": make_bars(o2, c2)}, as_of=as_of, window=60, costs=ZERO)
    assert [x.to_dict() for x in base] == [x.to_dict() for x in other]
    assert by_name(base)["trading.champion.return"].evidence["window_end"] == as_of.date().isoformat()


def test_fewer_than_two_sessions():
    served = served_frame("AAA", DATES[:1], [BUY])
    out = paper_trading("m", served, {"AAA": make_bars(OPENS, CLOSES)}, as_of=DATES[0], window=60, costs=ZERO)
    assert [x.name for x in out] == list(TRADING_METRICS)
    assert all(x.value is None and "1 served session(s)" in x.reason for x in out)


def test_missing_bar_for_a_served_session_names_ticker_and_date():
    bars = {"AAA": make_bars(OPENS, CLOSES).drop(DATES[3])}
    served = served_frame("AAA", DATES[:6], [BUY] + [HOLD] * 5)
    with pytest.raises(TradeopsError, match=rf"ticker AAA: \[bars\] no bar on {DATES[3].date()}"):
        paper_trading("m", served, bars, as_of=DATES[5], window=60, costs=ZERO)
    with pytest.raises(TradeopsError, match=r"ticker BBB: \[bars\] no stored bars"):
        paper_trading("m", served_frame("BBB", DATES[:6], [HOLD] * 6), bars, as_of=DATES[5], window=60, costs=ZERO)


def test_default_costs_smoke():
    rng = np.random.default_rng(11)
    dates = pd.bdate_range("2023-06-01", periods=50)
    bars, frames = {}, []
    for t in ("AAA", "BBB", "CCC"):
        opens = 80 * np.exp(np.cumsum(rng.normal(0, 0.015, 50)))
        bars[t] = make_bars(opens, opens * np.exp(rng.normal(0, 0.01, 50)), dates)
        frames.append(served_frame(t, dates, list(rng.choice(CLASSES, 50)), list(rng.choice(CLASSES, 50))))
    served = pd.concat(frames, ignore_index=True)
    costly = by_name(paper_trading("m", served, bars, as_of=dates[-1], window=40, costs=Costs()))
    free = by_name(paper_trading("m", served, bars, as_of=dates[-1], window=40, costs=ZERO))
    assert list(costly) == list(TRADING_METRICS)
    for role in ("champion", "challenger"):
        assert costly[f"trading.{role}.return"].value < free[f"trading.{role}.return"].value
        assert costly[f"trading.{role}.drawdown"].value >= 0
        assert 0 <= costly[f"trading.{role}.hit_rate"].value <= 1
    eq = costly["trading.champion.return"].evidence["equity"]
    assert len(eq["dates"]) == len(eq["champion"]) == len(eq["challenger"]) == len(eq["buy_and_hold"]) == 40
    json.dumps([x.to_dict() for x in costly.values()])
