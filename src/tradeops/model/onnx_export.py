"""ONNX export of a fitted :class:`~tradeops.model.cnn.CNNClassifier` and onnxruntime inference for serving.

The exported graph takes ``image`` float32 ``(batch, 1, side, side)`` (dynamic batch) and returns ``probabilities``
float32 ``(batch, 3)`` (softmax inside the graph, class-id order BUY, SELL, HOLD). Export runs offline.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from tradeops.features.labels import CLASSES
from tradeops.model.cnn import CNNClassifier
from tradeops.model.onnx_runtime import INPUT_NAME, OUTPUT_NAME, OnnxPredictor

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "OnnxPredictor", "check_parity", "export_onnx"]


class _WithSoftmax(nn.Module):
    """The network plus a softmax over classes, so the exported graph outputs probabilities."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(image), dim=1)


def export_onnx(clf: CNNClassifier, path: Path | None = None, *, opset: int = 18) -> bytes:
    """Export ``clf`` with the torch.export-based exporter; returns the model bytes and also writes them to ``path``
    when given. The model's metadata records the class names, the image side and the weights' sha256."""
    if not isinstance(clf, CNNClassifier):
        raise ValueError(f"clf must be a CNNClassifier, got {type(clf).__name__}")
    check_is_fitted(clf, "model_")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 18:
        raise ValueError(f"opset must be an int >= 18 (the dynamo exporter's minimum), got {opset!r}")
    side = int(clf.image_shape_[-1])
    module = _WithSoftmax(copy.deepcopy(clf.model_).cpu()).eval()
    example = torch.zeros(2, 1, side, side, dtype=torch.float32)  # batch 2: a batch of 1 would be specialised
    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: {0: batch}},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    for key, value in (
        ("tradeops.classes", ",".join(CLASSES)),
        ("tradeops.side", str(side)),
        ("tradeops.weights_sha256", clf.weights_sha256()),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def check_parity(clf: CNNClassifier, predictor: OnnxPredictor, X: np.ndarray, atol: float = 1e-5) -> float:
    """Max absolute difference between torch and onnxruntime probabilities on ``X``; ``ValueError`` above ``atol``."""
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not (np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")
    expected = clf.predict_proba(X)
    actual = predictor.predict_proba(X)
    if expected.shape != actual.shape:
        raise ValueError(f"torch gives shape {expected.shape}, onnxruntime {actual.shape}")
    diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    worst = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    if not worst <= atol:
        row = int(np.unravel_index(np.nanargmax(np.where(np.isfinite(diff), diff, np.inf)), diff.shape)[0])
        raise ValueError(f"ONNX parity failed: max abs difference {worst:.3g} > atol {atol:.3g} (row {row})")
    return worst


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress prints and harmless warnings (missing torchvision ops, pytree deprecations)
    for the duration of one export; logger levels are restored afterwards."""
    logger = logging.getLogger("torch.onnx")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
            yield
    finally:
        logger.setLevel(previous)
