"""An ingestion killed (SIGKILL) at every step boundary, or failing with an error, leaves the home consistent once the
next ingestion ran: bars as an uninterrupted run leaves them, bar_stats at the current bars version for the touched
tickers, one validation row per ticker and a final JSON for every report in the bars history, quarantine rows once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tradeops.config import load_settings
from tradeops.data import store as st
from tradeops.data.ingest import ingest
from tradeops.data.quality import TickerStats
from tradeops.data.repair import pending_repairs
from tradeops.data.sources import CsvSource

pytestmark = pytest.mark.slow  # trains models or starts processes; `pytest -m 'not slow'` skips

MARKERS = ["before_bars_commit", "after_bars_commit", "after_stats", "after_quarantine", "after_reports"]
STAT_COLUMNS = [c for c in TickerStats.__dataclass_fields__ if c != "ticker"]
VALUES = ["open", "high", "low", "close", "volume", "adj_open", "adj_high", "adj_low", "adj_close", "adj_volume"]
BAD_ROWS = 300  # rows of the quarantined AAPL file


def _killed_run(home: Path, directory: Path, marker: str) -> int:
    """``tradeops ingest`` in its own process, SIGKILLed by the fault hook at ``marker``; returns its pid."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_") and k != "ALPHAVANTAGE_API_KEY"}
    env |= {"TRADEOPS_CONFIG": str(home.parent / "no-config.yaml"), "TRADEOPS_FAULT_AT": marker}
    argv = [
        sys.executable,
        "-m",
        "tradeops.cli.main",
        "--home",
        str(home),
        "ingest",
        "--source",
        "csv",
        "--path",
        str(directory),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    return proc.pid


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, write_bars, ibm_300, msft_300) -> tuple[Path, Path]:
    """(first, update): IBM and MSFT's first 250 sessions; then all 300 of each plus an AAPL file with a zero-volume
    run (quarantined), so the update writes bars, bar_stats, quarantine and validation_reports."""
    base = tmp_path_factory.mktemp("crash-inputs")
    for t, df in (("IBM", ibm_300), ("MSFT", msft_300)):
        write_bars(df.iloc[:250], base / "first", t)
        write_bars(df, base / "update", t)
    bad = msft_300.copy()
    bad.loc[100:105, "Volume"] = "0"
    write_bars(bad, base / "update", "AAPL")
    return base / "first", base / "update"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tradeops, inputs) -> Path:
    home = tmp_path_factory.mktemp("crash") / "home"
    assert tradeops(home, "ingest", "--source", "csv", "--path", inputs[0]).exit_code == 0
    return home


@pytest.fixture(scope="module")
def reference(tmp_path_factory, prepared, copy_home, tradeops, inputs, lake_of) -> dict[str, pd.DataFrame]:
    """Bars, bar_stats and the update's validation and quarantine rows after it ran without interruption."""
    home = copy_home(prepared, tmp_path_factory.mktemp("reference") / "home")
    result = tradeops(home, "ingest", "--source", "csv", "--path", inputs[1], "--json")
    assert result.exit_code == 1  # AAPL quarantined
    lake, rid = lake_of(home), result.json()["report_id"]
    reports, q = lake.read(st.REPORTS), lake.read(st.QUARANTINE)
    return {
        "bars": lake.read_bars(),
        "stats": lake.read(st.STATS).sort_values("ticker").reset_index(drop=True),
        "reports": reports.loc[reports["report_id"] == rid],
        "quarantine": q.loc[q["report_id"] == rid],
    }


REPORT_COLUMNS = [
    "ticker",
    "status",
    "source",
    "location",
    "sha256",
    "bytes",
    "rows_in",
    "rows_written",
    "errors",
    "warnings",
    "findings_json",
]
QUARANTINE_COLUMNS = [
    "ticker",
    "date",
    "row",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "adj_close",
    "rules",
    "reason",
    "payload_excerpt",
    "source",
    "location",
]


def _same_rows(got: pd.DataFrame, expected: pd.DataFrame, columns: list[str], key: str) -> None:
    """``got`` holds the rows an uninterrupted run writes (ids and times aside)."""
    pd.testing.assert_frame_equal(
        got[columns].sort_values(key).reset_index(drop=True), expected[columns].sort_values(key).reset_index(drop=True)
    )


