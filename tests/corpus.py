"""A seeded, real-shaped corpus of Alpha Vantage ``TIME_SERIES_DAILY_ADJUSTED`` CSV files, and its manifest.

Importable from the tests (``tests/`` is on ``sys.path``: ``import corpus``) and from ``bench/``. Files have exactly the
Alpha Vantage layout, newest row first::

    timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient

Sessions are the real XNYS calendar (``exchange_calendars``), so holidays are absent as in real files. Prices are a
GBM-like walk (fat-tailed daily returns capped at 5 sigma, volatility regimes, a slow pull to a trend line) with
planted events, every one listed in the manifest:

* ``dividend``: quarterly cash dividends (the raw open and close drop by the amount on the ex-date);
* ``split``: forward and reverse splits with their ``split_coefficient`` (raw prices jump, adjusted prices do not),
  or, with ``declared=False``, a split the source missed (coefficient 1.0, adjusted close not adjusted for it);
* ``price_jump``: crashes and rallies (-52 % .. +35 %) inside volatile, high-volume weeks, some opening exactly on a
  split ratio on purpose (3:2, 4:3, 4:5, 3:4, 2:1) with the wide range and decaying volume spike of a news day;
* ``zero_volume``: isolated days without trades (flat bar at the previous close, volume 0).

``adjusted_close`` is computed as Alpha Vantage (and CRSP) compute it, from the rows known on the file's ``as_of``
date: ``AC_t = C_t * prod over events e after t of f_e``, with ``f_e = 1 - dividend_e / C_{e-1}`` for a dividend and
``f_e = 1 / split_coefficient_e`` for a split. Everything is deterministic for a seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from tradeops.data.clean import sessions

AV_HEADER = "timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient"
EVENT_WEEKS = (10, 20)  # sessions of high volatility and volume before / after a planted price jump


@dataclass(frozen=True)
class Jump:
    """A real move on session ``index``: close-to-close ``pct`` (fraction) after an open gap ``gap`` (open / previous
    close), with a news day's wide range and a volume spike that decays (half-life 3 sessions)."""

    index: int
    pct: float
    gap: float
    label: str = ""


@dataclass(frozen=True)
class Split:
    """A split on session ``index``: shares multiply by ``ratio`` (2 for 2:1, 1/10 for a 1:10 reverse split).
    ``declared=False``: the source missed it (``split_coefficient`` 1.0, adjusted close not adjusted)."""

    index: int
    ratio: Fraction
    declared: bool = True


@dataclass
class Plan:
    """Planted events of one instrument, by session index. ``dividends`` are (index, quarterly yield)."""

    jumps: list[Jump] = field(default_factory=list)
    splits: list[Split] = field(default_factory=list)
    dividends: list[tuple[int, float]] = field(default_factory=list)
    zero_volume: list[int] = field(default_factory=list)


def ratio_text(share_ratio: Fraction) -> str:
    """Shares multiplier as Alpha Vantage's users write it: 2 -> '2:1', 1/10 -> '1:10'."""
    f = Fraction(share_ratio)
    return f"{f.numerator}:{f.denominator}"


