"""Unit tests of the pure Data-level checks on tiny frames: contract, anomalies, overlap conflicts, calendar,
statistical schema, drift/PSI and split-ratio snapping."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeops.config import IngestConfig
from tradeops.data.clean import adjust, calendar_findings, sessions, snap_split_ratio
from tradeops.data.contract import validate_contract
from tradeops.data.quality import TickerStats, check_anomalies, drift, infer_stats, overlap_conflicts, psi

TODAY = date(2026, 11, 26)
CFG = IngestConfig()
MARCH_2021 = sessions("XNYS", pd.Timestamp("2021-03-01"), pd.Timestamp("2021-03-31"))  # 23 sessions, no holiday


def make_bars(close, *, dates=None, volume=None, adj_close=None, spread=0.01) -> pd.DataFrame:
    """Parsed-then-adjusted bars as ``validate_ticker`` sees them: open = close, high/low = close -/+ ``spread``."""
    c = np.asarray(close, dtype="float64")
    n = len(c)
    d = pd.DatetimeIndex(dates) if dates is not None else MARCH_2021[:n]
    df = pd.DataFrame(
        {
            "row": np.arange(1, n + 1),
            "date": d,
            "open": c,
            "high": c * (1 + spread),
            "low": c * (1 - spread),
            "close": c,
            "volume": np.full(n, 1e6) if volume is None else np.asarray(volume, dtype="float64"),
            "adj_close": c if adj_close is None else np.asarray(adj_close, dtype="float64"),
            "dividend": np.nan,
            "split_coefficient": np.nan,
        }
    )
    return adjust(df)


def rules(findings) -> list[str]:
    return [f.rule for f in findings]


# --- validate_contract ------------------------------------------------------------------------------------------------


def test_contract_holds_for_good_bars():
    assert validate_contract("T", make_bars([10, 11, 12, 11.5, 11.8]), TODAY) == []


@pytest.mark.parametrize(
    "column,value,rule",
    [
        ("close", 0.0, "price_positive"),
        ("low", -1.0, "price_positive"),
        ("adj_close", -3.0, "price_positive"),
        ("volume", -5.0, "volume_non_negative"),
        ("high", 11.0, "high_ge_open_close"),  # row 3: open = close = 12
        ("low", 12.5, "low_le_open_close"),
        ("close", np.nan, "not_nullable"),
    ],
)
def test_contract_names_rule_row_and_date(column, value, rule):
    bars = make_bars([10, 11, 12, 11.5, 11.8])
    bars.loc[2, column] = value
    findings = validate_contract("T", bars, TODAY)
    hit = [f for f in findings if f.rule == rule]
    assert hit, findings
    assert (hit[0].ticker, hit[0].row, hit[0].date, hit[0].severity) == ("T", 3, "2021-03-03", "error")


def test_contract_rejects_future_dates_after_today():
    bars = make_bars([10, 11, 12, 13, 14])
    findings = validate_contract("T", bars, date(2021, 3, 2))
    assert rules(findings) == ["date_not_in_future"] * 3
    assert [f.date for f in findings] == ["2021-03-03", "2021-03-04", "2021-03-05"]
    assert validate_contract("T", bars, date(2021, 3, 5)) == []  # today itself is allowed


def test_contract_rejects_duplicate_and_decreasing_dates():
    dup = make_bars([10, 11, 12, 13, 14])
    dup.loc[3, "date"] = dup.loc[2, "date"]
    assert {"dates_increasing", "field_uniqueness"} <= set(rules(validate_contract("T", dup, TODAY)))
    swapped = make_bars([10, 11, 12, 13, 14])
    swapped.loc[[3, 4], "date"] = swapped.loc[[4, 3], "date"].to_numpy()
    (f,) = validate_contract("T", swapped, TODAY)
    assert (f.rule, f.row) == ("dates_increasing", 5)


def test_contract_checks_types_and_caps_findings():
    bars = make_bars([10, 11, 12, 13, 14])
    assert rules(validate_contract("T", bars.astype({"volume": "int64"}), TODAY)) == ["dtype"]
    zero = bars.assign(close=0.0)
    assert len(validate_contract("T", zero, TODAY)) > 3
    assert len(validate_contract("T", zero, TODAY, max_findings=3)) == 3


def test_contract_missing_column_finding_names_the_column():
    (f,) = validate_contract("T", make_bars([10, 11, 12]).drop(columns="volume"), TODAY)
    assert f.rule == "column_in_dataframe"
    assert "volume" in f.message


@st.composite
def valid_bars(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 40))
    gaps = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    dates = pd.Timestamp("2000-01-03") + pd.to_timedelta(np.cumsum(gaps) - gaps[0], unit="D")
    price = st.floats(0.01, 1e5, allow_nan=False, allow_infinity=False)
    o = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    c = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    up = np.array(draw(st.lists(st.floats(0, 0.2), min_size=n, max_size=n)))
    down = np.array(draw(st.lists(st.floats(0, 0.9), min_size=n, max_size=n)))
    vol = np.array(draw(st.lists(st.integers(0, 10**10), min_size=n, max_size=n)), dtype="float64")
    f = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n)))
    df = pd.DataFrame(
        {
            "row": np.arange(1, n + 1),
            "date": dates,
            "open": o,
            "high": np.maximum(o, c) * (1 + up),
            "low": np.minimum(o, c) * (1 - down),
            "close": c,
            "volume": vol,
            "adj_close": c * f,
            "dividend": np.nan,
            "split_coefficient": np.nan,
        }
    )
    return adjust(df)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_bars())
def test_property_valid_bars_have_no_contract_findings(bars):
    assert validate_contract("P", bars, TODAY) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_bars(), st.data())
def test_property_one_broken_bar_is_named_by_row(bars, data):
    k = data.draw(st.integers(0, len(bars) - 1))
    bars.loc[k, "high"] = min(bars.loc[k, "open"], bars.loc[k, "close"]) * 0.5
    findings = validate_contract("P", bars, TODAY)
    assert [(f.rule, f.row) for f in findings if f.rule == "high_ge_open_close"] == [("high_ge_open_close", k + 1)]


# --- check_anomalies ----------------------------------------------------------------------------------------------


def test_quiet_series_has_no_anomaly():
    findings, events = check_anomalies("T", make_bars([10, 10.1, 10.2, 10.1, 10.3]), CFG)
    assert findings == [] and events == []


def test_big_real_move_is_a_price_jump_warning():
    findings, _ = check_anomalies("T", make_bars([100, 101, 140, 141]), CFG)
    (f,) = findings
    assert (f.rule, f.severity, f.date, f.row) == ("price_jump", "warning", "2021-03-03", 3)
    assert f.details["ratio"] == pytest.approx(140 / 101)


def test_split_ratio_jump_is_an_unadjusted_split():
    findings, events = check_anomalies("T", make_bars([100, 101, 50.4, 50.9]), CFG)
    (f,) = findings
    assert (f.rule, f.severity, f.date, f.row) == ("unadjusted_split", "error", "2021-03-03", 3)
    assert f.details["split"] == "1/2" and "2:1" in f.message
    assert events == []
    rev, _ = check_anomalies("T", make_bars([1.0, 1.01, 10.1, 10.0]), CFG)  # a 1:10 reverse split
    assert rules(rev) == ["unadjusted_split"] and "1:10" in rev[0].message


def test_adjusted_split_is_an_event_not_a_finding():
    close = [100, 101, 50.6, 50.9]
    bars = make_bars(close, adj_close=[50, 50.5, 50.6, 50.9], volume=[10, 10, 20, 20])
    findings, events = check_anomalies("T", bars, CFG)
    assert findings == []
    assert events == [{"type": "split", "date": "2021-03-03", "ratio": 2.0, "ratio_text": "2:1"}]
    assert bars["adj_volume"].tolist() == [20, 20, 20, 20]


def test_stale_series_needs_stale_run_identical_bars():
    five = make_bars([10, 11, 11, 11, 11, 11, 12])
    (f,) = check_anomalies("T", five, CFG)[0]
    assert (f.rule, f.date, f.row) == ("stale_series", "2021-03-02", 2) and "5 days" in f.message
    assert check_anomalies("T", make_bars([10, 11, 11, 11, 11, 12]), CFG)[0] == []
    assert check_anomalies("T", make_bars([10, 11, 11, 11, 11, 12]), CFG.model_copy(update={"stale_run": 4}))[0]


def test_zero_volume_run_is_an_error_and_isolated_zeros_a_warning():
    run = make_bars([10] * 2 + [10.1, 10.2, 10.3, 10.4, 10.5] + [11], volume=[5, 5, 0, 0, 0, 0, 0, 5])
    (f,) = check_anomalies("T", run, CFG)[0]
    assert (f.rule, f.severity, f.date, f.row) == ("zero_volume_run", "error", "2021-03-03", 3)
    few = make_bars([10, 10.1, 10.2, 10.3], volume=[5, 0, 0, 5])
    (w,) = check_anomalies("T", few, CFG)[0]
    assert (w.rule, w.severity, w.date) == ("zero_volume", "warning", "2021-03-02")


def _stats(lo: float, hi: float) -> TickerStats:
    return infer_stats("T", make_bars([lo, hi, (lo + hi) / 2]))


def test_out_of_range_against_the_stored_statistical_schema():
    stats = _stats(10, 20)  # accepted range with range_factor 5: [2, 100]
    assert check_anomalies("T", make_bars([99, 99.5, 99.9]), CFG, stats=stats)[0] == []
    (f,) = check_anomalies("T", make_bars([100.5, 100.6, 100.7]), CFG, stats=stats)[0]
    assert (f.rule, f.severity, f.date, f.row) == ("out_of_range", "error", "2021-03-01", 1)
    assert "3 bar(s)" in f.message
    low, _ = check_anomalies("T", make_bars([1.99, 2.0, 2.01]), CFG, stats=stats)
    assert rules(low) == ["out_of_range"]


def test_previous_stored_bar_is_context_for_the_first_new_bar():
    previous = make_bars([100, 100.5, 101], dates=MARCH_2021[:3])
    new = make_bars([50.6, 50.7], dates=MARCH_2021[3:5])
    (f,) = check_anomalies("T", new, CFG, previous=previous)[0]
    assert (f.rule, f.date) == ("unadjusted_split", "2021-03-04")
    # Findings inside the stored part are not repeated.
    noisy_previous = make_bars([100, 150, 151], dates=MARCH_2021[:3])
    assert check_anomalies("T", make_bars([151.5, 152], dates=MARCH_2021[3:5]), CFG, previous=noisy_previous)[0] == []
    # A stale run that starts in the stored bars and continues in the new ones is caught.
    flat_previous = make_bars([10, 11], dates=MARCH_2021[:2])
    (s,) = check_anomalies("T", make_bars([11, 11, 11, 11], dates=MARCH_2021[2:6]), CFG, previous=flat_previous)[0]
    assert (s.rule, s.date) == ("stale_series", "2021-03-02")


# --- overlap_conflicts ------------------------------------------------------------------------------------------------


def test_overlap_conflicts_compare_raw_values_only():
    stored = make_bars([10, 11, 12, 13])
    assert overlap_conflicts("T", stored.copy(), stored, 1e-6) == []
    readjusted = make_bars([10, 11, 12, 13], adj_close=[9.8, 10.78, 11.76, 12.74])
    assert overlap_conflicts("T", readjusted, stored, 1e-6) == []
    assert overlap_conflicts("T", stored, stored.iloc[0:0], 1e-6) == []
    assert overlap_conflicts("T", stored, None, 1e-6) == []


def test_overlap_conflict_shows_stored_and_new_values():
    stored = make_bars([10, 11, 12, 13])
    new = stored.copy()
    new.loc[2, "close"] = 12.06
    new.loc[2, "volume"] = 2e6
    (f,) = overlap_conflicts("T", new, stored, 1e-6)
    assert (f.rule, f.severity, f.date, f.row) == ("conflict", "error", "2021-03-03", 3)
    assert f.details["diffs"] == {"close": (12.0, 12.06), "volume": (1e6, 2e6)}
    assert "close stored 12.0 vs new 12.06" in f.message and "volume stored 1000000.0 vs new 2000000.0" in f.message
    assert overlap_conflicts("T", new, stored, rtol=0.01 + 1e-9) != []  # volume still differs
    new.loc[2, "volume"] = 1e6
    assert overlap_conflicts("T", new, stored, rtol=0.01) == []  # 0.5 % is within 1 %


def test_overlap_conflicts_are_capped_and_counted():
    stored = make_bars(np.arange(10, 20, dtype=float))
    new = stored.assign(close=stored["close"] * 1.001)
    found = overlap_conflicts("T", new, stored, 1e-6, limit=3)
    assert len(found) == 3 and "(10 conflicting dates in all)" in found[0].message


# --- calendar_findings ------------------------------------------------------------------------------------------------


def test_calendar_complete_month_has_no_findings():
    findings, summary = calendar_findings("T", pd.Series(MARCH_2021), "XNYS", 10)
    assert findings == [] and summary["missing_sessions"] == 0


def test_calendar_holiday_is_not_missing():
    # Good Friday 2021-04-02: the exchange was closed.
    d = sessions("XNYS", pd.Timestamp("2021-03-29"), pd.Timestamp("2021-04-09"))
    assert pd.Timestamp("2021-04-02") not in d and len(d) == 9
    assert calendar_findings("T", pd.Series(d), "XNYS", 10)[0] == []


def test_calendar_weekend_bar_is_not_a_session():
    d = pd.Series(MARCH_2021.append(pd.DatetimeIndex(["2021-03-06"])).sort_values())
    (f,) = calendar_findings("T", d, "XNYS", 10)[0]
    assert (f.rule, f.severity, f.date) == ("not_a_session", "error", "2021-03-06")


def test_calendar_missing_sessions_warn_and_long_gaps_reject():
    three = pd.Series(MARCH_2021.delete([5, 6, 12]))
    (f,), summary = calendar_findings("T", three, "XNYS", 10)
    assert (f.rule, f.severity, f.date) == ("missing_sessions", "warning", "2021-03-08")
    assert summary["missing_sessions"] == 3 and summary["longest_gap"] == 2
    ten = pd.Series(MARCH_2021.delete(range(5, 15)))
    assert [(f.rule, f.severity) for f in calendar_findings("T", ten, "XNYS", 10)[0]] == [
        ("missing_sessions", "warning")
    ]
    eleven = pd.Series(MARCH_2021.delete(range(5, 16)))
    (g,), summary = calendar_findings("T", eleven, "XNYS", 10)
    assert (g.rule, g.severity, g.date) == ("gap", "error", "2021-03-08") and summary["longest_gap"] == 11


def test_calendar_counts_known_stored_dates_as_present():
    three = pd.Series(MARCH_2021.delete([5, 6, 12]))
    assert calendar_findings("T", three, "XNYS", 10, known=MARCH_2021[[5, 6, 12]])[0] == []
    assert calendar_findings("T", pd.Series([], dtype="datetime64[ns]"), "XNYS", 10) == ([], {"missing_sessions": 0})


# --- infer_stats --------------------------------------------------------------------------------------------------


def test_infer_stats_on_a_tiny_frame():
    bars = make_bars([10, 11, 9.9, 9.9], volume=[100, 0, 200, 300])
    s = infer_stats("T", bars)
    r = np.array([0.1, -0.1, 0.0])
    assert (s.ticker, s.n_rows, s.first_date, s.last_date) == ("T", 4, "2021-03-01", "2021-03-04")
    assert (s.adj_close_min, s.adj_close_max) == (9.9, 11.0)
    assert s.ret_mean == pytest.approx(0.0, abs=1e-12)
    assert s.ret_std == pytest.approx(r.std(ddof=1))
    assert s.ret_absmax == pytest.approx(0.1)
    assert s.ret_q01 == pytest.approx(np.quantile(r, 0.01)) and s.ret_q99 == pytest.approx(np.quantile(r, 0.99))
    assert s.volume_median == 150.0 and s.zero_volume_frac == 0.25 and s.null_frac == 0.0
    lv = np.log1p([100, 0, 200, 300])
    assert s.logvol_mean == pytest.approx(lv.mean()) and s.logvol_std == pytest.approx(lv.std(ddof=1))
    assert set(s.to_dict()) == set(TickerStats.__dataclass_fields__)


def test_infer_stats_on_one_bar():
    s = infer_stats("T", make_bars([10.0]))
    assert s.n_rows == 1 and s.ret_std == 0.0 and s.ret_absmax == 0.0 and s.logvol_std == 0.0


# --- drift and PSI ----------------------------------------------------------------------------------------------------


def _random_bars(n: int, sigma: float, seed: int, start: str = "2015-01-02") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.cumprod(1 + rng.normal(0, sigma, n))
    dates = sessions("XNYS", pd.Timestamp(start), pd.Timestamp(start) + pd.Timedelta(days=2 * n))[:n]
    return make_bars(close, dates=dates, volume=rng.lognormal(13, 0.3, n).round())


def test_drift_needs_enough_rows_on_both_sides():
    stored = _random_bars(100, 0.01, 1)
    assert drift("T", _random_bars(59, 0.01, 2), stored, CFG) == ([], {"measured": False})
    assert drift("T", _random_bars(100, 0.01, 2), stored.iloc[:59], CFG) == ([], {"measured": False})
    assert drift("T", _random_bars(100, 0.01, 2), None, CFG) == ([], {"measured": False})


def test_drift_same_distribution_is_quiet_and_a_volatility_change_warns():
    stored = _random_bars(300, 0.01, 1)
    findings, result = drift("T", _random_bars(120, 0.01, 2), stored, CFG)
    assert findings == [] and result["measured"] is True and result["returns_ks"] < CFG.drift_ks_warn
    findings, result = drift("T", _random_bars(120, 0.06, 3), stored, CFG)
    (f,) = findings
    assert (f.rule, f.severity) == ("drift", "warning") and result["returns_ks"] > CFG.drift_ks_warn
    assert result["ret_std_new"] > 3 * result["ret_std_old"]
    assert {"returns_ks_pvalue", "logvolume_psi"} <= set(result)


def test_psi():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 5000)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    assert psi(x, rng.normal(0, 1, 5000)) < 0.05
    assert psi(x, rng.normal(1.5, 1, 5000)) > 0.5
    assert np.isnan(psi(np.array([]), x)) and np.isnan(psi(x, np.array([np.nan])))
    assert psi(np.ones(10), x) == 0.0  # a constant reference has no bins


# --- snap_split_ratio -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ratio,expected",
    [
        (2.0, Fraction(2)),
        (2.02, Fraction(2)),
        (0.5, Fraction(1, 2)),
        (0.493, Fraction(1, 2)),
        (1.5, Fraction(3, 2)),
        (3.0, Fraction(3)),
        (0.1, Fraction(1, 10)),
        (10.1, Fraction(10)),
        (1 / 7, Fraction(1, 7)),
        (100, Fraction(100)),
        (1.0, None),
        (1.12, None),
        (2.1, None),
        (0.47, None),
        (0.0, None),
        (-2.0, None),
        (float("nan"), None),
        (float("inf"), None),
    ],
)
def test_snap_split_ratio(ratio, expected):
    assert snap_split_ratio(ratio, 0.015) == expected


def test_snap_split_ratio_tolerance_is_relative():
    assert snap_split_ratio(2.05, 0.015) is None
    assert snap_split_ratio(2.05, 0.03) == Fraction(2)


@pytest.mark.parametrize("kind", ["stale_series", "zero_volume_run"])
def test_run_starting_on_the_stored_bar_is_a_finding_not_a_crash(kind):
    # Stored bars as ingest reads them back: no 'row' column.
    if kind == "stale_series":
        previous = make_bars([10, 11], dates=MARCH_2021[:2]).drop(columns="row")
        new = make_bars([11, 11, 11, 11], dates=MARCH_2021[2:6])
    else:
        previous = make_bars([10, 11], dates=MARCH_2021[:2], volume=[5, 0]).drop(columns="row")
        new = make_bars([11.1, 11.2, 11.3, 11.4], dates=MARCH_2021[2:6], volume=[0, 0, 0, 0])
    findings, _ = check_anomalies("T", new, CFG, previous=previous)
    assert [(f.rule, f.date) for f in findings] == [(kind, "2021-03-02")]


def test_rows_point_at_physical_lines_when_the_file_has_blank_lines():
    from tradeops.data.parse import parse_raw
    from tradeops.data.raw import RawFile

    body = (
        b"Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,1,2,0.5,1.5,1.5,100\n\n2020-01-03,1,2,0.5,x,1.5,100\n"
    )
    parsed = parse_raw(RawFile("T", body, "csv", "T.csv"))
    bad = [f for f in parsed.findings if f.rule == "non_numeric"]
    assert bad and bad[0].row == 3  # line 4 of the file, the third line after the header


def test_malformed_csv_names_the_row():
    from tradeops.data.parse import parse_raw
    from tradeops.data.raw import RawFile

    body = (
        b"Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,1,2,0.5,1.5,1.5,100\n2020-01-03,1,2,0.5,1.5,1.5,100,9\n"
    )
    f = parse_raw(RawFile("T", body, "csv", "T.csv")).findings
    assert f[0].rule == "malformed_csv" and f[0].row == 2
