"""`tradeops train`: features -> holdout fold -> fit -> ONNX -> evaluate (with baselines and the champion on the same
window) -> bless -> package -> register, all tracked in MLflow. Thin orchestration over the pure steps in
:mod:`tradeops.model.train`, :mod:`tradeops.model.package` and :mod:`tradeops.model.registry`.
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tradeops.config import Settings
from tradeops.data import store as st
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import CLASSES, LABEL_COLUMN
from tradeops.features.store import FeatureSet, build_features, read_features, read_labels
from tradeops.model import registry as reg
from tradeops.model.backtest import Costs
from tradeops.model.blessing import BlessingConfig, Candidate, bless
from tradeops.model.train import (
    PROBA_COLUMNS,
    Evaluation,
    WindowData,
    bars_by_ticker,
    evaluate_signals,
    fit_window,
    holdout_fold,
    horizon_of,
    predict_rows,
    slice_metrics,
    split_rows,
)

PIP_REQUIREMENTS = ["numpy", "pandas", "scikit-learn", "onnxruntime", "pyarrow"]


def git_commit() -> str:
    """The checked-out commit (``+dirty`` when the tree has changes), or ``unknown`` outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict:
    """Interpreter, platform and the versions of the packages a model depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("tradeops", "torch", "numpy", "pandas", "scikit-learn", "onnx", "onnxruntime", "lightgbm",
                "ta-lib", "deltalake", "mlflow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def ensure_features(lake: st.Lake, fs: FeatureSet, tickers: list[str]) -> dict:
    """Build the feature set for ``tickers`` when it is missing or older than the current bars; return the table
    versions the model will read (bars, features, labels)."""
    bars_version = lake.version(st.BARS)
    if bars_version is None:
        raise UsageError("no bars stored yet: run `tradeops ingest` first")
    stale = True
    if lake.exists(fs.table) and lake.exists(fs.labels_table):
        last = lake.history(fs.table)[0]
        built_from = int(last.get("bars_version", -1))
        have = set(json.loads(last.get("tickers", "[]")))
        stored = set(read_features(lake, fs, tickers, as_of=None)["ticker"].unique())
        stale = built_from != bars_version or not set(tickers) <= stored or not set(tickers) <= have | stored
    if stale:
        build_features(lake, fs, tickers)
    return {"bars": bars_version, "features": lake.version(fs.table), "labels": lake.version(fs.labels_table)}


def load_frame(lake: st.Lake, fs: FeatureSet, tickers: list[str]) -> pd.DataFrame:
    """Features joined with labels (left: unlabelled recent rows stay, with a missing label)."""
    feats = read_features(lake, fs, tickers)
    labels = read_labels(lake, fs, tickers)
    return feats.merge(labels, on=["ticker", "date"], how="left", validate="one_to_one")


def lightgbm_signals(data: WindowData, model_transform, names: list[str], seed: int) -> pd.DataFrame:
    """The LightGBM baseline on the same inputs (the fitted transform's scaled features), same windows."""
    from tradeops.features.labels import encode_labels
    from tradeops.model.tabular import LGBMSignalClassifier

    def flat(rows: pd.DataFrame) -> np.ndarray:
        return model_transform.transform(rows[names]).reshape(len(rows), -1)

    clf = LGBMSignalClassifier(seed=seed)
    y_fit = encode_labels(data.fit[LABEL_COLUMN]).to_numpy(dtype=np.int64)
    if len(data.val):
        clf.fit(flat(data.fit), y_fit, flat(data.val), encode_labels(data.val[LABEL_COLUMN]).to_numpy(dtype=np.int64))
    else:
        clf.fit(flat(data.fit), y_fit)
    proba = clf.predict_proba(flat(data.test))
    out = data.test[["ticker", "date"]].copy()
    out["signal"] = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)]
    out["y_true"] = data.test[LABEL_COLUMN].to_numpy()
    return out


def windows_of(preds: pd.DataFrame) -> tuple[str, ...]:
    """Evaluation windows as ``TICKER:first..last`` strings (what the blessing compares across models)."""
    return tuple(f"{t}:{g['date'].min():%Y-%m-%d}..{g['date'].max():%Y-%m-%d}" for t, g in preds.groupby("ticker"))


