"""A tiny code location for the scheduler-daemon test: a stand-in ``ingest_daily`` job with the real partitioning
(trading date x ticker) and the real schedule. The job is never executed (runs are only queued)."""

from __future__ import annotations

import dagster as dg

from tradeops.config import load_settings
from tradeops.data.calendar import trading_dates
from tradeops.pipelines.schedules import build_schedules

SETTINGS = load_settings(home="unused-home", pipelines={"universe": ["AAPL", "IBM"], "catchup_sessions": 2})

partitions = dg.MultiPartitionsDefinition(
    {
        "date": dg.StaticPartitionsDefinition([d.isoformat() for d in trading_dates("2024-06-03", "2024-07-31")]),
        "ticker": dg.StaticPartitionsDefinition(list(SETTINGS.pipelines.universe)),
    }
)


@dg.op
def noop() -> None:
    pass


@dg.job(name="ingest_daily", partitions_def=partitions)
def ingest_daily() -> None:
    noop()


defs = dg.Definitions(jobs=[ingest_daily], schedules=build_schedules(SETTINGS))
