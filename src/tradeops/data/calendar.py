"""Trading dates of an exchange, for partitions and schedules.

Time convention: a trading date is the exchange's session date (tz-naive, the date printed on the bar). The bar of
date ``d`` is known after the close of ``d``; a daily run "for ``d``" may start once ``d``'s close plus a delay has
passed in the exchange's time zone (America/New_York for XNYS).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from tradeops.data.clean import sessions
from tradeops.errors import UsageError

EXCHANGE_TZ = ZoneInfo("America/New_York")


def parse_day(value: str | date, what: str = "date") -> date:
    """An ISO date (``YYYY-MM-DD``) or a date; anything else is a :class:`UsageError` naming ``what``."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise UsageError(f"{what}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def trading_dates(start: str | date, end: str | date, calendar: str = "XNYS") -> list[date]:
    """Sessions of ``calendar`` from ``start`` to ``end`` inclusive, oldest first (weekends and holidays excluded)."""
    lo, hi = parse_day(start, "start"), parse_day(end, "end")
    if lo > hi:
        raise UsageError(f"start {lo} is after end {hi}")
    return [ts.date() for ts in sessions(calendar, pd.Timestamp(lo), pd.Timestamp(hi))]


def non_trading_dates(start: str | date, end: str | date, calendar: str = "XNYS") -> list[date]:
    """Every calendar date from ``start`` to ``end`` inclusive that is not a session (weekends, holidays)."""
    lo, hi = parse_day(start, "start"), parse_day(end, "end")
    open_days = set(trading_dates(lo, hi, calendar))
    return [d for d in (lo + timedelta(days=i) for i in range((hi - lo).days + 1)) if d not in open_days]


def is_trading_date(day: str | date, calendar: str = "XNYS") -> bool:
    d = parse_day(day)
    return trading_dates(d, d, calendar) == [d]


def ready_trading_dates(
    now: datetime, *, after: time, lookback: int, calendar: str = "XNYS", tz: ZoneInfo = EXCHANGE_TZ
) -> list[date]:
    """The last ``lookback`` sessions whose close-plus-delay (``after``, exchange local time) is at or before ``now``.

    Oldest first. A schedule evaluated at ``now`` requests these dates keyed by date, so evaluating twice launches
    each once, a weekend or holiday adds none, and a missed day (daemon down) is still in the list next time.
    ``now`` must be time-zone aware.
    """
    if now.tzinfo is None:
        raise UsageError(f"now={now.isoformat()} must be time-zone aware")
    local = now.astimezone(tz)
    last = local.date() if local.time() >= after else local.date() - timedelta(days=1)
    start = last - timedelta(days=7 * lookback + 14)
    days = trading_dates(start, last, calendar)
    return days[-lookback:]