def _assert_consistent(home: Path, lake: st.Lake, reference: dict[str, pd.DataFrame]) -> None:
    ref_bars, ref_stats = reference["bars"], reference["stats"]
    assert not list((home / "reports" / "ingest" / "pending").glob("*.json"))
    assert pending_repairs(lake, home / "reports") == [] and pending_repairs(lake) == []
    bars = lake.read_bars()
    assert not bars.duplicated(["ticker", "date"]).any()
    pd.testing.assert_frame_equal(bars[["ticker", "date", *VALUES]], ref_bars[["ticker", "date", *VALUES]])

    current = lake.version(st.BARS)
    stats = lake.read(st.STATS).sort_values("ticker").reset_index(drop=True)
    assert stats.set_index("ticker")["bars_version"].to_dict() == {"IBM": current, "MSFT": current}
    pd.testing.assert_frame_equal(stats[STAT_COLUMNS], ref_stats[STAT_COLUMNS])  # recomputed == written in-run

    reports = lake.read(st.REPORTS)
    assert not reports.duplicated(["report_id", "ticker"]).any()
    for h in lake.history(st.BARS):
        rid = h["report_id"]
        doc = json.loads((home / "reports" / "ingest" / f"{rid}.json").read_text())
        assert doc["state"] == "complete" and doc["bars_version_after"] == h["version"]
        rows = reports.loc[reports["report_id"] == rid]
        assert sorted(rows["ticker"]) == sorted(t["ticker"] for t in doc["tickers"])
        assert set(rows.loc[rows["ticker"].isin(["IBM", "MSFT"]), "bars_version"]) == {h["version"]}

    q = lake.read(st.QUARANTINE)
    assert not q.duplicated(["report_id", "row"]).any()
    assert set(q["ticker"]) == {"AAPL"} and (q.groupby("report_id").size() == BAD_ROWS).all()
    assert set(q["report_id"]) <= set(reports.loc[reports["status"] == "quarantined", "report_id"])


@pytest.mark.parametrize("marker", MARKERS)
def test_ingestion_killed_at_a_step_is_repaired_by_the_next(
    marker, prepared, copy_home, tmp_path, tradeops, inputs, lake_of, reference
):
    home = copy_home(prepared, tmp_path / "home")
    lake = lake_of(home)
    killed_pid = _killed_run(home, inputs[1], marker)
    (pending,) = (home / "reports" / "ingest" / "pending").glob("*.json")
    killed_id = pending.stem
    assert pending_repairs(lake, home / "reports")  # the pending report is seen
    # The catalog's table-only check: the bars commit is there but its validation rows (and stats) are not.
    needs = {n["action"] for n in tradeops(home, "catalog", "--json").json()["needs_repair"]}
    assert (
        needs
        == {
            "before_bars_commit": set(),
            "after_bars_commit": {"report_rows_missing", "stats_recomputed"},
            "after_stats": {"report_rows_missing"},
            "after_quarantine": {"report_rows_missing"},
            "after_reports": set(),
        }[marker]
    )
    assert json.loads(st.lock_path(home).read_text())["pid"] == killed_pid  # the kernel released its lock

    result = tradeops(home, "ingest", "--source", "csv", "--path", inputs[1], "--json")
    assert result.exit_code == 1, result.output  # AAPL is quarantined again; the kill left no stale lock
    report = result.json()
    assert report["state"] == "complete"
    repaired = [r for r in report["repairs"] if r.get("report_id") == killed_id]
    assert len(repaired) == 1, report["repairs"]
    doc = json.loads((home / "reports" / "ingest" / f"{killed_id}.json").read_text())
    assert doc["repaired_by"] == report["report_id"] and "plan" not in doc
    history = lake.history(st.BARS)
    if marker == "before_bars_commit":  # nothing stored: aborted, and this run wrote the update itself
        assert repaired[0]["action"] == "report_aborted" and doc["state"] == "aborted"
        assert [h["report_id"] for h in history] == [report["report_id"], history[1]["report_id"]]
        assert killed_id not in set(lake.read(st.REPORTS)["report_id"])
    else:  # the killed run's commit stands and was finished; this run found nothing new
        assert repaired[0]["action"] == "report_completed" and doc["state"] == "complete"
        assert history[0]["report_id"] == killed_id and report["bars_version_after"] == history[0]["version"]
        assert all(t["rows_written"] == 0 for t in report["tickers"])
        reports, q = lake.read(st.REPORTS), lake.read(st.QUARANTINE)
        _same_rows(reports.loc[reports["report_id"] == killed_id], reference["reports"], REPORT_COLUMNS, "ticker")
        _same_rows(q.loc[q["report_id"] == killed_id], reference["quarantine"], QUARANTINE_COLUMNS, "row")
    if marker == "after_bars_commit":
        stale = [r for r in report["repairs"] if r["action"] == "stats_recomputed"]
        assert len(stale) == 1 and sorted(stale[0]["tickers"]) == ["IBM", "MSFT"]
    _assert_consistent(home, lake, reference)
    assert tradeops(home, "catalog", "--json").json()["needs_repair"] == []


