"""MLflow tracking of a training run: the one module that writes to MLflow runs (the registry is
:mod:`tradeops.model.registry`).

A run is addressed by its id, never by MLflow's "active run", so training stages can run one by one, in one process
or in several (an orchestrator's steps): each stage claims the run (its pid and host become the run's owner, which
:func:`tradeops.model.registry.reap_orphaned_runs` checks) and logs through :class:`RunLog`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tradeops.config import Settings
from tradeops.model import registry as reg


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
    """Writes params, metrics, tags and artifacts to one run, by id."""

    settings: Settings
    run_id: str

    def __post_init__(self) -> None:
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
