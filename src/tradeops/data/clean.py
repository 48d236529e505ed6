"""Cleaning and adjustment of parsed bars; exchange-calendar checks.

Adjustment (documented formula). With ``AC_t`` the source's adjusted close and ``C_t`` the traded close, the total
adjustment factor is ``F_t = AC_t / C_t`` (splits and dividends after t, as the source computed them), and

    adj_open = open * F,  adj_high = high * F,  adj_low = low * F,  adj_close = AC,
    adj_volume = volume * S_t,  S_t = product of split ratios of the splits strictly after t.

Split ratios come from the source's ``split_coefficient`` when it has one (Alpha Vantage), otherwise from the
day-over-day change of ``F`` when that change is within ``split_tolerance`` of a common split ratio (2:1, 3:2, 1:10,
...; dividends move ``F`` by a few percent and never match). A layout without an adjusted close is taken as is
(``F = 1``): a split in it shows as a jump in the adjusted close, which the anomaly check rejects when the jump
carries a split's signature (``quality.check_anomalies``).
Nothing is forward-filled: missing sessions are reported, never invented.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
import pandas as pd

from tradeops.errors import Finding

_SPLIT_BASE = (
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    10,
    15,
    20,
    25,
    50,
    100,
    Fraction(3, 2),
    Fraction(5, 4),
    Fraction(4, 3),
    Fraction(5, 2),
    Fraction(5, 3),
    Fraction(8, 5),
)
SPLIT_RATIOS: tuple[Fraction, ...] = tuple(
    sorted({Fraction(r) for r in _SPLIT_BASE} | {1 / Fraction(r) for r in _SPLIT_BASE})
)

COMMON_SPLITS: frozenset[Fraction] = frozenset(
    Fraction(r) for r in (2, Fraction(3, 2), 3, 4, Fraction(1, 5), Fraction(1, 10), Fraction(1, 20))
)
"""Share multipliers of the common splits (2:1, 3:2, 3:1, 4:1; reverse 1:5, 1:10, 1:20); the anomaly check asks
less evidence before it takes a price jump at one of these for an unadjusted split."""


def is_common_split(price_ratio: Fraction) -> bool:
    """Whether a split that multiplies prices by ``price_ratio`` (0.5 for 2:1) is a common one."""
    return 1 / Fraction(price_ratio) in COMMON_SPLITS


_NEAREST_LOG = min(abs(np.log(float(c))) for c in SPLIT_RATIOS)


def snap_split_ratios(ratios: np.ndarray, tolerance: float) -> np.ndarray:
    """Vectorised :func:`snap_split_ratio`: the index into ``SPLIT_RATIOS`` of each ratio's match, -1 when none."""
    r = np.asarray(ratios, dtype="float64")
    out = np.full(r.shape, -1, dtype=np.int64)
    ok = np.isfinite(r) & (r > 0)
    # Only ratios at least as far from 1 as the nearest split ratio (5:4), less a margin, can match: skip the rest.
    ok[ok] = np.abs(np.log(r[ok])) >= _NEAREST_LOG - 2 * tolerance
    if not ok.any():
        return out
    cand = np.array([float(c) for c in SPLIT_RATIOS])
    within = np.abs(r[ok, None] / cand[None, :] - 1.0) <= tolerance
    hit = within.any(axis=1)
    idx = np.where(hit, within.argmax(axis=1), -1)  # the first match, as snap_split_ratio returns it
    out[ok] = idx
    return out


def snap_split_ratio(ratio: float, tolerance: float) -> Fraction | None:
    """The common split ratio within ``tolerance`` (relative) of ``ratio``, or ``None``."""
    if not np.isfinite(ratio) or ratio <= 0:
        return None
    for cand in SPLIT_RATIOS:
        if abs(ratio / float(cand) - 1.0) <= tolerance:
            return cand
    return None


def _split_ratios(df: pd.DataFrame, factor: np.ndarray, tolerance: float) -> np.ndarray:
    """Split ratio per row (shares multiply by it on that date; 1.0 when none)."""
    coeff = df["split_coefficient"].to_numpy(dtype="float64")
    if not np.isnan(coeff).all():
        return np.where(np.isnan(coeff) | (coeff <= 0), 1.0, coeff)
    out = np.ones(len(df))
    if len(df) < 2:
        return out
    change = factor[1:] / factor[:-1]
    candidates = np.flatnonzero(np.abs(change - 1.0) > 0.1)
    for i in candidates:
        snapped = snap_split_ratio(float(change[i]), tolerance)
        if snapped is not None:
            out[i + 1] = float(snapped)
    return out


