"""Run jobs of the code location against a home's persistent Dagster instance, without a daemon.

``run_job`` launches one run per (date, ticker) for per-ticker jobs (``ingest_daily``) and one per date for the
others; ``backfill`` does that for every trading date of a range, in date order. Runs are in-process by default
(fast; the CLI and the demo); ``in_process=False`` runs through the configured executor (``pipelines.executor``) by
re-importing ``tradeops.pipelines`` in the executor's processes, which then read the settings from the environment
(``TRADEOPS_HOME`` / ``TRADEOPS_CONFIG`` / ``TRADEOPS_*``), so those must describe the same home.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tradeops.config import Settings
from tradeops.data.calendar import is_trading_date, parse_day, trading_dates
from tradeops.errors import UsageError

BACKFILL_TAG = "tradeops/backfill"
# Console log of a run: warnings and errors only (every event is still in the instance's event log for the UI).
# The CLI prints its own summary of each run (RunResult.message); the run's event log keeps every event and
# traceback, so the console logger only speaks for what would otherwise go unseen.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class RunResult:
    """One Dagster run: its partition, status, per-asset metadata, check outcomes and the error, if any.

    ``status``: ``SUCCESS`` or ``FAILURE``; ``skipped``: assets not materialised (e.g. a ticker not listed yet, or
    everything downstream of a failed check).
    """

    job: str
    partition: str
    day: str
    ticker: str | None
    run_id: str
    status: str
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str | None = None
    error_class: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "SUCCESS"

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["passed"]]

    @property
    def exit_code(self) -> int:
        """0 success, 2 when the step failed on a usage error (e.g. too little history), else 1."""
        if self.ok:
            return 0
        return 2 if self.error_class in ("UsageError", "ConfigError") else 1

    def message(self) -> str:
        """What failed, naming the check, ticker, date and rule (or the step's error)."""
        where = f"{self.job} {self.partition}"
        parts = []
        for c in self.failed_checks:
            rules = "; ".join(
                f"{f.get('ticker')} {f.get('date') or self.day}"
                + (f" row {f['row']}" if f.get("row") is not None else "")
                + f": [{f.get('rule')}] {f.get('message')}"
                for f in c.get("findings", [])
                if f.get("severity", "error") == "error"
            )
            if not rules and c.get("reasons"):  # the blessing check: the candidate's failed blessing rules
                rules = f"[not_blessed] {c.get('model_name') or 'candidate'}: " + "; ".join(map(str, c["reasons"]))
            subject = " ".join(x for x in (c.get("ticker"), self.day) if x)
            parts.append(f"check {c['asset']}:{c['check']} failed for {subject}: {rules}")
        if not parts and self.error:
            parts.append(self.error)
        return f"{where}: " + (" | ".join(parts) if parts else self.status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "partition": self.partition,
            "date": self.day,
            "ticker": self.ticker,
            "run_id": self.run_id,
            "status": self.status,
            "materializations": self.materializations,
            "checks": self.checks,
            "skipped": self.skipped,
            "error": self.error,
            "error_class": self.error_class,
        }


def _defs(settings: Settings):
    from tradeops.pipelines.definitions import build_defs

    return build_defs(settings)


def check_job(job_name: str) -> str:
    from tradeops.pipelines.jobs import JOB_NAMES

    if job_name not in JOB_NAMES:
        raise UsageError(f"JOB {job_name!r} is unknown; jobs: {', '.join(JOB_NAMES)}")
    return job_name


def check_tickers(settings: Settings, tickers: Sequence[str] | None) -> list[str]:
    """``tickers`` (default: the universe), each one of ``pipelines.universe``."""
    universe = [t.upper() for t in settings.pipelines.universe]
    if not tickers:
        return universe
    wanted = list(dict.fromkeys(t.strip().upper() for t in tickers))
    unknown = [t for t in wanted if t not in universe]
    if unknown:
        raise UsageError(
            f"--tickers {','.join(unknown)}: not in pipelines.universe ({','.join(universe)}); "
            "the ticker partitions are the configured universe"
        )
    return wanted


def check_date(settings: Settings, day: str | date) -> date:
    """A trading-date partition: an XNYS session on or after ``pipelines.start_date``; else a UsageError."""
    d = parse_day(day, "--date")
    start = parse_day(settings.pipelines.start_date, "pipelines.start_date")
    if d < start:
        raise UsageError(f"--date {d}: before pipelines.start_date {start} (no such partition)")
    if not is_trading_date(d, settings.ingest.calendar):
        raise UsageError(
            f"--date {d}: [not_a_session] not an {settings.ingest.calendar} trading date (weekend or holiday)"
        )
    return d


def latest_date(settings: Settings, tickers: Sequence[str]) -> date:
    """The latest trading date the data supports: the last bar date of the file source (sample, csv) for
    ``tickers``, else the last session whose close plus ``pipelines.schedule_time`` has passed in New York."""
    if settings.pipelines.source in ("sample", "csv"):
        from tradeops.data.staging import latest_source_date

        return latest_source_date(settings, list(tickers))
    from datetime import UTC, datetime, time

    from tradeops.data.calendar import ready_trading_dates

    hh, mm = (int(x) for x in settings.pipelines.schedule_time.split(":"))
    return ready_trading_dates(datetime.now(UTC), after=time(hh, mm), lookback=1, calendar=settings.ingest.calendar)[-1]


def partitions_for(job_name: str, days: Sequence[date], tickers: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """``(partition key, date, ticker)`` of every run, in date order (then ticker order)."""
    from tradeops.pipelines.jobs import PER_TICKER_JOBS
    from tradeops.pipelines.partitions import date_ticker_key

    out: list[tuple[str, str, str | None]] = []
    for d in days:
        if job_name in PER_TICKER_JOBS:
            out += [(date_ticker_key(d, t), d.isoformat(), t) for t in tickers]
        else:
            out.append((d.isoformat(), d.isoformat(), None))
    return out


def _value(v: Any) -> Any:
    value = getattr(v, "value", v)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, dict)):
        return value
    return str(value)


