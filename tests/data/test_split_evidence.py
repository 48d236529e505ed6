"""Split detection by evidence, not by one ratio.

A price jump is an unadjusted split only when it carries a split's signature (open gap on a split ratio, the new level
held, an ordinary day range and/or a persistent volume shift by the inverse ratio); real rallies and collapses that
happen to open or close near 4:5, 3:4, 4:3 or 3:2 are accepted with a ``price_jump`` warning that says why. Bars
come from ``tests/corpus.py`` (Alpha Vantage daily-adjusted layout, real XNYS sessions) and go through the real
parse and adjust steps.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from corpus import Jump, Plan, Split, av_csv, simulate
from tradeops.config import IngestConfig
from tradeops.data.clean import adjust, sessions, snap_split_ratio
from tradeops.data.parse import parse_raw
from tradeops.data.quality import check_anomalies, split_evidence
from tradeops.data.raw import RawFile

CFG = IngestConfig()
DATES = sessions("XNYS", pd.Timestamp("2007-06-01"), pd.Timestamp("2009-06-30"))


def _at(day: str) -> int:
    return int(DATES.get_loc(pd.Timestamp(day)))


def _frame(plan: Plan, seed: int = 5, dates: pd.DatetimeIndex = DATES, **kw) -> pd.DataFrame:
    return simulate(dates, plan, seed, **kw)


def _bars(frame: pd.DataFrame, ticker: str = "T") -> pd.DataFrame:
    """Raw bars -> Alpha Vantage CSV bytes -> parse -> adjust, as ``validate_ticker`` does."""
    raw = RawFile(ticker=ticker, content=av_csv(frame).encode(), source="test", location=f"{ticker}.csv")
    parsed = parse_raw(raw)
    assert parsed.ok, parsed.findings
    return adjust(parsed.frame, CFG.split_tolerance)


def _jumps(findings, day: str) -> list:
    return [f for f in findings if f.rule in ("unadjusted_split", "price_jump") and f.date == day]


def _only_jump(findings, day: str):
    others = [f for f in findings if f.rule in ("unadjusted_split", "price_jump") and f.date != day]
    assert others == [], others
    (f,) = _jumps(findings, day)
    return f


# --- true unadjusted splits are rejected ------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio, label", [(Fraction(2), "2:1"), (Fraction(3, 2), "3:2"), (Fraction(5, 4), "5:4")])
def test_true_unadjusted_split_is_rejected(ratio, label):
    """Prices divided and volume multiplied from the date on, no split_coefficient, adjusted close not adjusted; a
    calm large cap, so even the rare 5:4 shows its whole signature (a rare ratio needs all three signs)."""
    day = "2008-03-17"
    frame = _frame(Plan(splits=[Split(_at(day), ratio, declared=False)]), seed=0, steady=True)
    findings, events = check_anomalies("T", _bars(frame), CFG)
    f = _only_jump(findings, day)
    assert (f.rule, f.severity, f.ticker) == ("unadjusted_split", "error", "T")
    assert f.details["split"] == str(1 / ratio) and f.details["ratio_text"] == label
    assert f"a {label} split ratio" in f.message and "not split-adjusted" in f.message
    assert f.row is not None and events == []
    ev = f.details["evidence"]
    assert ev["level_ok"] and ev["range_ok"] and ev["quiet_ok"] and ev["volume_ok"]  # the whole signature


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ratio", [Fraction(2), Fraction(3, 2)])
def test_unadjusted_common_split_is_rejected_in_a_restless_instrument(ratio, seed):
    """Volatility regimes and a drifting volume level: a common ratio needs two of the three signs."""
    day = "2008-03-17"
    findings, _ = check_anomalies(
        "T", _bars(_frame(Plan(splits=[Split(_at(day), ratio, declared=False)]), seed=seed)), CFG
    )
    assert _only_jump(findings, day).rule == "unadjusted_split"


def test_true_split_evidence_measures_the_signature():
    day = "2008-03-17"
    bars = _bars(_frame(Plan(splits=[Split(_at(day), Fraction(2), declared=False)]), seed=0, steady=True))
    a = {
        c: bars[c].to_numpy(dtype="float64")
        for c in ("adj_open", "adj_high", "adj_low", "adj_close", "adj_volume", "split_ratio")
    }
    ev = split_evidence(
        _at(day), a["adj_open"], a["adj_high"], a["adj_low"], a["adj_close"], a["adj_volume"], a["split_ratio"], CFG
    )
    assert ev.split == Fraction(1, 2) and ev.common and ev.is_split and ev.score == 3
    assert ev.gap == pytest.approx(0.5, rel=0.015)
    assert ev.volume_expected == pytest.approx(np.log(2))
    assert abs(ev.volume_shift - np.log(2)) < 0.35 and ev.volume_shift_far > np.log(2) / 2
    assert ev.day_volume_ratio < CFG.split_spike_factor
    assert ev.level == pytest.approx(0.5, rel=0.1)
    assert ev.range_day < CFG.split_range_factor * ev.range_typical


def _flat(q: float, n: int = 60, k: int = 30) -> dict[str, np.ndarray]:
    """Hand-made adjusted bars: 100 with a +-1 % range and 1e6 shares a day; from bar ``k`` on prices x``q`` and the
    volume unchanged (so no volume shift), the day itself ordinary and quiet."""
    c = np.where(np.arange(n) < k, 100.0, 100.0 * q)
    return {
        "adj_open": c,
        "adj_high": c * 1.01,
        "adj_low": c * 0.99,
        "adj_close": c,
        "adj_volume": np.full(n, 1e6),
        "split_ratio": np.ones(n),
    }


def test_rare_ratio_needs_more_evidence_than_a_common_one():
    """Same evidence (level held, ordinary and quiet day, no volume shift): a split at 2:1, not at 5:4."""
    common = split_evidence(30, **_flat(0.5), cfg=CFG)
    rare = split_evidence(30, **_flat(0.8), cfg=CFG)
    for ev in (common, rare):
        assert ev.level_ok and ev.range_ok and ev.quiet_ok and not ev.volume_ok and ev.score == 2
    assert (common.common, common.needed, common.is_split) == (True, 2, True)
    assert (rare.common, rare.needed, rare.is_split) == (False, 3, False)
    stricter = CFG.model_copy(update={"split_evidence_common": 3})
    assert not split_evidence(30, **_flat(0.5), cfg=stricter).is_split


def test_split_that_reverts_is_no_split():
    """Opens on 2:1 and looks ordinary, but the price is back at the old level the next days (a bad print)."""
    a = _flat(0.5)
    a["adj_close"][31:] = a["adj_open"][31:] = 100.0
    a["adj_high"][31:], a["adj_low"][31:] = 101.0, 99.0
    ev = split_evidence(30, **a, cfg=CFG)
    assert ev.range_ok and not ev.level_ok and not ev.is_split


def test_unadjusted_split_in_the_last_sessions_of_a_file_is_still_rejected():
    """Too few bars after the date: the levels use what exists."""
    frame = _frame(Plan(splits=[Split(len(DATES) - 2, Fraction(2), declared=False)]))
    findings, _ = check_anomalies("T", _bars(frame), CFG)
    assert [f.rule for f in _jumps(findings, f"{DATES[-2]:%Y-%m-%d}")] == ["unadjusted_split"]


def test_unadjusted_split_on_the_first_bar_of_an_increment_is_judged_on_the_stored_bars():
    day = "2008-03-17"
    bars = _bars(_frame(Plan(splits=[Split(_at(day), Fraction(3, 2), declared=False)])))
    stored, new = bars.iloc[: _at(day)].drop(columns="row"), bars.iloc[_at(day) :].reset_index(drop=True)
    findings, _ = check_anomalies("T", new, CFG, previous=stored)
    (f,) = _jumps(findings, day)
    assert f.rule == "unadjusted_split" and f.details["ratio_text"] == "3:2"


def test_declared_split_whose_adjusted_close_is_not_adjusted_is_rejected():
    """The source's split_coefficient says 2:1 but its adjusted close still halves: the series is not adjusted."""
    day = "2008-03-17"
    frame = _frame(Plan(splits=[Split(_at(day), Fraction(2), declared=False)]))
    frame.loc[_at(day), "split_coefficient"] = 2.0
    text = av_csv(frame.assign(split_coefficient=1.0)).splitlines()  # adjusted close computed without the split
    k = len(text) - 1 - _at(day)
    text[k] = text[k].rsplit(",", 1)[0] + ",2.0"
    raw = RawFile(ticker="T", content=("\n".join(text) + "\n").encode(), source="test", location="T.csv")
    findings, events = check_anomalies("T", adjust(parse_raw(raw).frame), CFG)
    (f,) = _jumps(findings, day)
    assert f.rule == "unadjusted_split" and "split_coefficient declares it" in f.message
    assert events == [{"type": "split", "date": day, "ratio": 2.0, "ratio_text": "2:1"}]


