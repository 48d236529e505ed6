"""Packaging: a model bundle (fitted transform + ONNX network + metadata + golden set + model card) and its MLflow
pyfunc wrapper. Serving runs exactly what training fitted: the same :class:`ImageTransform` JSON and the exported
network under onnxruntime; a serving feature set that differs from the trained one is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradeops.errors import TradeopsError
from tradeops.features.image import ImageLayout
from tradeops.features.labels import CLASSES
from tradeops.model.onnx_runtime import OnnxPredictor

BUNDLE_FORMAT = "tradeops.signal-bundle/1"
PASS_THROUGH = ("ticker", "date")
PROBA_COLUMNS = tuple(f"p_{c}" for c in CLASSES)


class FeatureSetMismatch(TradeopsError):
    """The serving feature set is not the one the model was trained on."""


class GoldenMismatch(TradeopsError):
    """The packaged model no longer reproduces the outputs it gave at training time."""


@dataclass(frozen=True)
class Scores:
    """Class probabilities of scored rows, float32 ``(n, 3)`` in class order BUY, SELL, HOLD."""

    proba: np.ndarray

    @property
    def signals(self) -> np.ndarray:
        """The most probable class per row (object array of 'BUY' / 'SELL' / 'HOLD')."""
        return _CLASS_ARRAY[self.proba.argmax(axis=1)]


_CLASS_ARRAY = np.asarray(CLASSES, dtype=object)


class SignalBundle:
    """A loaded bundle: feature rows -> class probabilities and a signal, exactly as training fitted them.

    Imports only numpy, pandas and onnxruntime. ``transform`` is the fitted ``ImageTransform`` (training) or the
    :class:`~tradeops.features.image.ImageLayout` loaded from its JSON (serving); both score identically.
    """

    def __init__(self, meta: dict, transform: Any, predictor: Any) -> None:
        self.meta = meta
        self.layout = transform if isinstance(transform, ImageLayout) else ImageLayout.from_transform(transform)
        self.predictor = predictor  # OnnxPredictor
        self.model_name: str = str(meta.get("name", "unregistered"))
        self.model_version: str | None = None  # set by the registry loader

    @property
    def feature_names(self) -> list[str]:
        return list(self.layout.feature_names)

    @property
    def feature_set_version(self) -> str:
        return str(self.meta["feature_set_version"])

    def _mismatch(self, detail: str) -> FeatureSetMismatch:
        return FeatureSetMismatch(
            f"serving features differ from the trained feature set {self.meta['feature_set_version']}: {detail}"
        )

    def check_columns(self, columns: list[str]) -> list[str]:
        """The feature columns of a serving frame, in training order; refuses missing or extra features."""
        try:
            return self.layout.column_order([c for c in columns if c not in PASS_THROUGH])
        except KeyError as exc:
            raise self._mismatch(exc.args[0]) from None

    def score(self, features: np.ndarray) -> Scores:
        """Probabilities of feature rows ``(n, n_features)`` given in :attr:`feature_names` order (float64).

        The hot path of serving: one row costs one numpy scaling and one onnxruntime call. A non-finite value in
        a used feature is refused (:class:`TradeopsError` naming the row and feature), never scored.
        """
        try:
            images = self.layout.images(features)
        except ValueError as exc:
            raise TradeopsError(f"cannot score the rows: {exc}") from exc
        if len(images) == 0:
            raise TradeopsError("cannot score the rows: no rows")
        return Scores(self.predictor.run(images))

    def score_features(self, features: Mapping[str, float]) -> Scores:
        """Probabilities of one row given as ``{feature name: value}`` (names must equal the trained set)."""
        try:
            row = self.layout.vector(features)
        except KeyError as exc:
            raise self._mismatch(exc.args[0]) from None
        except (TypeError, ValueError) as exc:
            raise TradeopsError(f"cannot score the row: a feature value is not a number ({exc})") from exc
        return self.score(row.reshape(1, -1))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """p_BUY, p_SELL, p_HOLD and signal per row (``ticker``/``date`` passed through when present)."""
        names = self.check_columns(list(frame.columns))
        scores = self.score(frame[names].to_numpy(dtype=np.float64))
        out = frame[[c for c in PASS_THROUGH if c in frame.columns]].copy()
        for j, col in enumerate(PROBA_COLUMNS):
            out[col] = scores.proba[:, j].astype(np.float64)
        out["signal"] = scores.signals
        return out.reset_index(drop=True)

    def verify_golden(self, golden: dict, atol: float = 1e-6) -> float:
        """Re-score the golden inputs; raise :class:`GoldenMismatch` if any probability moved by more than ``atol``."""
        columns = list(golden["columns"])
        if columns != self.feature_names:
            raise GoldenMismatch("golden set: its columns are not the bundle's feature names")
        got = self.score(np.asarray(golden["inputs"], dtype=np.float64)).proba.astype(np.float64)
        want = np.asarray(golden["outputs"], dtype=np.float64)
        worst = float(np.max(np.abs(got - want))) if len(want) else 0.0
        if worst > atol:
            raise GoldenMismatch(
                f"golden set: outputs differ by {worst:.3g} > {atol:g} from those recorded at training time"
            )
        return worst


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(
    directory: Path, *, transform: Any, onnx_bytes: bytes, meta: dict, golden_rows: pd.DataFrame, model_card: str
) -> Path:
    """Write a bundle directory; the golden set is scored here, through the same path serving uses."""
    directory.mkdir(parents=True, exist_ok=True)
    transform.save(directory / "transform.json")
    (directory / "model.onnx").write_bytes(onnx_bytes)
    meta = {
        **meta,
        "format": BUNDLE_FORMAT,
        "onnx_sha256": sha256_bytes(onnx_bytes),
        "transform_fingerprint": transform.fingerprint(),
        "feature_names": list(transform.feature_names_in_),
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    bundle = SignalBundle(meta, transform, OnnxPredictor(onnx_bytes))
    names = bundle.feature_names
    inputs = golden_rows[names].astype("float64")
    outputs = bundle.predict_frame(inputs)[list(PROBA_COLUMNS)]
    golden = {
        "columns": names,
        "inputs": inputs.to_numpy().tolist(),
        "outputs": outputs.to_numpy().tolist(),
        "dates": [str(d) for d in golden_rows.get("date", pd.Series(dtype=str))],
        "tickers": [str(t) for t in golden_rows.get("ticker", pd.Series(dtype=str))],
    }
    (directory / "golden.json").write_text(json.dumps(golden))
    (directory / "MODEL_CARD.md").write_text(model_card)
    return directory


def load_bundle(
    directory: Path | str, *, expected_feature_set_version: str | None = None, verify: bool = True
) -> SignalBundle:
    """Load a bundle; refuse it when ``expected_feature_set_version`` differs or the golden set no longer matches."""
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    if meta.get("format") != BUNDLE_FORMAT:
        raise TradeopsError(f"{directory}: not a {BUNDLE_FORMAT} bundle (format {meta.get('format')!r})")
    fsv = meta["feature_set_version"]
    if expected_feature_set_version is not None and expected_feature_set_version != fsv:
        raise FeatureSetMismatch(
            f"model was trained on feature set {fsv} ({meta.get('preset')}); the serving "
            f"feature set is {expected_feature_set_version}: refusing to load"
        )
    onnx_bytes = (directory / "model.onnx").read_bytes()
    if sha256_bytes(onnx_bytes) != meta["onnx_sha256"]:
        raise TradeopsError(f"{directory}/model.onnx does not match the sha256 recorded at packaging")
    try:
        layout = ImageLayout.from_state(json.loads((directory / "transform.json").read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise TradeopsError(f"{directory}/transform.json is not a fitted transform: {exc}") from exc
    if layout.fingerprint != meta["transform_fingerprint"]:
        raise TradeopsError(f"{directory}/transform.json does not match the fingerprint recorded at packaging")
    bundle = SignalBundle(meta, layout, OnnxPredictor(onnx_bytes))
    if verify:
        bundle.verify_golden(json.loads((directory / "golden.json").read_text()))
    return bundle


def __getattr__(name: str) -> Any:
    # The pyfunc wrapper lives in its own module so that loading a bundle never imports MLflow; models registered
    # before the move pickled it as ``tradeops.model.package.SignalPyfunc``.
    if name == "SignalPyfunc":
        from tradeops.model.pyfunc import SignalPyfunc

        return SignalPyfunc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
