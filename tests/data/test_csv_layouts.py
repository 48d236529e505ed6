"""CSV layouts through ``tradeops ingest --source csv`` (Alpha Vantage daily adjusted, newest first; Yahoo-style)
and the adjustment formula on a hand-made frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeops.data.clean import adjust

SPLIT_DAY = pd.Timestamp("2003-02-18")
DIVIDEND_DAY = pd.Timestamp("2003-02-19")


@pytest.fixture(scope="module")
def msft_2003(bars_fixtures) -> pd.DataFrame:
    """The sample's MSFT 2002-10-01..2003-06-30 (the Yahoo-style fixture), parsed, oldest first."""
    return pd.read_csv(bars_fixtures / "yahoo_msft_2003" / "MSFT.csv", parse_dates=["Date"])


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, tradeops, lake_of, bars_fixtures) -> dict:
    """Both layouts of the same MSFT bars, each ingested into its own home: {layout: (report, bars)}."""
    out = {}
    for name in ("av_daily_adjusted", "yahoo_msft_2003"):
        home = tmp_path_factory.mktemp(name) / "home"
        result = tradeops(home, "ingest", "--source", "csv", "--path", bars_fixtures / name, "--json")
        assert result.exit_code == 0, result.output
        out[name] = (result.json(), lake_of(home).read_bars(["MSFT"]))
    return out


def test_alpha_vantage_fixture_is_newest_first(bars_fixtures):
    head = (bars_fixtures / "av_daily_adjusted" / "MSFT.csv").read_text().splitlines()[:3]
    assert head[0] == ("timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient")
    assert head[1].startswith("2003-06-30,") and head[2].startswith("2003-06-27,")


@pytest.mark.parametrize(
    "name,layout,order",
    [("av_daily_adjusted", "alphavantage_adjusted", "descending"), ("yahoo_msft_2003", "yahoo", "ascending")],
)
def test_layout_is_ingested_with_the_right_rows(layouts, msft_2003, name, layout, order):
    report, bars = layouts[name]
    (res,) = report["tickers"]
    assert res["ticker"] == "MSFT" and res["layout"] == layout and res["order"] == order
    assert res["errors"] == []
    assert {w["rule"] for w in res["warnings"]} == {"short_history"}  # 188 bars < 250
    assert res["rows_in"] == res["rows_total"] == len(msft_2003) == 188
    assert [(e["date"], e["ratio_text"]) for e in res["events"]] == [("2003-02-18", "2:1")]
    assert bars["date"].is_monotonic_increasing
    assert bars["date"].tolist() == msft_2003["Date"].tolist()
    for ours, theirs in (
        ("open", "Open"),
        ("high", "High"),
        ("low", "Low"),
        ("close", "Close"),
        ("volume", "Volume"),
        ("adj_close", "Adj Close"),
    ):
        assert np.allclose(bars[ours], msft_2003[theirs], rtol=1e-12, atol=0), ours


@pytest.mark.parametrize("name", ["av_daily_adjusted", "yahoo_msft_2003"])
def test_split_restates_volume_and_keeps_adjusted_close_continuous(layouts, name):
    _, bars = layouts[name]
    before = bars["date"] < SPLIT_DAY
    assert np.allclose(bars.loc[before, "adj_volume"], 2 * bars.loc[before, "volume"])
    assert np.allclose(bars.loc[~before, "adj_volume"], bars.loc[~before, "volume"])
    assert bars.set_index("date")["split_ratio"].loc[SPLIT_DAY] == 2.0
    assert (bars.loc[bars["date"] != SPLIT_DAY, "split_ratio"] == 1.0).all()
    s = bars.set_index("date")
    i = s.index.get_loc(SPLIT_DAY)
    raw = s["close"].iloc[i] / s["close"].iloc[i - 1] - 1
    adj = s["adj_close"].iloc[i] / s["adj_close"].iloc[i - 1] - 1
    assert raw == pytest.approx(-0.4832, abs=1e-3)  # 48.30 -> 24.96 as traded
    assert adj == pytest.approx(0.0335, abs=1e-3)  # +3.4 %: the real move
    # No adjusted return anywhere looks like a split.
    assert (s["adj_close"].pct_change().abs().dropna() < 0.2).all()


def test_both_layouts_store_the_same_adjusted_bars(layouts):
    (_, av), (_, yahoo) = layouts["av_daily_adjusted"], layouts["yahoo_msft_2003"]
    cols = [
        "date",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "adj_open",
        "adj_high",
        "adj_low",
        "adj_close",
        "adj_volume",
        "split_ratio",
    ]
    pd.testing.assert_frame_equal(av[cols], yahoo[cols], rtol=1e-12)


