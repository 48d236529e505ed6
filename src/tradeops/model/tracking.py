"""MLflow tracking of a training run, and of a walk-forward evaluation (:func:`log_walkforward`): the one module
that writes to MLflow runs (the registry is :mod:`tradeops.model.registry`).

A run is addressed by its id, never by MLflow's "active run", so training stages can run one by one, in one process
or in several (an orchestrator's steps): each stage claims the run (its pid and host become the run's owner, which
:func:`tradeops.model.registry.reap_orphaned_runs` checks) and logs through :class:`RunLog`.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tradeops.config import Settings
from tradeops.errors import TradeopsError
from tradeops.model import registry as reg

if TYPE_CHECKING:
    from tradeops.model.walkforward import WalkForwardResult


def start_run(settings: Settings, run_name: str, tags: dict[str, str]) -> str:
    """Create a RUNNING run in the tradeops experiment with ``tags`` (and this process as owner); return its id."""
    experiment_id = reg.configure_mlflow(settings)
    c = reg.client(settings)
    with reg.registry_errors(f"creating the MLflow run {run_name}"):
        run = c.create_run(experiment_id, run_name=run_name, tags={**tags, **reg.run_owner_tags()})
    return str(run.info.run_id)


def end_run(settings: Settings, run_id: str, status: str) -> None:
    """Terminate the run as ``FINISHED``, ``FAILED`` or ``KILLED``."""
    with reg.registry_errors(f"marking run {run_id} {status}"):
        reg.client(settings).set_terminated(run_id, status=status)


@dataclass
class RunLog:
    """Writes params, metrics, tags and artifacts to one run, by id (``client``: share one MlflowClient across many
    runs; default a new one)."""

    settings: Settings
    run_id: str
    client: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = reg.client(self.settings)

    def claim(self) -> None:
        """Make this process the run's owner (a stage running in another process than the one that started it)."""
        for key, value in reg.run_owner_tags().items():
            self.client.set_tag(self.run_id, key, value)

    def params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def dict(self, obj: Any, path: str) -> None:
        self.client.log_dict(self.run_id, obj, path)

    def text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def file(self, local_path: Path, artifact_dir: str | None = None) -> None:
        """Copy a local file into the run's artifacts (under ``artifact_dir``, keeping its name)."""
        self.client.log_artifact(self.run_id, str(local_path), artifact_dir)

    def input(self, rows: pd.DataFrame, *, name: str, table_uri: str, version: int, context: str) -> None:
        """Record a Delta table version the run read (MLflow dataset input with the rows' digest and schema)."""
        from mlflow.data.delta_dataset_source import DeltaDatasetSource
        from mlflow.data.pandas_dataset import from_pandas
        from mlflow.tracking.fluent import _create_dataset_input

        ds = from_pandas(
            rows.reset_index(drop=True),
            name=name,
            source=DeltaDatasetSource(path=table_uri, delta_table_version=version),
        )
        self.client.log_inputs(self.run_id, datasets=[_create_dataset_input(ds, context)])


@contextlib.contextmanager
def resumed(run_id: str) -> Iterator[None]:
    """Make ``run_id`` MLflow's active run for an API that only logs to the active run (``pyfunc.log_model``).
    The run is left RUNNING: the caller ends it with :func:`end_run`."""
    import mlflow

    mlflow.start_run(run_id=run_id)
    try:
        yield
    finally:
        # Pop the run off the fluent stack without terminating it.
        from mlflow.tracking.fluent import _active_run_stack

        stack = _active_run_stack.get()
        if stack and stack[-1].info.run_id == run_id:
            stack.pop()


def log_bundle_model(
    run_id: str, bundle_dir: Path, example: pd.DataFrame, example_output: pd.DataFrame, *, feature_set_version: str
) -> str:
    """Log the bundle as the run's MLflow pyfunc (requirements exactly those it imports, the tradeops source as
    code, the feature set as model_config so a loader can check its own); return the logged model's URI."""
    import mlflow
    from mlflow.models import infer_signature

    from tradeops.model.pyfunc import SignalPyfunc, serving_requirements

    with resumed(run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SignalPyfunc(),
            artifacts={"bundle": str(bundle_dir)},
            signature=infer_signature(example, example_output),
            input_example=example,
            pip_requirements=serving_requirements(),
            code_paths=[str(Path(__file__).resolve().parents[1])],
            model_config={"feature_set_version": feature_set_version},
        )
    return str(info.model_uri)


