"""Statistical schema, anomaly checks, drift and overlap conflicts for one ticker's bars.

Returns are simple daily returns of the adjusted close (``adj_close_t / adj_close_{t-1} - 1``, a fraction).
The statistical schema is inferred from accepted data and stored per ticker (versioned with the lake); new data is
checked against it before it is accepted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from tradeops.config import IngestConfig
from tradeops.data.clean import snap_split_ratio
from tradeops.errors import Finding

RAW_VALUE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class TickerStats:
    """Statistical schema of one ticker's accepted bars (prices adjusted, returns as fractions)."""

    ticker: str
    n_rows: int
    first_date: str
    last_date: str
    adj_close_min: float
    adj_close_max: float
    ret_mean: float
    ret_std: float
    ret_q01: float
    ret_q99: float
    ret_absmax: float
    volume_median: float
    logvol_mean: float
    logvol_std: float
    zero_volume_frac: float
    null_frac: float

    def to_dict(self) -> dict:
        return asdict(self)


def _returns(adj_close: np.ndarray) -> np.ndarray:
    return adj_close[1:] / adj_close[:-1] - 1.0 if len(adj_close) > 1 else np.array([])


def infer_stats(ticker: str, bars: pd.DataFrame) -> TickerStats:
    """Infer the statistical schema from one ticker's accepted, date-ascending bars."""
    ac = bars["adj_close"].to_numpy(dtype="float64")
    vol = bars["adj_volume"].to_numpy(dtype="float64")
    r = _returns(ac)
    r = r[np.isfinite(r)]
    lv = np.log1p(vol[vol >= 0])
    value_cols = ["open", "high", "low", "close", "volume", "adj_close"]

    def q(a: np.ndarray, p: float) -> float:
        return float(np.quantile(a, p)) if len(a) else 0.0

    return TickerStats(
        ticker=ticker,
        n_rows=len(bars),
        first_date=pd.Timestamp(bars["date"].iloc[0]).strftime("%Y-%m-%d"),
        last_date=pd.Timestamp(bars["date"].iloc[-1]).strftime("%Y-%m-%d"),
        adj_close_min=float(np.min(ac)),
        adj_close_max=float(np.max(ac)),
        ret_mean=float(r.mean()) if len(r) else 0.0,
        ret_std=float(r.std(ddof=1)) if len(r) > 1 else 0.0,
        ret_q01=q(r, 0.01),
        ret_q99=q(r, 0.99),
        ret_absmax=float(np.abs(r).max()) if len(r) else 0.0,
        volume_median=float(np.median(vol)) if len(vol) else 0.0,
        logvol_mean=float(lv.mean()) if len(lv) else 0.0,
        logvol_std=float(lv.std(ddof=1)) if len(lv) > 1 else 0.0,
        zero_volume_frac=float((vol == 0).mean()) if len(vol) else 0.0,
        null_frac=float(bars[value_cols].isna().to_numpy().mean()),
    )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in ``mask``."""
    if not mask.any():
        return []
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(s), int(e - s)) for s, e in zip(edges[::2], edges[1::2])]


def _d(ts) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def check_anomalies(ticker: str, new: pd.DataFrame, cfg: IngestConfig,
                    previous: pd.DataFrame | None = None, stats: TickerStats | None = None) -> tuple[list[Finding], list[dict]]:
    """Anomaly checks of new adjusted bars, in the context of the last stored bar (``previous``) and the stored
    statistical schema. Returns findings on new dates only, and the corporate-action events recognised (splits).
    """
    out: list[Finding] = []
    events: list[dict] = []
    if len(new) == 0:
        return out, events
    ctx = new if previous is None or len(previous) == 0 else pd.concat([previous.iloc[[-1]], new], ignore_index=True)
    offset = len(ctx) - len(new)
    dates = ctx["date"].to_numpy()
    raw_rows = ctx["row"].to_numpy(dtype="float64") if "row" in ctx else np.full(len(ctx), np.nan)

    def row_of(i: int) -> int | None:  # the stored bar that gives context has no source row
        return None if np.isnan(raw_rows[i]) else int(raw_rows[i])

    ac = ctx["adj_close"].to_numpy(dtype="float64")
    close = ctx["close"].to_numpy(dtype="float64")
    adj_open = ctx["adj_open"].to_numpy(dtype="float64")

    # Splits the adjustment explains (raw close jumps, adjusted close does not).
    split = ctx["split_ratio"].to_numpy(dtype="float64")
    for i in np.flatnonzero(split != 1.0):
        if i >= offset:
            events.append({"type": "split", "date": _d(dates[i]), "ratio": float(split[i]),
                           "ratio_text": _ratio_text(1 / float(split[i]))})

    # Price jumps in the adjusted series: an unadjusted split is rejected, a real move is a warning.
    ratio = np.ones(len(ctx))
    ratio[1:] = ac[1:] / ac[:-1]
    for i in np.flatnonzero(np.abs(ratio - 1.0) > cfg.jump_warn):
        if i < max(offset, 1):
            continue
        # A split shows in the close ratio, or in the open gap when the split day also moved (AAPL 2000-06-21 closed
        # x0.549 but opened x0.499); a crash opens and closes off the ratio (AAPL 2000-09-29: x0.527 / x0.481).
        snapped = snap_split_ratio(float(ratio[i]), cfg.split_tolerance) or snap_split_ratio(
            float(adj_open[i] / ac[i - 1]), cfg.split_tolerance)
        raw_ratio = close[i] / close[i - 1]
        pct = (ratio[i] - 1.0) * 100
        if snapped is not None:
            out.append(Finding(
                ticker, "unadjusted_split",
                f"adjusted close moves {pct:+.1f}% ({ac[i - 1]:.4g} -> {ac[i]:.4g}), a {_ratio_text(snapped)} split "
                "ratio that no split adjustment explains: the series is not split-adjusted",
                date=_d(dates[i]), row=row_of(i),
                details={"ratio": float(ratio[i]), "split": str(snapped), "raw_ratio": float(raw_ratio)}))
        else:
            out.append(Finding(
                ticker, "price_jump",
                f"adjusted close moves {pct:+.1f}% in one day ({ac[i - 1]:.4g} -> {ac[i]:.4g}); not a split ratio, "
                "accepted as a real move", severity="warning", date=_d(dates[i]), row=row_of(i),
                details={"ratio": float(ratio[i])}))

    # Stale series: the same OHLCV bar repeated.
    vals = ctx[list(RAW_VALUE_COLUMNS)].to_numpy(dtype="float64")
    same = np.zeros(len(ctx), dtype=bool)
    same[1:] = (vals[1:] == vals[:-1]).all(axis=1)
    for start, length in _runs(same):
        if length + 1 >= cfg.stale_run and start + length - 1 >= offset:
            first = start - 1
            out.append(Finding(ticker, "stale_series",
                               f"the same bar repeats {length + 1} days in a row from {_d(dates[first])} "
                               f"(limit ingest.stale_run={cfg.stale_run}): the feed is stale",
                               date=_d(dates[first]), row=row_of(first)))

    # Zero volume: runs are rejected, isolated days are flagged.
    vol = ctx["volume"].to_numpy(dtype="float64")
    for start, length in _runs(vol == 0):
        if start + length - 1 < offset:
            continue
        if length >= cfg.zero_volume_run:
            out.append(Finding(ticker, "zero_volume_run",
                               f"volume is 0 on {length} consecutive days from {_d(dates[start])} "
                               f"(limit ingest.zero_volume_run={cfg.zero_volume_run})",
                               date=_d(dates[start]), row=row_of(start)))
        else:
            out.append(Finding(ticker, "zero_volume", f"volume is 0 on {length} day(s) from {_d(dates[start])}",
                               severity="warning", date=_d(dates[start]), row=row_of(start)))

    # Out of range against the stored statistical schema.
    if stats is not None:
        hi, lo = stats.adj_close_max * cfg.range_factor, stats.adj_close_min / cfg.range_factor
        new_ac = new["adj_close"].to_numpy(dtype="float64")
        bad = np.flatnonzero((new_ac > hi) | (new_ac < lo))
        if len(bad):
            i = bad[0]
            out.append(Finding(ticker, "out_of_range",
                               f"adjusted close {new_ac[i]:.4g} outside [{lo:.4g}, {hi:.4g}] (stored range "
                               f"{stats.adj_close_min:.4g}..{stats.adj_close_max:.4g} x/÷ {cfg.range_factor}); "
                               f"{len(bad)} bar(s) affected",
                               date=_d(new["date"].iloc[i]), row=int(new["row"].iloc[i])))
    return out, events


def _ratio_text(price_ratio: float | Fraction) -> str:
    """A price ratio as a split label: 0.5 -> '2:1', 2 -> '1:2' (reverse split)."""
    f = Fraction(1 / float(price_ratio)).limit_denominator(100)
    return f"{f.numerator}:{f.denominator}"


def drift(ticker: str, new: pd.DataFrame, stored: pd.DataFrame | None, cfg: IngestConfig) -> tuple[list[Finding], dict]:
    """Drift/skew of new bars vs the stored version: KS statistic of adjusted returns, PSI of log volume,
    shifts of mean and standard deviation. Measured only when both sides have ``cfg.drift_min_rows`` rows."""
    if stored is None or len(stored) < cfg.drift_min_rows or len(new) < cfg.drift_min_rows:
        return [], {"measured": False}
    from scipy.stats import ks_2samp  # scipy comes with scikit-learn

    r_old = _returns(stored["adj_close"].to_numpy(dtype="float64"))
    r_new = _returns(new["adj_close"].to_numpy(dtype="float64"))
    ks = ks_2samp(r_old, r_new)
    lv_old = np.log1p(stored["adj_volume"].to_numpy(dtype="float64"))
    lv_new = np.log1p(new["adj_volume"].to_numpy(dtype="float64"))
    result = {
        "measured": True,
        "returns_ks": float(ks.statistic),
        "returns_ks_pvalue": float(ks.pvalue),
        "ret_std_old": float(r_old.std(ddof=1)),
        "ret_std_new": float(r_new.std(ddof=1)),
        "logvolume_psi": psi(lv_old, lv_new),
    }
    findings: list[Finding] = []
    if ks.statistic > cfg.drift_ks_warn:
        findings.append(Finding(ticker, "drift", f"returns of the new bars differ from the stored ones: KS "
                                f"{ks.statistic:.3f} > ingest.drift_ks_warn={cfg.drift_ks_warn}",
                                severity="warning", details=result))
    return findings, result


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` vs ``expected`` over the expected deciles (0 = same)."""
    expected = expected[np.isfinite(expected)]
    actual = actual[np.isfinite(actual)]
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    e = np.histogram(np.clip(expected, edges[0], edges[-1]), edges)[0] / len(expected)
    a = np.histogram(np.clip(actual, edges[0], edges[-1]), edges)[0] / len(actual)
    e, a = np.clip(e, 1e-6, None), np.clip(a, 1e-6, None)
    return float(np.sum((a - e) * np.log(a / e)))