def test_alpha_vantage_dividend_column_is_kept(layouts):
    _, av = layouts["av_daily_adjusted"]
    _, yahoo = layouts["yahoo_msft_2003"]
    div = av.set_index("date")["dividend"]
    assert div.loc[DIVIDEND_DAY] == pytest.approx(0.08)
    assert (div.drop(DIVIDEND_DAY) == 0.0).all()
    assert yahoo["dividend"].isna().all()  # the Yahoo layout has no dividend column


# --- the adjustment formula ------------------------------------------------------------------------------------------


def _frame(**cols) -> pd.DataFrame:
    n = len(cols["close"])
    df = pd.DataFrame(
        {
            "row": np.arange(1, n + 1),
            "date": pd.bdate_range("2021-03-01", periods=n),
            "open": cols["open"],
            "high": cols["high"],
            "low": cols["low"],
            "close": cols["close"],
            "volume": cols["volume"],
            "adj_close": cols.get("adj_close", [np.nan] * n),
            "dividend": cols.get("dividend", [np.nan] * n),
            "split_coefficient": cols.get("split_coefficient", [np.nan] * n),
        }
    )
    return df.astype({c: "float64" for c in df.columns if c not in ("row", "date")})


# A 2:1 split on day 3 and a dividend worth 2 % on day 5: factor F = adj_close/close = .49, .49, .98, .98, 1.
FACTOR = np.array([0.49, 0.49, 0.98, 0.98, 1.0])
HAND = dict(
    open=[100.0, 101.0, 51.0, 50.5, 50.0],
    high=[102.0, 103.0, 52.0, 51.0, 50.8],
    low=[99.0, 100.0, 50.0, 49.5, 49.0],
    close=[101.0, 102.0, 51.5, 50.0, 50.5],
    volume=[1000.0, 1100.0, 2400.0, 2000.0, 1800.0],
)


def test_adjust_formula_on_a_hand_made_frame():
    df = _frame(**HAND, adj_close=list(np.array(HAND["close"]) * FACTOR))
    out = adjust(df, split_tolerance=0.015)
    assert np.allclose(out["adj_open"], np.array(HAND["open"]) * FACTOR, rtol=1e-12)
    assert np.allclose(out["adj_high"], np.array(HAND["high"]) * FACTOR, rtol=1e-12)
    assert np.allclose(out["adj_low"], np.array(HAND["low"]) * FACTOR, rtol=1e-12)
    assert np.allclose(out["adj_close"], np.array(HAND["close"]) * FACTOR, rtol=1e-12)
    assert out["split_ratio"].tolist() == [1.0, 1.0, 2.0, 1.0, 1.0]  # the 2 % dividend step is no split
    assert out["adj_volume"].tolist() == [2000.0, 2200.0, 2400.0, 2000.0, 1800.0]  # x2 before the split only
    pd.testing.assert_frame_equal(out[df.columns], df)  # raw columns untouched
    assert out is not df and "adj_open" not in df.columns  # pure


def test_adjust_uses_the_split_coefficient_when_the_source_has_one():
    # Alpha Vantage: a 3:1 split on day 4 declared by split_coefficient, prices already adjusted consistently.
    f = np.array([1 / 3, 1 / 3, 1 / 3, 1.0, 1.0])
    df = _frame(
        **HAND,
        adj_close=list(np.array(HAND["close"]) * f),
        split_coefficient=[1, 1, 1, 3, 1],
        dividend=[0, 0, 0, 0, 0.1],
    )
    out = adjust(df)
    assert out["split_ratio"].tolist() == [1.0, 1.0, 1.0, 3.0, 1.0]
    assert np.allclose(out["adj_volume"], np.array(HAND["volume"]) * [3, 3, 3, 1, 1])
    assert np.allclose(out["adj_open"], np.array(HAND["open"]) * f)
    assert out["dividend"].tolist() == [0, 0, 0, 0, 0.1]


def test_adjust_without_adjusted_close_takes_prices_as_traded():
    out = adjust(_frame(**HAND))
    for c in ("open", "high", "low", "close"):
        assert out[f"adj_{c}"].tolist() == HAND[c]
    assert out["adj_volume"].tolist() == HAND["volume"]
    assert (out["split_ratio"] == 1.0).all()


def test_adjust_recognises_a_reverse_split():
    f = np.array([10.0, 10.0, 1.0, 1.0, 1.0])  # 1:10 reverse split on day 3
    out = adjust(_frame(**HAND, adj_close=list(np.array(HAND["close"]) * f)))
    assert out["split_ratio"].tolist() == [1.0, 1.0, 0.1, 1.0, 1.0]
    assert np.allclose(out["adj_volume"], np.array(HAND["volume"]) * [0.1, 0.1, 1, 1, 1])
