"""CNN-TA (Sezer & Ozbayoglu 2018): a small CNN that reads one ``(1, side, side)`` feature image per trading day
and says BUY (0), SELL (1) or HOLD (2), wrapped as a deterministic scikit-learn style estimator.

Inputs are the float32 images of :class:`tradeops.features.transform.ImageTransform` (values in ``[0, 1]``); rows are
time ordered and the caller keeps train and validation rows apart in time (ARCHITECTURE.md section 4). Training on CPU
is bit-for-bit reproducible in one process: same data, hyper-parameters and ``seed`` give identical weights.
"""

from __future__ import annotations

import copy
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score, f1_score
from sklearn.utils.validation import check_is_fitted
from torch import nn

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CNNTA",
    "CNNClassifier",
    "balanced_class_weights",
    "conv_output_sides",
    "oversample_indices",
]

FORMAT = "tradeops.model.CNNClassifier"
FORMAT_VERSION = 1

N_CLASSES = 3
_KERNEL = 3
_POOL = 2
_PREDICT_BATCH = 4096

Recipe = Literal["paper", "default"]

# Resolved defaults of each recipe (hyper-parameters left at None take these).
_RECIPES: dict[str, dict[str, Any]] = {
    # Sezer & Ozbayoglu's Keras code: Adadelta() (Keras 2 defaults lr=1.0, rho=0.95, epsilon=1e-7), batch 1024,
    # 200 epochs, categorical cross-entropy on a training set balanced by duplicating BUY/SELL rows.
    "paper": {"optimizer": "Adadelta", "epochs": 200, "batch_size": 1024, "lr": 1.0, "weight_decay": 0.0},
    "default": {"optimizer": "AdamW", "epochs": 100, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4},
}


def conv_output_sides(side: int) -> tuple[int, int, int]:
    """Spatial sides after conv1, conv2 (3x3, 'valid' padding) and 2x2 max-pooling: 15 -> (13, 11, 5)."""
    if isinstance(side, bool) or not isinstance(side, (int, np.integer)):
        raise ValueError(f"side must be an int, got {side!r}")
    c1 = int(side) - (_KERNEL - 1)
    c2 = c1 - (_KERNEL - 1)
    pooled = c2 // _POOL
    if pooled < 1:
        raise ValueError(f"side must be >= {2 * (_KERNEL - 1) + _POOL} for two 3x3 convs and a 2x2 pool, got {side}")
    return c1, c2, pooled