def adjust(df: pd.DataFrame, split_tolerance: float = 0.015) -> pd.DataFrame:
    """Add adjusted OHLCV columns and the per-row ``split_ratio`` to a parsed, date-ascending frame (pure)."""
    out = df.copy()
    close = out["close"].to_numpy(dtype="float64")
    adj_close = out["adj_close"].to_numpy(dtype="float64")
    has_adjusted = not np.isnan(adj_close).all()
    if has_adjusted:
        factor = adj_close / close
    else:
        factor = np.ones(len(out))
        adj_close = close.copy()
    split = _split_ratios(out, factor, split_tolerance)
    after = np.ones(len(out))
    if len(out) > 1:
        after[:-1] = np.cumprod(split[::-1])[::-1][1:]
    out["adj_open"] = out["open"].to_numpy() * factor
    out["adj_high"] = out["high"].to_numpy() * factor
    out["adj_low"] = out["low"].to_numpy() * factor
    out["adj_close"] = adj_close
    out["adj_volume"] = out["volume"].to_numpy() * after
    out["split_ratio"] = split
    out["dividend"] = out["dividend"].astype("float64")
    return out


@lru_cache(maxsize=8)
def _calendar(name: str, start_year: int):
    import exchange_calendars as xc  # heavy import, only when a calendar is needed

    try:
        return xc.get_calendar(name, start=f"{start_year}-01-01")
    except xc.errors.InvalidCalendarName as exc:
        from tradeops.errors import ConfigError

        raise ConfigError(f"unknown exchange calendar {name!r} (ingest.calendar)") from exc


def sessions(calendar: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Trading sessions of ``calendar`` between ``start`` and ``end`` inclusive (tz-naive midnight dates)."""
    year = min(1990, int(start.year))
    cal = _calendar(calendar, year)
    last = cal.last_session
    end = min(end, last)
    if start > end:
        return pd.DatetimeIndex([])
    return pd.DatetimeIndex(cal.sessions_in_range(start, end)).tz_localize(None)


def calendar_findings(
    ticker: str, dates: pd.Series, calendar: str, max_gap: int, known: pd.DatetimeIndex | None = None
) -> tuple[list[Finding], dict]:
    """Compare bar dates with the exchange's sessions.

    A bar on a non-session date is an error; sessions missing between the first and last bar (counting ``known``
    stored dates as present) are a warning, or an error when one run of missing sessions exceeds ``max_gap``.
    Returns the findings and a summary (``missing_sessions`` count and first dates).
    """
    d = pd.DatetimeIndex(dates.dropna())
    if len(d) == 0:
        return [], {"missing_sessions": 0}
    start = d.min()
    if known is not None and len(known) and known.min() < start:
        start = known[known < start].max()  # a hole between the stored bars and this batch counts too
    sess = sessions(calendar, start, d.max())
    out: list[Finding] = []
    not_session = d.difference(sess)
    if len(sess) and len(not_session):
        shown = ", ".join(x.strftime("%Y-%m-%d") for x in not_session[:5])
        out.append(
            Finding(
                ticker,
                "not_a_session",
                f"{len(not_session)} bar(s) on dates when {calendar} was closed: {shown}",
                date=not_session[0].strftime("%Y-%m-%d"),
            )
        )
    present = d if known is None else d.union(known)
    missing = sess.difference(present)
    summary: dict = {
        "missing_sessions": int(len(missing)),
        "first_missing": [x.strftime("%Y-%m-%d") for x in missing[:10]],
    }
    if len(missing):
        pos = sess.get_indexer(missing)
        runs = np.split(pos, np.flatnonzero(np.diff(pos) != 1) + 1)
        longest = max(runs, key=len)
        start = sess[longest[0]].strftime("%Y-%m-%d")
        summary["longest_gap"] = int(len(longest))
        if len(longest) > max_gap:
            out.append(
                Finding(
                    ticker,
                    "gap",
                    f"{len(longest)} consecutive sessions missing from {start} "
                    f"(more than ingest.max_gap_sessions={max_gap}); not forward-filled",
                    date=start,
                )
            )
        else:
            out.append(
                Finding(
                    ticker,
                    "missing_sessions",
                    f"{len(missing)} session(s) missing (first {start}); left missing, not forward-filled",
                    severity="warning",
                    date=start,
                )
            )
    return out, summary