def test_report_lost_before_pending_reports_existed_is_recorded_once(
    prepared, copy_home, tmp_path, tradeops, inputs, lake_of
):
    """Regression: after a kill right after the bars commit (old versions wrote the report last), bars v1 named a
    report with no JSON and no validation rows, and bar_stats stayed at v0 for good."""
    home = copy_home(prepared, tmp_path / "home")
    _killed_run(home, inputs[1], "after_bars_commit")
    (pending,) = (home / "reports" / "ingest" / "pending").glob("*.json")
    pending.unlink()  # what an older version left behind
    lost_id = pending.stem
    first = tradeops(home, "ingest", "--source", "csv", "--path", inputs[1], "--json").json()
    assert {r["action"] for r in first["repairs"]} == {"report_lost", "stats_recomputed"}
    lake = lake_of(home)
    rows = lake.read(st.REPORTS)
    lost = rows.loc[rows["report_id"] == lost_id]
    assert sorted(lost["ticker"]) == ["IBM", "MSFT"] and set(lost["status"]) == {"unknown"}
    assert set(lost["bars_version"]) == {1}
    assert json.loads((home / "reports" / "ingest" / f"{lost_id}.json").read_text())["state"] == "lost"
    assert lake.read(st.STATS).set_index("ticker")["bars_version"].to_dict() == {"IBM": 1, "MSFT": 1}
    second = tradeops(home, "ingest", "--source", "csv", "--path", inputs[1], "--json").json()
    assert second["repairs"] == []


@pytest.fixture
def settings_of(monkeypatch, tmp_path):
    """``settings_of(home)``: settings as the CLI loads them, without the developer's ``TRADEOPS_*`` or config."""
    for k in list(os.environ):
        if k.startswith("TRADEOPS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TRADEOPS_CONFIG", str(tmp_path / "no-config.yaml"))
    return lambda home: load_settings(home=home)


@pytest.mark.parametrize("marker", ["after_bars_commit", "after_stats", "after_quarantine"])
def test_failing_write_undoes_its_own_bars_commit(
    marker, prepared, copy_home, tmp_path, inputs, lake_of, settings_of, monkeypatch, reference
):
    home = copy_home(prepared, tmp_path / "home")
    lake = lake_of(home)
    before = lake.read_bars()
    monkeypatch.setenv("TRADEOPS_FAULT_AT", f"{marker}:raise")
    with pytest.raises(RuntimeError, match=f"fault injected at {marker}"):
        ingest(CsvSource(inputs[1]), settings_of(home))
    pd.testing.assert_frame_equal(lake.read_bars()[["ticker", "date", *VALUES]], before[["ticker", "date", *VALUES]])
    undo, own = lake.history(st.BARS)[:2]
    assert undo["operation"] == "restore" and undo["undoes"] == own["report_id"]
    doc = json.loads((home / "reports" / "ingest" / f"{own['report_id']}.json").read_text())
    assert doc["state"] == "failed" and "fault injected" in doc["error"]
    assert not list((home / "reports" / "ingest" / "pending").glob("*.json"))

    monkeypatch.delenv("TRADEOPS_FAULT_AT")
    report = ingest(CsvSource(inputs[1]), settings_of(home))
    assert {t.ticker: t.rows_written for t in report.results if t.ticker != "AAPL"} == {"IBM": 50, "MSFT": 50}
    stats = lake.read(st.STATS).set_index("ticker")["bars_version"].to_dict()
    assert stats == {"IBM": report.bars_version_after, "MSFT": report.bars_version_after}
    assert pending_repairs(lake, home / "reports") == []
    pd.testing.assert_frame_equal(lake.read_bars()[VALUES], reference["bars"][VALUES])