def log_figures(log: RunLog, history: list[dict], cm: list[list[int]], classes: tuple[str, ...]) -> None:
    """Training curves and the confusion matrix as self-contained HTML artifacts (plotly), plus the matrix JSON."""
    import plotly.graph_objects as go

    h = pd.DataFrame(history)
    fig = go.Figure()
    for col in [c for c in ("train_loss", "val_loss", "val_macro_f1") if c in h]:
        fig.add_trace(go.Scatter(x=h["epoch"], y=h[col], name=col, mode="lines+markers"))
    fig.update_layout(title="Training curves", xaxis_title="epoch")
    log.text(fig.to_html(include_plotlyjs=True, full_html=True), "training/curves.html")
    heat = go.Figure(
        go.Heatmap(
            z=cm,
            x=[f"pred {c}" for c in classes],
            y=[f"true {c}" for c in classes],
            text=cm,
            texttemplate="%{text}",
            colorscale="Blues",
        )
    )
    heat.update_layout(title="Confusion matrix (test window)")
    log.text(heat.to_html(include_plotlyjs=True, full_html=True), "evaluation/confusion_matrix.html")
    log.dict({"classes": list(classes), "matrix": cm}, "evaluation/confusion_matrix.json")


# --- walk-forward: one parent run, one child run per fold ------------------------------------------------------------

WALKFORWARD_KIND = "walkforward"
WALKFORWARD_FOLD_KIND = "walkforward_fold"
KIND_TAG = "tradeops.kind"
PARENT_TAG = "mlflow.parentRunId"
#: Parent-run metrics :func:`walkforward_runs` reports (when the run has them).
WALKFORWARD_KEY_METRICS = (
    "macro_f1",
    "accuracy",
    "net_annualized_return",
    "net_sharpe",
    "bh_annualized_return",
    "paper_annualized_return",
    "n_folds",
    "timing.wall_seconds",
    "timing.cnn_fit_seconds",
)
#: Up to this many tickers are named in a default run name; more read "N tickers".
RUN_NAME_MAX_TICKERS = 5