def sensitivity(bundle_predict: Callable[[pd.DataFrame], pd.DataFrame], rows: pd.DataFrame, names: list[str],
                seed: int = 0, top: int = 15) -> list[tuple[str, float]]:
    """Global feature importance: mean absolute change of the class probabilities when one feature's column is
    permuted across the rows (seeded). Model-agnostic; computed on the test window."""
    rng = np.random.default_rng(seed)
    base = bundle_predict(rows[names])[list(PROBA_COLUMNS)].to_numpy()
    scores = []
    for name in names:
        shuffled = rows[names].copy()
        shuffled[name] = rng.permutation(shuffled[name].to_numpy())
        moved = bundle_predict(shuffled)[list(PROBA_COLUMNS)].to_numpy()
        scores.append((name, float(np.abs(moved - base).mean())))
    return sorted(scores, key=lambda x: -x[1])[:top]


def model_card(*, name: str, preset: str, fs: FeatureSet, tickers: list[str], fold, versions: dict, summary: dict,
               decision: dict, importance: list[tuple[str, float]], cfg, commit: str, rows: dict) -> str:
    imp = "\n".join(f"| {n} | {v:.4f} |" for n, v in importance)
    checks = "\n".join(f"- {r}" for r in decision.get("reasons", []))
    return f"""# Model card: {name}

CNN-TA signal model (BUY / SELL / HOLD per trading day) for {', '.join(tickers)}.

## Data
- Bars table version {versions['bars']}, features table `{fs.table}` version {versions['features']}, labels
  `{fs.labels_table}` version {versions['labels']}.
- Feature set `{fs.version}` (preset `{preset}`, {len(fs.defs)} features, windows {fs.windows[0]}..{fs.windows[-1]});
  15 x 15 image per day; scaling and selection fitted on the fit window only.
- Fit window {fold.train_start.date()}..{fold.train_end.date()} ({rows['fit']} rows), validation
  {fold.val_start.date() if fold.val_start is not None else '-'}..{fold.val_end.date() if fold.val_end is not None else '-'}
  ({rows['val']} rows), test {fold.test_start.date()}..{fold.test_end.date()} ({rows['test']} rows); embargo
  {cfg.embargo} trading days; labels known 5 trading days after their date.

## Training
Recipe `{cfg.recipe}`, seed {cfg.seed}, git commit `{commit}`.

## Metrics on the test window
| metric | value |
|---|---|
""" + "\n".join(f"| {k} | {v:.4f} |" for k, v in summary.items() if isinstance(v, (int, float))) + f"""

## Blessing
{'Blessed' if decision.get('blessed') else 'Not blessed'}:
{checks}

## Global feature importance (permutation sensitivity on the test window, top 15)
| feature | mean abs change of probabilities |
|---|---|
{imp}

## Limitations
- Trained on daily bars of {len(tickers)} ticker(s); regimes outside the training years may behave differently.
- Labels are the Sezer window (a centred 11-day extremum), heavily imbalanced (~6% BUY, ~6% SELL).
- Backtests are long-only, single-asset, with the configured costs; `paper` mode fills at the signal day's close
  (optimistic), `realistic` at the next open.
"""


@dataclass
class TrainOutcome:
    name: str
    version: str
    run_id: str
    preset: str
    tickers: list[str]
    fold: dict
    versions: dict
    summary: dict
    evaluation: dict
    decision: dict
    champion_before: str | None
    champion_after: str | None
    promoted: bool
    comparison: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _fold_dict(fold) -> dict:
    return {k: (None if v is None else (v.date().isoformat() if hasattr(v, "date") else v))
            for k, v in fold.__dict__.items()}


