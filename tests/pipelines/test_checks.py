"""Blocking checks on raw_bars: a failed Data-level test stops bars/features/labels and leaves the bars table as it
was; each finding rule belongs to one check family; the staged cut keeps exactly the rows known by the date."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from tradeops.data import store as st
from tradeops.data.raw import RawFile
from tradeops.data.staging import FAMILIES, RULE_FAMILY, cut_through, family_of
from tradeops.pipelines.instance import instance_for
from tradeops.pipelines.run import run_job

DAY1, DAY2 = "2013-02-28", "2013-03-01"


def _edit_row(path, day: str, column: int, value: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    for i, ln in enumerate(lines):
        if ln.startswith(day):
            fields = ln.rstrip("\n").split(",")
            fields[column] = value
            lines[i] = ",".join(fields) + "\n"
    path.write_text("".join(lines))


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory):
    """A home whose IBM bars were ingested by ingest_daily as of DAY1 (file: the sample 2009..DAY2)."""
    from pipeline_homes import pipeline_settings, write_bars

    root = tmp_path_factory.mktemp("checks")
    bars_dir = write_bars(root / "bars")
    settings = pipeline_settings(root / "home", bars_dir)
    (first,) = run_job(settings, "ingest_daily", day=DAY1)
    assert first.ok, first.message()
    return settings, bars_dir


def test_a_failed_contract_check_stops_downstream_and_keeps_the_bars_version(stored):
    settings, bars_dir = stored
    lake = st.lake_for(settings)
    before_version, before = lake.version(st.BARS), lake.read_bars(["IBM"])
    good = (bars_dir / "IBM.csv").read_text()
    try:
        _edit_row(bars_dir / "IBM.csv", DAY2, 4, "-1.0")  # close <= 0 on the new day
        (run,) = run_job(settings, "ingest_daily", day=DAY2)
    finally:
        (bars_dir / "IBM.csv").write_text(good)
    assert run.status == "FAILURE"
    failed = {c["check"] for c in run.failed_checks}
    assert "contract" in failed and "conflicts" not in failed
    rules = {f["rule"] for c in run.failed_checks for f in c["findings"]}
    assert "price_positive" in rules
    msg = run.message()
    assert "raw_bars:contract" in msg and "IBM" in msg and DAY2 in msg and "[price_positive]" in msg
    assert set(run.materializations) == {"raw_bars"}  # bars, features, labels never ran
    assert lake.version(st.BARS) == before_version
    assert lake.read_bars(["IBM"]).equals(before)
    partitions = instance_for(settings).get_materialized_partitions(dg.AssetKey("bars"))
    assert f"{DAY2}|IBM" not in partitions


def test_a_changed_stored_bar_fails_the_conflicts_check_only(stored):
    settings, bars_dir = stored
    lake = st.lake_for(settings)
    before_version = lake.version(st.BARS)
    good = (bars_dir / "IBM.csv").read_text()
    try:
        _edit_row(bars_dir / "IBM.csv", "2013-02-27", 4, "250.0")  # the stored close of that day was ~199
        _edit_row(bars_dir / "IBM.csv", "2013-02-27", 2, "251.0")  # keep high >= close: the contract holds
        (run,) = run_job(settings, "ingest_daily", day=DAY2)
    finally:
        (bars_dir / "IBM.csv").write_text(good)
    assert run.status == "FAILURE"
    assert {c["check"] for c in run.failed_checks} == {"conflicts"}
    assert "[conflict]" in run.message() and "2013-02-27" in run.message()
    assert lake.version(st.BARS) == before_version


def test_the_next_day_passes_every_check_and_writes_one_new_bar(stored):
    settings, _ = stored
    lake = st.lake_for(settings)
    before = lake.version(st.BARS)
    (run,) = run_job(settings, "ingest_daily", day=DAY2)
    assert run.ok, run.message()
    assert all(c["passed"] for c in run.checks)
    assert run.materializations["bars"]["rows_written"] == 1
    assert lake.version(st.BARS) == before + 1
    assert lake.read_bars(["IBM"])["date"].max() == __import__("pandas").Timestamp(DAY2)


def test_every_family_has_a_rule_and_unknown_rules_are_contract_breaches():
    assert set(RULE_FAMILY.values()) == set(FAMILIES)
    assert family_of("conflict") == "conflicts" and family_of("drift") == "drift"
    assert family_of("out_of_range") == "statistical_schema" and family_of("unadjusted_split") == "anomalies"
    assert family_of("a_rule_added_later") == "contract"


def test_rules_the_checks_produce_are_all_mapped():
    """Every rule literal in the data package's findings is in the mapping (none falls to the default silently)."""
    import re
    from pathlib import Path

    import tradeops.data as data
    from tradeops.data.contract import RULES

    src = "\n".join(p.read_text() for p in Path(data.__file__).parent.glob("*.py") if p.name != "staging.py")
    found = set(re.findall(r'Finding\(\s*\w+,\s*"([a-z_]+)"', src)) | set(re.findall(r'fail\("([a-z_]+)"', src))
    found |= set(RULES)
    repair_only = {"report_lost", "report_completed", "stats_recomputed", "stats_dropped", "report_rows_missing"}
    missing = sorted(found - set(RULE_FAMILY) - repair_only)
    assert missing == []


HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


@settings(max_examples=60, deadline=None)
@given(
    offsets=hs.lists(hs.integers(0, 60), min_size=0, max_size=30, unique=True),
    through=hs.integers(-5, 65),
    descending=hs.booleans(),
)
def test_cut_keeps_exactly_the_rows_dated_by_the_day(offsets, through, descending):
    base = date(2013, 1, 1)
    days = sorted(base + timedelta(days=o) for o in offsets)
    if descending:
        days = days[::-1]
    body = "".join(f"{d.isoformat()},1,2,0.5,1.5,1.5,100\n" for d in days)
    raw = RawFile("IBM", (HEADER + body).encode(), "csv", "mem")
    limit = base + timedelta(days=through)
    cut, kept = cut_through(raw, limit)
    lines = cut.content.decode().splitlines()
    assert lines[0] + "\n" == HEADER
    expected = [d.isoformat() for d in days if d <= limit]
    assert [ln[:10] for ln in lines[1:]] == expected
    assert kept == len(expected) and cut.declared_size == len(cut.content)


def test_cut_leaves_a_payload_it_cannot_read_unchanged():
    raw = RawFile("IBM", b'{"Note": "throttled"}', "alphavantage", "url")
    assert cut_through(raw, date(2013, 1, 1)) == (raw, -1)
    short = RawFile("IBM", (HEADER + "2013-01-02,1,2,0.5,1.5,1.5,100\n").encode(), "csv", "f", declared_size=999)
    assert cut_through(short, date(2013, 1, 1))[0] is short  # a size mismatch stays visible to the contract check


def test_writer_lock_waits_for_the_holder_when_asked(tmp_path):
    """Per-ticker steps in parallel processes wait their turn for the home's lock instead of failing at once."""
    import threading
    import time

    from tradeops.errors import TradeopsError

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with st.writer_lock(tmp_path):
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    with pytest.raises(TradeopsError, match="another ingestion is running"):
        with st.writer_lock(tmp_path):
            pass
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    with st.writer_lock(tmp_path, wait_seconds=10):
        waited = time.monotonic() - started
    t.join()
    assert 0.2 < waited < 5
