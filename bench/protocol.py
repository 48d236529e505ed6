"""Benchmark and research table: the CNN-TA paper's protocol (train 5 years, test each next year) under honest rules.

Runs walk-forward on an ingested universe (default: the bundled sample's AAPL, IBM and MSFT, test years 2007-2012,
ingested into a temporary home), per-instrument and optionally pooled models, scores every research candidate
(``tradeops.model.protocol``: argmax, validation-fitted thresholds, holding rules, seed ensembles) on validation
windows inside the training years, selects the best by validation only, and prints for the selected candidate and
for the plain argmax model the paper's table under both fill rules, per-class F1 and the confusion matrix. Then one
timing line per walk-forward run (wall, CNN training seconds, share outside training, GFLOP/s) and, with
``--compare-workers N``, the same walk-forward on N processes and whether its predictions are bit-identical.

    python bench/protocol.py [--home H] [--tickers AAPL,IBM,MSFT] [--test-years 2007-2012] [--recipe paper]
        [--epochs E] [--seeds 0,1,2] [--pooled] [--variants argmax,thresholds,...] [--workers 1] [--threads 2]
        [--compare-workers 2] [--track] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from tradeops.cli.model import parse_years
from tradeops.config import load_settings
from tradeops.data.ingest import ingest
from tradeops.data.sources import SampleSource
from tradeops.model import protocol as pr
from tradeops.model.walkforward import run_walkforward


def _print_candidate(c: pr.Candidate, title: str) -> None:
    print(f"\n== {title}: {c.name} (validation excess {100 * c.val_score:+.2f} pts/yr) ==")
    for mode in ("paper", "realistic"):
        print(f"-- annualised return, {mode} fills --")
        print(pr.format_paper_table(pr.paper_table(c.evaluation, mode)))
    cls = c.evaluation["classification"]
    print(
        f"-- per-class F1: BUY {cls['f1_BUY']:.2f}  SELL {cls['f1_SELL']:.2f}  HOLD {cls['f1_HOLD']:.2f}  "
        f"macro {cls['macro_f1']:.3f}  accuracy {cls['accuracy']:.3f}"
    )
    print("-- confusion matrix (rows true BUY/SELL/HOLD, columns predicted) --")
    for label, row in zip(("BUY", "SELL", "HOLD"), cls["confusion_matrix"], strict=True):
        print(f"  {label:>4} " + " ".join(f"{v:>6}" for v in row))


def _timing_line(scope: str, t: dict) -> str:
    return (
        f"protocol timing scope={scope} folds={t['folds']} workers={t['workers']} threads={t['torch_threads']} "
        f"wall_s={t['wall_seconds']:.1f} cnn_fit_s={t['cnn_fit_seconds']:.1f} "
        f"lgbm_fit_s={t['lightgbm_fit_seconds']:.1f} "
        f"outside_cnn_training={100 * t['outside_cnn_training_share']:.1f}% "
        f"outside_training={100 * t['outside_training_share']:.1f}% train_gflops={t['train_gflops']:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="an ingested TRADEOPS_HOME (default: a temp home with the sample)")
    ap.add_argument("--tickers", default="AAPL,IBM,MSFT")
    ap.add_argument("--test-years", default="2007-2012")
    ap.add_argument("--train-years", type=float, default=5.0)
    ap.add_argument("--recipe", default="paper", choices=("paper", "default"))
    ap.add_argument("--epochs", type=int, help="epochs per fold (default: the recipe's)")
    ap.add_argument("--seeds", default="0", help="comma list; more than one enables the ensemble variants")
    ap.add_argument("--pooled", action="store_true", help="also train one pooled model per test year")
    ap.add_argument("--variants", default="argmax,thresholds,min_hold_10,exit_on_hold")
    ap.add_argument("--workers", type=int, default=1, help="fold processes")
    ap.add_argument("--device", default="cpu", help="torch device of CNN training: cpu or cuda (a lent GPU)")
    ap.add_argument("--threads", type=int, help="torch threads per fold (default: model.torch_threads)")
    ap.add_argument("--compare-workers", type=int, help="rerun per-instrument on N processes; check bit-identical")
    ap.add_argument("--no-baselines", action="store_true", help="skip LightGBM (rule baselines stay)")
    ap.add_argument("--track", action="store_true", help="log each walk-forward run to MLflow (parent + fold runs)")
    ap.add_argument("--out", type=Path, help="write every candidate's figures as JSON")
    args = ap.parse_args()

    tickers = sorted(t.strip().upper() for t in args.tickers.split(",") if t.strip())
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    pr.variants_of(variants, len(seeds))  # usage errors before any work
    tmp = None
    if args.home is None:
        tmp = Path(tempfile.mkdtemp(prefix="tradeops-protocol-"))
        home = tmp
    else:
        home = args.home
    try:
        overrides = {"recipe": args.recipe, "baselines": not args.no_baselines, "device": args.device}
        settings = load_settings(home=home)
        settings = settings.model_copy(update={"model": settings.model.model_copy(update=overrides)})
        if tmp is not None:
            t0 = time.perf_counter()
            ingest(SampleSource(), settings, tickers)
            print(f"protocol ingest tickers={len(tickers)} seconds={time.perf_counter() - t0:.1f}")
        years = parse_years(args.test_years)
        result = pr.run_protocol(
            settings,
            tickers=tickers,
            test_years=years,
            train_years=args.train_years,
            variants=variants,
            seeds=seeds,
            pooled=args.pooled,
            epochs=args.epochs,
            workers=args.workers,
            threads=args.threads,
        )
        timings = {scope: r.timing for scope, r in result.runs.items()}
        candidates, best, base = result.candidates, result.selected, result.base
        for c in candidates:
            print(
                f"protocol candidate={c.name} val_excess={100 * c.val_score:+.2f} "
                f"test_excess={100 * c.test_excess():+.2f} "
                f"test_net_ann={100 * c.evaluation['summary']['net_annualized_return']:.2f}% "
                f"test_bh_ann={100 * c.evaluation['summary']['bh_annualized_return']:.2f}% "
                f"macro_f1={c.evaluation['summary']['macro_f1']:.3f}"
            )
        beats = sum(
            r["model"]["realistic"]["annualized_return"] > r["buy_and_hold"]["realistic"]["annualized_return"]
            for r in best.evaluation["backtests"].values()
        )
        print(
            f"protocol selected={best.name} by=validation val_excess={100 * best.val_score:+.2f} "
            f"test_excess={100 * best.test_excess():+.2f} "
            f"beats_bh_realistic={beats}/{len(best.evaluation['backtests'])}"
        )
        _print_candidate(base, "plain model (argmax of the first seed)")
        if best is not base:
            _print_candidate(best, "selected on validation")
        print()
        for scope, t in timings.items():
            print(_timing_line(scope, t))
        if args.compare_workers:
            other = run_walkforward(
                settings,
                preset="cnn-ta",
                tickers=tickers,
                test_years=years,
                train_years=args.train_years,
                epochs=args.epochs,
                seeds=seeds,
                threads=args.threads,
                workers=args.compare_workers,
            )
            a = result.runs["per-instrument"]
            same = a.predictions.equals(other.predictions) and a.val_predictions.equals(other.val_predictions)
            print(_timing_line("per-instrument", other.timing))
            print(
                f"protocol compare workers={args.workers}->{args.compare_workers} "
                f"wall_s={a.timing['wall_seconds']:.1f}->{other.timing['wall_seconds']:.1f} "
                f"speedup={a.timing['wall_seconds'] / other.timing['wall_seconds']:.2f} identical={same}"
            )
        if args.track:
            config = {"recipe": args.recipe, "epochs": args.epochs, "seeds": args.seeds, "variants": args.variants}
            for scope, run_id in pr.log_protocol(settings, result, config).items():
                print(f"protocol mlflow scope={scope} run_id={run_id}")
        if args.out:
            doc = {
                "args": {k: str(v) for k, v in vars(args).items()},
                "timing": timings,
                "selected": best.name,
                "candidates": [pr.candidate_record(c) for c in candidates],
            }
            args.out.write_text(json.dumps(doc, indent=2, default=str))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
