"""The simulator's pure parts: the journal (plan, torn lines), the results (hand-worked equity), the timeline."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from tradeops.errors import TradeopsError, UsageError
from tradeops.model.backtest import Costs
from tradeops.sim import results as res
from tradeops.sim.journal import Journal, Plan
from tradeops.sim.report import model_timeline
from tradeops.sim.run import close_time, previous_session, trading_days

PLAN = Plan("2011-01-03", "2011-01-31", ("IBM",), "sample", None, "cnn-ta", 5, 1)


def test_journal_resumes_only_the_same_plan(tmp_path):
    j = Journal(tmp_path)
    assert j.open(PLAN) == []
    j.append({"date": "2011-01-03", "x": 1})
    assert Journal(tmp_path).open(PLAN) == [{"date": "2011-01-03", "x": 1}]
    other = Plan("2011-01-03", "2011-02-28", ("IBM",), "sample", None, "cnn-ta", 5, 1)
    with pytest.raises(UsageError, match=r"\[sim_plan\].*end: '2011-01-31'"):
        Journal(tmp_path).open(other)


def test_a_torn_last_line_is_a_day_not_completed_and_is_cut_before_the_next_append(tmp_path):
    j = Journal(tmp_path)
    j.open(PLAN)
    j.append({"date": "2011-01-03"})
    with j.days_path.open("a") as f:
        f.write('{"date": "2011-01-04", "trunc')  # a kill inside the write
    assert [d["date"] for d in j.days()] == ["2011-01-03"]
    j.append({"date": "2011-01-04"})
    assert [d["date"] for d in j.days()] == ["2011-01-03", "2011-01-04"]
    assert all(json.loads(line) for line in j.days_path.read_text().splitlines())


def test_a_malformed_line_before_the_last_is_an_error_naming_it(tmp_path):
    j = Journal(tmp_path)
    j.open(PLAN)
    j.days_path.write_text('{"date": "2011-01-03"}\nnot json\n{"date": "2011-01-05"}\n')
    with pytest.raises(TradeopsError, match="line 2: \\[journal\\]"):
        j.days()


def test_calendar_helpers():
    assert trading_days("XNYS", date(2011, 1, 14), date(2011, 1, 18)) == [date(2011, 1, 14), date(2011, 1, 18)]
    assert previous_session("XNYS", date(2011, 1, 3)) == date(2010, 12, 31)
    # after the 16:00 close in New York (EST = UTC-5 in January)
    assert close_time(date(2011, 1, 3)).isoformat() == "2011-01-03T22:30:00+00:00"


def _bars(closes: list[float], opens: list[float], start: str = "2011-01-03") -> pd.DataFrame:
    idx = pd.DatetimeIndex(pd.bdate_range(start, periods=len(closes)))
    return pd.DataFrame({"open": opens, "close": closes}, index=idx)


def _record(day: pd.Timestamp, signal: str, challenger: str | None = None, halted: bool = False) -> dict:
    return {
        "date": day.date().isoformat(),
        "served": [
            {
                "ticker": "T",
                "status": 200,
                "signal": signal,
                "answered_by": "halt" if halted else "champion",
                "halted": halted,
                "champion_signal": signal,
                "challenger_signal": challenger,
                "champion_version": "1",
                "challenger_version": None if challenger is None else "2",
            }
        ],
    }


def test_equity_is_the_realistic_backtest_of_what_was_answered_net_of_costs():
    # Hand-worked: BUY on day 0 fills at day 1's open (100) with 10 bps slippage and 10 bps commission; SELL on
    # day 2 fills at day 3's open (110) with slippage against us. No costs: equity = 110/100 on day 3.
    bars = _bars([99.0, 104.0, 108.0, 111.0, 112.0], [98.0, 100.0, 105.0, 110.0, 111.0])
    days = bars.index
    records = [_record(days[0], "BUY"), _record(days[1], "HOLD"), _record(days[2], "SELL")]
    records += [_record(days[3], "HOLD"), _record(days[4], "HOLD")]
    served = res.served_frame(records, {"T": bars})
    assert list(served["close"]) == [99.0, 104.0, 108.0, 111.0, 112.0]
    free = res.equity_frame(served, {"T": bars}, Costs(0.0, 0.0, 0.0))
    champ = free[(free["series"] == "champion") & (free["ticker"] == "T")].set_index("date")["equity"]
    assert champ.iloc[-1] == pytest.approx(1.10)
    assert champ.loc[days[1]] == pytest.approx(104.0 / 100.0)
    costly = res.equity_frame(served, {"T": bars}, Costs(10.0, 10.0, 0.0))
    c = costly[(costly["series"] == "champion") & (costly["ticker"] == "T")]["equity"].iloc[-1]
    buy = 100.0 * 1.001  # slippage up
    sell = 110.0 * 0.999  # slippage down
    assert c == pytest.approx((1 / 1.001) * (1 / buy) * sell * (1 - 0.001), rel=1e-9)
    hold = costly[(costly["series"] == "buy_and_hold") & (costly["ticker"] == "portfolio")]["equity"].iloc[-1]
    assert hold < 112.0 / 100.0  # bought at day 1's open, closed at the last close, with costs
    assert res.headline(costly)["challenger"] is None  # no challenger scored


def test_a_served_day_without_a_stored_bar_is_an_error_naming_it():
    bars = _bars([99.0, 104.0], [98.0, 100.0])
    record = _record(pd.Timestamp("2011-02-01"), "BUY")
    with pytest.raises(TradeopsError, match="T 2011-02-01: \\[bars\\]"):
        res.served_frame([record], {"T": bars})


def test_yearly_rows_are_separate_backtests_per_calendar_year():
    idx = pd.DatetimeIndex(["2011-12-28", "2011-12-29", "2011-12-30", "2012-01-03", "2012-01-04", "2012-01-05"])
    bars = pd.DataFrame({"open": [10, 10, 11, 12, 12, 13.0], "close": [10, 11, 12, 12, 13, 14.0]}, index=idx)
    records = [_record(d, "BUY" if i in (0, 3) else "HOLD", challenger="HOLD") for i, d in enumerate(idx)]
    served = res.served_frame(records, {"T": bars})
    yearly = res.yearly_frame(served, {"T": bars}, Costs(0.0, 0.0, 0.0))
    champ = yearly[(yearly["series"] == "champion")].set_index("year")
    assert champ.loc[2011, "return"] == pytest.approx(12.0 / 10.0 - 1)  # bought at 10 (open of the 29th)
    assert champ.loc[2012, "return"] == pytest.approx(14.0 / 12.0 - 1)  # flat at the year start, bought at 12
    assert (yearly[yearly["series"] == "challenger"]["return"] == 0).all()


def test_timeline_names_each_promotion_with_the_decision_behind_it():
    boot = {"date": "2010-12-31", "model": "m", "champion": "1", "challenger": "2"}
    retrain = {
        "rule": "feature-drift",
        "action": "retrain",
        "status": "done",
        "metric": "data.psi_drifted_share",
        "value": 0.9,
        "result": {"why": "promoted"},
    }
    rollback = {"rule": "live-decay", "action": "rollback", "status": "done", "metric": "q", "value": 0.1}
    days = [
        {"date": "2011-01-03", "aliases": {"champion": "1", "challenger": "2"}, "monitor": {"actions": []}},
        {"date": "2011-01-04", "aliases": {"champion": "3", "challenger": "3"}, "monitor": {"actions": [retrain]}},
        {"date": "2011-01-05", "aliases": {"champion": "1", "challenger": "3"}, "monitor": {"actions": [rollback]}},
    ]
    facts = {"1": {"bars_version": "4"}, "3": {"bars_version": "9"}}
    t = {m["version"]: m for m in model_timeline(boot, days, facts)}
    assert [e["event"] for e in t["1"]["events"]] == ["registered", "promoted", "rollback"]
    assert [e["event"] for e in t["3"]["events"]] == ["registered", "promoted"]
    assert "feature-drift" in t["3"]["events"][1]["reason"] and "promoted" in t["3"]["events"][1]["reason"]
    assert "live-decay" in t["1"]["events"][2]["reason"]
    assert t["3"]["bars_version"] == "9"