def simulate(
    dates: pd.DatetimeIndex,
    plan: Plan,
    seed: int,
    *,
    price0: float = 50.0,
    volume0: float = 1e6,
    vol_scale: float = 1.0,
    steady: bool = False,
) -> pd.DataFrame:
    """Raw (as traded) daily bars of one instrument, date-ascending: ``date, open, high, low, close, volume,
    dividend_amount, split_coefficient``. Prices are in dollars rounded to 4 decimals, volume in shares.
    ``steady``: one volatility regime and a constant volume level (a calm large cap), daily noise only."""
    rng = np.random.default_rng(seed)
    n = len(dates)
    # Volatility regimes (daily sigma), switching about every 120 sessions.
    levels = np.array([0.009, 0.015, 0.026]) * vol_scale
    switch = rng.random(n) < 1 / 120
    state = np.cumsum(switch) % 3
    state = (state + rng.integers(0, 3)) % 3
    sigma = np.full(n, levels[1]) if steady else levels[state]
    for j in plan.jumps:  # volatile weeks around a news day
        lo, hi = max(0, j.index - EVENT_WEEKS[0]), min(n, j.index + EVENT_WEEKS[1])
        sigma[lo:hi] = np.maximum(sigma[lo:hi], 0.025 * vol_scale)
    z = rng.standard_t(5, n) / np.sqrt(5 / 3)
    r = np.clip(z, -5, 5) * sigma
    # Weak pull to a trend line (half-life ~700 sessions), so prices stay within a few x of their range.
    y = lfilter([1.0], [1.0, -0.999], r)
    logp = np.log(price0) + 0.0002 * np.arange(n) + y
    close = np.exp(logp)

    special = set()
    for j in plan.jumps:  # exact close-to-close move, the rest of the path shifted with it
        close[j.index :] *= close[j.index - 1] * (1 + j.pct) / close[j.index]
        special.add(j.index)
    div = np.zeros(n)
    for i, yld in plan.dividends:
        close[i:] *= 1 - yld
        div[i] = yld * close[i - 1]
    for i in plan.zero_volume:  # no trade: a flat bar at the previous close
        close[i] = close[i - 1]

    gap_noise = np.exp(rng.normal(0, 0.25 * sigma))
    open_ = np.empty(n)
    open_[0] = close[0] * gap_noise[0]
    open_[1:] = close[:-1] * (1 - np.where(div[1:] > 0, div[1:] / close[:-1], 0.0)) * gap_noise[1:]
    ext_hi = np.exp(np.abs(rng.normal(0, 0.6 * sigma)))
    ext_lo = np.exp(-np.abs(rng.normal(0, 0.6 * sigma)))
    for j in plan.jumps:  # a news day: opens on the gap, trades far beyond it both ways
        k, s = j.index, sigma[j.index]
        open_[k] = close[k - 1] * j.gap
        ext_hi[k] = np.exp(rng.uniform(4.0, 6.0) * s)
        ext_lo[k] = np.exp(-rng.uniform(4.0, 6.0) * s)

    # Volume in today's shares before any split: a slow level, daily noise, more in volatile regimes, news spikes.
    level = np.log(volume0) + lfilter([1.0], [1.0, -0.995], rng.normal(0, 0.0 if steady else 0.01, n))
    volume = np.exp(level + rng.normal(0, 0.25, n)) * (sigma / (0.015 * vol_scale)) ** 0.6
    for j in plan.jumps:
        k = j.index
        volume[max(0, k - EVENT_WEEKS[0]) : k] *= 2.0
        d = np.arange(n - k)
        volume[k:] *= 1 + 7 * 0.5 ** (d / 3)

    # Splits: raw prices divide by the cumulative share multiplier, volume multiplies by it.
    mult = np.ones(n)
    coeff = np.ones(n)
    for s in plan.splits:
        mult[s.index :] *= float(s.ratio)
        if s.declared:
            coeff[s.index] = float(s.ratio)
    o, c = np.round(open_ / mult, 4), np.round(close / mult, 4)
    hi = np.round(np.maximum(o, c) * ext_hi, 4)
    lo = np.round(np.minimum(o, c) * ext_lo, 4)
    vol = np.maximum(1, np.round(volume * mult))
    for i in plan.zero_volume:
        o[i] = hi[i] = lo[i] = c[i] = c[i - 1]
        vol[i] = 0
    return pd.DataFrame(
        {
            "date": dates,
            "open": o,
            "high": hi,
            "low": lo,
            "close": c,
            "volume": vol.astype(np.int64),
            "dividend_amount": np.round(div / mult, 4),
            "split_coefficient": coeff,
        }
    )


