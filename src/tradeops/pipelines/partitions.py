"""Partitions of the tradeops code location: XNYS trading dates x the configured ticker universe.

Time convention: a ``date`` partition key is the exchange session date (``YYYY-MM-DD``, America/New_York); its
window is that calendar day, and the bar of the date is known after its close. Weekends and every exchange holiday
are excluded, so a backfill over a range materialises sessions only.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg

from tradeops.config import Settings
from tradeops.data.calendar import EXCHANGE_TZ, non_trading_dates, parse_day

DATE = "date"
TICKER = "ticker"
KEY_SEPARATOR = "|"
WEEKENDS = "0 0 * * 0,6"  # daily windows starting at midnight on a Sunday or Saturday
HOLIDAY_HORIZON_DAYS = 400  # holidays are excluded up to this far ahead of the day the definitions are built


def trading_date_partitions(settings: Settings, today: date | None = None) -> dg.TimeWindowPartitionsDefinition:
    """Daily partitions from ``pipelines.start_date`` in New York time, weekends and exchange holidays excluded.

    ``end_offset=1``: today's partition exists (once today is a session), so the daily run after the close can
    target it.
    """
    start = parse_day(settings.pipelines.start_date, "pipelines.start_date")
    today = today or datetime.now(EXCHANGE_TZ).date()
    horizon = today + timedelta(days=HOLIDAY_HORIZON_DAYS)
    holidays = [
        datetime(d.year, d.month, d.day)
        for d in non_trading_dates(start, horizon, settings.ingest.calendar)
        if d.weekday() < 5
    ]
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(),
        timezone=str(EXCHANGE_TZ),
        fmt="%Y-%m-%d",
        end_offset=1,
        exclusions=[WEEKENDS, *holidays],
    )


def ticker_partitions(settings: Settings) -> dg.StaticPartitionsDefinition:
    """One partition per ticker of ``pipelines.universe``."""
    return dg.StaticPartitionsDefinition(list(dict.fromkeys(t.upper() for t in settings.pipelines.universe)))


def date_ticker_partitions(
    dates: dg.TimeWindowPartitionsDefinition, tickers: dg.StaticPartitionsDefinition
) -> dg.MultiPartitionsDefinition:
    """(date, ticker) partitions of the per-ticker assets; keys read ``YYYY-MM-DD|TICKER``."""
    return dg.MultiPartitionsDefinition({DATE: dates, TICKER: tickers})


def date_ticker_key(day: str | date, ticker: str) -> str:
    """The multi-partition key of (``day``, ``ticker``): ``YYYY-MM-DD|TICKER``."""
    return f"{parse_day(day).isoformat()}{KEY_SEPARATOR}{ticker.upper()}"


def split_key(key: str) -> tuple[str, str | None]:
    """``(date, ticker)`` of a partition key (ticker ``None`` for a date-only key)."""
    if KEY_SEPARATOR in key:
        day, ticker = key.split(KEY_SEPARATOR, 1)
        return day, ticker
    return key, None
