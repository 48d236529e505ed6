"""Benchmark: seconds per training window for the CNN-TA `paper` recipe (Adadelta, batch 1024, 200 epochs,
BUY/SELL oversampled), on CPU and, where torch sees one, on a GPU.

The window is the holdout fold of `tradeops train` on one sample ticker (5 years of fit rows before a 2-year test).
Prints one line per device:
  train recipe=paper device=cpu ticker=IBM fit_rows=... oversampled_rows=... epochs=200 seconds=... s_per_epoch=...

    python bench/train.py [--ticker IBM] [--epochs 200] [--recipe paper] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from tradeops.config import load_settings
from tradeops.data import store as st
from tradeops.data.ingest import ingest
from tradeops.data.sources import SampleSource
from tradeops.features.store import FeatureSet
from tradeops.model.cnn import CNNClassifier
from tradeops.model.training import ensure_features, load_frame
from tradeops.model.windows import fit_window, holdout_fold, split_rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticker", default="IBM")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--recipe", default="paper", choices=("paper", "default"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to compare on CPU")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    try:
        settings = load_settings(home=tmp)
        ingest(SampleSource(), settings, [args.ticker])
        lake = st.lake_for(settings)
        fs = FeatureSet.from_preset("cnn-ta")
        ensure_features(lake, fs, [args.ticker])
        frame = load_frame(lake, fs, [args.ticker])
        cfg = settings.model
        fold = holdout_fold(
            frame["date"].unique(),
            test_days=cfg.test_days,
            train_years=cfg.train_years,
            embargo=cfg.embargo,
            val_fraction=cfg.val_fraction,
        )
        data = split_rows(frame, fs.names, fold)
        runs = [("cpu", n) for n in args.threads] + ([("cuda", None)] if torch.cuda.is_available() else [])
        for device, threads in runs:
            clf = CNNClassifier(recipe=args.recipe, epochs=args.epochs, device=device, seed=0, num_threads=threads)
            t0 = time.perf_counter()
            window = fit_window(data, "cnn-ta", fs.names, cfg, classifier=clf)
            dt = time.perf_counter() - t0
            counts = window.classifier.recipe_params_.get("oversampled_counts")
            rows = sum(counts) if counts else window.fit_rows
            epochs = len(window.classifier.history_)
            print(
                f"train recipe={args.recipe} device={device} threads={clf.recipe_params_['torch_num_threads']} "
                f"ticker={args.ticker} fit_rows={window.fit_rows} trained_rows={rows} epochs={epochs} "
                f"seconds={dt:.1f} s_per_epoch={dt / epochs:.3f}",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
