"""Reads over Delta tables whose files hold the ticker column in different string layouts (``string``,
``large_string``, ``string_view``), as a table gets after appends and multi-ticker merges: every public read filters
tickers correctly, at every version, without depending on per-file statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tradeops.data import store as st
from tradeops.features.labels import LABEL_COLUMN
from tradeops.features.store import (
    LABELS_SCHEMA,
    FeatureSet,
    build_features,
    online_features,
    read_features,
    read_labels,
    ticker_features,
    ticker_labels,
    training_frame,
)

DATES = pd.bdate_range("2000-03-01", periods=400)
_VALUES = [
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
    "dividend",
    "split_ratio",
]


def _bars(ticker: str, start: int, n: int, seed: int, bump: float = 1.0) -> pd.DataFrame:
    """Synthetic daily bars of one ticker on sessions ``start .. start+n-1`` (a seeded random walk)."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(DATES))))[start : start + n] * bump
    df = pd.DataFrame(
        {
            "ticker": ticker,
            "date": DATES[start : start + n],
            "open": close * 1.001,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1e6 + rng.integers(0, 1000, len(DATES))[start : start + n].astype(float),
        }
    )
    for c in ("open", "high", "low", "close", "volume"):
        df[f"adj_{c}"] = df[c]
    df["dividend"], df["split_ratio"] = 0.0, 1.0
    return df.assign(source="test", ingested_at=st.utcnow(), report_id=f"r-{ticker}-{start}")


def _with_layout(tbl: pa.Table, layout: pa.DataType) -> pa.Table:
    return tbl.cast(pa.schema([pa.field(f.name, layout) if f.type == pa.string() else f for f in tbl.schema]))


def _append_as(lake: st.Lake, table: str, tbl: pa.Table, layout: pa.DataType) -> None:
    """Append rows whose string columns are physically ``layout`` (what another delta-rs writer may produce)."""
    from deltalake import write_deltalake

    write_deltalake(lake.uri(table), _with_layout(tbl, layout), mode="append")


def _layouts(lake: st.Lake, table: str, version: int | None = None) -> set[str]:
    dataset = lake.table(table, version).to_pyarrow_dataset()
    return {str(f.physical_schema.field("ticker").type) for f in dataset.get_fragments()}