def champion_evaluation(settings: Settings, name: str, fs: FeatureSet, data: WindowData, bars, costs: Costs
                        ) -> tuple[str | None, Evaluation | None, str | None]:
    """Re-score the current champion on the candidate's test window (same rows, same costs)."""
    from tradeops.model.package import FeatureSetMismatch, load_bundle

    c = reg.client(settings)
    try:
        version = reg.alias_version(c, name, reg.CHAMPION)
    except Exception:  # noqa: BLE001 - no registered model yet
        version = None
    if version is None:
        return None, None, None
    import mlflow

    mv = c.get_model_version(name, version)
    version = str(mv.version)
    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}")
    bundle_dir = next(Path(local).rglob("meta.json")).parent
    try:
        bundle = load_bundle(bundle_dir, expected_feature_set_version=fs.version)
    except FeatureSetMismatch as exc:
        return version, None, str(exc)
    preds = bundle.predict_frame(data.test[["ticker", "date", *bundle.feature_names]])
    preds["y_true"] = data.test[LABEL_COLUMN].to_numpy()
    return version, evaluate_signals(preds, bars, costs), None


def train_model(settings: Settings, *, preset: str, tickers: list[str], epochs: int | None = None,
                on_epoch: Callable[[int, dict], None] | None = None,
                status: Callable[[str], None] | None = None) -> TrainOutcome:
    """Train, evaluate, bless, package and register one model; see the module docstring."""
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.models import infer_signature

    from tradeops.model.onnx_export import OnnxPredictor, check_parity, export_onnx
    from tradeops.model.package import SignalBundle, SignalPyfunc, load_bundle, write_bundle

    say = status or (lambda _msg: None)
    cfg = settings.model
    fs = FeatureSet.from_preset(preset, settings.features.windows, settings.features.label_window)
    lake = st.lake_for(settings)
    tickers = sorted(set(tickers))
    say("features")
    versions = ensure_features(lake, fs, tickers)
    frame = load_frame(lake, fs, tickers)
    try:
        fold = holdout_fold(pd.DatetimeIndex(frame["date"].unique()), test_days=cfg.test_days,
                            train_years=cfg.train_years, embargo=cfg.embargo, val_fraction=cfg.val_fraction,
                            horizon=horizon_of(fs.label_window))
    except UsageError as exc:
        raise UsageError(f"{','.join(tickers)}: [history] {exc}") from exc
    data = split_rows(frame, fs.names, fold)
    costs = Costs(cfg.costs.commission_bps, cfg.costs.slippage_bps, cfg.costs.fixed_per_trade)
    bars = bars_by_ticker(lake.read_bars(tickers, version=versions["bars"]))
    name = reg.model_name(preset, tickers)
    experiment_id = reg.configure_mlflow(settings)
    commit = git_commit()
    blessing_cfg = BlessingConfig(**cfg.blessing.model_dump(exclude={"auto_promote"}))

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{name}") as run:
        mlflow.set_tags({"tradeops.model_name": name, "tradeops.preset": preset, "tradeops.tickers": ",".join(tickers),
                         "tradeops.feature_set_version": fs.version, "tradeops.git_commit": commit,
                         "tradeops.bars_version": versions["bars"], "tradeops.features_version": versions["features"],
                         "tradeops.labels_version": versions["labels"]})
        params = {"preset": preset, "tickers": ",".join(tickers), "recipe": cfg.recipe, "seed": cfg.seed,
                  "epochs": epochs or cfg.epochs or "recipe default", "batch_size": cfg.batch_size or "recipe default",
                  "train_years": cfg.train_years, "test_days": cfg.test_days, "val_fraction": cfg.val_fraction,
                  "embargo": cfg.embargo, "commission_bps": cfg.costs.commission_bps,
                  "slippage_bps": cfg.costs.slippage_bps, "feature_set_version": fs.version,
                  "n_features": len(fs.defs), "python": platform.python_version()}
        params.update({f"fold.{k}": v for k, v in _fold_dict(fold).items()})
        mlflow.log_params(params)
        mlflow.log_dict(settings.model_dump(mode="json", exclude={"alphavantage_base_url"}), "config/settings.json")
        mlflow.log_dict(environment(), "config/environment.json")
        for label, table, version, rows, context in (
                ("bars", st.BARS, versions["bars"], lake.read_bars(tickers, version=versions["bars"])[
                    ["ticker", "date", "adj_close"]], "bars"),
                (fs.table, fs.table, versions["features"], data.fit[["ticker", "date", *fs.names]], "training"),
                (fs.labels_table, fs.labels_table, versions["labels"], data.fit[["ticker", "date", LABEL_COLUMN]],
                 "labels")):
            ds = mlflow.data.from_pandas(rows.reset_index(drop=True), name=label,
                                         source=DeltaDatasetSource(path=lake.uri(table), delta_table_version=version))
            mlflow.log_input(ds, context=context)

        say(f"training {cfg.recipe} recipe on {len(data.fit)} rows")

        def log_epoch(epoch: int, record: dict) -> None:
            mlflow.log_metrics({k: float(v) for k, v in record.items() if k != "epoch" and v is not None}, step=epoch)
            if on_epoch:
                on_epoch(epoch, record)

        window = fit_window(data, preset, fs.names, cfg, epochs=epochs, on_epoch=log_epoch)
        clf = window.classifier
        mlflow.log_params({f"cnn.{k}": v for k, v in clf.recipe_params_.items() if not isinstance(v, (list, dict))})
        mlflow.set_tag("tradeops.weights_sha256", clf.weights_sha256())

        say("exporting to ONNX and checking parity")
        onnx_bytes = export_onnx(clf)
        predictor = OnnxPredictor(onnx_bytes)
        probe = window.transform.transform(data.test[list(window.transform.feature_names_in_)])
        parity = check_parity(clf, predictor, probe, atol=1e-5)
        mlflow.log_metric("onnx_parity_max_abs_diff", parity)

        say("evaluating on the test window")
        bundle = SignalBundle({"feature_set_version": fs.version}, window.transform, predictor)
        preds = bundle.predict_frame(data.test[["ticker", "date", *bundle.feature_names]])
        preds["y_true"] = data.test[LABEL_COLUMN].to_numpy()
        extra = {"lightgbm": lightgbm_signals(data, window.transform, bundle.feature_names, cfg.seed)} \
            if cfg.baselines else None
        evaluation = evaluate_signals(preds, bars, costs, extra=extra)
        summary = evaluation.summary
        mlflow.log_metrics({k: float(v) for k, v in summary.items() if v is not None and np.isfinite(v)})

        slices = slice_metrics(preds, bars, pd.DatetimeIndex(data.fit["date"].unique()))
        mlflow.log_text(slices.to_csv(index=False), "evaluation/slices.csv")
        evaluation.classification["slices"] = slices.to_dict("records")

        champ_version, champ_eval, champ_problem = champion_evaluation(settings, name, fs, data, bars, costs)
        windows = windows_of(preds)
        champion = None
        comparison: dict = {}
        if champ_eval is not None:
            champion = Candidate(champ_eval.summary, windows)
            comparison = {"champion_version": champ_version, "champion_summary": champ_eval.summary}
        elif champ_problem:
            champion = Candidate({}, ("champion uses another feature set",))
            comparison = {"champion_version": champ_version, "problem": champ_problem}
        decision = bless(Candidate(summary, windows), blessing_cfg, champion).to_dict()
        mlflow.log_dict(decision, "evaluation/blessing.json")
        mlflow.log_dict(evaluation.to_dict(), "evaluation/evaluation.json")
        mlflow.log_dict({"history": clf.history_}, "training/history.json")
        _log_figures(clf.history_, evaluation.classification["confusion_matrix"])
        mlflow.log_dict({"decision": decision, "comparison": comparison}, "evaluation/champion_comparison.json")
        mlflow.set_tag("tradeops.blessed", str(decision["blessed"]).lower())

        say("packaging")
        importance = sensitivity(bundle.predict_frame, data.test.iloc[: min(len(data.test), 400)],
                                 bundle.feature_names, seed=cfg.seed)
        card = model_card(name=name, preset=preset, fs=fs, tickers=tickers, fold=fold, versions=versions,
                          summary=summary, decision=decision, importance=importance, cfg=cfg, commit=commit,
                          rows={"fit": len(data.fit), "val": len(data.val), "test": len(data.test)})
        golden = data.test.iloc[np.linspace(0, len(data.test) - 1, min(16, len(data.test))).astype(int)]
        meta = {"name": name, "preset": preset, "feature_set_version": fs.version, "tickers": tickers,
                "classes": list(CLASSES), "fold": _fold_dict(fold), "table_versions": versions,
                "lake": lake.root, "git_commit": commit, "run_id": run.info.run_id, "seed": cfg.seed,
                "weights_sha256": clf.weights_sha256(), "config": cfg.model_dump(mode="json")}
        with tempfile.TemporaryDirectory() as tmp:
            bundle_dir = write_bundle(Path(tmp) / "bundle", transform=window.transform, onnx_bytes=onnx_bytes,
                                      meta=meta, golden_rows=golden, model_card=card)
            load_bundle(bundle_dir)  # the golden set must hold through the serving path before registering
            example = golden[bundle.feature_names].head(2).astype("float64")
            signature = infer_signature(example, bundle.predict_frame(example))
            with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered ..." itself
                info = mlflow.pyfunc.log_model(name="model", python_model=SignalPyfunc(),
                                               artifacts={"bundle": str(bundle_dir)}, signature=signature,
                                               input_example=example, pip_requirements=PIP_REQUIREMENTS,
                                               code_paths=[str(Path(__file__).resolve().parents[1])],
                                               registered_model_name=name,
                                               # declared so a loader can pass its serving feature set to check
                                               model_config={"feature_set_version": fs.version})
            mlflow.log_text(card, "MODEL_CARD.md")
        version = str(info.registered_model_version)

    c = reg.client(settings)
    for key, value in {"run_id": run.info.run_id, "feature_set_version": fs.version, "git_commit": commit,
                       "bars_version": versions["bars"], "features_version": versions["features"],
                       "labels_version": versions["labels"], "blessed": str(decision["blessed"]).lower()}.items():
        c.set_model_version_tag(name, version, key, str(value))
    c.set_registered_model_alias(name, reg.CHALLENGER, version)
    for dataset, v in ((st.BARS, versions["bars"]), (fs.table, versions["features"]), (fs.labels_table,
                                                                                        versions["labels"])):
        lake.record_lineage(dataset, int(v), "model", name, version)
    promoted = False
    if decision["blessed"] and cfg.blessing.auto_promote:
        reg.promote(settings, name, version, reason="blessed challenger, auto-promotion on")
        promoted = True
    return TrainOutcome(name=name, version=version, run_id=run.info.run_id, preset=preset, tickers=tickers,
                        fold=_fold_dict(fold), versions=versions, summary=summary, evaluation=evaluation.to_dict(),
                        decision=decision, champion_before=champ_version,
                        champion_after=reg.alias_version(c, name, reg.CHAMPION), promoted=promoted,
                        comparison=comparison)


def _log_figures(history: list[dict], cm: list[list[int]]) -> None:
    """Training curves and the confusion matrix as self-contained HTML artifacts (plotly)."""
    import mlflow
    import plotly.graph_objects as go

    h = pd.DataFrame(history)
    fig = go.Figure()
    for col in [c for c in ("train_loss", "val_loss", "val_macro_f1") if c in h]:
        fig.add_trace(go.Scatter(x=h["epoch"], y=h[col], name=col, mode="lines+markers"))
    fig.update_layout(title="Training curves", xaxis_title="epoch")
    mlflow.log_text(fig.to_html(include_plotlyjs=True, full_html=True), "training/curves.html")
    heat = go.Figure(go.Heatmap(z=cm, x=[f"pred {c}" for c in CLASSES], y=[f"true {c}" for c in CLASSES],
                                text=cm, texttemplate="%{text}", colorscale="Blues"))
    heat.update_layout(title="Confusion matrix (test window)")
    mlflow.log_text(heat.to_html(include_plotlyjs=True, full_html=True), "evaluation/confusion_matrix.html")
    mlflow.log_dict({"classes": list(CLASSES), "matrix": cm}, "evaluation/confusion_matrix.json")
