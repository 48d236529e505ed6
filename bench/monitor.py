"""Benchmark: the drift part of one monitoring pass over N logged predictions x 225 features.

Builds a training reference from 2000 synthetic fit rows (standard normal, 225 features), then N current rows
(float32, generated in chunks, deterministic; the first ``--shifted`` features shifted by +1 sd), N served signals
and (BUY, SELL, HOLD) probabilities. Times ``data_drift`` + ``prediction_drift`` with the default
``MonitorConfig`` (generation is not timed). Prints the machine, then the result line:
  monitor rows=1000000 features=225 seconds=... peak_rss_mib=... psi_drifted=5/225 ks_drifted=... domain_auc=...

``peak_rss_mib`` is the process's peak resident memory (``getrusage`` maxrss), generation included (the float32
current rows alone are N x 225 x 4 bytes = 858 MiB at 1M).

    python bench/monitor.py [--rows 1000000] [--features 225] [--shifted 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def current_rows(rows: int, features: int, shifted: int, seed: int) -> np.ndarray:
    """``rows`` x ``features`` float32 standard normal rows, the first ``shifted`` features +1 (chunked: no float64)."""
    rng = np.random.default_rng(seed)
    out = np.empty((rows, features), dtype=np.float32)
    for start in range(0, rows, 100_000):
        block = out[start : start + 100_000]
        rng.standard_normal(size=block.shape, dtype=np.float32, out=block)
    out[:, :shifted] += np.float32(1.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="current (logged) rows")
    ap.add_argument("--features", type=int, default=225)
    ap.add_argument("--shifted", type=int, default=5, help="features shifted by +1 sd in the current rows")
    args = ap.parse_args()
    print(machine(), flush=True)

    from tradeops.config import MonitorConfig
    from tradeops.features.labels import CLASSES
    from tradeops.monitor.drift import data_drift, prediction_drift
    from tradeops.monitor.reference import build_reference

    cfg = MonitorConfig()
    rng = np.random.default_rng(0)
    names = [f"f{j:03d}" for j in range(args.features)]
    fit = pd.DataFrame(rng.standard_normal((2000, args.features)), columns=names)
    labels = pd.Series(rng.choice(CLASSES, size=2000, p=[0.1, 0.1, 0.8]))
    test_proba = rng.dirichlet([1.0, 1.0, 4.0], size=500)
    test_signals = pd.Series(np.asarray(CLASSES, dtype=object)[test_proba.argmax(axis=1)])
    ref = build_reference(
        fit,
        labels,
        test_signals,
        test_proba,
        bins=cfg.psi_bins,
        rows=cfg.reference_rows,
        seed=cfg.seed,
        window={"fit": "2010-01-04..2011-12-30", "test": "2012-01-03..2012-06-29"},
    )
    current = current_rows(args.rows, args.features, args.shifted, seed=1)
    proba = rng.dirichlet([1.0, 1.0, 3.0], size=args.rows).astype(np.float32)
    signals = list(np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)])

    t0 = time.perf_counter()
    data = data_drift("bench", ref, current, cfg=cfg, window="bench")
    preds = prediction_drift("bench", ref, signals, proba, window="bench")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    v = {m.name: m.value for m in data + preds}
    drifted = round((v["data.psi_drifted_share"] or 0.0) * args.features)
    ks_drifted = round((v["data.ks_drifted_share"] or 0.0) * args.features)
    print(
        f"monitor rows={args.rows} features={args.features} seconds={seconds:.1f} peak_rss_mib={peak:.0f} "
        f"psi_drifted={drifted}/{args.features} ks_drifted={ks_drifted}/{args.features} "
        f"domain_auc={v['data.domain_auc']:.3f} signal_mix_psi={v['predictions.signal_mix_psi']:.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