class CNNTA(nn.Module):
    """Conv(1->filters1, 3x3) -> ReLU -> Conv(filters1->filters2, 3x3) -> ReLU -> MaxPool(2) -> Dropout ->
    Flatten -> Linear(dense) -> ReLU -> Dropout -> Linear(n_classes).

    'valid' convolutions as in the Keras original (15 -> 13 -> 11 -> pool 5); weights use Keras' defaults
    (Glorot-uniform kernels, zero biases). ``forward`` returns logits of shape ``(batch, n_classes)``.
    """

    def __init__(
        self,
        side: int = 15,
        filters1: int = 32,
        filters2: int = 64,
        dense: int = 128,
        dropout_conv: float = 0.25,
        dropout_dense: float = 0.5,
        n_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        for name, value in (("filters1", filters1), ("filters2", filters2), ("dense", dense), ("n_classes", n_classes)):
            _check_positive_int(name, value)
        for name, p in (("dropout_conv", dropout_conv), ("dropout_dense", dropout_dense)):
            _check_dropout(name, p)
        _, _, pooled = conv_output_sides(side)
        self.side = int(side)
        self.features = nn.Sequential(
            nn.Conv2d(1, filters1, _KERNEL),
            nn.ReLU(),
            nn.Conv2d(filters1, filters2, _KERNEL),
            nn.ReLU(),
            nn.MaxPool2d(_POOL),
            nn.Dropout(dropout_conv),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(filters2 * pooled * pooled, dense),
            nn.ReLU(),
            nn.Dropout(dropout_dense),
            nn.Linear(dense, n_classes),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and zero biases (Keras defaults); draws from torch's global RNG."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(image))


def oversample_indices(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Row indices that balance the classes by duplication (the paper recipe's sampler).

    Rule: let ``m`` be the largest class count. Every present class ``c`` with ``n_c`` rows keeps all its rows
    ``m // n_c`` times, plus ``m % n_c`` of its rows drawn without replacement (``numpy.random.default_rng(seed)``,
    classes in id order), so each present class ends with exactly ``m`` rows and nothing is dropped. Absent classes
    stay absent. Returns sorted int64 indices into ``y`` (length ``m * number of present classes``).
    """
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {labels.shape}")
    if labels.size == 0:
        raise ValueError("y is empty")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    majority = int(counts.max())
    parts = []
    for c, n_c in zip(classes, counts, strict=True):
        rows = np.flatnonzero(labels == c)
        repeats, extra = divmod(majority, int(n_c))
        parts.append(np.tile(rows, repeats))
        if extra:
            parts.append(rng.choice(rows, size=extra, replace=False))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def balanced_class_weights(y: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Per-class loss weights ``n / (n_classes * count_c)`` from the training labels (0.0 for an absent class)."""
    labels = np.asarray(y)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes, dtype=np.float64)
    present = counts > 0
    weights[present] = labels.size / (n_classes * counts[present])
    return weights


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """CNN-TA as a scikit-learn classifier over ``(n, 1, side, side)`` float images (values in ``[0, 1]``).

    Recipes (``None`` hyper-parameters take the recipe's value):

    - ``paper``: Adadelta(lr=1.0, rho=0.95, eps=1e-7) as in the original Keras code, batch 1024, 200 epochs,
      plain cross-entropy on a training set balanced by :func:`oversample_indices`; no early stopping
      (validation data, if given, is only scored); the final weights are kept (``best_epoch_`` = last epoch).
    - ``default``: AdamW(lr=1e-3, weight_decay=1e-4), batch 256, at most 100 epochs, cross-entropy weighted by
      :func:`balanced_class_weights` of the training labels; needs validation data. Early stopping monitors the
      validation macro-F1 (ties broken by a lower validation loss): after ``patience`` epochs without improvement
      training stops and the best epoch's weights are restored.

    Each epoch visits the (resampled) training rows in a fresh random order; the last batch may be smaller.
    ``val_loss`` uses the training loss function (class-weighted in the default recipe) in eval mode.

    Determinism: init, dropout and shuffling draw from generators seeded by ``seed`` inside a forked torch RNG
    (the caller's global RNG state is restored), with ``torch.use_deterministic_algorithms(True)`` during ``fit``
    (restored after). Two fits in one process with the same data, hyper-parameters and seed give identical weights
    on CPU, also across processes at the same ``torch.get_num_threads()``; another thread count or device may differ
    in the last bits.

    Learned state: ``model_`` (:class:`CNNTA`, eval mode), ``classes_`` (``[0, 1, 2]``), ``history_`` (one dict per
    epoch: ``epoch``, ``train_loss`` and, with validation data, ``val_loss``, ``val_macro_f1``, ``val_accuracy``),
    ``best_epoch_`` (1-based), ``n_features_in_`` (pixels, ``side * side``), ``image_shape_`` ``(1, side, side)``,
    ``recipe_params_`` (resolved optimizer, lr, epochs, batch size, class weights/oversampled counts, torch threads;
    JSON-safe). After ``fit`` (not persisted): ``fit_seconds_`` (wall seconds of the epoch loop, validation scoring
    included) and ``trained_samples_`` (rows visited over all epochs), for throughput figures.

    ``num_threads``: torch intra-op threads while fitting (``None``: the process's current setting), restored
    afterwards. Results are bit-identical only at the same count (see ``ModelConfig.torch_threads``).
    """

    def __init__(
        self,
        recipe: Recipe = "default",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        patience: int = 10,
        seed: int = 0,
        filters1: int = 32,
        filters2: int = 64,
        dense: int = 128,
        dropout_conv: float = 0.25,
        dropout_dense: float = 0.5,
        device: str = "cpu",
        num_threads: int | None = None,
    ) -> None:
        self.recipe = recipe
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.seed = seed
        self.filters1 = filters1
        self.filters2 = filters2
        self.dense = dense
        self.dropout_conv = dropout_conv
        self.dropout_dense = dropout_dense
        self.device = device
        self.num_threads = num_threads

    # -- fitting ---------------------------------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        *,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> CNNClassifier:
        """Train on time-ordered images ``X`` with class ids ``y``; ``X_val``/``y_val`` is a later, disjoint window.

        ``on_epoch(epoch, record)`` is called after each epoch with the ``history_`` record (e.g. a progress bar).
        """
        settings = self._resolve()
        images = _check_images(X, "X")
        labels = _check_labels(y, len(images), "y")
        side = images.shape[-1]
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        val: tuple[np.ndarray, np.ndarray] | None = None
        if X_val is not None:
            val_images = _check_images(X_val, "X_val", side=side)
            val = (val_images, _check_labels(y_val, len(val_images), "y_val"))
        if settings["recipe"] == "default" and val is None:
            raise ValueError(
                "the default recipe early-stops on validation data: pass X_val and y_val (a later time window), "
                "or use recipe='paper'"
            )
        conv_output_sides(side)
        if on_epoch is not None and not callable(on_epoch):
            raise ValueError("on_epoch must be callable or None")

        device = torch.device(self.device)
        seed = int(self.seed)
        threads = self.num_threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"num_threads must be a positive int or None (torch's setting), got {threads!r}")
        threads_before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            return self._fit(settings, images, labels, val, device, seed, on_epoch)
        finally:
            torch.set_num_threads(threads_before)

    def _fit(
        self,
        settings: dict[str, Any],
        images: np.ndarray,
        labels: np.ndarray,
        val: tuple[np.ndarray, np.ndarray] | None,
        device: torch.device,
        seed: int,
        on_epoch: Callable[[int, dict[str, float]], None] | None,
    ) -> CNNClassifier:
        if settings["recipe"] == "paper":
            train_rows = oversample_indices(labels, seed)
            class_weight = None
            counts = np.bincount(labels[train_rows], minlength=N_CLASSES)
        else:
            train_rows = np.arange(len(labels), dtype=np.int64)
            class_weight = balanced_class_weights(labels)
            counts = None
        recipe_params: dict[str, Any] = {
            "recipe": settings["recipe"],
            "optimizer": settings["optimizer"],
            "lr": settings["lr"],
            "weight_decay": settings["weight_decay"],
            "epochs": settings["epochs"],
            "batch_size": settings["batch_size"],
            "loss": "cross_entropy" if class_weight is None else "class_weighted_cross_entropy",
            "class_weight": None if class_weight is None else [float(w) for w in class_weight],
            "oversampled_counts": None if counts is None else [int(c) for c in counts],
            "early_stopping": "val_macro_f1" if settings["recipe"] == "default" else None,
            "patience": settings["patience"],
            # CPU results are bit-identical only at the same thread count: record it for `tradeops reproduce`.
            "torch_num_threads": torch.get_num_threads(),
        }

        side = images.shape[-1]
        started = time.perf_counter()
        with _deterministic_scope(seed, device):
            model = self._build(side).to(device)
            x_train = torch.from_numpy(images[train_rows]).to(device)
            y_train = torch.from_numpy(labels[train_rows]).to(device)
            weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32, device=device)
            loss_fn = nn.CrossEntropyLoss(weight=weight)
            optimizer = self._optimizer(model, settings)
            shuffle = torch.Generator(device="cpu").manual_seed(seed)
            history: list[dict[str, float]] = []
            best_key: tuple[float, float] | None = None
            best_state: dict[str, torch.Tensor] | None = None
            best_epoch = 0
            stale = 0
            n_train = len(y_train)
            for epoch in range(1, settings["epochs"] + 1):
                model.train()
                order = torch.randperm(n_train, generator=shuffle).to(device)
                total = 0.0
                for start in range(0, n_train, settings["batch_size"]):
                    batch = order[start : start + settings["batch_size"]]
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model(x_train[batch]), y_train[batch])
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(batch)
                record: dict[str, float] = {"epoch": epoch, "train_loss": total / n_train}
                if val is not None:
                    record.update(_evaluate(model, val[0], val[1], loss_fn, device))
                history.append(record)
                if on_epoch is not None:
                    on_epoch(epoch, dict(record))
                if settings["recipe"] == "paper":
                    best_epoch = epoch
                    continue
                key = (record["val_macro_f1"], -record["val_loss"])
                if best_key is None or key > best_key:
                    best_key, best_epoch, stale = key, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                    if stale >= settings["patience"]:
                        break
            if best_state is not None:
                model.load_state_dict(best_state)
            model.eval()

        # Training compute only (the epoch loop with its validation scoring), for throughput figures; not persisted.
        self.fit_seconds_ = time.perf_counter() - started
        self.trained_samples_ = n_train * len(history)
        self.model_ = model
        self.classes_ = np.arange(N_CLASSES)
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.n_features_in_ = side * side
        self.image_shape_ = (1, side, side)
        self.recipe_params_ = recipe_params
        return self

    # -- inference -------------------------------------------------------------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, float32 ``(n, 3)`` in class-id order (BUY, SELL, HOLD)."""
        check_is_fitted(self, "model_")
        images = _check_images(X, "X", side=self.image_shape_[-1])
        return _predict_proba(self.model_, images, torch.device(self.device))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class ids (int64): the most probable class per row."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)

    # -- persistence and reproducibility ---------------------------------------------------------------------

    def state_dict_bytes(self) -> bytes:
        """The fitted weights as ``torch.save(state_dict)`` bytes (CPU tensors; load with ``weights_only=True``)."""
        check_is_fitted(self, "model_")
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.model_.state_dict().items()}, buffer)
        return buffer.getvalue()

    def weights_sha256(self) -> str:
        """sha256 over each tensor's name, dtype, shape and raw bytes in state-dict order (independent of the
        torch file format), to check that two fits are bit-for-bit identical."""
        check_is_fitted(self, "model_")
        digest = hashlib.sha256()
        for name, tensor in self.model_.state_dict().items():
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def get_state(self) -> dict[str, Any]:
        """Hyper-parameters plus fitted state (weights as ``torch.save`` bytes); rebuild with :meth:`from_state`."""
        check_is_fitted(self, "model_")
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "torch_version": torch.__version__,
            "params": self.get_params(deep=False),
            "fitted": {
                "weights": self.state_dict_bytes(),
                "weights_sha256": self.weights_sha256(),
                "history_": [dict(r) for r in self.history_],
                "best_epoch_": int(self.best_epoch_),
                "image_shape_": list(self.image_shape_),
                "recipe_params_": copy.deepcopy(self.recipe_params_),
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CNNClassifier:
        """Rebuild a fitted classifier from :meth:`get_state`; fails on another format or a weights mismatch."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"not a CNNClassifier state (format must be {FORMAT!r})")
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported format_version {state.get('format_version')!r}, expected {FORMAT_VERSION}")
        params, fitted = state.get("params"), state.get("fitted")
        if not isinstance(params, dict) or not isinstance(fitted, dict):
            raise ValueError("state must hold 'params' and 'fitted' dicts")
        unknown = set(params) - set(cls._get_param_names())
        missing = {"weights", "history_", "best_epoch_", "image_shape_", "recipe_params_"} - set(fitted)
        if unknown or missing:
            raise ValueError(f"state has unknown params {sorted(unknown)} or lacks fitted keys {sorted(missing)}")
        obj = cls(**params)
        shape = tuple(int(v) for v in fitted["image_shape_"])
        if len(shape) != 3 or shape[0] != 1 or shape[1] != shape[2]:
            raise ValueError(f"image_shape_ must be (1, side, side), got {shape}")
        weights = torch.load(io.BytesIO(fitted["weights"]), map_location="cpu", weights_only=True)
        model = obj._build(shape[-1])
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise ValueError(f"weights do not fit the architecture in params: {exc}") from exc
        obj.model_ = model.to(torch.device(obj.device)).eval()
        obj.classes_ = np.arange(N_CLASSES)
        obj.history_ = [dict(r) for r in fitted["history_"]]
        obj.best_epoch_ = int(fitted["best_epoch_"])
        obj.n_features_in_ = shape[1] * shape[2]
        obj.image_shape_ = shape
        obj.recipe_params_ = copy.deepcopy(fitted["recipe_params_"])
        expected = fitted.get("weights_sha256")
        if expected is not None and obj.weights_sha256() != expected:
            raise ValueError("weights do not match the recorded weights_sha256 (corrupted state)")
        return obj

    # -- helpers ---------------------------------------------------------------------------------------------

    def _resolve(self) -> dict[str, Any]:
        """Validate hyper-parameters and fill the recipe's defaults."""
        if self.recipe not in _RECIPES:
            raise ValueError(f"recipe must be one of {sorted(_RECIPES)}, got {self.recipe!r}")
        base = _RECIPES[self.recipe]
        epochs = base["epochs"] if self.epochs is None else self.epochs
        batch_size = base["batch_size"] if self.batch_size is None else self.batch_size
        lr = base["lr"] if self.lr is None else self.lr
        weight_decay = base["weight_decay"] if self.weight_decay is None else self.weight_decay
        _check_positive_int("epochs", epochs)
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("patience", self.patience)
        for name, value in (("lr", lr), ("weight_decay", weight_decay)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if self.recipe == "paper" and weight_decay:
            raise ValueError("the paper recipe (Adadelta as in the original) takes no weight_decay")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        return {
            "recipe": self.recipe,
            "optimizer": base["optimizer"],
            "epochs": int(epochs),
            "batch_size": int(batch_size),
            "lr": float(lr),
            "weight_decay": float(weight_decay),
            "patience": int(self.patience),
        }

    def _build(self, side: int) -> CNNTA:
        return CNNTA(
            side=side,
            filters1=self.filters1,
            filters2=self.filters2,
            dense=self.dense,
            dropout_conv=self.dropout_conv,
            dropout_dense=self.dropout_dense,
        )

    @staticmethod
    def _optimizer(model: nn.Module, settings: dict[str, Any]) -> torch.optim.Optimizer:
        if settings["optimizer"] == "Adadelta":
            return torch.optim.Adadelta(model.parameters(), lr=settings["lr"], rho=0.95, eps=1e-7)
        return torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])


