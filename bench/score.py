"""Benchmark: in-process scoring latency of one registered model, per call, on one thread.

Trains a small CNN-TA model on the sample's IBM (1 epoch: weights do not change the cost of scoring), registers it,
loads it back through `tradeops.model.serving.load_registered`, then times, over the same feature rows:
  - `SignalBundle.score` of one row given as an array (the service's hot path),
  - `SignalBundle.score_features` of one row given as {name: value} (a JSON feature row),
  - `SignalBundle.predict_frame` of a one-row DataFrame,
  - the registered MLflow pyfunc's `predict` of a one-row DataFrame (includes MLflow's schema enforcement),
  - `score` of a batch of 100 rows.
Prints one line per path: score path=... p50_us=... p99_us=... n=...

    python bench/score.py [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np


def _timed(fn, n: int) -> tuple[float, float]:
    for _ in range(min(50, n)):
        fn()
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return float(np.percentile(out, 50)) / 1e3, float(np.percentile(out, 99)) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from tradeops.config import load_settings
    from tradeops.data import store as st
    from tradeops.data.ingest import ingest
    from tradeops.data.sources import SampleSource
    from tradeops.features.store import FeatureSet, read_features
    from tradeops.model.serving import load_registered
    from tradeops.model.training import train_model

    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    try:
        lax = {
            "blessing": {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None},
            "baselines": False,
        }
        settings = load_settings(home=tmp, model=lax)
        ingest(SampleSource(), settings, ["IBM"], today=date(2026, 11, 26))
        out = train_model(settings, preset="cnn-ta", tickers=["IBM"], epochs=1)
        bundle = load_registered(settings, out.name, out.version)
        rows = read_features(st.lake_for(settings), FeatureSet.from_preset("cnn-ta"), ["IBM"]).dropna().tail(200)
        names = bundle.feature_names
        matrix = rows[names].to_numpy(dtype=np.float64)
        one = matrix[:1]
        mapping = rows.iloc[0][names].to_dict()
        frame = rows[names].head(1).astype("float64")

        import mlflow.pyfunc

        pyfunc = mlflow.pyfunc.load_model(f"models:/{out.name}/{out.version}")
        paths = [
            ("score_array_1row", lambda: bundle.score(one), args.n),
            ("score_features_1row", lambda: bundle.score_features(mapping), args.n),
            ("predict_frame_1row", lambda: bundle.predict_frame(frame), max(200, args.n // 10)),
            ("pyfunc_predict_1row", lambda: pyfunc.predict(frame), max(100, args.n // 20)),
            ("score_array_100rows", lambda: bundle.score(matrix[:100]), max(200, args.n // 4)),
        ]
        for name, fn, n in paths:
            p50, p99 = _timed(fn, n)
            print(f"score path={name} p50_us={p50:,.0f} p99_us={p99:,.0f} n={n}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
