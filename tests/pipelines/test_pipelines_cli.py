"""`tradeops pipelines run | backfill | list`: exit codes and messages (ARCHITECTURE section 5)."""

from __future__ import annotations

import pytest
from pipeline_homes import SAMPLE_LAST, write_bars


@pytest.fixture
def cli(tradeops, tmp_path):
    """``cli(*args)`` runs ``tradeops --home <tmp>/home ARGS`` with a csv source of IBM bars (2009..2013-03-01)."""
    bars = write_bars(tmp_path / "bars")
    env = {
        "TRADEOPS_PIPELINES__SOURCE": "csv",
        "TRADEOPS_PIPELINES__SOURCE_PATH": str(bars),
        "TRADEOPS_PIPELINES__UNIVERSE": '["IBM"]',
        "TRADEOPS_PIPELINES__START_DATE": "2008-01-02",
    }

    def run(*args):
        return tradeops(tmp_path / "home", *args, env=env)

    run.bars = bars
    return run


def test_pipelines_help_lists_the_commands(tradeops):
    out = tradeops(None, "pipelines", "--help")
    assert out.exit_code == 0
    for cmd in ("run", "backfill", "list"):
        assert cmd in out.stdout
    assert tradeops(None, "pipelines", "run", "--help").exit_code == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "ingest_daily", "--date", "2013-02-18"), "2013-02-18: [not_a_session]"),
        (("run", "ingest_daily", "--date", "2013-02-30"), "not an ISO date"),
        (("run", "nosuchjob"), "JOB 'nosuchjob' is unknown"),
        (("run", "ingest_daily", "--tickers", "ZZZ"), "--tickers ZZZ: not in pipelines.universe"),
        (("backfill", "--start", "2013-02-16", "--end", "2013-02-17"), "no XNYS trading date"),
        (("backfill", "--start", "2013-03-01", "--end", "2013-02-01"), "is after end"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(cli, args, needle):
    out = cli("pipelines", *args)
    assert out.exit_code == 2, out
    assert needle in out.stderr


def test_run_defaults_to_the_last_date_of_the_data_and_prints_runs(cli):
    out = cli("pipelines", "run", "ingest_daily", "--json")
    assert out.exit_code == 0, out
    doc = out.json()
    assert doc["ok"] is True
    (run,) = doc["runs"]
    assert run["partition"] == f"{SAMPLE_LAST}|IBM" and run["status"] == "SUCCESS"
    assert run["materializations"]["bars"]["bars_version_after"] == 0
    text = cli("pipelines", "run", "ingest_daily", "--date", SAMPLE_LAST)
    assert text.exit_code == 0, text
    assert "SUCCESS" in text.stdout and "run " in text.stdout and "bars: rows_written=0" in text.stdout


def test_a_failed_check_exits_1_naming_check_ticker_date_and_rule(cli):
    path = cli.bars / "IBM.csv"
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[-1].rstrip("\n").split(",")
    fields[4] = "-3.0"  # close of the last day
    path.write_text("".join(lines[:-1]) + ",".join(fields) + "\n")
    out = cli("pipelines", "run", "ingest_daily")
    assert out.exit_code == 1, out
    assert "FAILURE" in out.stdout
    for needle in ("raw_bars:contract", "IBM", SAMPLE_LAST, "[price_positive]"):
        assert needle in out.stderr


def test_backfill_reports_each_partition(cli):
    out = cli("pipelines", "backfill", "--start", "2013-02-27", "--end", "2013-03-01", "--json")
    assert out.exit_code == 0, out
    assert [r["partition"] for r in out.json()["runs"]] == [
        f"{d}|IBM" for d in ("2013-02-27", "2013-02-28", SAMPLE_LAST)
    ]


def test_list_names_jobs_assets_and_blocking_checks(cli):
    out = cli("pipelines", "list", "--json")
    assert out.exit_code == 0, out
    doc = out.json()
    assert {"ingest_daily", "train", "retrain", "walkforward", "promote"} <= {j["name"] for j in doc["jobs"]}
    checks = {c["name"]: c["info"] for c in doc["checks"]}
    assert checks["raw_bars:contract"] == "blocking" and checks["blessing:candidate_blessed"] == "blocking"
