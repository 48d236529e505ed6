"""`tradeops train` in stages: prepare window -> fit + export -> evaluate (with baselines) -> bless against the
champion re-scored on the same window -> register -> promote. Each stage is a typed function an orchestrator can call
on its own (:func:`prepare_window`, :func:`fit_candidate`, :func:`evaluate_candidate`, :func:`bless_candidate`,
:func:`register_candidate`, :func:`promote_candidate`); :func:`train_model` runs them in order.

Pure computation lives in :mod:`tradeops.model.windows`, MLflow run logging in :mod:`tradeops.model.tracking`, the
registry in :mod:`tradeops.model.registry`, loading registered models in :mod:`tradeops.model.serving`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tradeops.config import Settings
from tradeops.data import store as st
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import CLASSES, LABEL_COLUMN
from tradeops.features.splits import Fold
from tradeops.features.store import FeatureSet, build_features, read_features, read_labels
from tradeops.model import registry as reg
from tradeops.model import tracking
from tradeops.model.backtest import Costs
from tradeops.model.blessing import BlessingConfig, Candidate, Decision, bless
from tradeops.model.onnx_runtime import OnnxPredictor

if TYPE_CHECKING:
    from tradeops.model.walkforward import WalkForwardResult
    from tradeops.monitor.reference import TrainingReference
from tradeops.model.package import PROBA_COLUMNS, FeatureSetMismatch, SignalBundle, load_bundle, write_bundle
from tradeops.model.windows import (
    Evaluation,
    WindowData,
    WindowModel,
    bars_by_ticker,
    evaluate_signals,
    fit_window,
    holdout_fold,
    horizon_of,
    slice_metrics,
    split_rows,
)


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True, timeout=5
    ).stdout.strip()


def _installed_commit() -> str | None:
    """The commit pip recorded when tradeops was installed from a VCS URL (PEP 610 ``direct_url.json``), if any."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        text = distribution("tradeops").read_text("direct_url.json")
        commit = json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
    except (PackageNotFoundError, json.JSONDecodeError, AttributeError):
        return None
    return commit or None


def git_commit() -> str:
    """The commit of the tradeops source that is running (``+dirty`` when its checkout has uncommitted changes),
    whatever the current directory: read from git at the package's own location when its files are tracked there,
    else the commit recorded at install time, else ``unknown``."""
    import tradeops

    package = Path(tradeops.__file__).resolve().parent
    try:
        # a copy installed into site-packages inside some checkout is not that checkout's source
        _git(package, "ls-files", "--error-unmatch", "__init__.py")
        sha = _git(package, "rev-parse", "HEAD")
        dirty = _git(package, "status", "--porcelain", "--untracked-files=no")
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return _installed_commit() or "unknown"


def tradeops_version() -> str:
    """The installed tradeops distribution's version, or ``unknown`` when it is not installed (a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tradeops")
    except PackageNotFoundError:
        return "unknown"


def lock_sha256() -> str | None:
    """sha256 of the checkout's ``requirements.lock`` (the locked environment), ``None`` outside a checkout."""
    import hashlib

    path = Path(__file__).resolve().parents[3] / "requirements.lock"
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


#: CPU features that select different floating-point kernels (oneDNN's convolutions, ATen's vectorised ops), in
#: the order they are reported. Measured (torch 2.13, CNN-TA, same seed, data and threads, one AVX-512 machine): the
#: weights trained with oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``) or at SSE4.1 differ from the default's.
SIMD_FLAGS: tuple[str, ...] = (
    *("avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"),
    *("avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2"),
)