# --- real moves that only look like a ratio are accepted with a warning -----------------------------------------------


def _real_move(day: str, pct: float, gap: float, seed: int = 11):
    """One news day: a jump inside volatile, high-volume weeks (see ``corpus.simulate``)."""
    findings, events = check_anomalies("T", _bars(_frame(Plan(jumps=[Jump(_at(day), pct, gap)]), seed=seed)), CFG)
    assert not [f for f in findings if f.severity == "error"], findings
    f = _only_jump(findings, day)
    assert (f.rule, f.severity) == ("price_jump", "warning")
    assert f"{pct * 100:+.1f}%" in f.message and "accepted as a real move" in f.message
    assert f.details["ratio"] == pytest.approx(1 + pct, rel=1e-3) and events == []
    return f


def test_rally_of_35pct_at_a_4_5_ratio_is_not_a_split():
    """2008-10-13: opened +25 % (a 4:5 reverse-split ratio), closed +35 %; the old rule snapped the open gap."""
    assert snap_split_ratio(1.25, 0.015) == Fraction(5, 4)
    f = _real_move("2008-10-13", +0.35, 1.25)
    assert "4:5 split ratio" in f.message and "ordinary day: no" in f.message
    assert "volume shift: no" in f.message  # a rally raises volume, a 4:5 reverse split would cut it x0.80