def flatten_params(obj: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dict -> MLflow params: keys joined with ``.``, lists and tuples comma-joined, everything else ``str``."""
    out: dict[str, str] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_params(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


def numeric_metrics(obj: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The int/float entries of ``obj`` (not bools, not None) as ``prefix + key`` -> float; NaN stays NaN."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in obj.items()
        if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
    }


def walkforward_run_name(result: WalkForwardResult) -> str:
    """``walkforward-<preset>-<tickers or 'N tickers'>-<first>-<last test year>``, e.g.
    ``walkforward-cnn-ta-IBM,MSFT-2011-2012``."""
    tickers = result.tickers
    who = ",".join(tickers) if len(tickers) <= RUN_NAME_MAX_TICKERS else f"{len(tickers)} tickers"
    return f"walkforward-{result.preset}-{who}-{min(result.test_years)}-{max(result.test_years)}"


def fold_metrics(predictions: pd.DataFrame, *, who: str, test_year: int, seed: int) -> dict[str, float]:
    """Classification of one fold's test rows for ``seed`` (``who``/``test_year``/``seed`` columns of
    :attr:`WalkForwardResult.predictions`), on the rows with a known ``y_true``: ``labelled_rows`` always,
    ``macro_f1``, ``accuracy`` and ``f1_<class>`` when there is at least one. No row at all for the fold is an
    error (every fold predicts its test rows)."""
    from tradeops.features.labels import encode_labels
    from tradeops.model.evaluate import classification_metrics

    rows = predictions.loc[
        (predictions["who"] == who) & (predictions["test_year"] == test_year) & (predictions["seed"] == seed)
    ]
    if rows.empty:
        raise TradeopsError(f"{who}: fold {test_year} has no test predictions for seed {seed}")
    labelled = rows.loc[rows["y_true"].notna()]
    out = {"labelled_rows": float(len(labelled))}
    if len(labelled):
        m = classification_metrics(
            encode_labels(labelled["y_true"]).to_numpy(dtype=np.int64),
            encode_labels(labelled["signal"]).to_numpy(dtype=np.int64),
        )
        out.update({k: float(m[k]) for k in ("macro_f1", "accuracy", "f1_BUY", "f1_SELL", "f1_HOLD")})
    return out


def confusion_matrix_text(cm: list[list[int]], classes: list[str]) -> str:
    """A confusion matrix as a plain-text table (rows: true class, columns: predicted class)."""
    head = [""] + [f"pred {c}" for c in classes]
    body = [[f"true {c}"] + [str(int(v)) for v in row] for c, row in zip(classes, cm, strict=True)]
    width = max(len(cell) for line in [head, *body] for cell in line)
    return "\n".join("  ".join(cell.rjust(width) for cell in line) for line in [head, *body]) + "\n"


def _create_run(c: Any, experiment_id: str, run_name: str, tags: dict[str, str]) -> str:
    with reg.registry_errors(f"creating the MLflow run {run_name}"):
        run = c.create_run(experiment_id, run_name=run_name, tags={**tags, **reg.run_owner_tags()})
    return str(run.info.run_id)


@contextlib.contextmanager
def _ending(c: Any, run_id: str) -> Iterator[None]:
    """End ``run_id`` FINISHED when the block completes, FAILED (KILLED on Ctrl-C) when it raises; a store that
    cannot record the failure adds a note to the original error."""
    try:
        yield
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        try:
            with reg.registry_errors(f"marking run {run_id} {status}"):
                c.set_terminated(run_id, status=status)
        except Exception as end_exc:  # noqa: BLE001 - keep the cause
            exc.add_note(f"MLflow run {run_id} could not be marked {status}: {end_exc}")
        raise
    with reg.registry_errors(f"marking run {run_id} FINISHED"):
        c.set_terminated(run_id, status="FINISHED")


def _walkforward_params(result: WalkForwardResult, config: dict[str, Any]) -> dict[str, str]:
    """The caller's ``config`` flattened, then what the result itself says (universe, years, seeds, table versions;
    those win over a config key of the same name)."""
    versions = result.evaluation["versions"]
    return flatten_params(config) | flatten_params(
        {
            "preset": result.preset,
            "tickers": result.tickers,
            "n_tickers": len(result.tickers),
            "test_years": result.test_years,
            "mode": result.mode,
            "pooled": result.pooled,
            "seeds": result.seeds,
            **{f"{k}_version": v for k, v in versions.items()},
        }
    )


def _walkforward_metrics(result: WalkForwardResult) -> dict[str, float]:
    table_means = {f"table.{col}.mean": float(result.table[col].mean()) for col in result.table.columns}
    return (
        numeric_metrics(result.evaluation["summary"])
        | numeric_metrics(result.timing, "timing.")
        | table_means
        | {"n_folds": float(len(result.folds)), "n_skipped": float(len(result.skipped))}
    )


def _log_walkforward_artifacts(log: RunLog, result: WalkForwardResult) -> None:
    log.text(json.dumps(result.to_dict(), indent=2, default=str), "walkforward.json")
    log.text(result.table.to_csv(), "table.csv")
    cls = result.evaluation["classification"]
    log.text(confusion_matrix_text(cls["confusion_matrix"], list(cls["classes"])), "confusion_matrix.txt")
    with tempfile.TemporaryDirectory(prefix="tradeops-walkforward-") as tmp:
        path = Path(tmp) / "predictions.parquet"
        result.predictions.to_parquet(path, index=False)
        log.file(path)


def _log_fold(
    c: Any, settings: Settings, experiment_id: str, parent_id: str, result: WalkForwardResult, fold: dict
) -> str:
    who, year = str(fold["who"]), int(fold["test_year"])
    tags = {
        PARENT_TAG: parent_id,
        KIND_TAG: WALKFORWARD_FOLD_KIND,
        "tradeops.preset": result.preset,
        "tradeops.who": who,
        "tradeops.test_year": str(year),
    }
    run_id = _create_run(c, experiment_id, f"{who}-{year}", tags)
    with _ending(c, run_id):
        metrics = numeric_metrics({k: v for k, v in fold.items() if k != "test_year"}) | fold_metrics(
            result.predictions, who=who, test_year=year, seed=result.seeds[0]
        )
        log = RunLog(settings, run_id, c)
        with reg.registry_errors(f"logging fold {who} {year} to run {run_id}"):
            log.params(flatten_params(fold) | {"seed": str(result.seeds[0])})
            log.metrics(metrics)
    return run_id


def log_walkforward(
    settings: Settings, result: WalkForwardResult, *, config: dict[str, Any], run_name: str | None = None
) -> str:
    """Record a finished walk-forward run in MLflow; return the parent run's id.

    One parent run (tag ``tradeops.kind=walkforward``, name :func:`walkforward_run_name` unless ``run_name``):
    params = ``config`` flattened (the arguments the caller used) plus the universe, test years, seeds and the lake
    table versions; metrics = the evaluation summary, ``timing.*``, each table column's mean over tickers
    (``table.<column>.mean``) and fold counts; artifacts ``walkforward.json``, ``table.csv``,
    ``predictions.parquet`` and ``confusion_matrix.txt``. Then one child run per fold (``mlflow.parentRunId``, tag
    ``tradeops.kind=walkforward_fold``, name ``<who>-<test_year>``): the fold's dict as params, its numbers as
    metrics, and :func:`fold_metrics` for the first seed. Runs end FINISHED; a failure while logging ends the run
    being written and the parent FAILED and is re-raised (:class:`~tradeops.model.registry.RegistryError` for a
    store failure). Call it after every fold ran: it only reads ``result``.
    """
    experiment_id = reg.configure_mlflow(settings)
    c = reg.client(settings)
    versions = result.evaluation["versions"]
    tags = {
        KIND_TAG: WALKFORWARD_KIND,
        "tradeops.preset": result.preset,
        "tradeops.mode": result.mode,
        **{f"tradeops.{k}_version": str(v) for k, v in versions.items()},
    }
    parent_id = _create_run(c, experiment_id, run_name or walkforward_run_name(result), tags)
    with _ending(c, parent_id):
        log = RunLog(settings, parent_id, c)
        with reg.registry_errors(f"logging the walk-forward run {parent_id}"):
            log.params(_walkforward_params(result, config))
            log.metrics(_walkforward_metrics(result))
            _log_walkforward_artifacts(log, result)
        for fold in result.folds:
            _log_fold(c, settings, experiment_id, parent_id, result, fold)
    return parent_id


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def walkforward_runs(settings: Settings) -> list[dict]:
    """Walk-forward parent runs, newest first: run id, name, status, start/end time (UTC ISO), preset, tickers,
    test years, mode and the :data:`WALKFORWARD_KEY_METRICS` they have. None in a home that tracked nothing (the
    store is not created to find that out)."""
    if not reg.tracking_store_exists(settings):
        return []
    c = reg.client(settings)
    runs: list[Any] = []
    with reg.registry_errors(f"listing walk-forward runs in {settings.tracking_uri}"):
        exp = c.get_experiment_by_name(reg.EXPERIMENT)
        if exp is None:
            return []
        token = None
        while True:
            page = c.search_runs(
                [exp.experiment_id],
                filter_string=f"tags.`{KIND_TAG}` = '{WALKFORWARD_KIND}'",
                order_by=["attributes.start_time DESC"],
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                break
    out = []
    for run in runs:
        params, metrics = run.data.params, run.data.metrics
        out.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "status": run.info.status,
                "start_time": _iso_ms(run.info.start_time),
                "end_time": _iso_ms(run.info.end_time),
                **{k: params.get(k) for k in ("preset", "tickers", "test_years", "mode")},
                "metrics": {k: metrics[k] for k in WALKFORWARD_KEY_METRICS if k in metrics},
            }
        )
    return out