def cpu_simd(flags: str | None = None) -> str | None:
    """The kernel-selecting SIMD features (:data:`SIMD_FLAGS`, in that order, space-separated) among ``flags``
    (a cpuinfo ``flags`` / ``Features`` line; ``None``: this machine's, from ``/proc/cpuinfo``). ``None`` when
    this machine's flags cannot be read (not Linux)."""
    if flags is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
        line = next((ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features")), None)
        if line is None:
            return None
        flags = line.split(":", 1)[1]
    have = set(flags.split())
    return " ".join(f for f in SIMD_FLAGS if f in have)


def environment() -> dict:
    """Interpreter, platform, the CPU's kernel-selecting SIMD features (``cpu_simd``) and any cap on oneDNN's
    instruction set (``onednn_max_cpu_isa``), the lock file's digest (``requirements.lock``) and the versions of the
    packages a model depends on; `tradeops reproduce` names any key that differs as an environment difference."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_simd": cpu_simd(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"),
        "requirements.lock": lock_sha256(),
    }
    for pkg in (
        "tradeops",
        "torch",
        "numpy",
        "pandas",
        "scikit-learn",
        "onnx",
        "onnxruntime",
        "lightgbm",
        "ta-lib",
        "deltalake",
        "mlflow",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


@dataclass(frozen=True)
class TableVersions:
    """The Delta table versions a model reads: bars, its feature table and its labels table."""

    bars: int
    features: int
    labels: int

    def to_dict(self) -> dict[str, int]:
        return {"bars": self.bars, "features": self.features, "labels": self.labels}


def ensure_features(lake: st.Lake, fs: FeatureSet, tickers: list[str]) -> TableVersions:
    """Build the feature set for ``tickers`` when it is missing or older than the current bars; return the table
    versions the model will read (bars, features, labels)."""
    bars_version = lake.version(st.BARS)
    if bars_version is None:
        raise UsageError("no bars stored yet: run `tradeops ingest` first")
    stale = True
    if lake.exists(fs.table) and lake.exists(fs.labels_table):
        last = lake.history(fs.table, limit=1)[0]
        built_from = int(last.get("bars_version", -1))
        have = set(json.loads(last.get("tickers", "[]")))
        stored = set(read_features(lake, fs, tickers, as_of=None)["ticker"].unique())
        stale = built_from != bars_version or not set(tickers) <= stored or not set(tickers) <= have | stored
    if stale:
        build_features(lake, fs, tickers)
    features, labels = lake.version(fs.table), lake.version(fs.labels_table)
    if features is None or labels is None:
        raise TradeopsError(f"building {fs.table} for {', '.join(tickers)} left no feature or label table")
    return TableVersions(bars_version, features, labels)


def load_frame(
    lake: st.Lake,
    fs: FeatureSet,
    tickers: list[str],
    *,
    as_of: date | pd.Timestamp | None = None,
    versions: TableVersions | None = None,
) -> pd.DataFrame:
    """Features joined with labels (left: rows whose label is not known yet stay, with a missing label).

    ``as_of``: what was known at that close: feature rows dated <= as_of, labels known (``label_known_at``) by it.
    ``versions``: read those table versions (time travel) instead of the current ones.
    """
    feats = read_features(lake, fs, tickers, as_of=as_of, version=None if versions is None else versions.features)
    labels = read_labels(lake, fs, tickers, as_of=as_of, version=None if versions is None else versions.labels)
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


def sensitivity(
    bundle: SignalBundle, rows: pd.DataFrame, seed: int = 0, top: int = 15, max_rows: int = 200
) -> list[tuple[str, float]]:
    """Global feature importance: mean absolute change of the class probabilities when one feature is permuted
    across the rows (seeded), on at most ``max_rows`` evenly spaced test rows. A feature maps to one pixel and the
    scaling is per feature, so permuting the feature is permuting that pixel of the scaled images: the rows are
    scaled once. Features the image does not use score 0."""
    rng = np.random.default_rng(seed)
    take = np.unique(np.linspace(0, len(rows) - 1, min(max_rows, len(rows))).astype(int))
    features = rows.iloc[take][bundle.feature_names].to_numpy(dtype=np.float64)
    images = bundle.layout.images(features)
    flat = images.reshape(len(images), -1)
    base = bundle.predictor.run(images)
    scores = dict.fromkeys(bundle.feature_names, 0.0)
    for k, name in enumerate(bundle.layout.selected):
        shuffled = flat.copy()
        shuffled[:, k] = rng.permutation(shuffled[:, k])
        moved = bundle.predictor.run(shuffled.reshape(images.shape))
        scores[name] = float(np.abs(moved.astype(np.float64) - base).mean())
    return sorted(scores.items(), key=lambda x: -x[1])[:top]


def _day(ts: pd.Timestamp | None) -> str:
    return "-" if ts is None else str(ts.date())


def model_card(
    *,
    name: str,
    preset: str,
    fs: FeatureSet,
    tickers: list[str],
    fold,
    versions: TableVersions,
    summary: dict,
    decision: dict,
    importance: list[tuple[str, float]],
    cfg,
    commit: str,
    rows: dict,
    package_version: str = "unknown",
) -> str:
    imp = "\n".join(f"| {n} | {v:.4f} |" for n, v in importance)
    checks = "\n".join(f"- {r}" for r in decision.get("reasons", []))
    return (
        f"""# Model card: {name}

CNN-TA signal model (BUY / SELL / HOLD per trading day) for {", ".join(tickers)}.

## Data
- Bars table version {versions.bars}, features table `{fs.table}` version {versions.features}, labels
  `{fs.labels_table}` version {versions.labels}.
- Feature set `{fs.version}` (preset `{preset}`, {len(fs.defs)} features, windows {fs.windows[0]}..{fs.windows[-1]});
  15 x 15 image per day; scaling and selection fitted on the fit window only.
- Fit window {fold.train_start.date()}..{fold.train_end.date()} ({rows["fit"]} rows), validation
  {_day(fold.val_start)}..{_day(fold.val_end)}
  ({rows["val"]} rows), test {fold.test_start.date()}..{fold.test_end.date()} ({rows["test"]} rows); embargo
  {cfg.embargo} trading days; labels known 5 trading days after their date.

## Training
Recipe `{cfg.recipe}`, seed {cfg.seed}, git commit `{commit}`, tradeops {package_version}.

## Metrics on the test window
| metric | value |
|---|---|
"""
        + "\n".join(f"| {k} | {v:.4f} |" for k, v in summary.items() if isinstance(v, (int, float)))
        + f"""

## Blessing
{"Blessed" if decision.get("blessed") else "Not blessed"}:
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
    )


def _fold_dict(fold) -> dict:
    return {
        k: (None if v is None else (v.date().isoformat() if hasattr(v, "date") else v))
        for k, v in fold.__dict__.items()
    }


class ChampionComparisonError(TradeopsError):
    """The current champion exists but could not be re-scored; the candidate must not be blessed against nothing."""


# --- the stages ---------------------------------------------------------------------------------------------------
# prepare_window -> fit_candidate -> evaluate_candidate -> bless_candidate -> register_candidate -> promote_candidate.
# Each takes and returns typed objects, so an orchestrator can run them one by one (with checks in between, e.g. a
# blocking check on the blessing before promotion); `train_model` runs them all in order.


@dataclass
class PreparedWindow:
    """Stage 1: what one training run reads. The MLflow run is created here and named by ``run_id``."""

    name: str
    preset: str
    tickers: list[str]
    fs: FeatureSet
    versions: TableVersions
    fold: Fold
    data: WindowData
    bars: dict[str, pd.DataFrame]
    costs: Costs
    as_of: pd.Timestamp | None
    run_id: str
    commit: str
    package_version: str
    reaped_runs: list[str] = field(default_factory=list)


@dataclass
class FittedCandidate:
    """Stage 2: the fitted transform and network, exported to ONNX (parity checked) and wrapped as a bundle."""

    window: WindowModel
    onnx_bytes: bytes
    bundle: SignalBundle
    parity: float


@dataclass
class CandidateEvaluation:
    """Stage 3: the candidate's test-window signals and their classification, backtest and baseline scores."""

    preds: pd.DataFrame
    evaluation: Evaluation
    windows: tuple[str, ...]

    @property
    def summary(self) -> dict:
        return self.evaluation.summary


@dataclass
class BlessingOutcome:
    """Stage 4: the blessing decision against the champion re-scored on the same window (if there is one)."""

    decision: Decision
    champion_version: str | None
    comparison: dict

    @property
    def blessed(self) -> bool:
        return bool(self.decision.blessed)


@dataclass
class RegisteredModel:
    """Stage 5: the registered, complete model version (challenger alias set)."""

    name: str
    version: str
    run_id: str


@dataclass
class PromotionOutcome:
    """Stage 6: whether the candidate became champion, and why (not)."""

    promoted: bool
    champion_before: str | None
    champion_after: str | None
    reason: str


def prepare_window(
    settings: Settings,
    *,
    preset: str,
    tickers: list[str],
    as_of: date | pd.Timestamp | None = None,
    versions: TableVersions | None = None,
    extra_tags: dict[str, str] | None = None,
) -> PreparedWindow:
    """Features, holdout fold and rows of one training run, then the MLflow run recording what it reads.

    ``as_of``: train as of that close (feature rows dated <= as_of, labels known by it, bars dated <= as_of).
    ``versions``: read exactly those table versions (a rebuild); otherwise the features are built when stale and
    the current versions are read. ``extra_tags`` go onto the MLflow run too (e.g. an orchestrator's run id).
    """
    cfg = settings.model
    fs = FeatureSet.from_preset(preset, settings.features.windows, settings.features.label_window)
    lake = st.lake_for(settings)
    tickers = sorted(set(tickers))
    versions = versions or ensure_features(lake, fs, tickers)
    cutoff = None if as_of is None else pd.Timestamp(as_of)
    frame = load_frame(lake, fs, tickers, as_of=cutoff, versions=versions)
    try:
        fold = holdout_fold(
            pd.DatetimeIndex(frame["date"].unique()),
            test_days=cfg.test_days,
            train_years=cfg.train_years,
            embargo=cfg.embargo,
            val_fraction=cfg.val_fraction,
            horizon=horizon_of(fs.label_window),
        )
    except UsageError as exc:
        raise UsageError(f"{','.join(tickers)}: [history] {exc}") from exc
    data = split_rows(frame, fs.names, fold)
    costs = Costs(cfg.costs.commission_bps, cfg.costs.slippage_bps, cfg.costs.fixed_per_trade)
    bar_rows = lake.read_bars(tickers, version=versions.bars)
    if cutoff is not None:
        bar_rows = bar_rows.loc[bar_rows["date"] <= cutoff].reset_index(drop=True)
    name = reg.model_name(preset, tickers)
    reaped = reg.reap_orphaned_runs(settings)
    commit, package_version = git_commit(), tradeops_version()
    run_id = tracking.start_run(
        settings,
        f"train-{name}",
        {
            "tradeops.model_name": name,
            "tradeops.preset": preset,
            "tradeops.tickers": ",".join(tickers),
            "tradeops.feature_set_version": fs.version,
            "tradeops.git_commit": commit,
            "tradeops.version": package_version,
            "tradeops.bars_version": str(versions.bars),
            "tradeops.features_version": str(versions.features),
            "tradeops.labels_version": str(versions.labels),
            "tradeops.as_of": "" if cutoff is None else cutoff.date().isoformat(),
            **(extra_tags or {}),
        },
    )
    prepared = PreparedWindow(
        name,
        preset,
        tickers,
        fs,
        versions,
        fold,
        data,
        bars_by_ticker(bar_rows),
        costs,
        cutoff,
        run_id,
        commit,
        package_version,
        reaped,
    )
    _log_window(settings, prepared, lake, bar_rows)
    return prepared


def _log_window(settings: Settings, p: PreparedWindow, lake: st.Lake, bar_rows: pd.DataFrame) -> None:
    cfg = settings.model
    log = tracking.RunLog(settings, p.run_id)
    params = {
        "preset": p.preset,
        "tickers": ",".join(p.tickers),
        "recipe": cfg.recipe,
        "seed": cfg.seed,
        "epochs": cfg.epochs or "recipe default",
        "batch_size": cfg.batch_size or "recipe default",
        "train_years": cfg.train_years,
        "test_days": cfg.test_days,
        "val_fraction": cfg.val_fraction,
        "embargo": cfg.embargo,
        "commission_bps": cfg.costs.commission_bps,
        "slippage_bps": cfg.costs.slippage_bps,
        "feature_set_version": p.fs.version,
        "n_features": len(p.fs.defs),
        "python": platform.python_version(),
        "torch_threads": cfg.torch_threads,
        "as_of": "latest" if p.as_of is None else p.as_of.date().isoformat(),
    }
    params.update({f"fold.{k}": v for k, v in _fold_dict(p.fold).items()})
    log.params(params)
    log.dict(settings.model_dump(mode="json", exclude={"alphavantage_base_url"}), "config/settings.json")
    log.dict(environment(), "config/environment.json")
    log.input(
        bar_rows[["ticker", "date", "adj_close"]],
        name="bars",
        table_uri=lake.uri(st.BARS),
        version=p.versions.bars,
        context="bars",
    )
    log.input(
        p.data.fit[["ticker", "date", *p.fs.names]],
        name=p.fs.table,
        table_uri=lake.uri(p.fs.table),
        version=p.versions.features,
        context="training",
    )
    log.input(
        p.data.fit[["ticker", "date", LABEL_COLUMN]],
        name=p.fs.labels_table,
        table_uri=lake.uri(p.fs.labels_table),
        version=p.versions.labels,
        context="labels",
    )


def fit_candidate(
    settings: Settings,
    prepared: PreparedWindow,
    *,
    epochs: int | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> FittedCandidate:
    """Fit the transform and the CNN on the fit rows, export ONNX and check its parity with torch on the test rows."""
    from tradeops.model.onnx_export import check_parity, export_onnx

    log = tracking.RunLog(settings, prepared.run_id)
    log.claim()
    if epochs is not None:
        log.params({"epochs_override": epochs})

    def log_epoch(epoch: int, record: dict) -> None:
        log.metrics({k: float(v) for k, v in record.items() if k != "epoch" and v is not None}, step=epoch)
        if on_epoch:
            on_epoch(epoch, record)

    window = fit_window(
        prepared.data, prepared.preset, prepared.fs.names, settings.model, epochs=epochs, on_epoch=log_epoch
    )
    clf = window.classifier
    log.params({f"cnn.{k}": v for k, v in clf.recipe_params_.items() if not isinstance(v, (list, dict))})
    log.tags({"tradeops.weights_sha256": clf.weights_sha256()})
    onnx_bytes = export_onnx(clf)
    predictor = OnnxPredictor(onnx_bytes)
    probe = window.transform.transform(prepared.data.test[list(window.transform.feature_names_in_)])
    parity = check_parity(clf, predictor, probe, atol=1e-5)
    log.metrics({"onnx_parity_max_abs_diff": parity})
    bundle = SignalBundle(
        {"feature_set_version": prepared.fs.version, "name": prepared.name}, window.transform, predictor
    )
    return FittedCandidate(window, onnx_bytes, bundle, parity)


def evaluate_candidate(settings: Settings, prepared: PreparedWindow, fitted: FittedCandidate) -> CandidateEvaluation:
    """Score the test window: classification, net-of-cost backtests, baselines on the same rows, slices."""
    cfg = settings.model
    data = prepared.data
    bundle = fitted.bundle
    preds = bundle.predict_frame(data.test[["ticker", "date", *bundle.feature_names]])
    preds["y_true"] = data.test[LABEL_COLUMN].to_numpy()
    extra = (
        {"lightgbm": lightgbm_signals(data, fitted.window.transform, bundle.feature_names, cfg.seed)}
        if cfg.baselines
        else None
    )
    evaluation = evaluate_signals(preds, prepared.bars, prepared.costs, extra=extra)
    slices = slice_metrics(preds, prepared.bars, pd.DatetimeIndex(data.fit["date"].unique()))
    evaluation.classification["slices"] = slices.to_dict("records")
    log = tracking.RunLog(settings, prepared.run_id)
    log.metrics({k: float(v) for k, v in evaluation.summary.items() if v is not None and np.isfinite(v)})
    log.text(slices.to_csv(index=False), "evaluation/slices.csv")
    log.dict(evaluation.to_dict(), "evaluation/evaluation.json")
    log.dict({"history": fitted.window.classifier.history_}, "training/history.json")
    tracking.log_figures(log, fitted.window.classifier.history_, evaluation.classification["confusion_matrix"], CLASSES)
    return CandidateEvaluation(preds, evaluation, windows_of(preds))


def champion_evaluation(
    settings: Settings, name: str, fs: FeatureSet, data: WindowData, bars, costs: Costs
) -> tuple[str | None, Evaluation | None, str | None]:
    """Re-score the current champion on the candidate's test window (same rows, same costs).

    Returns ``(None, None, None)`` only when there is no champion (no registered model or no alias), and
    ``(version, None, problem)`` when the champion was trained on another feature set. Any other failure (tracking
    outage, missing artifacts, a bundle that does not load or score) raises :class:`ChampionComparisonError`."""
    from tradeops.model.serving import load_registered

    try:
        c = reg.client(settings)
        version = reg.alias_version(c, name, reg.CHAMPION)
    except reg.RegistryError as exc:
        raise ChampionComparisonError(f"cannot look up the champion of {name}: {exc}") from exc
    if version is None:
        return None, None, None
    try:
        bundle = load_registered(settings, name, version, expected_feature_set_version=fs.version)
    except FeatureSetMismatch as exc:
        return version, None, str(exc)
    except Exception as exc:  # any failure to load the champion is reported, never skipped
        raise ChampionComparisonError(
            f"cannot load champion {name} v{version} ({_artifact_location(c, name, version)})"
            f": {type(exc).__name__}: {getattr(exc, 'message', exc)}"
        ) from exc
    try:
        preds = bundle.predict_frame(data.test[["ticker", "date", *bundle.feature_names]])
    except Exception as exc:  # as above
        raise ChampionComparisonError(
            f"cannot score champion {name} v{version} on the test window: {type(exc).__name__}: {exc}"
        ) from exc
    preds["y_true"] = data.test[LABEL_COLUMN].to_numpy()
    return version, evaluate_signals(preds, bars, costs), None


def _artifact_location(c, name: str, version: str) -> str:
    """Where a version's artifacts live, for messages (best effort: the lookup itself may be what fails)."""
    try:
        mv = c.get_model_version(name, version)
        model_id = mv.model_id or (mv.source[len("models:/") :] if mv.source.startswith("models:/m-") else None)
        return f"models:/{name}/{version} at " + (
            c.get_logged_model(model_id).artifact_location if model_id else mv.source
        )
    except Exception:  # noqa: BLE001 - only decorates the message of the error being raised
        return f"models:/{name}/{version}"


def bless_candidate(settings: Settings, prepared: PreparedWindow, evaluation: CandidateEvaluation) -> BlessingOutcome:
    """Bless against the floors and against the champion re-scored on the same window; a champion that exists but
    cannot be re-scored fails the stage (:class:`ChampionComparisonError`), it is never skipped."""
    blessing_cfg = BlessingConfig(**settings.model.blessing.model_dump(exclude={"auto_promote"}))
    try:
        champ_version, champ_eval, champ_problem = champion_evaluation(
            settings, prepared.name, prepared.fs, prepared.data, prepared.bars, prepared.costs
        )
    except ChampionComparisonError as exc:
        raise ChampionComparisonError(
            f"{exc}. The candidate was not registered (run {prepared.run_id} is "
            "marked FAILED) and no alias was changed."
        ) from exc
    champion = None
    comparison: dict = {}
    if champ_eval is not None:
        champion = Candidate(champ_eval.summary, evaluation.windows)
        comparison = {"champion_version": champ_version, "champion_summary": champ_eval.summary}
    elif champ_problem:
        champion = Candidate({}, ("champion uses another feature set",))
        comparison = {"champion_version": champ_version, "problem": champ_problem}
    decision = bless(Candidate(evaluation.summary, evaluation.windows), blessing_cfg, champion)
    log = tracking.RunLog(settings, prepared.run_id)
    log.dict(decision.to_dict(), "evaluation/blessing.json")
    log.dict({"decision": decision.to_dict(), "comparison": comparison}, "evaluation/champion_comparison.json")
    log.tags({"tradeops.blessed": str(decision.blessed).lower()})
    return BlessingOutcome(decision, champ_version, comparison)


def training_reference(
    settings: Settings, prepared: PreparedWindow, names: list[str], evaluation: CandidateEvaluation
) -> TrainingReference:
    """What monitoring compares served traffic with: a subsample of the fit rows (raw features), their class mix,
    and the candidate's test-window signals and probabilities (``monitor.psi_bins``/``reference_rows``/``seed``)."""
    from tradeops.monitor.reference import build_reference

    cfg, data, preds = settings.monitor, prepared.data, evaluation.preds
    fold = prepared.fold
    return build_reference(
        data.fit[names],
        data.fit[LABEL_COLUMN],
        preds["signal"],
        preds[list(PROBA_COLUMNS)].to_numpy(dtype="float64"),
        bins=cfg.psi_bins,
        rows=cfg.reference_rows,
        seed=cfg.seed,
        window={
            "fit": f"{_day(fold.train_start)}..{_day(fold.train_end)}",
            "test": f"{_day(fold.test_start)}..{_day(fold.test_end)}",
        },
    )


def register_candidate(
    settings: Settings,
    prepared: PreparedWindow,
    fitted: FittedCandidate,
    evaluation: CandidateEvaluation,
    blessing: BlessingOutcome,
) -> RegisteredModel:
    """Package the bundle (golden set checked through the serving path), log the pyfunc, register the version with
    all its tags (flagged incomplete), record lineage, flag it complete, move the challenger alias, end the run."""
    cfg = settings.model
    p, data, bundle, clf = prepared, prepared.data, fitted.bundle, fitted.window.classifier
    lake = st.lake_for(settings)
    importance = sensitivity(bundle, data.test, seed=cfg.seed)
    decision = blessing.decision.to_dict()
    card = model_card(
        name=p.name,
        preset=p.preset,
        fs=p.fs,
        tickers=p.tickers,
        fold=p.fold,
        versions=p.versions,
        summary=evaluation.summary,
        decision=decision,
        importance=importance,
        cfg=cfg,
        commit=p.commit,
        rows={"fit": len(data.fit), "val": len(data.val), "test": len(data.test)},
        package_version=p.package_version,
    )
    golden = data.test.iloc[np.linspace(0, len(data.test) - 1, min(16, len(data.test))).astype(int)]
    meta = {
        "name": p.name,
        "preset": p.preset,
        "feature_set_version": p.fs.version,
        "tickers": p.tickers,
        "classes": list(CLASSES),
        "fold": _fold_dict(p.fold),
        "table_versions": p.versions.to_dict(),
        "windows": list(p.fs.windows),
        "label_window": p.fs.label_window,
        "as_of": None if p.as_of is None else p.as_of.date().isoformat(),
        "lake": lake.root,
        "git_commit": p.commit,
        "tradeops_version": p.package_version,
        "run_id": p.run_id,
        "seed": cfg.seed,
        "torch_num_threads": clf.recipe_params_.get("torch_num_threads"),
        "weights_sha256": clf.weights_sha256(),
        "config": cfg.model_dump(mode="json"),
    }
    log = tracking.RunLog(settings, p.run_id)
    log.claim()
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = write_bundle(
            Path(tmp) / "bundle",
            transform=fitted.window.transform,
            onnx_bytes=fitted.onnx_bytes,
            meta=meta,
            golden_rows=golden,
            model_card=card,
        )
        from tradeops.monitor.reference import save_reference

        save_reference(training_reference(settings, p, bundle.feature_names, evaluation), bundle_dir)
        load_bundle(bundle_dir)  # the golden set must hold through the serving path before registering
        example = golden[bundle.feature_names].head(2).astype("float64")
        model_uri = tracking.log_bundle_model(
            p.run_id, bundle_dir, example, bundle.predict_frame(example), feature_set_version=p.fs.version
        )
        log.text(card, "MODEL_CARD.md")
        from tradeops.report.training import candidate_report  # local: the report level imports the model level

        page = candidate_report(
            meta=meta,
            evaluation=evaluation.evaluation,
            history=clf.history_,
            model_card=card,
            preds=evaluation.preds,
            bars=p.bars,
            costs=p.costs,
        )
        log.text(page, "reports/training.html")
    # Registered with every tag in one call and flagged incomplete: a kill from here on leaves a version that
    # `models` shows as incomplete and `promote` refuses, never an untagged one that looks fine.
    version = reg.register_version(
        p.name,
        model_uri,
        {
            "run_id": p.run_id,
            "feature_set_version": p.fs.version,
            "git_commit": p.commit,
            "tradeops_version": p.package_version,
            "bars_version": str(p.versions.bars),
            "features_version": str(p.versions.features),
            "labels_version": str(p.versions.labels),
            "blessed": str(blessing.blessed).lower(),
        },
    )
    tracking.end_run(settings, p.run_id, "FINISHED")
    try:
        for dataset, v in (
            (st.BARS, p.versions.bars),
            (p.fs.table, p.versions.features),
            (p.fs.labels_table, p.versions.labels),
        ):
            lake.record_lineage(dataset, int(v), "model", p.name, version)
        c = reg.client(settings)
        reg.mark_complete(c, p.name, version)
    except (TradeopsError, OSError) as exc:
        raise TradeopsError(
            f"{p.name} v{version} was registered but not completed: {exc}. It stays flagged "
            "incomplete (promote refuses it) and no alias was changed."
        ) from exc
    with reg.registry_errors(
        f"{p.name} v{version} is registered and complete, but moving the challenger alias to it failed"
    ):
        c.set_registered_model_alias(p.name, reg.CHALLENGER, version)
    return RegisteredModel(p.name, version, p.run_id)


def promote_candidate(settings: Settings, registered: RegisteredModel, blessing: BlessingOutcome) -> PromotionOutcome:
    """Make a blessed candidate champion when ``model.blessing.auto_promote`` is on; otherwise say why not."""
    c = reg.client(settings)
    before = reg.alias_version(c, registered.name, reg.CHAMPION)
    if not blessing.blessed:
        return PromotionOutcome(False, before, before, "not blessed")
    if not settings.model.blessing.auto_promote:
        return PromotionOutcome(False, before, before, "blessed; auto-promotion off (waits for `tradeops promote`)")
    reg.promote(settings, registered.name, registered.version, reason="blessed challenger, auto-promotion on")
    return PromotionOutcome(
        True, before, reg.alias_version(c, registered.name, reg.CHAMPION), "blessed challenger, auto-promotion on"
    )


@dataclass
class TrainOutcome:
    """What `tradeops train` reports (JSON-ready through :meth:`to_dict`)."""

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
    reaped_runs: list[str] = field(default_factory=list)  # orphaned runs of killed trainings marked KILLED first

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def train_model(
    settings: Settings,
    *,
    preset: str,
    tickers: list[str],
    epochs: int | None = None,
    as_of: date | pd.Timestamp | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    status: Callable[[str], None] | None = None,
) -> TrainOutcome:
    """Run every stage in order (see the stage functions); a failure ends the MLflow run FAILED (KILLED on Ctrl-C)
    and changes no alias."""
    say = status or (lambda _msg: None)
    say("features")
    prepared = prepare_window(settings, preset=preset, tickers=tickers, as_of=as_of)
    if prepared.reaped_runs:
        say(f"marked {len(prepared.reaped_runs)} run(s) of killed trainings KILLED")
    with _failing_run(settings, prepared.run_id):
        say(f"training {settings.model.recipe} recipe on {len(prepared.data.fit)} rows")
        fitted = fit_candidate(settings, prepared, epochs=epochs, on_epoch=on_epoch)
        say("evaluating on the test window")
        evaluation = evaluate_candidate(settings, prepared, fitted)
        say("blessing against the champion")
        blessing = bless_candidate(settings, prepared, evaluation)
        say("packaging and registering")
        registered = register_candidate(settings, prepared, fitted, evaluation, blessing)
    promotion = promote_candidate(settings, registered, blessing)
    return train_outcome(prepared, evaluation, blessing, registered, promotion)


def train_outcome(
    prepared: PreparedWindow,
    evaluation: CandidateEvaluation,
    blessing: BlessingOutcome,
    registered: RegisteredModel,
    promotion: PromotionOutcome,
) -> TrainOutcome:
    """What `tradeops train` reports, from the stage outputs (also of stages run one by one by an orchestrator)."""
    return TrainOutcome(
        name=registered.name,
        version=registered.version,
        run_id=registered.run_id,
        preset=prepared.preset,
        tickers=prepared.tickers,
        fold=_fold_dict(prepared.fold),
        versions=prepared.versions.to_dict(),
        summary=evaluation.summary,
        evaluation=evaluation.evaluation.to_dict(),
        decision=blessing.decision.to_dict(),
        champion_before=blessing.champion_version,
        champion_after=promotion.champion_after,
        promoted=promotion.promoted,
        comparison=blessing.comparison,
        reaped_runs=prepared.reaped_runs,
    )


@contextlib.contextmanager
def _failing_run(settings: Settings, run_id: str) -> Iterator[None]:
    """End ``run_id`` FAILED (KILLED on Ctrl-C) when the block raises; if the store cannot even record that, the
    original error is raised with a note (the run is left for the reaper)."""
    try:
        yield
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        try:
            tracking.end_run(settings, run_id, status)
        except Exception as end_exc:  # noqa: BLE001 - keep the cause
            exc.add_note(f"MLflow run {run_id} could not be marked {status}: {end_exc}")
        raise


# --- seams for orchestrators (tradeops.pipelines) -------------------------------------------------------------------


def failing_run(settings: Settings, run_id: str) -> contextlib.AbstractContextManager[None]:
    """Context manager for one stage run on its own: a failure ends MLflow run ``run_id`` FAILED (KILLED on
    Ctrl-C), as :func:`train_model` does for its stages."""
    return _failing_run(settings, run_id)


def tag_training_run(settings: Settings, run_id: str, tags: dict[str, str]) -> None:
    """Add ``tags`` to training run ``run_id`` (e.g. the orchestrator's run id, for lineage across tools)."""
    tracking.RunLog(settings, run_id).tags(tags)


def stop_unblessed(settings: Settings, prepared: PreparedWindow, blessing: BlessingOutcome) -> bool:
    """Whether the candidate may go on to registration. An unblessed candidate's MLflow run is ended FINISHED
    here (tagged ``tradeops.stopped_at=blessing``), so a pipeline that stops at the blessing leaves no RUNNING run."""
    if blessing.blessed:
        return True
    with _failing_run(settings, prepared.run_id):
        tracking.RunLog(settings, prepared.run_id).tags({"tradeops.stopped_at": "blessing"})
        tracking.end_run(settings, prepared.run_id, "FINISHED")
    return False


@dataclass(frozen=True)
class FeatureRefresh:
    """What a feature build for some tickers left in the lake: the table versions and the row counts read there."""

    preset: str
    feature_set_version: str
    features_table: str
    labels_table: str
    tickers: list[str]
    versions: TableVersions
    feature_rows: int
    label_rows: int

    def to_dict(self) -> dict:
        return {**self.__dict__, "versions": self.versions.to_dict()}


def refresh_features(
    settings: Settings, *, preset: str, tickers: list[str], lock_wait_seconds: float = 0.0
) -> FeatureRefresh:
    """Build ``preset``'s feature and label tables for ``tickers`` when stale (:func:`ensure_features`), one
    builder at a time per home (lock ``features``, waiting up to ``lock_wait_seconds``); returns what is stored."""
    fs = FeatureSet.from_preset(preset, settings.features.windows, settings.features.label_window)
    lake = st.lake_for(settings)
    tickers = sorted(set(tickers))
    with st.writer_lock(settings.home, "features", "feature build", wait_seconds=lock_wait_seconds):
        versions = ensure_features(lake, fs, tickers)
        # A daily rebuild adds a file per table per day: compact, then report the (same-content) current versions.
        compacted = [lake.compact(fs.table), lake.compact(fs.labels_table)]
        if any(v is not None for v in compacted):
            features, labels = lake.version(fs.table), lake.version(fs.labels_table)
            versions = TableVersions(versions.bars, int(features or 0), int(labels or 0))
    feature_rows = st.read_delta(lake.table(fs.table, versions.features), tickers=tickers, columns=["ticker"])
    label_rows = st.read_delta(lake.table(fs.labels_table, versions.labels), tickers=tickers, columns=["ticker"])
    return FeatureRefresh(
        preset,
        fs.version,
        fs.table,
        fs.labels_table,
        tickers,
        versions,
        int(feature_rows.num_rows),
        int(label_rows.num_rows),
    )


@dataclass(frozen=True)
class WalkForwardReport:
    """A walk-forward evaluation saved as JSON at ``path`` (see :func:`walkforward_as_of`)."""

    path: str
    as_of: str
    test_years: list[int]
    tickers: list[str]
    versions: dict[str, int]
    mlflow_run_id: str | None = None  # the walk-forward's MLflow parent run (tradeops.model.tracking.log_walkforward)


def walkforward_test_year(as_of: date, horizon_days: int = 15) -> int:
    """The last calendar year whose labels are all known by ``as_of``: labels look a few trading days ahead, so
    early January still waits for December's (``horizon_days`` calendar days cover the label horizon)."""
    return (pd.Timestamp(as_of) - pd.Timedelta(days=horizon_days)).year - 1


def walkforward_config(
    settings: Settings, result: WalkForwardResult, *, train_years: float, epochs: int | None
) -> dict[str, Any]:
    """The arguments a walk-forward ran with, as :func:`tracking.log_walkforward` records them: preset, tickers,
    years, mode, pooling, epochs, recipe, seeds, fold workers and torch threads (as the run used them), and the
    source commit and package version."""
    return {
        "preset": result.preset,
        "tickers": result.tickers,
        "train_years": train_years,
        "test_years": result.test_years,
        "mode": result.mode,
        "pooled": result.pooled,
        "epochs": epochs if epochs is not None else "recipe default",
        "recipe": settings.model.recipe,
        "seeds": result.seeds,
        "workers": result.timing["workers"],
        "threads": result.timing["torch_threads"],
        "git_commit": git_commit(),
        "tradeops_version": tradeops_version(),
    }


def walkforward_as_of(
    settings: Settings,
    *,
    as_of: date,
    preset: str | None = None,
    tickers: list[str] | None = None,
    epochs: int | None = None,
) -> WalkForwardReport:
    """Walk-forward evaluation of ``preset`` (default ``pipelines.preset``) on ``tickers`` (default
    ``pipelines.train_tickers``) testing :func:`walkforward_test_year` of ``as_of``, written to
    ``<home>/reports/walkforward/<preset>-<tickers>-<as_of>.json`` and recorded in MLflow (its parent run id is
    the doc's ``mlflow_run_id``)."""
    from tradeops.model.walkforward import run_walkforward

    preset = preset or settings.pipelines.preset
    tickers = sorted(set(tickers or settings.pipelines.train_tickers))
    year = walkforward_test_year(as_of)
    epochs = epochs or settings.pipelines.epochs
    result = run_walkforward(
        settings,
        preset=preset,
        tickers=tickers,
        test_years=[year],
        train_years=settings.model.train_years,
        mode=settings.model.mode,
        epochs=epochs,
    )
    config = walkforward_config(settings, result, train_years=settings.model.train_years, epochs=epochs)
    run_id = tracking.log_walkforward(settings, result, config=config | {"as_of": as_of.isoformat()})
    doc = result.to_dict() | {"as_of": as_of.isoformat(), "mlflow_run_id": run_id}
    out = settings.reports_dir / "walkforward" / f"{preset}-{'_'.join(tickers)}-{as_of.isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(out)
    versions = {f"{k}_version": int(v) for k, v in doc.get("evaluation", {}).get("versions", {}).items()}
    return WalkForwardReport(str(out), as_of.isoformat(), [year], tickers, versions, run_id)
