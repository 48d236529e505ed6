"""Benchmark: simulated trading days per second of `tradeops simulate` (the whole day: ingest_daily chain per ticker,
service reload + batch of signals, monitoring every 5 sessions with its actions). Bootstrap training is timed
apart and not counted in the rate.

Prints one result line per universe: the bundled sample's IBM (the demo's universe), and N synthetic tickers
(geometric random walks on XNYS sessions, ``bench/_synth.py``) served by one pooled model.

    python bench/simulate.py [--days 40] [--tickers 50] [--synthetic-days 10] [--epochs 1] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from _synth import synthetic_bars
from tradeops.config import load_settings
from tradeops.sim.journal import Plan
from tradeops.sim.run import simulate, trading_days

LAX = {
    "blessing": {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None},
    "baselines": False,
}


def run(name: str, plan: Plan, home: Path) -> None:
    settings = load_settings(home=home, model=LAX)
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def hook(step: str, day) -> None:
        marks.setdefault("first_day", time.perf_counter())

    result = simulate(settings, plan, hook=hook)
    end = time.perf_counter()
    days = len(result.days)
    boot = marks["first_day"] - t0
    rate = days / (end - marks["first_day"])
    decisions = len(result.decisions())
    print(
        f"simulate {name}: {days} days x {len(plan.tickers)} tickers in {end - marks['first_day']:.1f} s = "
        f"{rate:.3g} simulated days/s ({rate * len(plan.tickers):.3g} ticker-days/s); bootstrap {boot:.1f} s; "
        f"{decisions} decisions",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=40, help="sessions simulated for the sample's IBM")
    ap.add_argument("--tickers", type=int, default=50, help="synthetic tickers")
    ap.add_argument("--synthetic-days", type=int, default=10, help="sessions simulated for the synthetic universe")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        days = trading_days("XNYS", date(2011, 1, 3), date(2011, 12, 30))
        plan = Plan(
            days[0].isoformat(), days[args.days - 1].isoformat(), ("IBM",), "sample", None, "cnn-ta", 5, args.epochs
        )
        run("sample IBM", plan, root / "sample")
        if args.skip_synthetic:
            return
        data = root / "synthetic"
        data.mkdir()
        names = []
        for ticker, df in synthetic_bars(args.tickers, 8):
            df.assign(Date=df["Date"].dt.strftime("%Y-%m-%d")).to_csv(data / f"{ticker}.csv", index=False)
            names.append(ticker)
        sdays = trading_days("XNYS", date(2022, 1, 3), date(2022, 12, 30))
        plan = Plan(
            sdays[0].isoformat(),
            sdays[args.synthetic_days - 1].isoformat(),
            tuple(sorted(names)),
            "csv",
            str(data),
            "cnn-ta",
            5,
            args.epochs,
        )
        run(f"{args.tickers} synthetic", plan, root / "synthetic-home")


if __name__ == "__main__":
    main()
