"""Benchmark: wall time of the commands users wait for, each run as a user runs it (a fresh process, a fresh home).

Prints one line per command:
  command name=... seconds=... exit=... home=fresh|prepared
  - models_empty_home: `tradeops models` in a home that holds nothing (read-only commands must not pay for MLflow)
  - ingest_sample:     `tradeops ingest --source sample`
  - train_ibm:         `tradeops train --preset cnn-ta --tickers IBM` (default recipe, after the ingest)
  - walkforward_sample: `tradeops walkforward --preset cnn-ta --tickers AAPL,IBM,MSFT --train-years 5
                        --test-years 2007-2012` (18 folds, after the ingest)
  - demo:              `tradeops demo` in a fresh home        (with --demo)
  - suite:             `make test` (lint, types, pytest -n 2) (with --suite)

    python bench/commands.py [--skip-walkforward] [--demo] [--suite]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRADEOPS = str(Path(sys.executable).with_name("tradeops"))


def timed(name: str, argv: list[str], *, home: str, cwd: Path = ROOT) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "DAGSTER_DISABLE_TELEMETRY": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    print(f"command name={name} seconds={dt:.1f} exit={proc.returncode} home={home}", flush=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-walkforward", action="store_true")
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--suite", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    try:
        empty = tmp / "empty"
        timed("models_empty_home", [TRADEOPS, "--home", str(empty), "models"], home="fresh")
        home = str(tmp / "home")
        timed("ingest_sample", [TRADEOPS, "--home", home, "ingest", "--source", "sample"], home="fresh")
        timed(
            "train_ibm", [TRADEOPS, "--home", home, "train", "--preset", "cnn-ta", "--tickers", "IBM"], home="prepared"
        )
        if not args.skip_walkforward:
            timed(
                "walkforward_sample",
                [
                    TRADEOPS,
                    "--home",
                    home,
                    "walkforward",
                    "--preset",
                    "cnn-ta",
                    "--tickers",
                    "AAPL,IBM,MSFT",
                    "--train-years",
                    "5",
                    "--test-years",
                    "2007-2012",
                ],
                home="prepared",
            )
        if args.demo:
            timed("demo", [TRADEOPS, "--home", str(tmp / "demo"), "demo"], home="fresh")
        if args.suite:
            timed("suite", ["make", "test"], home="per-test")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
