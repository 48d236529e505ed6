"""LightGBM baseline on the same features as CNN-TA, flattened (one column per pixel) or any 2-D feature matrix.

Class ids as everywhere: BUY=0, SELL=1, HOLD=2. Rows are time ordered; validation rows (for early stopping) must be
a later, disjoint window (ARCHITECTURE.md section 4).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["LGBMSignalClassifier"]

N_CLASSES = 3


class LGBMSignalClassifier(ClassifierMixin, BaseEstimator):
    """Multiclass LightGBM (softmax objective, three classes always) with deterministic single-threaded training.

    ``X`` is a 2-D float matrix ``(n, n_features)`` or the ``(n, 1, side, side)`` images (flattened row-major).
    ``class_weight``: ``"balanced"`` weighs each row by ``n / (3 * count_c)`` of the training labels (as
    CNN-TA's default recipe), a dict ``{class_id: weight}`` sets them, ``None`` weighs rows equally. With
    ``X_val``/``y_val``, training stops after ``early_stopping_rounds`` rounds without a better validation
    multi-logloss (rows weighted like the training rows) and keeps the best iteration; without, it builds
    ``n_estimators`` trees. LightGBM runs with ``deterministic=True``, ``force_row_wise=True``, ``n_jobs`` threads.

    Learned state: ``booster_`` (``lightgbm.Booster``), ``classes_`` (``[0, 1, 2]``), ``n_features_in_``,
    ``best_iteration_`` (number of trees used to predict), ``feature_importances_`` (total gain per feature,
    float64), ``class_weight_`` (the per-class weights used).
    """

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        class_weight: str | dict[int, float] | None = "balanced",
        seed: int = 0,
        early_stopping_rounds: int = 30,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.class_weight = class_weight
        self.seed = seed
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> LGBMSignalClassifier:
        """Train on ``X``/``y``; early-stop on ``X_val``/``y_val`` (a later time window) when given."""
        self._check_params()
        features = _check_features(X, "X")
        labels = _check_labels(y, len(features), "y")
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        class_weight = self._class_weights(labels)
        params = self._lgb_params()
        train_set = lgb.Dataset(features, label=labels, weight=class_weight[labels], params={"verbosity": -1})
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Any] = []
        if X_val is not None:
            val_features = _check_features(X_val, "X_val", n_features=features.shape[1])
            val_labels = _check_labels(y_val, len(val_features), "y_val")
            valid_sets.append(
                lgb.Dataset(val_features, label=val_labels, weight=class_weight[val_labels], reference=train_set)
            )
            callbacks.append(lgb.early_stopping(int(self.early_stopping_rounds), first_metric_only=True, verbose=False))
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=int(self.n_estimators),
            valid_sets=valid_sets,
            valid_names=["val"] if valid_sets else None,
            callbacks=callbacks,
        )
        best = booster.best_iteration if valid_sets and booster.best_iteration > 0 else booster.current_iteration()
        self.booster_ = booster
        self.classes_ = np.arange(N_CLASSES)
        self.n_features_in_ = features.shape[1]
        self.best_iteration_ = int(best)
        self.feature_importances_ = booster.feature_importance(importance_type="gain", iteration=self.best_iteration_)
        self.class_weight_ = class_weight
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, float64 ``(n, 3)`` in class-id order (BUY, SELL, HOLD)."""
        check_is_fitted(self, "booster_")
        features = _check_features(X, "X", n_features=self.n_features_in_)
        proba = self.booster_.predict(features, num_iteration=self.best_iteration_, num_threads=int(self.n_jobs))
        return np.asarray(proba, dtype=np.float64).reshape(len(features), N_CLASSES)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class ids (int64): the most probable class per row."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "multiclass",
            "num_class": N_CLASSES,
            "metric": "multi_logloss",
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "seed": int(self.seed),
            "num_threads": int(self.n_jobs),
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def _check_params(self) -> None:
        for name in ("n_estimators", "num_leaves", "early_stopping_rounds", "n_jobs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.num_leaves < 2:
            raise ValueError(f"num_leaves must be >= 2, got {self.num_leaves!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"learning_rate must be a positive number, got {lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")

    def _class_weights(self, labels: np.ndarray) -> np.ndarray:
        cw = self.class_weight
        if cw is None:
            return np.ones(N_CLASSES)
        if isinstance(cw, str):
            if cw != "balanced":
                raise ValueError(f"class_weight must be 'balanced', a dict or None, got {cw!r}")
            counts = np.bincount(labels, minlength=N_CLASSES).astype(np.float64)
            weights = np.zeros(N_CLASSES)
            weights[counts > 0] = len(labels) / (N_CLASSES * counts[counts > 0])
            return weights
        if isinstance(cw, dict):
            unknown = [k for k in cw if k not in range(N_CLASSES)]
            if unknown:
                raise ValueError(f"class_weight keys must be class ids 0, 1, 2; got {unknown}")
            weights = np.array([float(cw.get(c, 1.0)) for c in range(N_CLASSES)])
            if not (np.isfinite(weights).all() and (weights > 0).all()):
                raise ValueError(f"class_weight values must be positive and finite, got {cw!r}")
            return weights
        raise ValueError(f"class_weight must be 'balanced', a dict or None, got {cw!r}")


def _check_features(X: object, name: str, n_features: int | None = None) -> np.ndarray:
    """``X`` as a 2-D float64 matrix; ``(n, 1, side, side)`` images are flattened row-major. NaN is allowed
    (LightGBM treats it as missing), inf is not."""
    arr = np.asarray(X)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr.reshape(len(arr), -1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_rows, n_features) or images (n_rows, 1, side, side), got {arr.shape}")
    if len(arr) == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} has no rows or no features (shape {arr.shape})")
    if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if np.isinf(arr).any():
        row = int(np.flatnonzero(np.isinf(arr).any(axis=1))[0])
        raise ValueError(f"{name} row {row} has an infinite value")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, the model was fitted on {n_features}")
    return arr


def _check_labels(y: object, n_rows: int, name: str) -> np.ndarray:
    """``y`` as int64 class ids in {0, 1, 2}, one per row."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class ids, got shape {arr.shape}")
    if len(arr) != n_rows:
        raise ValueError(f"{name} has {len(arr)} labels for {n_rows} feature rows")
    if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        raise ValueError(f"{name} must hold class ids 0/1/2 (BUY/SELL/HOLD), got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise ValueError(f"{name} must hold integer class ids; found missing or fractional values")
    ids = arr.astype(np.int64)
    bad = np.flatnonzero((ids < 0) | (ids >= N_CLASSES))
    if bad.size:
        raise ValueError(
            f"{name} row {int(bad[0])} has class id {arr[bad[0]].item()!r}; valid ids: 0 (BUY), 1 (SELL), 2 (HOLD)"
        )
    return ids
