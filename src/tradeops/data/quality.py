"""Statistical schema, anomaly checks, drift and overlap conflicts for one ticker's bars.

Returns are simple daily returns of the adjusted close (``adj_close_t / adj_close_{t-1} - 1``, a fraction).
The statistical schema is inferred from accepted data and stored per ticker (versioned with the lake); new data is
checked against it before it is accepted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from fractions import Fraction

import numpy as np
import pandas as pd

from tradeops.config import IngestConfig
from tradeops.data.clean import SPLIT_RATIOS, is_common_split, snap_split_ratios
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


def stats_on_basis(stats: TickerStats | None, new: pd.DataFrame, stored: pd.DataFrame) -> TickerStats | None:
    """The stored schema with its adjusted price range moved to the new batch's adjustment basis.

    A split or dividend the source applied since the stored download scales every stored adjusted price by one
    factor (a 1:20 reverse split multiplies them by 20): the ratio of the new to the stored adjustment factor
    ``adj_close / close`` on the latest date both hold, else of the batch's first bar to the last stored bar.
    """
    if stats is None or len(stored) == 0 or len(new) == 0:
        return stats
    new_d, stored_d = new["date"].to_numpy(), stored["date"].to_numpy()
    both = np.intersect1d(new_d, stored_d)
    if len(both):
        i, j = int(np.flatnonzero(new_d == both[-1])[0]), int(np.flatnonzero(stored_d == both[-1])[0])
    else:
        before = np.flatnonzero(stored_d < new_d[0])
        if len(before) == 0:
            return stats
        i, j = 0, int(before[-1])
    f_new = new["adj_close"].iloc[i] / new["close"].iloc[i]
    ratio = f_new / (stored["adj_close"].iloc[j] / stored["close"].iloc[j])
    if not np.isfinite(ratio) or ratio <= 0 or np.isclose(ratio, 1.0, rtol=1e-9, atol=0):
        return stats
    return replace(
        stats, adj_close_min=stats.adj_close_min * float(ratio), adj_close_max=stats.adj_close_max * float(ratio)
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


_RANGE_FLOOR = 0.005  # log; a day range this small is ordinary even after weeks of flat (open = high = low) bars
_VOLUME_FLOOR = 0.15  # log; the least tolerance of a volume shift (20-session medians of volume move this much alone)


@dataclass(frozen=True)
class SplitEvidence:
    """What one day's price jump says about being an unadjusted split (all ratios are of adjusted prices).

    ``split`` is the price ratio of the split the open gap sits on (0.5 for 2:1), ``None`` when it sits on none.
    ``level_ok``: the price stays at the new level (no reversion); required, since a price that reverts was no
    split. Supporting signs, counted by ``score``: ``range_ok`` (the day's range around its open is ordinary),
    ``quiet_ok`` (the day's volume is no news-day spike) and ``volume_ok`` (the volume level shifts by the inverse
    ratio, persistently); ``needed`` of them must hold.
    ``declared``: the source's ``split_coefficient`` declares that very split on the day (enough by itself).
    """

    split: Fraction | None
    gap: float
    close_ratio: float
    common: bool = False
    declared: bool = False
    range_day: float = float("nan")
    range_typical: float = float("nan")
    range_ok: bool = False
    day_volume_ratio: float = float("nan")
    quiet_ok: bool = False
    volume_shift: float = float("nan")
    volume_shift_far: float = float("nan")
    volume_expected: float = float("nan")
    volume_ok: bool = False
    level: float = float("nan")
    level_ok: bool = False
    needed: int = 0

    @property
    def score(self) -> int:
        """Supporting signs that hold (0..3)."""
        return int(self.range_ok) + int(self.quiet_ok) + int(self.volume_ok)

    @property
    def is_split(self) -> bool:
        return self.split is not None and (self.declared or (self.level_ok and self.score >= self.needed))

    def signs(self) -> str:
        """Each sign in words with its measurement, e.g. for a message."""
        yes = {True: "yes", False: "no"}
        return (
            f"new level held: {yes[self.level_ok]} (median close after x{self.level:.3f} of the close before, "
            f"split level x{float(self.split or 0):.3f}); ordinary day: {yes[self.range_ok]} (range "
            f"{self.range_day:.1%} around the open vs a typical {self.range_typical:.1%}); no volume spike: "
            f"{yes[self.quiet_ok]} (x{self.day_volume_ratio:.1f} the level); volume shift: {yes[self.volume_ok]} "
            f"(level x{np.exp(self.volume_shift):.2f}, later x{np.exp(self.volume_shift_far):.2f}, a split gives "
            f"x{np.exp(self.volume_expected):.2f})"
        )

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "split"}
        d.update(split=None if self.split is None else str(self.split), score=self.score)
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def _median_log(v: np.ndarray) -> float:
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.median(np.log(v))) if len(v) else float("nan")


def split_evidence(
    i: int,
    adj_open: np.ndarray,
    adj_high: np.ndarray,
    adj_low: np.ndarray,
    adj_close: np.ndarray,
    adj_volume: np.ndarray,
    split_ratio: np.ndarray,
    cfg: IngestConfig,
) -> SplitEvidence:
    """Weigh whether the jump from bar ``i - 1`` to bar ``i`` (date-ascending adjusted arrays, ``i >= 1``) is an
    unadjusted split. Windows count sessions (bars), not calendar days; when fewer bars exist after ``i`` the
    medians use what exists (at least bar ``i`` itself)."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero or missing price fails the contract, not here
        return _split_evidence(i, adj_open, adj_high, adj_low, adj_close, adj_volume, split_ratio, cfg)


def _split_evidence(
    i: int,
    adj_open: np.ndarray,
    adj_high: np.ndarray,
    adj_low: np.ndarray,
    adj_close: np.ndarray,
    adj_volume: np.ndarray,
    split_ratio: np.ndarray,
    cfg: IngestConfig,
) -> SplitEvidence:
    prev = adj_close[i - 1]
    gap, close_ratio = float(adj_open[i] / prev), float(adj_close[i] / prev)
    k = int(snap_split_ratios(np.array([gap]), cfg.split_tolerance)[0])
    if k < 0:
        return SplitEvidence(None, gap, close_ratio)
    q = SPLIT_RATIOS[k]
    lq = float(np.log(float(q)))
    w = cfg.split_window
    lo = max(0, i - w)
    common = is_common_split(q)
    declared = bool(split_ratio[i] != 1.0 and abs(float(q) * split_ratio[i] - 1.0) <= cfg.split_tolerance)

    # Ordinary day: the range around the open, vs the median of the same measure over the sessions before.
    def around_open(j: slice) -> np.ndarray:
        return np.maximum(np.log(adj_high[j] / adj_open[j]), np.log(adj_open[j] / adj_low[j]))

    range_day = float(around_open(slice(i, i + 1))[0])
    before = around_open(slice(lo, i))
    before = before[np.isfinite(before)]
    range_typical = float(np.median(before)) if len(before) else range_day
    range_ok = bool(range_day <= cfg.split_range_factor * range_typical + _RANGE_FLOOR)

    # Volume: shares multiply by 1/q, so the log volume level shifts by -log q. Over the window after (what exists
    # of it) the shift is within tolerance, and it persists: the later half still shows at least half of it (a news
    # day's spike decays within days). The day itself is no spike vs the higher of the level before and after it.
    base = _median_log(adj_volume[lo:i])
    after = adj_volume[i + 1 : i + 1 + w]
    if len(after) == 0:
        after = adj_volume[i : i + 1]
    full = _median_log(after) - base
    half = len(after) // 2
    far = _median_log(after[half:]) - base if len(after) - half >= 3 else full
    tol = max(cfg.split_volume_tolerance * abs(lq), _VOLUME_FLOOR)
    volume_ok = bool(abs(full + lq) <= tol and far * np.sign(-lq) >= 0.5 * abs(lq))
    day_volume = float(np.log(adj_volume[i])) if adj_volume[i] > 0 else float("-inf")
    spike = day_volume - (base + max(0.0, -lq))
    quiet_ok = bool(spike <= np.log(cfg.split_spike_factor))

    # No reversion: the median close after the jump stays at the split's new level.
    later = adj_close[i + 1 : i + 1 + cfg.split_level_sessions]
    if len(later) == 0:
        later = adj_close[i : i + 1]
    level = float(np.median(later) / prev)
    level_ok = bool(abs(np.log(level) - lq) <= min(cfg.split_level_tolerance, 0.5 * abs(lq)))
    return SplitEvidence(
        q,
        gap,
        close_ratio,
        common,
        declared,
        range_day,
        range_typical,
        range_ok,
        float(np.exp(spike)),
        quiet_ok,
        full,
        far,
        -lq,
        volume_ok,
        level,
        level_ok,
        cfg.split_evidence_common if common else cfg.split_evidence_rare,
    )


def _jump_finding(ticker: str, ev: SplitEvidence, before: float, after: float, date: str, row: int | None) -> Finding:
    """An ``unadjusted_split`` error or a ``price_jump`` warning for one jump, saying why."""
    pct = (ev.close_ratio - 1.0) * 100
    moves = f"adjusted close moves {pct:+.1f}% in one day ({before:.4g} -> {after:.4g}; open gap x{ev.gap:.3f})"
    details = {"ratio": ev.close_ratio, "gap": ev.gap, "evidence": ev.to_dict()}
    kind = "common" if ev.common else "rare"
    if ev.is_split and ev.split is not None:
        label = _ratio_text(ev.split)
        why = (
            "the split_coefficient declares it"
            if ev.declared
            else f"{ev.score} of 3 supporting signs hold, {ev.needed} needed for a {kind} ratio; {ev.signs()}"
        )
        return Finding(
            ticker,
            "unadjusted_split",
            f"{moves}: a {label} split ratio that no split adjustment explains ({why}): the series is not "
            "split-adjusted",
            date=date,
            row=row,
            details={**details, "split": str(ev.split), "ratio_text": label},
        )
    if ev.split is None:
        why = "the open gap is at no split ratio"
    else:
        why = (
            f"the gap sits on a {_ratio_text(ev.split)} split ratio, but a split holds its new level and shows "
            f"{ev.needed} of 3 supporting signs for a {kind} ratio, {ev.score} here ({ev.signs()})"
        )
    return Finding(
        ticker,
        "price_jump",
        f"{moves}; {why}; accepted as a real move",
        severity="warning",
        date=date,
        row=row,
        details=details,
    )


def check_anomalies(
    ticker: str,
    new: pd.DataFrame,
    cfg: IngestConfig,
    previous: pd.DataFrame | None = None,
    stats: TickerStats | None = None,
) -> tuple[list[Finding], list[dict]]:
    """Anomaly checks of new adjusted bars, in the context of the stored bars before them (``previous``) and the
    stored statistical schema (``stats``, on the batch's adjustment basis: :func:`stats_on_basis`). Returns findings
    on new dates only, and the corporate-action events recognised (splits).

    Price jumps, judged by evidence, not by one ratio. A day is a candidate when its adjusted close moves more than
    ``jump_warn`` or its open gaps from the previous close by a split ratio (within ``split_tolerance``). It is an
    unadjusted split (error) only when it carries a split's signature (windows count sessions; the stored bars
    before a batch count too; after the date, what exists is used):

    * the open gap sits on a split ratio q (price ratio, 0.5 for 2:1), and
    * the price does not revert: the median close of the ``split_level_sessions`` after stays within
      ``split_level_tolerance`` (and half of |log q|) of q x the previous close, and
    * supporting signs hold: (1) an ordinary day, its range around the open <= ``split_range_factor`` x the median of
      the ``split_window`` sessions before; (2) no volume spike, the day's volume <= ``split_spike_factor`` x the
      higher of the volume level before and the level the split leads to; (3) a persistent volume shift, the median
      log volume of the ``split_window`` sessions after minus that of the sessions before is -log q within
      max(``split_volume_tolerance`` x |log q|, 0.15), and the later half still shows half of it. A common ratio
      (``clean.COMMON_SPLITS``: 2:1, 3:2, 3:1, 4:1, 1:5, 1:10, 1:20) needs ``split_evidence_common`` (2) of the three,
      any other ratio (5:4, 4:3, 4:5, 3:4, ...) ``split_evidence_rare`` (3); a ``split_coefficient`` declaring that
      split on the day is enough by itself.

    A split the source adjusted for (its coefficient, or an adjusted-close step) does not jump: it is a ``split``
    event. Every other candidate is a real move: a ``price_jump`` warning naming the move and the missing evidence.
    """
    out: list[Finding] = []
    events: list[dict] = []
    if len(new) == 0:
        return out, events
    prev = previous if previous is not None and len(previous) > 0 else None
    ctx = new if prev is None else pd.concat([prev.iloc[[-1]], new], ignore_index=True)
    offset = len(ctx) - len(new)
    dates = ctx["date"].to_numpy()
    raw_rows = ctx["row"].to_numpy(dtype="float64") if "row" in ctx else np.full(len(ctx), np.nan)

    def row_of(i: int) -> int | None:  # the stored bar that gives context has no source row
        return None if np.isnan(raw_rows[i]) else int(raw_rows[i])

    # Splits the adjustment explains (raw close jumps, adjusted close does not).
    split = ctx["split_ratio"].to_numpy(dtype="float64")
    for i in np.flatnonzero(split != 1.0):
        if i >= offset:
            events.append(
                {
                    "type": "split",
                    "date": _d(dates[i]),
                    "ratio": float(split[i]),
                    "ratio_text": _ratio_text(1 / float(split[i])),
                }
            )

    # Price jumps, judged on the stored sessions before the batch too (volume and range levels need them).
    wide = ctx if prev is None else pd.concat([prev.iloc[-cfg.split_window :], new], ignore_index=True)
    w0 = len(wide) - len(ctx)  # wide index = ctx index + w0
    cols = {
        c: wide[c].to_numpy(dtype="float64")
        for c in ("adj_open", "adj_high", "adj_low", "adj_close", "adj_volume", "split_ratio")
    }
    ac = cols["adj_close"]
    jumps = np.zeros(len(wide), dtype=bool)
    if len(wide) > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            move = np.abs(ac[1:] / ac[:-1] - 1.0) > cfg.jump_warn
            gapped = snap_split_ratios(cols["adj_open"][1:] / ac[:-1], cfg.split_tolerance) >= 0
        jumps[1:] = move | gapped
    for j in np.flatnonzero(jumps):
        i = j - w0
        if i < max(offset, 1):
            continue
        ev = split_evidence(
            int(j),
            cols["adj_open"],
            cols["adj_high"],
            cols["adj_low"],
            ac,
            cols["adj_volume"],
            cols["split_ratio"],
            cfg,
        )
        out.append(_jump_finding(ticker, ev, float(ac[j - 1]), float(ac[j]), _d(dates[i]), row_of(int(i))))

    # Stale series: the same OHLCV bar repeated.
    vals = ctx[list(RAW_VALUE_COLUMNS)].to_numpy(dtype="float64")
    same = np.zeros(len(ctx), dtype=bool)
    same[1:] = (vals[1:] == vals[:-1]).all(axis=1)
    for start, length in _runs(same):
        if length + 1 >= cfg.stale_run and start + length - 1 >= offset:
            first = start - 1
            out.append(
                Finding(
                    ticker,
                    "stale_series",
                    f"the same bar repeats {length + 1} days in a row from {_d(dates[first])} "
                    f"(limit ingest.stale_run={cfg.stale_run}): the feed is stale",
                    date=_d(dates[first]),
                    row=row_of(first),
                )
            )

    # Zero volume: runs are rejected, isolated days are flagged.
    vol = ctx["volume"].to_numpy(dtype="float64")
    for start, length in _runs(vol == 0):
        if start + length - 1 < offset:
            continue
        if length >= cfg.zero_volume_run:
            out.append(
                Finding(
                    ticker,
                    "zero_volume_run",
                    f"volume is 0 on {length} consecutive days from {_d(dates[start])} "
                    f"(limit ingest.zero_volume_run={cfg.zero_volume_run})",
                    date=_d(dates[start]),
                    row=row_of(start),
                )
            )
        else:
            out.append(
                Finding(
                    ticker,
                    "zero_volume",
                    f"volume is 0 on {length} day(s) from {_d(dates[start])}",
                    severity="warning",
                    date=_d(dates[start]),
                    row=row_of(start),
                )
            )

    # Out of range against the stored statistical schema.
    if stats is not None:
        hi, lo = stats.adj_close_max * cfg.range_factor, stats.adj_close_min / cfg.range_factor
        new_ac = new["adj_close"].to_numpy(dtype="float64")
        bad = np.flatnonzero((new_ac > hi) | (new_ac < lo))
        if len(bad):
            i = bad[0]
            out.append(
                Finding(
                    ticker,
                    "out_of_range",
                    f"adjusted close {new_ac[i]:.4g} outside [{lo:.4g}, {hi:.4g}] (stored range "
                    f"{stats.adj_close_min:.4g}..{stats.adj_close_max:.4g} x/÷ {cfg.range_factor}); "
                    f"{len(bad)} bar(s) affected",
                    date=_d(new["date"].iloc[i]),
                    row=int(new["row"].iloc[i]),
                )
            )
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
        findings.append(
            Finding(
                ticker,
                "drift",
                f"returns of the new bars differ from the stored ones: KS "
                f"{ks.statistic:.3f} > ingest.drift_ks_warn={cfg.drift_ks_warn}",
                severity="warning",
                details=result,
            )
        )
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


def overlap_conflicts(
    ticker: str, new: pd.DataFrame, stored: pd.DataFrame, rtol: float, limit: int = 5
) -> list[Finding]:
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
        diffs = {
            c: (float(r[f"{c}_stored"]), float(r[c]))
            for c in RAW_VALUE_COLUMNS
            if not np.isclose(r[c], r[f"{c}_stored"], rtol=rtol, atol=0.0)
        }
        shown = ", ".join(f"{c} stored {o} vs new {n}" for c, (o, n) in diffs.items())
        out.append(
            Finding(
                ticker,
                "conflict",
                f"raw values disagree with the stored bar: {shown}"
                + (f" ({len(idx)} conflicting dates in all)" if len(idx) > 1 else ""),
                date=_d(r["date"]),
                row=int(r["row"]),
                details={"diffs": diffs},
            )
        )
    return out
