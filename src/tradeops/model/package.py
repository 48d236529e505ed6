"""Packaging: a model bundle (fitted transform + ONNX network + metadata + golden set + model card) and its MLflow
pyfunc wrapper. Serving runs exactly what training fitted: the same :class:`ImageTransform` JSON and the exported
network under onnxruntime; a serving feature set that differs from the trained one is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradeops.errors import TradeopsError
from tradeops.features.labels import CLASSES
from tradeops.features.transform import ImageTransform

BUNDLE_FORMAT = "tradeops.signal-bundle/1"
PASS_THROUGH = ("ticker", "date")
PROBA_COLUMNS = tuple(f"p_{c}" for c in CLASSES)


class FeatureSetMismatch(TradeopsError):
    """The serving feature set is not the one the model was trained on."""


class GoldenMismatch(TradeopsError):
    """The packaged model no longer reproduces the outputs it gave at training time."""


@dataclass
class SignalBundle:
    """A loaded bundle: ``predict_frame`` maps feature rows to class probabilities and a signal."""

    meta: dict
    transform: ImageTransform
    predictor: Any  # OnnxPredictor

    @property
    def feature_names(self) -> list[str]:
        return list(self.transform.feature_names_in_)

    def check_columns(self, columns: list[str]) -> list[str]:
        """The feature columns of a serving frame, in training order; refuses missing or extra features."""
        got = [c for c in columns if c not in PASS_THROUGH]
        want = self.feature_names
        missing = [c for c in want if c not in set(got)]
        extra = [c for c in got if c not in set(want)]
        if missing or extra:
            raise FeatureSetMismatch(
                f"serving features differ from the trained feature set {self.meta['feature_set_version']}: "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"extra {extra[:5]}{'...' if len(extra) > 5 else ''}")
        return want

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """p_BUY, p_SELL, p_HOLD and signal per row (``ticker``/``date`` passed through when present)."""
        names = self.check_columns(list(frame.columns))
        try:
            images = self.transform.transform(frame[names].astype("float64"))
        except ValueError as exc:
            raise TradeopsError(f"cannot score the rows: {exc}") from exc
        proba = self.predictor.predict_proba(images)
        out = frame[[c for c in PASS_THROUGH if c in frame.columns]].copy()
        for j, col in enumerate(PROBA_COLUMNS):
            out[col] = proba[:, j].astype(np.float64)
        out["signal"] = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)]
        return out.reset_index(drop=True)

    def verify_golden(self, golden: dict, atol: float = 1e-6) -> float:
        """Re-score the golden inputs; raise :class:`GoldenMismatch` if any probability moved by more than ``atol``."""
        frame = pd.DataFrame(golden["inputs"], columns=golden["columns"])
        got = self.predict_frame(frame)[list(PROBA_COLUMNS)].to_numpy()
        want = np.asarray(golden["outputs"], dtype=np.float64)
        worst = float(np.max(np.abs(got - want))) if len(want) else 0.0
        if worst > atol:
            raise GoldenMismatch(f"golden set: outputs differ by {worst:.3g} > {atol:g} from those recorded at "
                                 "training time")
        return worst


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(directory: Path, *, transform: ImageTransform, onnx_bytes: bytes, meta: dict,
                 golden_rows: pd.DataFrame, model_card: str) -> Path:
    """Write a bundle directory; the golden set is scored here, through the same path serving uses."""
    from tradeops.model.onnx_export import OnnxPredictor

    directory.mkdir(parents=True, exist_ok=True)
    transform.save(directory / "transform.json")
    (directory / "model.onnx").write_bytes(onnx_bytes)
    meta = {**meta, "format": BUNDLE_FORMAT, "onnx_sha256": sha256_bytes(onnx_bytes),
            "transform_fingerprint": transform.fingerprint(), "feature_names": list(transform.feature_names_in_)}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    bundle = SignalBundle(meta, transform, OnnxPredictor(onnx_bytes))
    names = bundle.feature_names
    inputs = golden_rows[names].astype("float64")
    outputs = bundle.predict_frame(inputs)[list(PROBA_COLUMNS)]
    golden = {"columns": names, "inputs": inputs.to_numpy().tolist(), "outputs": outputs.to_numpy().tolist(),
              "dates": [str(d) for d in golden_rows.get("date", pd.Series(dtype=str))],
              "tickers": [str(t) for t in golden_rows.get("ticker", pd.Series(dtype=str))]}
    (directory / "golden.json").write_text(json.dumps(golden))
    (directory / "MODEL_CARD.md").write_text(model_card)
    return directory


def load_bundle(directory: Path | str, *, expected_feature_set_version: str | None = None,
                verify: bool = True) -> SignalBundle:
    """Load a bundle; refuse it when ``expected_feature_set_version`` differs or the golden set no longer matches."""
    from tradeops.model.onnx_export import OnnxPredictor

    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    if meta.get("format") != BUNDLE_FORMAT:
        raise TradeopsError(f"{directory}: not a {BUNDLE_FORMAT} bundle (format {meta.get('format')!r})")
    fsv = meta["feature_set_version"]
    if expected_feature_set_version is not None and expected_feature_set_version != fsv:
        raise FeatureSetMismatch(f"model was trained on feature set {fsv} ({meta.get('preset')}); the serving "
                                 f"feature set is {expected_feature_set_version}: refusing to load")
    onnx_bytes = (directory / "model.onnx").read_bytes()
    if sha256_bytes(onnx_bytes) != meta["onnx_sha256"]:
        raise TradeopsError(f"{directory}/model.onnx does not match the sha256 recorded at packaging")
    transform = ImageTransform.load(directory / "transform.json")
    if transform.fingerprint() != meta["transform_fingerprint"]:
        raise TradeopsError(f"{directory}/transform.json does not match the fingerprint recorded at packaging")
    bundle = SignalBundle(meta, transform, OnnxPredictor(onnx_bytes))
    if verify:
        bundle.verify_golden(json.loads((directory / "golden.json").read_text()))
    return bundle


try:  # MLflow is part of the stack; the wrapper is defined only where it is importable.
    import mlflow.pyfunc

    class SignalPyfunc(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc over a bundle. ``model_config={"feature_set_version": ...}`` at load time makes loading
        fail when the serving feature set differs from the trained one."""

        def load_context(self, context) -> None:
            expected = (context.model_config or {}).get("feature_set_version")
            self.bundle = load_bundle(context.artifacts["bundle"], expected_feature_set_version=expected)

        def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
            return self.bundle.predict_frame(model_input)
except ImportError:  # pragma: no cover
    SignalPyfunc = None  # type: ignore[assignment,misc]
