"""The MLflow pyfunc over a signal bundle, and the exact requirements it declares.

Loading it imports MLflow, numpy, pandas and onnxruntime and nothing else of the stack (no torch, onnx or
scikit-learn): :data:`SERVING_REQUIREMENTS` lists exactly those, pinned to the versions that trained the model.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from tradeops.model.package import load_bundle

#: Distributions the pyfunc imports when loaded and used (a test proves nothing else is needed).
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "onnxruntime")


def serving_requirements() -> list[str]:
    """``SERVING_PACKAGES`` pinned to the installed versions (what ``log_model(pip_requirements=...)`` records)."""
    return [f"{name}=={version(name)}" for name in SERVING_PACKAGES]


class SignalPyfunc(PythonModel):
    """MLflow pyfunc over a bundle. ``model_config={"feature_set_version": ...}`` at load time makes loading fail
    when the serving feature set differs from the trained one."""

    def load_context(self, context: Any) -> None:
        expected = (context.model_config or {}).get("feature_set_version")
        self.bundle = load_bundle(context.artifacts["bundle"], expected_feature_set_version=expected)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.bundle.predict_frame(model_input)