def _upsert_expected(expected: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    keep = expected.set_index(["ticker", "date"]).index.difference(rows.set_index(["ticker", "date"]).index)
    out = pd.concat([expected.set_index(["ticker", "date"]).loc[keep].reset_index(), rows], ignore_index=True)
    return out.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[st.Lake, list[pd.DataFrame]]:
    """A bars table written in five versions with all three layouts live in the current one; and the expected
    content of every version (value columns), built independently in pandas."""
    lake = st.Lake(str(tmp_path_factory.mktemp("layouts") / "lake"))
    steps: list[pd.DataFrame] = []
    a = _bars("A", 0, 200, 1)
    lake.append(st.BARS, a, {"operation": "test"})  # v0: string
    steps.append(a)
    bd = pd.concat([_bars("B", 0, 200, 2), _bars("D", 0, 250, 4)], ignore_index=True)
    lake.upsert(st.BARS, bd, {"operation": "test"})  # v1: MERGE of two tickers -> string_view
    steps.append(bd)
    c = _bars("C", 0, 300, 3)
    _append_as(lake, st.BARS, st._to_arrow(c, st.BARS_SCHEMA), pa.large_string())  # v2: large_string
    steps.append(c)
    # v3: two tickers again, updated (bumped) and new rows: rewrites only the B/D file
    upd = pd.concat([_bars("B", 150, 150, 2, bump=1.5), _bars("D", 200, 100, 4, bump=0.5)], ignore_index=True)
    lake.upsert(st.BARS, upd, {"operation": "test"})
    steps.append(upd)
    expected, versions = steps[0].iloc[0:0], []
    for rows in steps:
        expected = _upsert_expected(expected, rows)
        versions.append(expected[["ticker", "date", *_VALUES]])
    return lake, versions


def _values(df: pd.DataFrame) -> pd.DataFrame:
    out = df[["ticker", "date", *_VALUES]].sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    out["date"] = pd.to_datetime(out["date"])
    return out


def test_fixture_mixes_every_string_layout(mixed):
    lake, versions = mixed
    assert lake.version(st.BARS) == len(versions) - 1 == 3
    assert _layouts(lake, st.BARS) == {"string", "large_string", "string_view"}


@pytest.mark.parametrize("tickers", [["A"], ["B", "D"], ["C", "A"], ["D", "C", "B"], ["A", "B", "C", "D"], ["Z"]])
def test_every_bars_read_filters_tickers_over_mixed_layouts(mixed, tickers):
    lake, versions = mixed
    for version, full in enumerate(versions):
        expected = _values(full.loc[full["ticker"].isin(tickers)])
        got = lake.read_bars(tickers, version=version)
        pd.testing.assert_frame_equal(_values(got), expected, check_dtype=False)
        read = lake.read(st.BARS, version=version, tickers=tickers)
        pd.testing.assert_frame_equal(_values(read), expected, check_dtype=False)
        arrow = lake.arrow(st.BARS, version=version, tickers=tickers, columns=["date", "adj_close"])
        assert arrow.column_names == ["date", "adj_close"]
        assert arrow.num_rows == len(expected)
        assert sorted(arrow.column("adj_close").to_pylist()) == sorted(expected["adj_close"].tolist())
        typed = lake.arrow(st.BARS, version=version, tickers=tickers)
        assert typed.schema.field("ticker").type == pa.string()
        assert sorted(set(typed.column("ticker").to_pylist())) == sorted(set(tickers) - {"Z"} & set(full["ticker"]))


def test_multi_ticker_update_mixed_string_layouts(tmp_path, tradeops, lake_of):
    """Regression: the second ingestion of IBM+MSFT (a MERGE writing ``string_view`` next to ``string``) crashed in
    ``_verify_destination`` with ArrowNotImplementedError (string, string_view). The report: the sample's first
    1,000 rows, then the full files; here the first 1,000, then 1,050 (the same two-ticker MERGE, less to validate)."""
    sample = Path(st.__file__).resolve().parents[1] / "sample_data"
    first, full = tmp_path / "first", tmp_path / "full"
    first.mkdir()
    full.mkdir()
    for t in ("IBM", "MSFT"):
        lines = (sample / f"{t}.csv").read_text().splitlines(keepends=True)
        (first / f"{t}.csv").write_text("".join(lines[:1001]))
        (full / f"{t}.csv").write_text("".join(lines[:1051]))
    home = tmp_path / "home"
    one = tradeops(home, "ingest", "--source", "csv", "--path", first, "--json")
    assert one.exit_code == 0, one.output
    two = tradeops(home, "ingest", "--source", "csv", "--path", full, "--json")
    assert two.exit_code == 0, two.output
    assert "Traceback" not in two.output
    report = two.json()
    assert report["bars_version_after"] == 1 and report["state"] == "complete"
    lake = lake_of(home)
    assert "string_view" in _layouts(lake, st.BARS)
    bars = lake.read_bars(["IBM", "MSFT"])
    for t in ("IBM", "MSFT"):
        dates = pd.read_csv(full / f"{t}.csv")["Date"]
        got = bars.loc[bars["ticker"] == t, "date"]
        assert len(got) == got.nunique() == len(dates) == 1050
        assert set(got.dt.strftime("%Y-%m-%d")) == set(dates)
    assert {r["ticker"]: r["rows_new"] for r in report["tickers"]} == {"IBM": 50, "MSFT": 50}


@pytest.fixture(scope="module")
def features(mixed):
    """Features and labels of A and B built by ``build_features``, then C's rows appended with other layouts."""
    lake, _ = mixed
    fs = FeatureSet.from_preset("cnn-ta")
    build_features(lake, fs, ["A", "B"])
    c_bars = lake.read_bars(["C"])
    feats = ticker_features(c_bars, fs, "C")
    cols = [pa.array(["C"] * len(feats), pa.string()), pa.array(feats.index.date, pa.date32())]
    cols += [pa.array(feats[n].to_numpy(np.float32)) for n in fs.names]
    _append_as(lake, fs.table, pa.Table.from_arrays(cols, schema=fs.schema()), pa.string_view())
    labels = ticker_labels(c_bars, fs.label_window).reset_index().assign(ticker="C")
    _append_as(lake, fs.labels_table, st._to_arrow(labels, LABELS_SCHEMA), pa.large_string())
    return lake, fs


def test_feature_store_reads_filter_tickers_over_mixed_layouts(features):
    lake, fs = features
    assert len(_layouts(lake, fs.table)) == 2 and len(_layouts(lake, fs.labels_table)) == 2
    everything = read_features(lake, fs)
    assert set(everything["ticker"]) == {"A", "B", "C"}
    for tickers in (["C"], ["A", "C"], ["B"]):
        got = read_features(lake, fs, tickers)
        expected = everything.loc[everything["ticker"].isin(tickers)].reset_index(drop=True)
        assert len(got) == len(lake.read_bars(tickers)) > 0
        pd.testing.assert_frame_equal(got, expected)
    c = read_features(lake, fs, ["C"]).set_index("date")[fs.names]
    direct = ticker_features(lake.read_bars(["C"]), fs, "C").astype(np.float32)
    np.testing.assert_array_equal(c.to_numpy(), direct.to_numpy())

    labels = read_labels(lake, fs, ["C", "A"])
    assert set(labels["ticker"]) == {"A", "C"} and labels[LABEL_COLUMN].notna().all()
    expected_c = ticker_labels(lake.read_bars(["C"]), fs.label_window)
    assert labels.loc[labels["ticker"] == "C", LABEL_COLUMN].tolist() == expected_c[LABEL_COLUMN].tolist()

    as_of = DATES[250]
    frame = training_frame(lake, fs, ["C", "B"], as_of=as_of)
    assert set(frame["ticker"]) == {"B", "C"}
    assert (pd.to_datetime(frame["label_known_at"]) <= as_of).all()
    assert len(frame) == len(read_labels(lake, fs, ["C", "B"], as_of=as_of))

    vec = online_features(lake, fs, "C")  # C's bars sit in the large_string file
    assert vec.date == DATES[299]
    np.testing.assert_array_equal(vec.values.to_numpy(), direct.iloc[-1].to_numpy())
