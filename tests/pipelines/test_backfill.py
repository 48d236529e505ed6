"""Backfill over a date range: each trading date materialised once per ticker, none for a weekend or holiday; a
ticker listed after a date is skipped for it (not a failure)."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pytest
from pipeline_homes import write_bars

from tradeops.data import store as st
from tradeops.errors import UsageError
from tradeops.pipelines.instance import instance_for
from tradeops.pipelines.run import backfill, run_job

# Presidents' Day 2013-02-18 (a Monday) is an XNYS holiday; 16-17 are a weekend.
START, END = "2013-02-14", "2013-02-19"
SESSIONS = ["2013-02-14", "2013-02-15", "2013-02-19"]


def test_backfill_materialises_each_trading_date_once_and_no_holiday(make_pipeline_home):
    settings = make_pipeline_home("bf", end=END)
    runs = backfill(settings, "ingest_daily", start=START, end=END)
    assert [r.partition for r in runs] == [f"{d}|IBM" for d in SESSIONS]
    assert all(r.ok for r in runs), [r.message() for r in runs if not r.ok]
    assert len({r.run_id for r in runs}) == 3
    instance = instance_for(settings)
    tags = {instance.get_run_by_id(r.run_id).tags.get("tradeops/backfill") for r in runs}
    assert len(tags) == 1 and None not in tags
    assert instance.get_materialized_partitions(dg.AssetKey("bars")) == {f"{d}|IBM" for d in SESSIONS}
    events = instance.fetch_materializations(dg.AssetKey("bars"), limit=100).records
    assert Counter(e.partition_key for e in events) == Counter({f"{d}|IBM": 1 for d in SESSIONS})
    # day by day: the first run stores the history through the 14th, each later session adds its own bar
    assert [r.materializations["bars"]["rows_written"] for r in runs][1:] == [1, 1]
    lake = st.lake_for(settings)
    assert str(lake.read_bars(["IBM"])["date"].max().date()) == SESSIONS[-1]


def test_backfill_of_a_range_without_sessions_is_a_usage_error(make_pipeline_home):
    settings = make_pipeline_home("bf-empty", end=END)
    with pytest.raises(UsageError, match="no XNYS trading date"):
        backfill(settings, "ingest_daily", start="2013-02-16", end="2013-02-18")
    with pytest.raises(UsageError, match="before pipelines.start_date"):
        backfill(settings, "ingest_daily", start="2001-01-02", end="2001-01-05")


def test_a_ticker_listed_after_the_date_is_skipped_not_failed(make_pipeline_home, tmp_path):
    settings = make_pipeline_home("late", tickers=("IBM", "MSFT"), end=END)
    write_bars(settings.pipelines.source_path, ("MSFT",), start="2013-02-19", end=END)
    (run,) = run_job(settings, "ingest_daily", day="2013-02-15", tickers=["MSFT"])
    assert run.ok, run.message()
    assert run.materializations == {} and "bars" in run.skipped
    assert st.lake_for(settings).version(st.BARS) is None
