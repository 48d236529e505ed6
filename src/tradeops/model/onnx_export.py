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
import onnxruntime as ort
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from tradeops.features.labels import CLASSES
from tradeops.model.cnn import CNNClassifier

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "OnnxPredictor", "check_parity", "export_onnx"]

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


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


class OnnxPredictor:
    """onnxruntime CPU session over exported model bytes; ``predict_proba``/``predict`` mirror the classifier.

    Single-row serving is fastest with ``intra_op_num_threads=1`` (thread hand-off costs more than the tiny graph).
    """

    def __init__(self, model_bytes: bytes, intra_op_num_threads: int = 1) -> None:
        if not isinstance(model_bytes, (bytes, bytearray)) or not model_bytes:
            raise ValueError("model_bytes must be the non-empty bytes of an ONNX model (see export_onnx)")
        threads = intra_op_num_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"intra_op_num_threads must be an int >= 0 (0: onnxruntime's default), got {threads!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(
                bytes(model_bytes), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ValueError(f"not a loadable ONNX model: {exc}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [o.name for o in outputs]:
            raise ValueError(
                f"expected one input {INPUT_NAME!r} and an output {OUTPUT_NAME!r}, got inputs "
                f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}"
            )
        shape = inputs[0].shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
            raise ValueError(f"input {INPUT_NAME!r} must be (batch, 1, side, side), got {shape}")
        self.image_shape: tuple[int, int, int] = (int(shape[1]), int(shape[2]), int(shape[3]))
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, float32 ``(n, 3)`` in class-id order (BUY, SELL, HOLD)."""
        arr = np.asarray(X)
        if arr.ndim != 4 or arr.shape[1:] != self.image_shape:
            raise ValueError(f"X must have shape (n_rows, {', '.join(map(str, self.image_shape))}), got {arr.shape}")
        if len(arr) == 0:
            raise ValueError("X has no rows")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"X must be a float array (float32 images), got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("X has a non-finite pixel")
        (proba,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: arr})
        return np.asarray(proba, dtype=np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class ids (int64): the most probable class per row."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)


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
