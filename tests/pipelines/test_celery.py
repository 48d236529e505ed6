"""The Celery executor with two real worker processes on the local RabbitMQ: ``ingest_daily`` for a multi-ticker
partition set runs its steps in both workers and writes the same bars as an in-process run.

One worker pair serves the whole module (workers take seconds to start). The pair listens on a queue of its own
(``tradeops-test-<random>``, deleted afterwards), so other runs on the same broker never take its steps. A broker
that is down fails the module with a message naming it: a skipped scale-out test would pass for a tested one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tradeops.config import load_settings
from tradeops.data.store import lake_for
from tradeops.errors import TradeopsError
from tradeops.pipelines.executors import CeleryWorkers, check_broker, purge_queue

pytestmark = [
    pytest.mark.slow,
    # dagster_celery re-registers its one task on every submission (its own code, harmless)
    pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered"),
]

DAY = "2013-03-01"  # the sample's last session
TICKERS = ["AAPL", "IBM", "MSFT"]
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
# per-run columns: when and by which validation report a row was written
RUN_COLUMNS = ["ingested_at", "report_id"]


def _env(home: Path, queue: str, executor: str, no_config: Path) -> dict[str, str]:
    """The settings both the launching process and the workers read (they must describe the same home)."""
    return {
        "TRADEOPS_HOME": str(home),
        "TRADEOPS_CONFIG": str(no_config),
        "TRADEOPS_PIPELINES__EXECUTOR": executor,
        "TRADEOPS_PIPELINES__UNIVERSE": '["' + '","'.join(TICKERS) + '"]',
        "TRADEOPS_PIPELINES__CELERY_BROKER": BROKER,
        "TRADEOPS_PIPELINES__CELERY_QUEUE": queue,
        "DAGSTER_HOME": str((home / "dagster").resolve()),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


@pytest.fixture(scope="module")
def celery_home(tmp_path_factory):
    """``(settings, workers, results, root)``: two workers on a fresh home, ``ingest_daily`` run through them."""
    from tradeops.pipelines import definitions
    from tradeops.pipelines.run import run_job

    root = tmp_path_factory.mktemp("celery")
    queue = f"tradeops-test-{uuid.uuid4().hex[:12]}"
    env = _env(root / "home", queue, "celery", root / "no-config.yaml")
    mp = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("TRADEOPS_")]:
        mp.delenv(key)
    for key, value in env.items():
        mp.setenv(key, value)
    # `tradeops.pipelines.defs` is built once per process from the env; this process must build it from ours
    mp.delitem(definitions.__dict__, "defs", raising=False)
    settings = load_settings()
    try:
        check_broker(settings)
    except TradeopsError as exc:
        mp.undo()
        pytest.fail(f"RabbitMQ is needed for the Celery executor test and is not reachable: {exc}", pytrace=False)
    log = (root / "workers.log").open("w")
    try:
        with CeleryWorkers(settings, 2, root / "celery-config", env={**os.environ}, log=log) as workers:
            workers.wait_ready(timeout_s=90)
            # the CLI's executor path: the job is reconstructed from `tradeops.pipelines` in every worker
            results = run_job(settings, "ingest_daily", day=DAY, tickers=TICKERS, in_process=False)
            yield settings, workers, results, root
    finally:
        log.close()
        purge_queue(settings)
        mp.delitem(definitions.__dict__, "defs", raising=False)
        mp.undo()


def _step_pids(settings, run_ids: list[str]) -> dict[tuple[str, str], int]:
    """(run id, step key) -> pid of the process that ran the step, from the instance's event log."""
    import dagster as dg

    from tradeops.pipelines.instance import instance_for

    out: dict[tuple[str, str], int] = {}
    with instance_for(settings) as instance:
        for run_id in run_ids:
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
                assert entry.dagster_event is not None and entry.step_key is not None
                out[(run_id, entry.step_key)] = entry.dagster_event.pid
    return out


def test_every_partition_succeeds_through_the_celery_executor(celery_home):
    _, _, results, root = celery_home
    assert [r.ticker for r in results] == TICKERS
    failed = [r.message() for r in results if not r.ok]
    assert not failed, failed + [(root / "workers.log").read_text()[-3000:]]
    for r in results:
        assert {"raw_bars", "bars", "features", "labels"} <= set(r.materializations), r.materializations.keys()
        assert all(c["passed"] for c in r.checks) and len(r.checks) >= 6


def test_steps_ran_in_both_worker_processes_and_never_in_the_launcher(celery_home):
    settings, workers, results, _ = celery_home
    pids = _step_pids(settings, [r.run_id for r in results])
    steps_per_run = len(pids) / len(results)
    assert steps_per_run >= 4, pids  # raw_bars, its checks, bars (+ destination check), features and labels
    used = set(pids.values())
    assert used <= set(workers.pids), (used, workers.pids)
    assert len(used) == 2, f"steps ran in {used}, workers are {workers.pids}"
    assert os.getpid() not in used


def test_celery_bars_equal_an_in_process_run_row_for_row(celery_home, tmp_path, monkeypatch):
    import pandas as pd

    from tradeops.pipelines.run import run_job

    settings, _, _, _ = celery_home
    for key in [k for k in os.environ if k.startswith("TRADEOPS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))
    monkeypatch.setenv("TRADEOPS_CONFIG", str(tmp_path / "no-config.yaml"))
    local = load_settings(home=tmp_path / "home", pipelines={"universe": TICKERS, "executor": "in_process"})
    results = run_job(local, "ingest_daily", day=DAY, tickers=TICKERS, in_process=True)
    assert all(r.ok for r in results), [r.message() for r in results]

    via_celery = lake_for(settings).read_bars(TICKERS).drop(columns=RUN_COLUMNS)
    in_process = lake_for(local).read_bars(TICKERS).drop(columns=RUN_COLUMNS)
    assert sorted(via_celery["ticker"].unique()) == TICKERS
    assert len(via_celery) > 3 * 3000  # the sample's full history of the three tickers up to DAY
    pd.testing.assert_frame_equal(via_celery, in_process, check_exact=True)
