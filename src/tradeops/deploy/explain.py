"""Explanations of one prediction: occlusion over the image cells of the ONNX model, mapped back to feature names.

For a feature row, the bundle's image is built as for scoring; then each of the ``side * side`` cells is replaced in
turn by the baseline value and the whole batch (the original image plus one occluded copy per cell) is scored in ONE
onnxruntime call. A cell's attribution is ``p_target(original) - p_target(cell occluded)``: positive when the cell's
actual value pushes the model towards ``target``, negative when it pushes away.

Baseline: :data:`BASELINE` = 0.5 in scaled units, the midpoint of the training min/max of every feature (the scaler
keeps no median; 0.5 is also what a feature constant on the training window maps to, i.e. "no information"). An
occluded cell that already sits at the midpoint has attribution 0.

Deterministic: the same bundle and row give the same attributions (onnxruntime CPU, sequential execution); ties
in magnitude are ordered by cell index. Imports numpy and onnxruntime only (through the bundle), never torch or onnx.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import CLASSES
from tradeops.model.package import SignalBundle

__all__ = ["BASELINE", "Attribution", "Explanation", "explain", "explain_full"]

BASELINE = 0.5


@dataclass(frozen=True)
class Attribution:
    """One image cell: its feature (the layout's name), ``cell`` = (row, column) in the image, and the drop of the
    target class probability (0..1 units) when the cell is set to the baseline."""

    feature: str
    cell: tuple[int, int]
    attribution: float

    def to_dict(self) -> dict:
        return {"feature": self.feature, "cell": [self.cell[0], self.cell[1]], "attribution": self.attribution}


@dataclass(frozen=True)
class Explanation:
    """Every cell's attribution for one row: ``attributions`` float64 ``(side, side)``, the explained class, its
    probability on the unoccluded image and the probabilities of all classes (BUY, SELL, HOLD order)."""

    target: str
    probability: float
    probabilities: tuple[float, ...]
    attributions: np.ndarray
    features: tuple[str, ...]  # per cell, row-major

    def top(self, top_k: int) -> list[Attribution]:
        """The ``top_k`` cells with the largest ``|attribution|`` (ties: lower cell index first)."""
        k = _check_top_k(top_k)
        flat = self.attributions.ravel()
        order = np.lexsort((np.arange(flat.size), -np.abs(flat)))[:k]
        side = self.attributions.shape[1]
        return [Attribution(self.features[i], (int(i // side), int(i % side)), float(flat[i])) for i in order.tolist()]


def explain_full(bundle: SignalBundle, row: np.ndarray, *, target: str | None = None) -> Explanation:
    """Occlusion attributions of every cell for one feature row ``(n_features,)`` in ``bundle.feature_names`` order.

    ``target``: the class to explain (``BUY``/``SELL``/``HOLD``), default the predicted one. A non-finite used
    feature is refused (:class:`TradeopsError`), as in scoring.
    """
    values = np.asarray(row, dtype=np.float64)
    n = len(bundle.feature_names)
    if values.ndim != 1 or values.shape[0] != n:
        raise UsageError(f"row: [shape] expected one row of {n} features, got shape {values.shape}")
    if target is not None and target not in CLASSES:
        raise UsageError(f"target: [class] must be one of {', '.join(CLASSES)}, got {target!r}")
    layout = bundle.layout
    try:
        image = layout.images(values.reshape(1, -1))
    except ValueError as exc:
        raise TradeopsError(f"cannot explain the row: {exc}") from exc
    cells = layout.side * layout.side
    batch = np.repeat(image.reshape(1, cells), cells + 1, axis=0)
    idx = np.arange(cells)
    batch[idx + 1, idx] = BASELINE
    images = np.ascontiguousarray(batch.reshape(cells + 1, 1, layout.side, layout.side), dtype=np.float32)
    proba = np.asarray(bundle.predictor.run(images), dtype=np.float64)
    j = int(proba[0].argmax()) if target is None else CLASSES.index(target)
    drop = proba[0, j] - proba[1:, j]
    return Explanation(
        target=str(CLASSES[j]),
        probability=float(proba[0, j]),
        probabilities=tuple(float(p) for p in proba[0]),
        attributions=drop.reshape(layout.side, layout.side),
        features=tuple(layout.selected),
    )


def explain(bundle: SignalBundle, row: np.ndarray, *, top_k: int, target: str | None = None) -> list[Attribution]:
    """The ``top_k`` most important cells (by ``|attribution|``, ties by cell index) of one feature row; see
    :func:`explain_full`. ``top_k`` must be >= 1; above the number of cells it returns every cell."""
    _check_top_k(top_k)
    return explain_full(bundle, row, target=target).top(top_k)


def _check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise UsageError(f"top_k: [positive_int] must be an integer >= 1, got {top_k!r}")
    return int(top_k)