def adjusted_close(frame: pd.DataFrame) -> np.ndarray:
    """Alpha Vantage's adjusted close of date-ascending raw bars (from the events in ``frame`` only)."""
    c = frame["close"].to_numpy(dtype="float64")
    d = frame["dividend_amount"].to_numpy(dtype="float64")
    s = frame["split_coefficient"].to_numpy(dtype="float64")
    f = np.ones(len(c))  # factor event e applies to the dates before it
    f[1:] = (1 - d[1:] / c[:-1]) / s[1:]
    after = np.ones(len(c))
    after[:-1] = np.cumprod(f[::-1])[::-1][1:]
    return c * after


def av_csv(
    frame: pd.DataFrame, *, as_of: pd.Timestamp | str | None = None, start: pd.Timestamp | str | None = None
) -> str:
    """The Alpha Vantage CSV a download on ``as_of`` returns (rows from ``start``), newest row first. The adjusted
    close knows only the events up to ``as_of``."""
    known = frame if as_of is None else frame.loc[frame["date"] <= pd.Timestamp(as_of)]
    ac = adjusted_close(known)
    out = known.assign(adjusted_close=ac)
    if start is not None:
        out = out.loc[out["date"] >= pd.Timestamp(start)]
    out = out.iloc[::-1].assign(
        timestamp=out["date"].iloc[::-1].dt.strftime("%Y-%m-%d"),
        split_coefficient=[repr(float(x)) for x in out["split_coefficient"].iloc[::-1]],
    )
    return out[AV_HEADER.split(",")].to_csv(index=False, float_format="%.4f", lineterminator="\n")


# The corpus: kinds of planted events, cycled over the instruments so each kind appears.
JUMP_KINDS: tuple[Jump, ...] = (
    Jump(0, -0.30, 2 / 3, "collapse -30%, opens on 3:2"),
    Jump(0, +0.35, 1.25, "rally +35%, opens on 4:5"),
    Jump(0, -0.27, 0.75, "collapse -27%, opens on 4:3"),
    Jump(0, +0.253, 1.12, "rally +25%, closes on 4:5"),
    Jump(0, -0.52, 0.527, "crash -52%, opens near 2:1"),
    Jump(0, +0.30, 4 / 3, "rally +30%, opens on 3:4"),
    Jump(0, -0.47, 0.5, "crash -47%, opens on 2:1"),
    Jump(0, -0.30, 0.70, "collapse -30%, closes near 3:2"),
)
SPLIT_KINDS: tuple[Fraction, ...] = (
    Fraction(2),
    Fraction(3, 2),
    Fraction(1, 10),
    Fraction(3),
    Fraction(5, 4),
    Fraction(4),
    Fraction(1, 5),
    Fraction(2),
    Fraction(1, 20),
)


def _plan(n: int, i: int, rng: np.random.Generator) -> tuple[Plan, float]:
    """Event plan of instrument number ``i`` over ``n`` sessions, events at least 45 sessions apart and 30 from either
    end; returns the plan and a starting price."""
    busy: list[int] = []

    def slot(margin: int = 45) -> int | None:
        for _ in range(200):
            k = int(rng.integers(30, n - 30))
            if all(abs(k - b) >= margin for b in busy):
                busy.append(k)
                return k
        return None

    plan = Plan()
    for m in range(2 if i % 3 == 0 else 1):
        k = slot()
        if k is not None:
            kind = JUMP_KINDS[(i + m * 5) % len(JUMP_KINDS)]
            plan.jumps.append(Jump(k, kind.pct, kind.gap, kind.label))
    price0 = float(np.exp(rng.uniform(np.log(15), np.log(120))))
    n_splits = (0, 1, 1, 2)[i % 4]
    for m in range(n_splits):
        k = slot()
        if k is not None:
            plan.splits.append(Split(k, SPLIT_KINDS[(i + 3 * m) % len(SPLIT_KINDS)]))
    plan.splits.sort(key=lambda s: s.index)
    for _ in range(int(rng.integers(1, 3))):
        k = slot(30)
        if k is not None:
            plan.zero_volume.append(k)
    if i % 10 not in (3, 7):  # most instruments pay a dividend every quarter
        yld = float(rng.uniform(0.002, 0.01))
        for k in range(int(rng.integers(20, 83)), n - 1, 63):
            if all(abs(k - b) >= 4 for b in busy):
                plan.dividends.append((k, yld))
    return plan, price0