def test_collapse_of_30pct_at_a_3_2_ratio_is_not_a_split():
    """A profit warning: opened -33.3 % (3:2, a common ratio), closed -30 % after a wide, heavy day."""
    f = _real_move("2008-09-30", -0.30, 2 / 3)
    ev = f.details["evidence"]
    assert ev["split"] == "2/3" and ev["common"] and ev["level_ok"]  # a collapse holds its level, like a split...
    assert not ev["range_ok"] and not ev["volume_ok"]  # ...but neither the day nor the volume looks like one
    assert "3:2 split ratio" in f.message


def test_collapse_of_27pct_at_a_4_3_ratio_is_not_a_split():
    """A drug recall (2004-09-30 style): opened -25 % (4:3), closed -27 %."""
    assert "4:3 split ratio" in _real_move("2009-01-21", -0.27, 0.75).message


def test_rally_of_25pct_closing_on_a_4_5_ratio_is_not_a_split():
    """The close lands on 4:5 (the old rule snapped the close ratio too); the open does not: no split signature."""
    assert snap_split_ratio(1.253, 0.015) == Fraction(5, 4)
    f = _real_move("2009-01-21", +0.253, 1.12)
    assert "the open gap is at no split ratio" in f.message


def test_crash_of_52pct_opening_near_2_1_is_not_a_split():
    """AAPL 2000-09-29 shape: opened x0.527, closed x0.48."""
    assert "the open gap is at no split ratio" in _real_move("2008-10-15", -0.52, 0.527).message


