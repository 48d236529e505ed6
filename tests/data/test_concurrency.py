"""Two writers of one home: the second ``tradeops ingest`` exits 1 naming the running one (never a traceback, never
an undo of the other's rows), every run that exited 0 stored its rows, and a failing run never restores over a
version it did not write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from tradeops.config import load_settings
from tradeops.data import ingest as ingest_mod
from tradeops.data import store as st
from tradeops.data.repair import pending_repairs
from tradeops.data.sources import CsvSource

pytestmark = pytest.mark.slow  # trains models or starts processes; `pytest -m 'not slow'` skips

LOCK_MESSAGE = "another ingestion is running (pid "


def _env(extra: dict[str, str] | None = None, config: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_") and k != "ALPHAVANTAGE_API_KEY"}
    env["TRADEOPS_CONFIG"] = str(config or Path("/nonexistent/tradeops.yaml"))
    return env | (extra or {})


def _start(home: Path, directory: Path, fault: str | None = None) -> subprocess.Popen:
    """``python -m tradeops.cli.main --home HOME ingest --source csv --path DIR --json`` in its own process."""
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
        "--json",
    ]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env({"TRADEOPS_FAULT_AT": fault} if fault else None),
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tradeops, write_bars, ibm_300, msft_300) -> Path:
    """A home holding IBM's and MSFT's first 250 sessions (bars version 0)."""
    base = tmp_path_factory.mktemp("concurrency")
    write_bars(ibm_300.iloc[:250], base / "in", "IBM")
    write_bars(msft_300.iloc[:250], base / "in", "MSFT")
    result = tradeops(base / "home", "ingest", "--source", "csv", "--path", base / "in")
    assert result.exit_code == 0, result.output
    return base / "home"


def _inputs(tmp_path, write_bars, ibm_300, msft_300, case: str) -> tuple[Path, Path, dict[str, int], dict[str, int]]:
    """Input folders of writers A and B and the rows each would leave per ticker: the same ticker with different
    lengths (so whose rows were stored shows), or different tickers."""
    a, b = tmp_path / "a", tmp_path / "b"
    if case == "same-ticker":
        write_bars(ibm_300.iloc[:280], a, "IBM")
        write_bars(ibm_300, b, "IBM")
        return a, b, {"IBM": 280, "MSFT": 250}, {"IBM": 300, "MSFT": 250}
    write_bars(ibm_300, a, "IBM")
    write_bars(msft_300, b, "MSFT")
    return a, b, {"IBM": 300, "MSFT": 250}, {"IBM": 250, "MSFT": 300}


def _counts(lake: st.Lake) -> dict[str, int]:
    bars = lake.read_bars()
    assert not bars.duplicated(["ticker", "date"]).any()
    return bars.groupby("ticker").size().to_dict()


def _assert_consistent(home: Path, lake: st.Lake) -> None:
    """Nothing to repair; the statistics of every stored ticker are at least as new as its last bars commit."""
    assert pending_repairs(lake, home / "reports") == []
    stats = lake.read(st.STATS).set_index("ticker")["bars_version"].to_dict()
    stored = set(lake.read_bars()["ticker"])
    assert set(stats) == stored
    for h in lake.history(st.BARS):
        for t in set(json.loads(h.get("tickers", "[]"))) & stored:
            assert stats[t] >= h["version"], (t, stats, h)


@pytest.fixture
def settings_of(monkeypatch, tmp_path):
    """``settings_of(home)``: settings as the CLI loads them, without the developer's ``TRADEOPS_*`` or config."""
    for k in list(os.environ):
        if k.startswith("TRADEOPS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TRADEOPS_CONFIG", str(tmp_path / "no-config.yaml"))
    return lambda home: load_settings(home=home)


@pytest.mark.parametrize("case", ["same-ticker", "different-tickers"])
def test_second_ingestion_while_one_runs_exits_1_naming_it(
    case, prepared, copy_home, tmp_path, tradeops, lake_of, settings_of, monkeypatch, write_bars, ibm_300, msft_300
):
    """A (a thread, held at the step before its bars commit) owns the lock; B (the CLI) must fail fast, naming A."""
    home = copy_home(prepared, tmp_path / "home")
    a_dir, b_dir, a_rows, b_rows = _inputs(tmp_path, write_bars, ibm_300, msft_300, case)
    reached, release = threading.Event(), threading.Event()

    def hold(marker: str) -> None:
        if marker == "before_bars_commit" and threading.current_thread().name == "writer-a":
            reached.set()
            release.wait(60)

    monkeypatch.setattr(ingest_mod, "fault_point", hold)
    settings = settings_of(home)
    done: dict = {}
    a = threading.Thread(
        name="writer-a", target=lambda: done.update(report=ingest_mod.ingest(CsvSource(a_dir), settings))
    )
    a.start()
    try:
        assert reached.wait(60), "writer A never reached its bars commit"
        b = tradeops(home, "ingest", "--source", "csv", "--path", b_dir, "--json")
    finally:
        release.set()
        a.join(60)
    assert b.exit_code == 1, b.output
    assert f"{LOCK_MESSAGE}{os.getpid()}, since " in b.output and "Traceback" not in b.output
    assert done["report"].state == "complete"
    lake = lake_of(home)
    assert _counts(lake) == a_rows  # A's rows stored, nothing of B, nothing undone
    assert lake.version(st.BARS) == 1
    reports = lake.read(st.REPORTS)
    assert set(reports["report_id"]) == {h["report_id"] for h in lake.history(st.BARS)}
    _assert_consistent(home, lake)

    again = tradeops(home, "ingest", "--source", "csv", "--path", b_dir, "--json")
    assert again.exit_code == 0, again.output
    assert _counts(lake) == {t: max(a_rows[t], b_rows[t]) for t in a_rows}
    _assert_consistent(home, lake)