@dataclass
class Corpus:
    """Raw frames of every instrument (date-ascending) and the planted events."""

    frames: dict[str, pd.DataFrame]
    events: list[dict]
    seed: int

    @property
    def rows(self) -> int:
        return sum(len(f) for f in self.frames.values())

    def write(
        self, directory: Path | str, *, end: pd.Timestamp | str | None = None, start: pd.Timestamp | str | None = None
    ) -> Path:
        """Write ``<TICKER>.csv`` per instrument as downloaded on ``end`` (rows from ``start``); returns the folder."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for t, f in self.frames.items():
            (out / f"{t}.csv").write_text(av_csv(f, as_of=end, start=start))
        return out

    def manifest(self) -> dict:
        first = min(f["date"].iloc[0] for f in self.frames.values())
        last = max(f["date"].iloc[-1] for f in self.frames.values())
        return {
            "seed": self.seed,
            "instruments": sorted(self.frames),
            "rows": self.rows,
            "first_date": f"{first:%Y-%m-%d}",
            "last_date": f"{last:%Y-%m-%d}",
            "events": self.events,
        }


def build_corpus(n_instruments: int = 32, years: int = 20, seed: int = 1999, end: str = "2020-12-31") -> Corpus:
    """``n_instruments`` synthetic instruments over the XNYS sessions of the ``years`` up to ``end``."""
    last = pd.Timestamp(end)
    dates = sessions("XNYS", last - pd.DateOffset(years=years) + pd.Timedelta(days=1), last)
    n = len(dates)
    frames: dict[str, pd.DataFrame] = {}
    events: list[dict] = []
    for i in range(n_instruments):
        rng = np.random.default_rng([seed, i])
        ticker = f"SYN{i:02d}"
        plan, price0 = _plan(n, i, rng)
        frame = simulate(
            dates,
            plan,
            seed=int(rng.integers(2**31)),
            price0=price0,
            volume0=float(np.exp(rng.uniform(np.log(2e5), np.log(2e7)))),
            vol_scale=0.7 if i % 5 == 4 else 1.0,
        )  # every fifth one an ETF-like, calmer instrument
        frames[ticker] = frame
        c = frame["close"].to_numpy()
        for j in plan.jumps:
            events.append(
                {
                    "ticker": ticker,
                    "date": f"{dates[j.index]:%Y-%m-%d}",
                    "kind": "price_jump",
                    "pct": j.pct,
                    "gap": j.gap,
                    "label": j.label,
                }
            )
        for s in plan.splits:
            events.append(
                {
                    "ticker": ticker,
                    "date": f"{dates[s.index]:%Y-%m-%d}",
                    "kind": "split",
                    "ratio": float(s.ratio),
                    "ratio_text": ratio_text(s.ratio),
                    "declared": s.declared,
                }
            )
        for k, _ in plan.dividends:
            events.append(
                {
                    "ticker": ticker,
                    "date": f"{dates[k]:%Y-%m-%d}",
                    "kind": "dividend",
                    "amount": float(frame["dividend_amount"].iloc[k]),
                    "close_before": float(c[k - 1]),
                }
            )
        for k in plan.zero_volume:
            events.append({"ticker": ticker, "date": f"{dates[k]:%Y-%m-%d}", "kind": "zero_volume"})
    events.sort(key=lambda e: (e["ticker"], e["date"]))
    return Corpus(frames, events, seed)


def write_corpus(
    directory: Path | str, n_instruments: int = 32, years: int = 20, seed: int = 1999, end: str = "2020-12-31"
) -> dict:
    """Write the whole corpus (one AV file per instrument, as downloaded on ``end``) and ``manifest.json`` next to
    the folder's files; returns the manifest."""
    corpus = build_corpus(n_instruments, years, seed, end)
    out = corpus.write(directory)
    manifest = corpus.manifest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