def test_crash_of_47pct_opening_exactly_on_2_1_is_not_a_split():
    """The hard case: the open gap sits on the most common ratio, but the day is wild and the volume spike fades."""
    f = _real_move("2008-10-15", -0.47, 0.5)
    ev = f.details["evidence"]
    assert ev["split"] == "1/2" and not ev["range_ok"] and not ev["volume_ok"]


def test_crash_on_the_last_bar_of_a_file_is_not_a_split():
    frame = _frame(Plan(jumps=[Jump(len(DATES) - 1, -0.30, 2 / 3)]), seed=3)
    findings, _ = check_anomalies("T", _bars(frame), CFG)
    assert [f.rule for f in _jumps(findings, f"{DATES[-1]:%Y-%m-%d}")] == ["price_jump"]


# --- adjusted splits stay events --------------------------------------------------------------------------------------


def test_reverse_1_10_split_with_its_coefficient_is_adjusted_and_reported():
    day = "2008-11-20"
    bars = _bars(_frame(Plan(splits=[Split(_at(day), Fraction(1, 10))]), price0=3.0))
    findings, events = check_anomalies("T", bars, CFG)
    assert _jumps(findings, day) == [] and not [f for f in findings if f.severity == "error"]
    assert events == [{"type": "split", "date": day, "ratio": 0.1, "ratio_text": "1:10"}]
    i = _at(day)
    assert bars["close"].iloc[i] / bars["close"].iloc[i - 1] == pytest.approx(10, rel=0.15)  # raw price jumps
    assert abs(bars["adj_close"].iloc[i] / bars["adj_close"].iloc[i - 1] - 1) < 0.15  # adjusted does not


# --- through the CLI --------------------------------------------------------------------------------------------------


def test_cli_rejects_the_true_split_and_accepts_the_collapse(tmp_path, tradeops):
    src = tmp_path / "in"
    src.mkdir()
    split_day, crash_day = "2008-03-17", "2008-09-30"
    (src / "SPLT.csv").write_text(av_csv(_frame(Plan(splits=[Split(_at(split_day), Fraction(2), declared=False)]))))
    (src / "DROP.csv").write_text(av_csv(_frame(Plan(jumps=[Jump(_at(crash_day), -0.30, 2 / 3)]), seed=11)))
    r = tradeops(tmp_path / "home", "ingest", "--source", "csv", "--path", src, "--json")
    assert r.exit_code == 1, r.output
    by = {t["ticker"]: t for t in r.json()["tickers"]}
    assert by["SPLT"]["status"] == "quarantined"
    assert [(e["rule"], e["date"]) for e in by["SPLT"]["errors"]] == [("unadjusted_split", split_day)]
    assert by["DROP"]["status"] == "accepted_with_warnings" and by["DROP"]["errors"] == []
    assert [(w["rule"], w["date"]) for w in by["DROP"]["warnings"] if w["rule"] == "price_jump"] == [
        ("price_jump", crash_day)
    ]


def test_sample_aapl_crash_of_2000_09_29_stays_accepted(tmp_path, tradeops):
    r = tradeops(tmp_path / "home", "ingest", "--source", "sample", "--tickers", "AAPL", "--json")
    assert r.exit_code == 0, r.output
    (aapl,) = r.json()["tickers"]
    assert aapl["status"] == "accepted_with_warnings" and aapl["errors"] == []
    (w,) = [w for w in aapl["warnings"] if w["rule"] == "price_jump"]
    assert w["date"] == "2000-09-29" and "-51.9%" in w["message"] and "open gap x0.527" in w["message"]


@pytest.mark.parametrize("tolerance", [0.015, 0.1])
def test_vectorised_snapping_agrees_with_snap_split_ratio(tolerance):
    from tradeops.data.clean import SPLIT_RATIOS, snap_split_ratios

    ratios = np.concatenate([np.geomspace(0.03, 30, 4001), [np.nan, 0.0, -2.0, np.inf]])
    got = snap_split_ratios(ratios, tolerance)
    want = [snap_split_ratio(float(r), tolerance) for r in ratios]
    assert [None if k < 0 else SPLIT_RATIOS[k] for k in got] == want
