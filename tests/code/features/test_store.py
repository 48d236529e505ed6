"""Feature store: build from stored bars, point-in-time reads, online/offline parity, labels kept apart."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeops.config import load_settings
from tradeops.data import store as st
from tradeops.data.ingest import ingest
from tradeops.data.sources import SampleSource
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import CLASSES
from tradeops.features.store import (
    FeatureSet,
    build_features,
    class_balance,
    export_frame,
    fit_image_transform,
    online_features,
    read_features,
    read_labels,
    training_frame,
)

TICKERS = ["IBM", "FB"]


@pytest.fixture(scope="module")
def built_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("fs-home")
    settings = load_settings(home=home)
    ingest(SampleSource(), settings, TICKERS, today=date(2026, 11, 26))
    lake = st.lake_for(settings)
    build_features(lake, FeatureSet.from_preset("cnn-ta"))
    return home


@pytest.fixture()
def lake(built_home, tmp_path) -> st.Lake:
    home = Path(shutil.copytree(built_home, tmp_path / "home"))
    return st.lake_for(load_settings(home=home))


CNN = FeatureSet.from_preset("cnn-ta")


def test_build_writes_one_row_per_bar_and_keeps_labels_in_their_own_table(lake):
    feats = read_features(lake, CNN)
    bars = lake.read_bars()
    assert len(feats) == len(bars)
    assert list(feats.columns) == ["ticker", "date", *CNN.names]
    assert not any(c.startswith("label") for c in feats.columns)
    labels = read_labels(lake, CNN)
    assert set(labels["label"].unique()) <= set(CLASSES)
    assert list(labels.columns) == ["ticker", "date", "label", "label_known_at"]
    # label known h=5 trading days later, so each ticker's last 5 days have no label
    ibm_dates = bars.loc[bars["ticker"] == "IBM", "date"].reset_index(drop=True)
    ibm_labels = labels.loc[labels["ticker"] == "IBM"].reset_index(drop=True)
    assert ibm_labels["date"].iloc[-1] == ibm_dates.iloc[-6]
    assert ibm_labels["label_known_at"].iloc[-1] == ibm_dates.iloc[-1]


def test_stored_features_equal_a_fresh_computation_float32(lake):
    feats = read_features(lake, CNN, ["IBM"])
    vec = online_features(lake, CNN, "IBM")
    assert vec.date == feats["date"].iloc[-1]
    np.testing.assert_array_equal(vec.values.to_numpy(), feats[CNN.names].iloc[-1].to_numpy(dtype=np.float32))


def test_online_read_as_of_a_past_date_matches_the_offline_row(lake):
    when = pd.Timestamp("2008-10-15")
    feats = read_features(lake, CNN, ["IBM"])
    row = feats.loc[feats["date"] == when, CNN.names].iloc[0].to_numpy(dtype=np.float32)
    vec = online_features(lake, CNN, "IBM", as_of=when)
    assert vec.date == when
    np.testing.assert_array_equal(vec.values.to_numpy(), row)


def test_point_in_time_reads_hide_rows_and_labels_not_yet_known(lake):
    as_of = pd.Timestamp("2005-06-15")
    feats = read_features(lake, CNN, ["IBM"], as_of=as_of)
    assert feats["date"].max() == as_of
    labels = read_labels(lake, CNN, ["IBM"], as_of=as_of)
    assert (labels["label_known_at"] <= as_of).all()
    assert labels["date"].max() < as_of  # the last 5 sessions' labels are not known yet
    frame = training_frame(lake, CNN, ["IBM"], as_of=as_of)
    assert (frame["label_known_at"] <= as_of).all() and len(frame) == len(labels)


def test_online_read_refuses_a_date_inside_the_warm_up(lake):
    with pytest.raises(TradeopsError, match=r"IBM 2000-03-0\d: \[warmup\]"):
        online_features(lake, CNN, "IBM", as_of=pd.Timestamp("2000-03-03"))


def test_rebuild_is_a_new_version_with_identical_content_and_records_lineage(lake):
    before = read_features(lake, CNN)
    result = build_features(lake, CNN, ["IBM"])
    assert result.features_version == 1
    after = read_features(lake, CNN)
    pd.testing.assert_frame_equal(before, after)
    lineage = lake.read(st.LINEAGE)
    assert (lineage["consumer"] == CNN.table).sum() == 2


def test_unknown_ticker_and_empty_lake_are_usage_errors(lake, tmp_path):
    with pytest.raises(UsageError, match="ZZZ"):
        build_features(lake, CNN, ["ZZZ"])
    empty = st.lake_for(load_settings(home=tmp_path / "empty"))
    with pytest.raises(UsageError, match="ingest"):
        build_features(empty, CNN)
    with pytest.raises(UsageError, match="features build"):
        read_features(empty, CNN)


def test_feature_sets_are_keyed_by_their_version():
    assert FeatureSet.from_preset("cnn-ta").table != FeatureSet.from_preset("thesis").table
    assert FeatureSet.from_preset("cnn-ta", windows=range(6, 20)).version != CNN.version
    with pytest.raises(UsageError, match="preset"):
        FeatureSet.from_preset("nope")


def test_export_has_date_features_label_and_label_known_at(lake):
    frame = export_frame(lake, CNN, "IBM")
    assert list(frame.columns) == ["date", *CNN.names, "label", "label_known_at"]
    assert frame["label"].isna().sum() == 10  # first and last h=5 days have no full window


def test_class_balance_counts_per_ticker_and_year(lake):
    balance = class_balance(read_labels(lake, CNN))
    assert set(balance.index.get_level_values("ticker")) == set(TICKERS)
    assert (balance[list(CLASSES)].sum(axis=1) == balance["n"]).all()
    assert balance["n"].sum() == len(read_labels(lake, CNN))


def test_image_transform_fitted_point_in_time_never_sees_later_rows(lake):
    as_of = pd.Timestamp("2006-01-03")
    transform = fit_image_transform(lake, CNN, ["IBM"], as_of=as_of)
    rows = read_features(lake, CNN, ["IBM"], as_of=as_of).dropna()
    np.testing.assert_allclose(transform.data_max_, rows[CNN.names].max().to_numpy(dtype=np.float64))
    later = read_features(lake, CNN, ["IBM"]).dropna()
    assert not np.allclose(transform.data_max_, later[CNN.names].max().to_numpy(dtype=np.float64))