def summarise(job_name: str, partition: str, day: str, ticker: str | None, result) -> RunResult:
    """A :class:`RunResult` from a Dagster execution result (in-process or through an executor)."""
    from dagster import DagsterEventType

    out = RunResult(job_name, partition, day, ticker, result.run_id, "SUCCESS" if result.success else "FAILURE")
    for ev in result.all_events:
        kind = ev.event_type
        if kind == DagsterEventType.ASSET_MATERIALIZATION:
            mat = ev.step_materialization_data.materialization
            out.materializations[mat.asset_key.to_user_string()] = {k: _value(v) for k, v in mat.metadata.items()}
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            e = ev.event_specific_data
            meta = {k: _value(v) for k, v in e.metadata.items()}
            out.checks.append(
                {
                    "asset": e.asset_key.to_user_string(),
                    "check": e.check_name,
                    "passed": bool(e.passed),
                    "ticker": meta.get("ticker", ticker),
                    "findings": meta.get("findings", []),
                    "errors": meta.get("errors"),
                    "warnings": meta.get("warnings"),
                    "reasons": meta.get("reasons") or [],
                    "model_name": meta.get("model_name"),
                }
            )
        elif kind == DagsterEventType.STEP_SKIPPED:
            out.skipped.append(ev.step_key or "")
        elif kind in (DagsterEventType.RUN_FAILURE, DagsterEventType.ENGINE_EVENT) and out.error is None:
            info = getattr(ev.event_specific_data, "error", None)
            if info is not None and not result.success:  # the run failed outside any step (executor, engine)
                out.error, out.error_class = f"run: {info.message.strip()}", info.cls_name
        elif kind == DagsterEventType.STEP_FAILURE and (out.error is None or out.error.startswith("run: ")):
            err = ev.step_failure_data.error
            cause = err
            while cause is not None and cause.cause is not None and cause.cls_name.startswith("Dagster"):
                cause = cause.cause
            if cause is not None and cause.cls_name == "DagsterAssetCheckFailedError":
                continue  # named by the failed checks
            out.error = f"step {ev.step_key}: {(cause or err).message.strip()}"
            out.error_class = (cause or err).cls_name
    return out