def overlap_conflicts(ticker: str, new: pd.DataFrame, stored: pd.DataFrame, rtol: float,
                      limit: int = 5) -> list[Finding]:
    """Raw (as traded) values that disagree with the stored ones on the same dates: rejected, both values shown.

    Adjusted values are not compared: they legitimately change after a later dividend or split.
    """
    if stored is None or len(stored) == 0:
        return []
    m = new.merge(stored, on="date", suffixes=("", "_stored"))
    if len(m) == 0:
        return []
    bad = np.zeros(len(m), dtype=bool)
    for c in RAW_VALUE_COLUMNS:
        a, b = m[c].to_numpy(dtype="float64"), m[f"{c}_stored"].to_numpy(dtype="float64")
        bad |= ~np.isclose(a, b, rtol=rtol, atol=0.0)
    out: list[Finding] = []
    idx = np.flatnonzero(bad)
    for i in idx[:limit]:
        r = m.iloc[i]
        diffs = {c: (float(r[f"{c}_stored"]), float(r[c])) for c in RAW_VALUE_COLUMNS
                 if not np.isclose(r[c], r[f"{c}_stored"], rtol=rtol, atol=0.0)}
        shown = ", ".join(f"{c} stored {o} vs new {n}" for c, (o, n) in diffs.items())
        out.append(Finding(ticker, "conflict", f"raw values disagree with the stored bar: {shown}"
                           + (f" ({len(idx)} conflicting dates in all)" if len(idx) > 1 else ""),
                           date=_d(r["date"]), row=int(r["row"]), details={"diffs": diffs}))
    return out
