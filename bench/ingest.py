"""Benchmark: ingest + validate + store throughput (rows/s).

Prints one result line per dataset:
  the bundled sample (5 tickers, 12k rows); a synthetic universe (default 500 tickers x 20 years of XNYS sessions,
  Yahoo-style CSV files written to a temp dir first; writing them is not timed); and the real-shaped Alpha Vantage
  corpus of ``tests/corpus.py`` (default 32 instruments x 20 years with dividends, splits, crashes and zero-volume
  days): all but its last quarter into an empty home, then that quarter as an increment (10 sessions of overlap,
  adjusted as of the newer download, so stored history is re-based: ``rows`` counts every row written).

    python bench/ingest.py [--tickers 500] [--years 20] [--skip-synthetic]
                           [--corpus-instruments 32] [--corpus-years 20] [--skip-corpus]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _synth import synthetic_bars

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from corpus import (
    build_corpus,  # tests/corpus.py, shared with the tests (needs the path above)
)
from tradeops.config import load_settings
from tradeops.data.ingest import ingest
from tradeops.data.sources import CsvSource, SampleSource


def synthetic_universe(out: Path, n_tickers: int, years: int) -> int:
    """Write ``n_tickers`` Yahoo-style CSVs (see ``_synth.synthetic_bars``); returns the number of rows."""
    rows = 0
    for ticker, df in synthetic_bars(n_tickers, years):
        df.assign(Date=df["Date"].dt.strftime("%Y-%m-%d")).to_csv(out / f"{ticker}.csv", index=False)
        rows += len(df)
    return rows


def run(name: str, source, home: Path) -> None:
    settings = load_settings(home=home)
    t0 = time.perf_counter()
    report = ingest(source, settings)
    dt = time.perf_counter() - t0
    rows = sum(r.rows_written for r in report.results)
    bad = sum(r.status == "quarantined" for r in report.results)
    print(
        f"ingest dataset={name} tickers={len(report.results)} rows={rows} quarantined={bad} "
        f"seconds={dt:.2f} rows_per_s={rows / dt:,.0f}",
        flush=True,
    )


def corpus_runs(tmp: Path, n_instruments: int, years: int) -> None:
    """The AV corpus into an empty home (all but the last quarter), then the last quarter as an increment."""
    corpus = build_corpus(n_instruments, years)
    dates = corpus.frames[next(iter(corpus.frames))]["date"]
    cut = dates.iloc[int(len(dates) * 0.75)]
    history = corpus.write(tmp / "corpus-history", end=cut)
    increment = corpus.write(tmp / "corpus-increment", start=dates.iloc[int(dates.searchsorted(cut)) - 10])
    name = f"av-corpus-{n_instruments}x{years}y"
    run(f"{name}-history", CsvSource(history), tmp / "home-corpus")
    run(f"{name}-increment", CsvSource(increment), tmp / "home-corpus")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--corpus-instruments", type=int, default=32)
    ap.add_argument("--corpus-years", type=int, default=20)
    ap.add_argument("--skip-corpus", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    try:
        run("sample", SampleSource(), tmp / "home-sample")
        if not args.skip_synthetic:
            src = tmp / "csv"
            src.mkdir()
            synthetic_universe(src, args.tickers, args.years)
            run(f"synthetic-{args.tickers}x{args.years}y", CsvSource(src), tmp / "home-synth")
        if not args.skip_corpus:
            corpus_runs(tmp, args.corpus_instruments, args.corpus_years)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