# -- module helpers --------------------------------------------------------------------------------------------


@contextmanager
def _deterministic_scope(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (used by init and dropout) inside a fork that restores the caller's RNG state, with
    deterministic algorithms and grad mode on; everything is restored on exit."""
    fork_devices: list[int] = []
    if device.type == "cuda":
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=fork_devices), torch.enable_grad():
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(fork_devices[0]):
                torch.cuda.manual_seed(seed)
        # Off CPU some kernels have no deterministic variant (e.g. cuBLAS without CUBLAS_WORKSPACE_CONFIG): warn.
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def _predict_proba(model: nn.Module, images: np.ndarray, device: torch.device) -> np.ndarray:
    model.eval()
    out = np.empty((len(images), N_CLASSES), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(images), _PREDICT_BATCH):
            batch = torch.from_numpy(images[start : start + _PREDICT_BATCH]).to(device)
            out[start : start + len(batch)] = torch.softmax(model(batch), dim=1).cpu().numpy()
    return out


def _evaluate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, loss_fn: nn.Module, device: torch.device
) -> dict[str, float]:
    """Validation loss (the training loss function, eval mode), macro-F1 over the three classes and accuracy."""
    model.eval()
    logits = []
    with torch.inference_mode():
        for start in range(0, len(images), _PREDICT_BATCH):
            logits.append(model(torch.from_numpy(images[start : start + _PREDICT_BATCH]).to(device)))
        all_logits = torch.cat(logits)
        loss = float(loss_fn(all_logits, torch.from_numpy(labels).to(device)))
    pred = all_logits.argmax(dim=1).cpu().numpy()
    return {
        "val_loss": loss,
        "val_macro_f1": float(f1_score(labels, pred, labels=list(range(N_CLASSES)), average="macro", zero_division=0)),
        "val_accuracy": float(accuracy_score(labels, pred)),
    }


def _check_images(X: object, name: str, side: int | None = None) -> np.ndarray:
    """``X`` as a C-contiguous float32 array of shape ``(n, 1, side, side)`` with finite values in ``[0, 1]``."""
    arr = np.asarray(X)
    if arr.ndim != 4 or arr.shape[1] != 1 or arr.shape[2] != arr.shape[3]:
        raise ValueError(f"{name} must have shape (n_rows, 1, side, side) (ImageTransform output), got {arr.shape}")
    if side is not None and arr.shape[-1] != side:
        raise ValueError(f"{name} has images of side {arr.shape[-1]}, the model expects side {side}")
    if len(arr) == 0:
        raise ValueError(f"{name} has no rows")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be a float array (float32 images), got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not arr.flags.writeable:  # torch.from_numpy warns on read-only memory (e.g. arrays backed by Arrow)
        arr = arr.copy()
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(axis=1))[0])
        raise ValueError(f"{name} row {row} has a non-finite pixel")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} pixels must be in [0, 1] (ImageTransform scales and clips), got [{lo}, {hi}]")
    return arr


def _check_labels(y: object, n_rows: int, name: str) -> np.ndarray:
    """``y`` as int64 class ids in {0, 1, 2}, one per row."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class ids, got shape {arr.shape}")
    if len(arr) != n_rows:
        raise ValueError(f"{name} has {len(arr)} labels for {n_rows} image rows")
    if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        raise ValueError(
            f"{name} must hold class ids 0/1/2 (BUY/SELL/HOLD; see features.labels.encode_labels), "
            f"got dtype {arr.dtype}"
        )
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise ValueError(f"{name} must hold integer class ids; found missing or fractional values")
    ids = arr.astype(np.int64)
    bad = np.flatnonzero((ids < 0) | (ids >= N_CLASSES))
    if bad.size:
        raise ValueError(
            f"{name} row {int(bad[0])} has class id {arr[bad[0]].item()!r}; valid ids: 0 (BUY), 1 (SELL), 2 (HOLD)"
        )
    return ids


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_dropout(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
