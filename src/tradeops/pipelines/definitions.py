"""The code location: ``build_defs(settings)``; ``tradeops.pipelines.defs`` is built from the environment's settings
(``TRADEOPS_HOME`` / ``TRADEOPS_CONFIG``), so the webserver, the daemon and executor workers re-import the same jobs.
Building creates no folder and touches no state."""

from __future__ import annotations

import dagster as dg

from tradeops.config import Settings
from tradeops.pipelines.assets import build_assets
from tradeops.pipelines.checks import build_checks
from tradeops.pipelines.executors import executor_for
from tradeops.pipelines.jobs import build_jobs
from tradeops.pipelines.partitions import date_ticker_partitions, ticker_partitions, trading_date_partitions
from tradeops.pipelines.resources import SETTINGS_KEY
from tradeops.pipelines.schedules import SCHEDULES
from tradeops.pipelines.sensors import SENSORS


def build_defs(settings: Settings) -> dg.Definitions:
    """Assets, checks, jobs, schedules, sensors and the executor for ``settings``."""
    dates = trading_date_partitions(settings)
    date_ticker = date_ticker_partitions(dates, ticker_partitions(settings))
    return dg.Definitions(
        assets=build_assets(settings, date_ticker, dates),
        asset_checks=build_checks(date_ticker, dates),
        jobs=build_jobs(),
        schedules=list(SCHEDULES),
        sensors=list(SENSORS),
        resources={SETTINGS_KEY: settings},
        executor=executor_for(settings),
    )


def __getattr__(name: str):
    # `defs` is built on first access (`dagster ... -m tradeops.pipelines -a defs`), not at import.
    if name == "defs":
        from tradeops.config import load_settings

        value = build_defs(load_settings())
        globals()["defs"] = value
        return value
    raise AttributeError(name)
