"""Ingestion end to end through ``tradeops ingest``: the bundled sample, idempotence, time travel, mixed batches,
adjustment changes vs raw conflicts, ordering and missing sessions."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import pytest

from tradeops.data import store as st
from tradeops.data.sources import SampleSource

SAMPLE_ROWS = {"AAPL": 3270, "FB": 196, "GOOG": 2148, "IBM": 3270, "MSFT": 3270}


def _ticker(report: dict, ticker: str) -> dict:
    (res,) = [t for t in report["tickers"] if t["ticker"] == ticker]
    return res


def _rules(findings: list[dict]) -> set[str]:
    return {f["rule"] for f in findings}


def _on(bars: pd.DataFrame, day: str) -> pd.Series:
    (row,) = bars.loc[bars["date"] == pd.Timestamp(day)].to_dict("records")
    return pd.Series(row)


def _returns_on(bars: pd.DataFrame, day: str, column: str) -> float:
    s = bars.set_index("date")[column]
    i = s.index.get_loc(pd.Timestamp(day))
    return float(s.iloc[i] / s.iloc[i - 1] - 1.0)


def _ingest_csv(tradeops, home, directory, *extra):
    return tradeops(home, "ingest", "--source", "csv", "--path", directory, "--json", *extra)


# --- the bundled sample ---------------------------------------------------------------------------------------------


def test_sample_ingestion_accepts_every_ticker(sample_home, lake_of):
    home, report = sample_home
    assert report["ok"] is True
    assert report["bars_version_before"] is None and report["bars_version_after"] == 0
    assert {t["ticker"] for t in report["tickers"]} == set(SAMPLE_ROWS)
    for t in report["tickers"]:
        assert t["status"] in {"accepted", "accepted_with_warnings"}, t
        assert t["errors"] == [], t["errors"]
        assert t["rows_in"] == t["rows_new"] == t["rows_total"] == SAMPLE_ROWS[t["ticker"]]
    counts = lake_of(home).read_bars().groupby("ticker")["date"].agg(["count", "nunique"])
    assert counts["count"].to_dict() == SAMPLE_ROWS == counts["nunique"].to_dict()


def test_short_history_is_a_warning_not_an_error(sample_home):
    _, report = sample_home
    fb = _ticker(report, "FB")
    assert fb["status"] == "accepted_with_warnings"
    assert fb["errors"] == []
    (short,) = [w for w in fb["warnings"] if w["rule"] == "short_history"]
    assert short["severity"] == "warning" and short["ticker"] == "FB"
    assert "196" in short["message"] and "250" in short["message"]
    assert "short_history" not in _rules(_ticker(report, "IBM")["warnings"])


def test_aapl_splits_are_recognised_and_the_adjusted_series_is_continuous(sample_home, lake_of):
    home, report = sample_home
    aapl = _ticker(report, "AAPL")
    splits = [e for e in aapl["events"] if e["type"] == "split"]
    assert [(e["date"], e["ratio"], e["ratio_text"]) for e in splits] == [
        ("2000-06-21", 2.0, "2:1"),
        ("2005-02-28", 2.0, "2:1"),
    ]
    bars = lake_of(home).read_bars(["AAPL"])
    for day in ("2000-06-21", "2005-02-28"):
        raw = _returns_on(bars, day, "close")
        adj = _returns_on(bars, day, "adj_close")
        assert -0.55 < raw < -0.40, (day, raw)  # the traded close roughly halves
        assert abs(adj) < 0.12, (day, adj)  # the adjusted close does not (10 % real move on 2000-06-21)
        assert abs(_returns_on(bars, day, "adj_open")) < 0.12
        assert _on(bars, day)["split_ratio"] == 2.0
    assert (bars.loc[~bars["date"].isin(pd.to_datetime(["2000-06-21", "2005-02-28"])), "split_ratio"] == 1.0).all()
    # Volume is restated in today's shares: x4 before both splits, x2 between them, as traded after.
    factor = bars["adj_volume"] / bars["volume"]
    d = bars["date"]
    assert np.allclose(factor[d < "2000-06-21"], 4.0)
    assert np.allclose(factor[(d >= "2000-06-21") & (d < "2005-02-28")], 2.0)
    assert np.allclose(factor[d >= "2005-02-28"], 1.0)
    # adj_* = raw * adj_close/close on every row.
    f = bars["adj_close"] / bars["close"]
    for c in ("open", "high", "low"):
        assert np.allclose(bars[f"adj_{c}"], bars[c] * f, rtol=1e-12)


def test_aapl_real_crash_is_accepted_with_a_price_jump_warning(sample_home, lake_of):
    home, report = sample_home
    aapl = _ticker(report, "AAPL")
    assert aapl["status"] == "accepted_with_warnings"
    jumps = [w for w in aapl["warnings"] if w["rule"] == "price_jump"]
    assert [(w["date"], w["severity"]) for w in jumps] == [("2000-09-29", "warning")]
    assert "-51.9%" in jumps[0]["message"]
    bars = lake_of(home).read_bars(["AAPL"])
    assert _on(bars, "2000-09-29")["close"] == 25.75
    assert _returns_on(bars, "2000-09-29", "adj_close") == pytest.approx(-0.5187, abs=1e-3)


def test_msft_split_recognised_and_special_dividend_is_not_a_split(sample_home, lake_of):
    home, report = sample_home
    msft = _ticker(report, "MSFT")
    assert [(e["date"], e["ratio_text"]) for e in msft["events"] if e["type"] == "split"] == [("2003-02-18", "2:1")]
    assert not [w for w in msft["warnings"] if w.get("date") == "2004-11-15"]
    bars = lake_of(home).read_bars(["MSFT"])
    assert _on(bars, "2003-02-18")["split_ratio"] == 2.0
    assert _on(bars, "2004-11-15")["split_ratio"] == 1.0
    # The $3 special dividend moves the adjustment factor by ~11 %, the raw close by -8.6 %, the adjusted close +1.7 %.
    f = (bars["adj_close"] / bars["close"]).set_axis(bars["date"])
    change = f[pd.Timestamp("2004-11-15")] / f[pd.Timestamp("2004-11-12")]
    assert 1.08 < change < 1.15
    assert abs(_returns_on(bars, "2004-11-15", "adj_close")) < 0.03
    assert _on(bars, "2004-11-12")["adj_volume"] == _on(bars, "2004-11-12")["volume"]


def test_reingesting_the_same_data_writes_nothing(sample_home, copy_home, lake_of, tradeops, tmp_path):
    home = copy_home(sample_home[0], tmp_path / "home")
    lake = lake_of(home)
    before = lake.read_bars()
    result = tradeops(home, "ingest", "--source", "sample", "--json")
    assert result.exit_code == 0, result.output
    report = result.json()
    assert report["bars_version_before"] == report["bars_version_after"] == 0
    assert all(t["rows_written"] == 0 and t["rows_new"] == 0 for t in report["tickers"])
    assert lake.version(st.BARS) == 0
    after = lake.read_bars()
    counts = after.groupby("ticker")["date"].agg(["count", "nunique"])
    assert (counts["count"] == counts["nunique"]).all() and counts["count"].to_dict() == SAMPLE_ROWS
    pd.testing.assert_frame_equal(after, before)


# --- versions -------------------------------------------------------------------------------------------------------


def test_previous_version_stays_readable_after_a_change(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    home = tmp_path / "home"
    first = _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[:200], tmp_path / "a", "IBM").parent)
    assert first.exit_code == 0, first.output
    assert _ticker(first.json(), "IBM")["status"] == "accepted_with_warnings"  # 200 < 250 bars: short_history
    lake = lake_of(home)
    v0 = lake.read_bars(["IBM"])
    second = _ingest_csv(tradeops, home, write_bars(ibm_300, tmp_path / "b", "IBM").parent)
    assert second.exit_code == 0, second.output
    assert second.json()["bars_version_after"] == 1
    assert lake.version(st.BARS) == 1
    assert len(lake.read_bars(["IBM"], version=0)) == 200
    assert len(lake.read_bars(["IBM"], version=1)) == len(lake.read_bars(["IBM"])) == 300
    pd.testing.assert_frame_equal(lake.read_bars(["IBM"], version=0), v0)
    history = lake.history(st.BARS)
    assert [h["version"] for h in history] == [1, 0]
    assert [h["report_id"] for h in history] == [second.json()["report_id"], first.json()["report_id"]]
    assert all(h["source"] == "csv" and h["operation"] == "ingest" for h in history)


def test_mixed_batch_stores_the_good_ticker_and_keeps_the_bad_one(
    tmp_path, tradeops, lake_of, write_bars, ibm_300, msft_300
):
    home = tmp_path / "home"
    good = tmp_path / "good"
    write_bars(ibm_300.iloc[:250], good, "IBM")
    write_bars(msft_300.iloc[:250], good, "MSFT")
    assert _ingest_csv(tradeops, home, good).exit_code == 0
    lake = lake_of(home)
    ibm_before = lake.read_bars(["IBM"])

    mixed = tmp_path / "mixed"
    write_bars(msft_300, mixed, "MSFT")
    bad = ibm_300.copy()
    bad.loc[270:274, "Volume"] = "0"  # a zero-volume run: IBM must be quarantined
    write_bars(bad, mixed, "IBM")
    result = _ingest_csv(tradeops, home, mixed)

    assert result.exit_code == 1
    report = result.json()
    assert report["ok"] is False
    assert _ticker(report, "MSFT")["status"] == "accepted"
    assert _ticker(report, "IBM")["status"] == "quarantined"
    assert report["bars_version_after"] == 1 == lake.version(st.BARS)
    assert len(lake.read_bars(["MSFT"])) == 300
    pd.testing.assert_frame_equal(lake.read_bars(["IBM"]), ibm_before)
    q = lake.read(st.QUARANTINE)
    assert set(q["ticker"]) == {"IBM"}


# --- adjustment changes vs raw conflicts ----------------------------------------------------------------------------


def _scaled_adj(df: pd.DataFrame, k: float) -> pd.DataFrame:
    out = df.copy()
    out["Adj Close"] = [repr(float(x) * k) for x in out["Adj Close"]]
    return out


def test_new_dividend_readjusts_stored_history_without_conflict(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    home = tmp_path / "home"
    assert _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[:250], tmp_path / "a", "IBM").parent).exit_code == 0
    lake = lake_of(home)
    before = lake.read_bars(["IBM"])
    # The source's whole adjusted history moves by 0.98 (a new dividend after these dates) and 50 bars are new.
    result = _ingest_csv(tradeops, home, write_bars(_scaled_adj(ibm_300, 0.98), tmp_path / "b", "IBM").parent)
    assert result.exit_code == 0, result.output
    res = _ticker(result.json(), "IBM")
    assert res["status"] == "accepted" and res["errors"] == []
    assert res["rows_new"] == 50 and res["rows_updated"] == 250
    after = lake.read_bars(["IBM"])
    expected = pd.to_numeric(ibm_300["Adj Close"]).to_numpy() * 0.98
    assert np.allclose(after["adj_close"], expected, rtol=1e-12)
    old = after.iloc[:250]
    for c in ("adj_open", "adj_high", "adj_low", "adj_close"):
        assert np.allclose(old[c], before[c] * 0.98, rtol=1e-12)
    for c in ("open", "high", "low", "close", "volume", "adj_volume"):
        assert np.array_equal(old[c], before[c])


def test_new_dividend_in_an_overlapping_increment_rebases_older_rows(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    home = tmp_path / "home"
    assert _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[:250], tmp_path / "a", "IBM").parent).exit_code == 0
    lake = lake_of(home)
    before = lake.read_bars(["IBM"])
    # An increment overlapping the last 20 stored bars, adjusted for a dividend the stored bars predate.
    result = _ingest_csv(
        tradeops, home, write_bars(_scaled_adj(ibm_300.iloc[230:], 0.98), tmp_path / "b", "IBM").parent
    )
    assert result.exit_code == 0, result.output
    res = _ticker(result.json(), "IBM")
    assert res["errors"] == [] and res["rows_new"] == 50
    (event,) = [e for e in res["events"] if e["type"] == "readjusted"]
    assert event["rows"] == 230 and event["price_ratio"] == pytest.approx(0.98)
    after = lake.read_bars(["IBM"])
    assert len(after) == 300
    expected = pd.to_numeric(ibm_300["Adj Close"]).to_numpy() * 0.98
    assert np.allclose(after["adj_close"], expected, rtol=1e-9)
    assert np.array_equal(after["close"].iloc[:250], before["close"])


def test_changed_raw_close_is_a_conflict_showing_both_values(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    home = tmp_path / "home"
    assert _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[:250], tmp_path / "a", "IBM").parent).exit_code == 0
    lake = lake_of(home)
    before = lake.read_bars(["IBM"])
    changed = ibm_300.copy()
    day, old_close = changed.loc[99, "Date"], changed.loc[99, "Close"]  # 2000-07-21, row 100
    new_close = "114.0"  # inside that day's low 113.75 .. high 117.0; the stored close is 114.75
    assert float(changed.loc[99, "Low"]) <= float(new_close) <= float(changed.loc[99, "High"]) != float(old_close)
    changed.loc[99, "Close"] = new_close
    result = tradeops(home, "ingest", "--source", "csv", "--path", write_bars(changed, tmp_path / "b", "IBM").parent)
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if "[conflict]" in ln)
    assert "IBM" in line and day in line and "row 100" in line
    assert f"close stored {float(old_close)} vs new {float(new_close)}" in line
    assert lake.version(st.BARS) == 0
    pd.testing.assert_frame_equal(lake.read_bars(["IBM"]), before)


# --- ordering and missing sessions -----------------------------------------------------------------------------------


def test_descending_file_is_stored_ascending(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    asc_home, desc_home = tmp_path / "asc", tmp_path / "desc"
    assert _ingest_csv(tradeops, asc_home, write_bars(ibm_300, tmp_path / "a", "IBM").parent).exit_code == 0
    result = _ingest_csv(tradeops, desc_home, write_bars(ibm_300.iloc[::-1], tmp_path / "d", "IBM").parent)
    assert result.exit_code == 0, result.output
    res = _ticker(result.json(), "IBM")
    assert res["order"] == "descending" and res["status"] == "accepted"
    assert (res["first_date"], res["last_date"]) == ("2000-03-01", "2001-05-08")
    asc, desc = lake_of(asc_home).read_bars(), lake_of(desc_home).read_bars()
    assert desc["date"].is_monotonic_increasing
    cols = [c for c in asc.columns if c not in ("ingested_at", "report_id")]
    pd.testing.assert_frame_equal(desc[cols], asc[cols])


def test_unordered_file_is_sorted_with_a_warning(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    shuffled = ibm_300.sample(frac=1.0, random_state=7)
    result = _ingest_csv(tradeops, tmp_path / "home", write_bars(shuffled, tmp_path / "s", "IBM").parent)
    assert result.exit_code == 0, result.output
    res = _ticker(result.json(), "IBM")
    assert res["order"] == "unordered" and "unordered_rows" in _rules(res["warnings"])
    bars = lake_of(tmp_path / "home").read_bars(["IBM"])
    assert bars["date"].is_monotonic_increasing and len(bars) == 300


def test_three_missing_sessions_are_a_warning_and_not_filled(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    dropped = [100, 101, 150]  # 2000-07-24, 2000-07-25, 2000-10-02
    days = pd.to_datetime(ibm_300.loc[dropped, "Date"])
    result = _ingest_csv(
        tradeops, tmp_path / "home", write_bars(ibm_300.drop(index=dropped), tmp_path / "m", "IBM").parent
    )
    assert result.exit_code == 0, result.output
    res = _ticker(result.json(), "IBM")
    assert res["status"] == "accepted_with_warnings"
    (w,) = [w for w in res["warnings"] if w["rule"] == "missing_sessions"]
    assert w["severity"] == "warning" and w["date"] == "2000-07-24" and "3 session" in w["message"]
    assert res["calendar"]["missing_sessions"] == 3
    assert res["calendar"]["first_missing"] == [d.strftime("%Y-%m-%d") for d in days]
    bars = lake_of(tmp_path / "home").read_bars(["IBM"])
    assert len(bars) == 297 and not bars["date"].isin(days).any()


def test_fifteen_consecutive_missing_sessions_are_a_gap_error(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    cut = ibm_300.drop(index=range(100, 115))
    result = _ingest_csv(tradeops, tmp_path / "home", write_bars(cut, tmp_path / "g", "IBM").parent)
    assert result.exit_code == 1
    res = _ticker(result.json(), "IBM")
    assert res["status"] == "quarantined"
    (gap,) = [e for e in res["errors"] if e["rule"] == "gap"]
    assert gap["date"] == ibm_300.loc[100, "Date"] and "15 consecutive sessions" in gap["message"]
    assert lake_of(tmp_path / "home").version(st.BARS) is None


# --- regressions: each test is named after what broke ---------------------------------------------------------------


def test_contiguous_increment_leaves_stored_adjusted_prices_alone(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    home = tmp_path / "home"
    assert _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[:250], tmp_path / "a", "IBM").parent).exit_code == 0
    lake = lake_of(home)
    before = lake.read_bars(["IBM"])
    # The next 50 sessions from the same source, same adjustment basis, no overlap.
    result = _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[250:], tmp_path / "b", "IBM").parent)
    assert result.exit_code == 0, result.output
    after = lake.read_bars(["IBM"])
    expected = pd.to_numeric(ibm_300["Adj Close"]).to_numpy()
    assert np.allclose(after["adj_close"].iloc[:250], before["adj_close"], rtol=1e-9)
    assert np.allclose(after["adj_close"], expected, rtol=1e-9)


def test_hole_between_stored_bars_and_new_batch_is_a_gap(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    home = tmp_path / "home"
    assert _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[:250], tmp_path / "a", "IBM").parent).exit_code == 0
    # Stored up to 2001-02-26; the new file starts 2001-03-27: 20 sessions (> max_gap_sessions=10) are missing.
    result = _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[270:], tmp_path / "b", "IBM").parent)
    assert result.exit_code == 1
    assert "gap" in _rules(_ticker(result.json(), "IBM")["errors"])


def test_overlapping_increment_with_a_new_split_is_accepted(tmp_path, tradeops, lake_of, write_bars):
    raw = SampleSource().fetch(["AAPL"], {})[0].content.decode()
    aapl = pd.read_csv(StringIO(raw), dtype=str, keep_default_na=False)
    # Stored while the 2005-02-28 2:1 split lay in the future: adjusted prices then were twice today's.
    old = _scaled_adj(aapl.loc[(aapl["Date"] >= "2004-06-01") & (aapl["Date"] <= "2005-01-31")], 2.0)
    new = aapl.loc[(aapl["Date"] >= "2005-01-06") & (aapl["Date"] <= "2005-06-30")]  # 2005-01-06: +0.08 %
    home = tmp_path / "home"
    assert _ingest_csv(tradeops, home, write_bars(old, tmp_path / "a", "AAPL").parent).exit_code == 0
    result = _ingest_csv(tradeops, home, write_bars(new, tmp_path / "b", "AAPL").parent)
    assert result.exit_code == 0, result.output
    res = _ticker(result.json(), "AAPL")
    assert res["errors"] == [] and "price_jump" not in _rules(res["warnings"])
    bars = lake_of(home).read_bars(["AAPL"])
    expected = pd.to_numeric(aapl.set_index("Date")["Adj Close"]).loc[bars["date"].dt.strftime("%Y-%m-%d")]
    assert np.allclose(bars["adj_close"], expected.to_numpy(), rtol=1e-9)


def test_stale_run_continuing_the_stored_bars_is_quarantined(tmp_path, tradeops, lake_of, write_bars, ibm_300):
    home = tmp_path / "home"
    assert _ingest_csv(tradeops, home, write_bars(ibm_300.iloc[:250], tmp_path / "a", "IBM").parent).exit_code == 0
    new = ibm_300.iloc[250:].reset_index(drop=True)
    values = ["Open", "High", "Low", "Close", "Volume", "Adj Close"]
    new.loc[0:3, values] = [ibm_300.loc[249, values].tolist()] * 4  # 2001-02-26's bar repeated on 4 more days
    result = _ingest_csv(tradeops, home, write_bars(new, tmp_path / "b", "IBM").parent)
    assert result.exit_code == 1
    (f,) = [e for e in _ticker(result.json(), "IBM")["errors"] if e["rule"] == "stale_series"]
    assert f["date"] == "2001-02-26"
    assert lake_of(home).version(st.BARS) == 0


def test_unadjusted_split_on_a_day_that_also_moved_is_rejected(tmp_path, tradeops, write_bars, ibm_300):
    """2001-03-27 closed +4.3%, so halving from there gives a close ratio of 0.52 (off the 2:1 ratio by 4%); the open
    gap still sits on the ratio and gives the unadjusted split away."""
    df = ibm_300.copy()
    i = int(df.index[df["Date"] == "2001-03-27"][0])
    for col in ("Open", "High", "Low", "Close", "Adj Close"):
        df.loc[i:, col] = (pd.to_numeric(df.loc[i:, col]) / 2).round(4).astype(str)
    r = _ingest_csv(tradeops, tmp_path / "home", write_bars(df, tmp_path / "in", "IBM").parent)
    assert r.exit_code == 1
    errors = r.json()["tickers"][0]["errors"]
    assert any(e["rule"] == "unadjusted_split" and e["date"] == "2001-03-27" for e in errors), errors
