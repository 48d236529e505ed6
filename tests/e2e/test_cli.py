"""The ``tradeops`` command line end to end (in-process): help, exit codes of usage errors, the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tradeops import __version__


def _no_bars(home: Path) -> bool:
    return not (home / "lake" / "bars").exists()


def test_help(tradeops):
    result = tradeops(None, "--help")
    assert result.exit_code == 0
    for command in ("ingest", "catalog", "demo"):
        assert command in result.output


def test_ingest_help(tradeops):
    result = tradeops(None, "ingest", "--help")
    assert result.exit_code == 0
    for option in ("--source", "--path", "--tickers", "--json", "sample", "csv", "alphavantage"):
        assert option in result.output


def test_version(tradeops):
    result = tradeops(None, "--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_no_arguments_shows_help(tradeops):
    result = tradeops(None)
    assert result.exit_code in (0, 2) and "ingest" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["ingest", "--source", "csv"], "--path DIR is required"),
        (["ingest", "--source", "yahoo"], "yahoo"),
        (["ingest", "--source", "sample", "--tickers", "IBM,ZZZZ"], "ZZZZ"),
        (["ingest", "--bogus"], "--bogus"),
        (["frobnicate"], "frobnicate"),
    ],
    ids=["csv-without-path", "unknown-source", "unknown-sample-ticker", "unknown-option", "unknown-command"],
)
def test_usage_errors_exit_2(tradeops, tmp_path, args, message):
    home = tmp_path / "home"
    result = tradeops(home, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert _no_bars(home)


def test_path_that_is_not_a_directory_exits_2(tradeops, tmp_path):
    f = tmp_path / "IBM.csv"
    f.write_text("Date,Open,High,Low,Close,Volume\n")
    for path in (f, tmp_path / "missing"):
        result = tradeops(tmp_path / "home", "ingest", "--source", "csv", "--path", path)
        assert result.exit_code == 2, result.output
        assert "is not a directory" in result.output and str(path.name) in result.output
    assert _no_bars(tmp_path / "home")


def test_directory_without_csv_files_and_unknown_csv_ticker_exit_2(tradeops, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = tradeops(tmp_path / "home", "ingest", "--source", "csv", "--path", empty)
    assert result.exit_code == 2 and "no *.csv files" in result.output
    (empty / "IBM.csv").write_text("Date,Open,High,Low,Close,Volume\n")
    result = tradeops(tmp_path / "home", "ingest", "--source", "csv", "--path", empty, "--tickers", "MSFT")
    assert result.exit_code == 2 and "MSFT" in result.output and "available: IBM" in result.output
    assert _no_bars(tmp_path / "home")


def test_missing_config_file_exits_2(tradeops, tmp_path):
    result = tradeops(tmp_path / "home", "--config", tmp_path / "nope.yaml", "catalog")
    assert result.exit_code == 2
    assert "nope.yaml" in result.output.replace("\n", "")  # rich may fold a long path


def test_invalid_configuration_exits_2_naming_the_field(tradeops, tmp_path):
    result = tradeops(tmp_path / "home", "catalog", env={"TRADEOPS_INGEST__STALE_RUN": "1"})
    assert result.exit_code == 2, result.output
    assert "ingest.stale_run" in result.output


def test_config_file_is_applied(tradeops, tmp_path, bars_fixtures):
    cfg = tmp_path / "tradeops.yaml"
    cfg.write_text("ingest:\n  min_history_rows: 100\n")
    result = tradeops(
        tmp_path / "home",
        "--config",
        cfg,
        "ingest",
        "--source",
        "csv",
        "--path",
        bars_fixtures / "yahoo_msft_2003",
        "--json",
    )
    assert result.exit_code == 0, result.output
    (res,) = result.json()["tickers"]
    assert res["status"] == "accepted" and res["warnings"] == []  # 188 bars >= 100: no short_history


def test_ingest_selected_sample_tickers_as_json(tradeops, tmp_path):
    result = tradeops(tmp_path / "home", "ingest", "--source", "sample", "--tickers", "fb, ibm", "--json")
    assert result.exit_code == 0, result.output
    report = result.json()
    assert [t["ticker"] for t in report["tickers"]] == ["FB", "IBM"]
    assert report["ok"] is True and Path(report["report_path"]).is_file()
    assert Path(report["report_path"]).is_relative_to(tmp_path / "home")


def test_rejected_data_exits_1_with_a_named_finding(tradeops, tmp_path, bars_fixtures):
    src = tmp_path / "in"
    src.mkdir()
    lines = (bars_fixtures / "yahoo" / "IBM.csv").read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[4], "-1", 1)  # data row 5: a negative Close
    (src / "IBM.csv").write_text("\n".join(lines) + "\n")
    result = tradeops(tmp_path / "home", "ingest", "--source", "csv", "--path", src)
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if "[price_positive]" in ln)
    assert "IBM" in line and "2000-03-07" in line and "row 5" in line
    assert _no_bars(tmp_path / "home")


# The demo's simulation window in tests: two weeks (`make demo` simulates 2011-2012).
DEMO_SIM_UNTIL = "2011-01-14"


@pytest.fixture(scope="module")
def demo_home(tradeops, tmp_path_factory) -> tuple[Path, Any]:
    """One demo in a fresh home, shared by the checks of its output and by the second demo in the same home (the
    demo is the suite's longest step: running it once here saves a whole run)."""
    home = tmp_path_factory.mktemp("demo") / "home"
    return home, tradeops(home, "demo", "--simulate-until", DEMO_SIM_UNTIL)


@pytest.mark.slow
def test_demo_runs_in_a_fresh_home(demo_home):
    home, result = demo_home
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Validation summary" in out
    assert "3 accepted, 2 accepted with warnings, 0 quarantined" in out
    assert "[short_history]" in out and "[price_jump]" in out and "split 2:1" in out
    assert "Catalog of" in out and "Datasets" in out and "validation_reports" in out
    for ticker in ("AAPL", "FB", "GOOG", "IBM", "MSFT"):
        assert ticker in out
    assert "where to look" in out and "tradeops models" in out
    assert "Class balance per ticker and year" in out
    assert "model cnn-ta-IBM v1" in out and "blessing:" in out and "buy_and_hold" in out
    # through the Dagster graph, recorded in the home's instance
    assert "dagster runs:   ingest_daily" in out and (home / "dagster" / "dagster.yaml").is_file()
    # the service: a reader-key signal answered by the champion, the shadow challenger's output in the log, a canary
    assert "cnn-ta-IBM v2 is the challenger" in out
    assert "answered by champion (shadow mode)" in out
    assert "prediction log: shadow challenger v2 said" in out
    assert "canary 30% for cnn-ta-IBM" in out and "service stopped" in out
    # the lifecycle simulation in its own home, its reports, and the reproduction of the step-3 champion
    assert "6/8 Lifecycle: IBM lived day by day 2011-01-03 to 2011-01-14" in out
    assert "simulated 10 trading days 2011-01-03..2011-01-14 on IBM: 10 signals served" in out
    sim = home / "simulations" / "demo-2011-01-03-2011-01-14"
    assert (sim / "reports" / "simulation.html").is_file() and (sim / "sim" / "summary.json").is_file()
    assert "7/8 Reproducibility" in out and "reproduced:     cnn-ta-IBM v1: " in out
    # a clean checkout reproduces bit for bit; one with uncommitted changes cannot name its code (shown, not fatal)
    assert "reproduced:     cnn-ta-IBM v1: bit for bit" in out or "differs (code)" in out
    # research: every candidate scored on validation, the selection named, the parent run and its fold runs in MLflow
    assert "8/8 Research" in out and "per-instrument/ensemble_thresholds" in out
    assert "selected on validation: per-instrument/" in out and "beats B&H" in out
    assert "research:       selected per-instrument/" in out and "(a child run per fold)" in out


@pytest.mark.slow
def test_demo_twice_in_one_home_keeps_the_champion(tradeops, demo_home):
    """Regression: the second demo's candidate (same data, same seed) cannot beat the champion by the margin, the
    blocking blessing check stops it, and the demo used to exit 1 on that decision."""
    home, first = demo_home
    assert first.exit_code == 0, first.output
    again = tradeops(home, "demo", "--simulate-until", DEMO_SIM_UNTIL)
    assert again.exit_code == 0, again.output
    assert "[not_blessed] cnn-ta-IBM" in again.output and "the champion keeps serving" in again.output
    assert "simulated 10 trading days" in again.output  # the finished simulation is resumed: nothing left to do
    assert "answered by champion (shadow mode)" in again.output
    assert (home / "lake" / "bars" / "_delta_log").is_dir()
    assert list((home / "reports" / "ingest").glob("*.json"))
