"""Schedules of the tradeops code location: ``ingest_daily`` after every close (thin wiring).

Targets jobs by name so this module does not import the job definitions. ``SCHEDULES`` is built on first access
from the configuration (the cron time is part of the definition); :func:`build_schedules` builds them for given
settings (tests, other code locations).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time

import dagster as dg
from dagster import MultiPartitionKey, RunsFilter

from tradeops.config import Settings, load_settings
from tradeops.data.calendar import EXCHANGE_TZ, ready_trading_dates

INGEST_JOB = "ingest_daily"
SCHEDULE_NAME = "ingest_daily_schedule"
RUN_KEY_TAG = "dagster/run_key"


def ingest_run_key(day: date, ticker: str) -> str:
    """The run key of the scheduled ingest of one (trading date, ticker) partition."""
    return f"{INGEST_JOB}:{day.isoformat()}:{ticker}"


def clock_time(value: str) -> time:
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def daily_cron(schedule_time: str) -> str:
    """Weekdays at ``HH:MM`` (the exchange's local time): holidays are filtered by the calendar, not by cron."""
    t = clock_time(schedule_time)
    return f"{t.minute} {t.hour} * * 1-5"


def _settings_source(settings: Settings | None) -> Callable[[], Settings]:
    return (lambda: settings) if settings is not None else load_settings


def build_schedules(settings: Settings | None = None) -> list:
    """The schedules; ``settings=None`` reads the configuration again at every evaluation."""
    get = _settings_source(settings)
    cron = daily_cron((settings or load_settings()).pipelines.schedule_time)

    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=cron,
        job_name=INGEST_JOB,
        execution_timezone=str(EXCHANGE_TZ),
        description="ingest_daily for every ready trading date (catch-up window) x universe ticker, once each",
    )
    def ingest_daily_schedule(context: dg.ScheduleEvaluationContext):
        s = get()
        now = context.scheduled_execution_time or datetime.now(UTC)
        days = ready_trading_dates(
            now,
            after=clock_time(s.pipelines.schedule_time),
            lookback=s.pipelines.catchup_sessions,
            calendar=s.ingest.calendar,
        )
        wanted = {ingest_run_key(d, t): (d, t) for d in days for t in s.pipelines.universe}
        # Dagster dedupes a schedule's run keys only within one tick; across ticks (the catch-up window repeats
        # yesterday) the runs already created decide.
        done = {
            r.tags.get(RUN_KEY_TAG)
            for r in context.instance.get_runs(RunsFilter(job_name=INGEST_JOB, tags={RUN_KEY_TAG: list(wanted)}))
        }
        todo = [(key, d, t) for key, (d, t) in wanted.items() if key not in done]
        if not todo:
            window = f"{days[0]}..{days[-1]}" if days else "none"
            return dg.SkipReason(
                f"nothing new at {now.astimezone(EXCHANGE_TZ).isoformat()}: every ready session ({window}) "
                f"x {len(s.pipelines.universe)} tickers already has a run"
            )
        return [
            dg.RunRequest(
                run_key=key,
                partition_key=MultiPartitionKey({"date": d.isoformat(), "ticker": t}),
                tags={"tradeops/trigger": "schedule"},
            )
            for key, d, t in todo
        ]

    return [ingest_daily_schedule]


def __getattr__(name: str) -> list:
    # SCHEDULES is built on first use, not at import: reading the configuration is not an import side effect.
    if name == "SCHEDULES":
        value = build_schedules()
        globals()["SCHEDULES"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
