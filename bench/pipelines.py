"""Benchmark: wall time of `ingest_daily` (the sample universe, one date) + `train` (IBM as of that date) through the
Dagster graph, in-process vs through the Celery executor with two local worker processes (RabbitMQ broker).

Each mode runs in a fresh home. Celery workers are started and pinged ready before the clock starts (their start
is printed apart); each run is one Dagster run per partition, launched in order as `tradeops pipelines run` does.
Prints the machine, one line per mode and job, then the result line:
  pipelines: in_process=..s celery2=..s ratio=..    (ratio = celery2 / in_process; < 1 means Celery is faster)

    python bench/pipelines.py [--epochs N] [--date 2013-03-01] [--broker pyamqp://guest@127.0.0.1:5672//] 2>/dev/null

(Dagster's run logs go to stderr; the result lines to stdout.)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
import uuid
import warnings
from datetime import date
from pathlib import Path

TICKERS = ["AAPL", "FB", "GOOG", "IBM", "MSFT"]


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def settings_env(home: Path, executor: str, queue: str, broker: str, epochs: int | None) -> dict[str, str]:
    """The ``TRADEOPS_*`` environment of one mode: the launching process and the workers both build from it."""
    env = {
        "TRADEOPS_HOME": str(home),
        "TRADEOPS_CONFIG": str(home.parent / "no-config.yaml"),
        "TRADEOPS_PIPELINES__EXECUTOR": executor,
        "TRADEOPS_PIPELINES__CELERY_BROKER": broker,
        "TRADEOPS_PIPELINES__CELERY_QUEUE": queue,
        "DAGSTER_HOME": str((home / "dagster").resolve()),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    if epochs is not None:
        env["TRADEOPS_PIPELINES__EPOCHS"] = str(epochs)
    return env


def run_in_process(settings, job: str, day: date, tickers: list[str]):
    from tradeops.pipelines.run import run_job

    return run_job(settings, job, day=day, tickers=tickers, in_process=True)


def run_through_executor(settings, job: str, day: date, tickers: list[str]):
    """One Dagster run per partition through the configured executor (the CLI's executor path)."""
    from tradeops.pipelines.run import run_job

    return run_job(settings, job, day=day, tickers=tickers, in_process=False)


def timed_jobs(mode: str, runner, settings, day: date) -> float:
    total = 0.0
    for job, tickers in (("ingest_daily", TICKERS), ("train", ["IBM"])):
        t0 = time.perf_counter()
        results = runner(settings, job, day, tickers)
        dt = time.perf_counter() - t0
        total += dt
        status = ",".join(sorted({r.status for r in results}))
        print(f"pipelines mode={mode} job={job} runs={len(results)} status={status} seconds={dt:.1f}", flush=True)
        for r in results:
            if not r.ok:
                print(f"  {r.message()[:300]}", flush=True)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None, help="pipelines.epochs (default: the recipe's)")
    ap.add_argument("--date", default="2013-03-01", help="the trading date (the sample's last session)")
    ap.add_argument("--broker", default="pyamqp://guest:guest@127.0.0.1:5672//")
    args = ap.parse_args()
    day = date.fromisoformat(args.date)
    print(machine(), flush=True)
    # dagster_celery re-registers its one task on every submission (harmless, its own code)
    warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")

    from tradeops.config import load_settings
    from tradeops.pipelines import definitions
    from tradeops.pipelines.executors import CeleryWorkers, purge_queue

    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    saved = dict(os.environ)
    try:
        # in-process: every step in this process
        os.environ.update(settings_env(tmp / "inproc" / "home", "in_process", "unused", args.broker, args.epochs))
        definitions.__dict__.pop("defs", None)
        local = timed_jobs("in_process", run_in_process, load_settings(), day)

        # celery: the same jobs, every step a task on a queue of its own, two solo workers
        queue = f"tradeops-bench-{uuid.uuid4().hex[:8]}"
        os.environ.update(settings_env(tmp / "celery" / "home", "celery", queue, args.broker, args.epochs))
        definitions.__dict__.pop("defs", None)  # this process reconstructs the jobs from the celery settings
        settings = load_settings()
        log = (tmp / "workers.log").open("w")
        try:
            t0 = time.perf_counter()
            with CeleryWorkers(settings, 2, tmp / "celery-config", env=dict(os.environ), log=log) as workers:
                workers.wait_ready(timeout_s=120)
                print(f"pipelines mode=celery2 workers_ready_seconds={time.perf_counter() - t0:.1f}", flush=True)
                celery = timed_jobs("celery2", run_through_executor, settings, day)
        finally:
            log.close()
            purge_queue(settings)
        print(f"pipelines: in_process={local:.1f}s celery2={celery:.1f}s ratio={celery / local:.2f}", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