def test_racing_ingestion_processes_lose_no_rows(prepared, copy_home, tmp_path, lake_of, write_bars, ibm_300, msft_300):
    """Regression: two ``ingest`` processes on one ticker; the loser restored bars over the winner's commit."""
    home = copy_home(prepared, tmp_path / "home")
    a_dir, b_dir, a_rows, b_rows = _inputs(tmp_path, write_bars, ibm_300, msft_300, "same-ticker")
    procs = [_start(home, d, fault="before_bars_commit:pause=1") for d in (a_dir, b_dir)]
    outcomes = [(p.pid, *p.communicate(timeout=120), p.returncode) for p in procs]
    for pid, out, err, rc in outcomes:
        assert "Traceback" not in out + err
        assert rc in (0, 1), err
        if rc == 1:
            (other,) = [o[0] for o in outcomes if o[0] != pid]
            assert f"{LOCK_MESSAGE}{other}, since " in err, err
    won = [rc == 0 for *_, rc in outcomes]
    assert any(won)
    lake = lake_of(home)
    stored = lake.read_bars()
    for ok, d in zip(won, (a_dir, b_dir)):  # every run that exited 0 stored all its rows
        for csv in d.glob("*.csv") if ok else []:
            dates = set(pd.read_csv(csv)["Date"])
            assert dates <= set(stored.loc[stored["ticker"] == csv.stem, "date"].dt.strftime("%Y-%m-%d"))
    assert _counts(lake) == {t: max(r[t] for r, ok in zip((a_rows, b_rows), won) if ok) for t in a_rows}
    _assert_consistent(home, lake)


def test_lock_held_in_process_refuses_a_second_writer_thread(tmp_path):
    message = rf"another ingestion is running \(pid {os.getpid()}, since "
    with st.writer_lock(tmp_path), pytest.raises(st.TradeopsError, match=message), st.writer_lock(tmp_path):
        pass
    with st.writer_lock(tmp_path):  # released on exit
        pass


def test_failing_run_never_restores_over_a_version_it_did_not_write(
    prepared, copy_home, tmp_path, lake_of, settings_of, monkeypatch, write_bars, ibm_300
):
    """Regression: a failing run restored bars to its own starting version, erasing rows committed meanwhile."""
    home = copy_home(prepared, tmp_path / "home")
    lake = lake_of(home)
    write_bars(ibm_300, tmp_path / "in", "IBM")

    def foreign_commit_then_fail(marker: str) -> None:
        if marker == "after_stats":  # another writer (bypassing the lock) commits, then this run fails
            lake.delete_tickers(st.BARS, ["MSFT"], {"operation": "foreign"})
            raise OSError("disk full")

    monkeypatch.setattr(ingest_mod, "fault_point", foreign_commit_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ingest_mod.ingest(CsvSource(tmp_path / "in"), settings_of(home))
    history = lake.history(st.BARS)
    assert [h.get("operation") for h in history] == ["foreign", "ingest", "ingest"]
    assert _counts(lake) == {"IBM": 300}  # nothing restored over the foreign version (and IBM's commit kept)
    assert len(list((home / "reports" / "ingest" / "pending").glob("*.json"))) == 1

    monkeypatch.undo()
    report = ingest_mod.ingest(CsvSource(tmp_path / "in"), settings_of(home))
    actions = {r["action"] for r in report.repairs}
    assert {"report_completed", "stats_recomputed", "stats_dropped"} <= actions, report.repairs
    assert _counts(lake) == {"IBM": 300} and lake.version(st.BARS) == 2
    stats = lake.read(st.STATS)
    assert stats.set_index("ticker")["bars_version"].to_dict() == {"IBM": 2}
    _assert_consistent(home, lake)


def test_undo_refuses_once_the_table_moved_on(tmp_path):
    lake = st.Lake(str(tmp_path / "lake"))
    row = pd.DataFrame([{"ticker": "A", "date": "2001-01-02", "close": 1.0}])
    v0 = lake.append(st.BARS, row, {"operation": "test"})
    v1 = lake.append(st.BARS, row.assign(ticker="B"), {"operation": "test"})
    lake.append(st.BARS, row.assign(ticker="C"), {"operation": "other"})
    assert lake.undo(st.BARS, v1, v0, "test") is False
    assert sorted(lake.read_bars()["ticker"]) == ["A", "B", "C"]
    v3 = lake.append(st.BARS, row.assign(ticker="D"), {"operation": "test"})
    assert lake.undo(st.BARS, v3, v3 - 1, "test", undoes="r-d") is True
    assert sorted(lake.read_bars()["ticker"]) == ["A", "B", "C"]
    assert lake.history(st.BARS)[0]["undoes"] == "r-d"
