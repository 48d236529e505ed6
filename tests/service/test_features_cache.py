"""Stored-feature cache: rows equal the feature store's, exact-date lookups, misses, refresh on a new version."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tradeops.config import load_settings
from tradeops.data import store as st
from tradeops.data.ingest import ingest
from tradeops.data.sources import SampleSource
from tradeops.deploy.features_cache import StoredFeatures
from tradeops.errors import UsageError
from tradeops.features import store as fstore
from tradeops.features.store import FeatureSet, build_features, online_features, read_features

CNN = FeatureSet.from_preset("cnn-ta")
TICKERS = ["IBM", "FB"]


@pytest.fixture(scope="module")
def built_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("cache-home") / "home"
    settings = load_settings(home=home)
    ingest(SampleSource(), settings, TICKERS, today=date(2026, 11, 26))
    build_features(st.lake_for(settings), CNN)
    return home


@pytest.fixture(scope="module")
def shared_lake(built_home) -> st.Lake:
    """Read-only lake for tests that do not write."""
    return st.lake_for(load_settings(home=built_home))


@pytest.fixture()
def lake(built_home, tmp_path) -> st.Lake:
    """A private copy for tests that write new table versions."""
    home = Path(shutil.copytree(built_home, tmp_path / "home"))
    return st.lake_for(load_settings(home=home))


@pytest.fixture(scope="module")
def cache(shared_lake) -> StoredFeatures:
    return StoredFeatures(shared_lake, CNN)


def test_every_complete_row_equals_the_feature_store_row_and_warmup_rows_miss(shared_lake, cache):
    frame = read_features(shared_lake, CNN)
    values = frame[CNN.names].to_numpy(dtype=np.float64)
    complete = np.isfinite(values).all(axis=1)
    assert 0 < complete.sum() < len(frame)  # the sample has warm-up rows: both branches are exercised
    assert len(cache) == complete.sum()
    assert cache.version == shared_lake.version(CNN.table)
    for i, (ticker, d) in enumerate(zip(frame["ticker"], frame["date"].dt.date)):
        got = cache.row(ticker, d)
        if complete[i]:
            assert got is not None, (ticker, d)
            vec, when = got
            assert when == d
            np.testing.assert_array_equal(vec, values[i])
        else:
            assert got is None, (ticker, d)


def test_a_row_equals_what_score_online_would_compute_from_the_bars(shared_lake, cache):
    """The cache is only a shortcut: its row for (ticker, d) is the online feature vector at the close of d."""
    for d in ["2005-06-01", "2012-06-01", "2013-03-01"]:
        online = online_features(shared_lake, CNN, "IBM", as_of=date.fromisoformat(d))
        vec, when = cache.row("IBM", d)
        assert when == online.date.date()
        np.testing.assert_allclose(vec, online.values.to_numpy(dtype=np.float64), rtol=1e-6, atol=1e-6)


def test_as_of_as_string_date_or_timestamp_give_the_same_row(cache):
    import pandas as pd

    a = cache.row("IBM", "2012-06-01")
    b = cache.row("IBM", date(2012, 6, 1))
    c = cache.row("IBM", pd.Timestamp("2012-06-01"))
    assert a is not None and b is not None and c is not None
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[0], c[0])
    assert a[1] == b[1] == c[1] == date(2012, 6, 1)


@pytest.mark.parametrize(
    ("ticker", "as_of"),
    [
        ("ZZZ", "2012-06-01"),  # unknown ticker
        ("ibm", "2012-06-01"),  # tickers are stored upper-case; the caller normalises
        ("IBM", "2012-06-02"),  # a Saturday: exact dates only, never the previous close
        ("IBM", "2030-01-02"),  # after the last stored row
        ("IBM", "1990-01-02"),  # before the first
    ],
)
def test_a_miss_returns_none(cache, ticker, as_of):
    assert cache.row(ticker, as_of) is None


def test_a_malformed_date_is_a_usage_error_naming_as_of(cache):
    with pytest.raises(UsageError, match=r"^as_of: \[iso_date\]"):
        cache.row("IBM", "2012-13-01")


def test_rows_are_read_only_views(cache):
    vec, _ = cache.row("IBM", "2012-06-01")
    with pytest.raises(ValueError):
        vec[0] = 1.0


def test_columns_give_the_bundles_feature_order(shared_lake, cache):
    order = list(reversed(CNN.names))
    reordered = StoredFeatures(shared_lake, CNN, columns=order)
    np.testing.assert_array_equal(reordered.row("IBM", "2012-06-01")[0], cache.row("IBM", "2012-06-01")[0][::-1])


def test_unknown_or_repeated_columns_are_a_usage_error(shared_lake):
    with pytest.raises(UsageError, match=r"^columns: \[feature_set\].*'nope'"):
        StoredFeatures(shared_lake, CNN, columns=[*CNN.names[:3], "nope"])
    with pytest.raises(UsageError, match=r"^columns: \[unique\]"):
        StoredFeatures(shared_lake, CNN, columns=[CNN.names[0], CNN.names[0]])


def test_tickers_limits_what_is_loaded(shared_lake):
    only = StoredFeatures(shared_lake, CNN, tickers=["FB"])
    assert only.row("FB", "2013-03-01") is not None
    assert only.row("IBM", "2013-03-01") is None


def test_refresh_reloads_after_a_new_table_version_and_not_otherwise(lake):
    cache = StoredFeatures(lake, CNN)
    before = cache.version
    old_fb = cache.row("FB", "2013-03-01")
    assert old_fb is not None
    assert cache.refresh() is False and cache.version == before

    lake.delete_tickers(CNN.table, ["FB"], {"operation": "test_delete"})
    assert cache.row("FB", "2013-03-01") is not None  # still the loaded snapshot until refresh
    assert cache.refresh() is True
    assert cache.version == lake.version(CNN.table) > before
    assert cache.row("FB", "2013-03-01") is None
    assert cache.row("IBM", "2013-03-01") is not None

    # a rebuild with changed values: double one feature of IBM and write it as a new version
    ibm = st.read_delta(lake.table(CNN.table), tickers=["IBM"]).cast(CNN.schema())
    name = CNN.names[7]
    j = ibm.schema.get_field_index(name)
    doubled = ibm.set_column(j, name, pa.array(ibm.column(name).to_numpy(zero_copy_only=False) * 2, pa.float32()))
    old_ibm = cache.row("IBM", "2013-03-01")[0].copy()
    fstore._write(lake, CNN.table, CNN.schema(), iter(doubled.to_batches()), ["IBM"], {"operation": "test_double"})
    assert cache.refresh() is True
    new_ibm = cache.row("IBM", "2013-03-01")[0]
    assert new_ibm[7] == pytest.approx(2 * old_ibm[7], rel=1e-6)
    np.testing.assert_array_equal(np.delete(new_ibm, 7), np.delete(old_ibm, 7))


def test_an_absent_table_loads_empty_and_refresh_picks_up_the_first_build(tmp_path):
    settings = load_settings(home=tmp_path / "home")
    ingest(SampleSource(), settings, ["IBM"], today=date(2026, 11, 26))
    lake = st.lake_for(settings)
    cache = StoredFeatures(lake, CNN)
    assert cache.version is None and len(cache) == 0
    assert cache.row("IBM", "2012-06-01") is None
    build_features(lake, CNN)
    assert cache.refresh() is True
    assert cache.version == lake.version(CNN.table)
    assert cache.row("IBM", "2012-06-01") is not None