def run_job(
    settings: Settings,
    job_name: str,
    *,
    day: str | date | None = None,
    tickers: Sequence[str] | None = None,
    instance=None,
    in_process: bool = True,
    tags: dict[str, str] | None = None,
    on_run: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run ``job_name`` for one trading date (default: :func:`latest_date`) and ``tickers`` (default: the universe)
    against ``instance`` (default: the home's persistent instance); one :class:`RunResult` per run, in order."""
    check_job(job_name)
    wanted = check_tickers(settings, tickers)
    d = check_date(settings, day if day is not None else latest_date(settings, wanted))
    return _run_partitions(
        settings, job_name, partitions_for(job_name, [d], wanted), instance, in_process, tags or {}, on_run
    )


def backfill(
    settings: Settings,
    job_name: str,
    *,
    start: str | date,
    end: str | date,
    tickers: Sequence[str] | None = None,
    instance=None,
    in_process: bool = True,
    on_run: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run ``job_name`` for every trading date from ``start`` to ``end`` (inclusive) x ``tickers``, in date order;
    a failed partition does not stop the later ones (each is reported). Runs share a ``tradeops/backfill`` tag."""
    check_job(job_name)
    wanted = check_tickers(settings, tickers)
    lo, hi = parse_day(start, "--start"), parse_day(end, "--end")
    first = parse_day(settings.pipelines.start_date, "pipelines.start_date")
    if lo < first:
        raise UsageError(f"--start {lo}: before pipelines.start_date {first} (no such partition)")
    days = trading_dates(lo, hi, settings.ingest.calendar)
    if not days:
        raise UsageError(f"--start {lo} --end {hi}: no {settings.ingest.calendar} trading date in the range")
    tags = {BACKFILL_TAG: f"bf-{uuid.uuid4().hex[:8]}"}
    return _run_partitions(
        settings, job_name, partitions_for(job_name, days, wanted), instance, in_process, tags, on_run
    )


def _run_partitions(
    settings: Settings,
    job_name: str,
    parts: list[tuple[str, str, str | None]],
    instance,
    in_process: bool,
    tags: dict[str, str],
    on_run: Callable[[RunResult], None] | None,
) -> list[RunResult]:
    from tradeops.pipelines.instance import instance_for

    instance = instance if instance is not None else instance_for(settings)
    job = _defs(settings).resolve_job_def(job_name) if in_process else None
    out = []
    for key, day, ticker in parts:
        if job is not None:
            result = job.execute_in_process(
                instance=instance, partition_key=key, raise_on_error=False, tags=tags, run_config=QUIET
            )
        else:
            from dagster import execute_job
            from dagster._core.definitions.reconstruct import ReconstructableRepository

            recon = ReconstructableRepository.for_module("tradeops.pipelines", "defs").get_reconstructable_job(job_name)
            result = execute_job(recon, instance=instance, tags={**tags, "dagster/partition": key}, run_config=QUIET)
        res = summarise(job_name, key, day, ticker, result)
        if on_run:
            on_run(res)
        out.append(res)
    return out


def describe(defs) -> dict[str, list[dict[str, str]]]:
    """Jobs, assets, checks, schedules and sensors of a :class:`dagster.Definitions`, by name."""
    graph = defs.resolve_asset_graph()
    assets = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        parts = node.partitions_def
        dims = (
            " x ".join(d.name for d in parts.partitions_defs)
            if hasattr(parts, "partitions_defs")
            else ("date" if parts is not None else "none")
        )
        assets.append({"name": key.to_user_string(), "info": f"group {node.group_name}, partitions {dims}"})
    checks = [
        {"name": f"{k.asset_key.to_user_string()}:{k.name}", "info": "blocking" if graph.get(k).blocking else ""}
        for k in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))
    ]
    jobs = [
        {"name": j.name, "info": j.description or ""}
        for j in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name)
        if not j.name.startswith("__")
    ]
    schedules = [{"name": s.name, "info": getattr(s, "cron_schedule", "") or ""} for s in defs.schedules or []]
    sensors = [{"name": s.name, "info": ""} for s in defs.sensors or []]
    return {"jobs": jobs, "assets": assets, "checks": checks, "schedules": schedules, "sensors": sensors}


def load_asset_value(settings: Settings, asset: str, partition: str, instance=None) -> Any:
    """The stored output of ``asset`` for ``partition`` (through the IO manager of the home's instance)."""
    from tradeops.pipelines.instance import instance_for

    instance = instance if instance is not None else instance_for(settings)
    # The IO manager logs every load at DEBUG through a console logger dagster builds for the load itself (at
    # DEBUG, whatever the instance says): silence INFO and below for the call only.
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        return _defs(settings).load_asset_value(asset, instance=instance, partition_key=partition)
    finally:
        logging.disable(previous)


def train_outcome_of(settings: Settings, run: RunResult, instance=None):
    """The :class:`~tradeops.model.training.TrainOutcome` of a successful train/retrain run (what `tradeops train`
    prints), from its stored stage outputs."""
    from tradeops.model.training import train_outcome

    stages = ("training_window", "evaluation", "blessing", "registered_model", "champion")
    values = [load_asset_value(settings, a, run.partition, instance) for a in stages]
    return train_outcome(*values)
