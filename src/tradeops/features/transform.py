"""The fitted feature -> image transform shared by training and serving.

Fit it on the training window only (ARCHITECTURE.md section 4); serve with the saved JSON so the model refuses a
feature set that differs from the one it was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from tradeops.features.image import (
    FORMAT,
    FORMAT_VERSION,
    canonical_fingerprint,
    check_state_header,
    decode_float,
    encode_float,
    scale_to_images,
)
from tradeops.features.selection import SelectionResult, select_features

__all__ = ["FORMAT", "FORMAT_VERSION", "ImageTransform", "to_png"]

_PARAMS = ("side", "feature_names", "select", "n_select", "random_state")
_FITTED = ("feature_names_in_", "selected_", "selection_", "data_min_", "data_max_")


class ImageTransform(BaseEstimator):
    """Min-max scale ``side * side`` features of each row and lay them out as one grayscale image.

    Features used (``selected_``), by hyper-parameter:

    - ``feature_names``: that fixed list (e.g. the cnn-ta preset), in that order; length ``side * side``;
    - ``select=True``: :func:`~tradeops.features.selection.select_features` on the fit rows with ``y``,
      ``n_select`` (default and only allowed value ``side * side``) features, kept in input column order;
    - neither: every column of ``X``, in order (``X`` must have exactly ``side * side`` columns).

    Scaling: ``(x - data_min_) / (data_max_ - data_min_)`` with the min/max of the fit rows (the training window),
    then clipped to ``[0, 1]`` since serving data can leave the training range. A feature constant on the fit rows
    maps to ``0.5`` for every input. NaN or inf in a used feature is a ``ValueError`` naming the row and feature
    (no silent fill), in ``fit`` as in ``transform``.

    Layout: ``transform`` returns ``float32`` of shape ``(n_rows, 1, side, side)``, row-major: pixel ``(r, c)`` is
    ``selected_[r * side + c]``. With the cnn-ta order (indicator-major, windows 6..20) row ``r`` is indicator ``r``
    and column ``c`` is window ``6 + c``.

    Learned state: ``feature_names_in_`` (all fit columns, in order), ``selected_``, ``selection_``
    (``SelectionResult`` or ``None``), ``data_min_``/``data_max_`` (float64, one per selected feature).
    """

    def __init__(
        self,
        side: int = 15,
        feature_names: Sequence[str] | None = None,
        select: bool = False,
        n_select: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.side = side
        self.feature_names = feature_names
        self.select = select
        self.n_select = n_select
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray | None = None) -> ImageTransform:
        """Learn the used features and their min/max from the training rows ``X`` (and labels ``y`` to select)."""
        side = self._check_side()
        n_pixels = side * side
        columns = _columns(X)
        selection: SelectionResult | None = None
        if self.feature_names is not None and self.select:
            raise ValueError("give either feature_names (a fixed list) or select=True, not both")
        if self.feature_names is not None:
            if isinstance(self.feature_names, str):
                raise ValueError("feature_names must be a sequence of names, not one string")
            selected = tuple(str(f) for f in self.feature_names)
            if len(selected) != n_pixels:
                raise ValueError(f"feature_names has {len(selected)} names, side={side} needs {n_pixels}")
            if len(set(selected)) != n_pixels:
                raise ValueError("feature_names contains duplicates")
        elif self.select:
            n_select = n_pixels if self.n_select is None else self.n_select
            if n_select != n_pixels:
                raise ValueError(f"n_select={n_select} must equal side * side = {n_pixels} to fill the image")
            if y is None:
                raise ValueError("select=True needs the training labels y in fit(X, y)")
            selection = select_features(X, y, n=n_pixels, random_state=self.random_state)
            selected = selection.names
        else:
            if len(columns) != n_pixels:
                raise ValueError(
                    f"X has {len(columns)} columns but side={side} needs {n_pixels}; pass feature_names or select=True"
                )
            selected = columns
        _require_columns(X, selected)
        values = _finite_values(X, selected)
        if values.shape[0] == 0:
            raise ValueError("X has no rows to fit on")
        self.feature_names_in_ = columns
        self.selected_ = selected
        self.selection_ = selection
        self.data_min_ = values.min(axis=0)
        self.data_max_ = values.max(axis=0)
        return self

    def transform(self, X: pd.DataFrame, strict: bool = True) -> np.ndarray:
        """Images of the rows of ``X``: ``float32`` array ``(n_rows, 1, side, side)`` in ``[0, 1]``.

        ``strict=True`` (default) requires ``X``'s columns to equal ``feature_names_in_`` (same names, same order);
        ``strict=False`` only requires the selected features. Rows are independent (no look-back across rows).
        """
        self._check_fitted()
        columns = _columns(X)
        if strict and columns != self.feature_names_in_:
            fitted = set(self.feature_names_in_)
            missing = [c for c in self.feature_names_in_ if c not in set(columns)]
            extra = [c for c in columns if c not in fitted]
            detail = f"missing {missing}, extra {extra}" if missing or extra else "same names in a different order"
            raise ValueError(f"X's columns differ from the fitted feature_names_in_: {detail}")
        _require_columns(X, self.selected_)
        values = _finite_values(X, self.selected_)
        return scale_to_images(values, self.data_min_, self.data_max_, int(self.side))

    def fit_transform(self, X: pd.DataFrame, y: pd.Series | np.ndarray | None = None) -> np.ndarray:
        """``fit(X, y)`` then ``transform(X)``."""
        return self.fit(X, y).transform(X)

    # -- persistence -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (plain lists, floats, strings); ``fitted`` is ``None`` before ``fit``."""
        params = {
            "side": int(self.side),
            "feature_names": None if self.feature_names is None else [str(f) for f in self.feature_names],
            "select": bool(self.select),
            "n_select": None if self.n_select is None else int(self.n_select),
            "random_state": int(self.random_state),
        }
        fitted: dict[str, Any] | None = None
        if self._is_fitted():
            fitted = {
                "feature_names_in_": list(self.feature_names_in_),
                "selected_": list(self.selected_),
                "selection_": None if self.selection_ is None else self.selection_.to_dict(),
                "data_min_": [encode_float(v) for v in self.data_min_],
                "data_max_": [encode_float(v) for v in self.data_max_],
            }
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "params": params, "fitted": fitted}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageTransform:
        """Rebuild a transform from :meth:`to_dict` output; fails on another format or an inconsistent state."""
        if not isinstance(data, dict):
            raise ValueError(f"not an ImageTransform dict (format must be {FORMAT!r})")
        check_state_header(data, "ImageTransform dict")
        params = data.get("params")
        if not isinstance(params, dict) or set(params) != set(_PARAMS):
            raise ValueError(f"params must have exactly the keys {list(_PARAMS)}")
        obj = cls(**params)
        fitted = data.get("fitted")
        if fitted is None:
            return obj
        if not isinstance(fitted, dict) or set(fitted) != set(_FITTED):
            raise ValueError(f"fitted must have exactly the keys {list(_FITTED)}")
        side = obj._check_side()
        selected = tuple(str(f) for f in fitted["selected_"])
        data_min = np.asarray([decode_float(v) for v in fitted["data_min_"]], dtype=np.float64)
        data_max = np.asarray([decode_float(v) for v in fitted["data_max_"]], dtype=np.float64)
        if not len(selected) == len(data_min) == len(data_max) == side * side:
            raise ValueError(
                f"fitted state has {len(selected)} features, {len(data_min)} minima and {len(data_max)} maxima; "
                f"side={side} needs {side * side}"
            )
        if not (np.isfinite(data_min).all() and np.isfinite(data_max).all() and (data_min <= data_max).all()):
            raise ValueError("fitted data_min_/data_max_ must be finite with data_min_ <= data_max_")
        obj.feature_names_in_ = tuple(str(f) for f in fitted["feature_names_in_"])
        missing = [f for f in selected if f not in set(obj.feature_names_in_)]
        if missing:
            raise ValueError(f"selected_ names not in feature_names_in_: {missing}")
        obj.selected_ = selected
        obj.selection_ = None if fitted["selection_"] is None else SelectionResult.from_dict(fitted["selection_"])
        obj.data_min_ = data_min
        obj.data_max_ = data_max
        return obj

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path``; returns the path."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)
        path.write_text(text + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ImageTransform:
        """Read a transform written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def fingerprint(self) -> str:
        """sha256 hex digest of the canonical JSON of :meth:`to_dict` (hyper-parameters and fitted state)."""
        return canonical_fingerprint(self.to_dict())

    # -- helpers ---------------------------------------------------------------------------------------------

    def _check_side(self) -> int:
        side = self.side
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
            raise ValueError(f"side must be a positive integer, got {side!r}")
        return int(side)

    def _is_fitted(self) -> bool:
        return all(hasattr(self, name) for name in _FITTED)

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise NotFittedError("this ImageTransform is not fitted yet; call fit(X_train) first")


def to_png(image: np.ndarray, path: str | Path, scale: int = 8) -> Path:
    """Write one image (``(side, side)`` or ``(1, side, side)``, values in ``[0, 1]``) as a grayscale PNG.

    Values map to ``round(255 * v)``; each pixel becomes a ``scale`` x ``scale`` block (nearest neighbour).
    """
    from PIL import Image  # Pillow only when writing images

    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"image must have shape (side, side) or (1, side, side), got {np.shape(image)}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError("image values must be finite and in [0, 1]")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    pixels = np.rint(arr * 255.0).astype(np.uint8)
    img = Image.fromarray(pixels)  # 2-D uint8 -> mode "L"
    img = img.resize((arr.shape[1] * int(scale), arr.shape[0] * int(scale)), Image.Resampling.NEAREST)
    path = Path(path)
    img.save(path, format="PNG")
    return path


def _columns(X: object) -> tuple[str, ...]:
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"X must be a pandas DataFrame with named feature columns, got {type(X).__name__}")
    columns = tuple(X.columns)
    bad = [c for c in columns if not isinstance(c, str)]
    if bad:
        raise ValueError(f"feature column names must be strings, got {bad[:5]}")
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise ValueError(f"X has duplicated column names: {dupes}")
    return columns


def _require_columns(X: pd.DataFrame, names: Sequence[str]) -> None:
    present = set(X.columns)
    missing = [f for f in names if f not in present]
    if missing:
        raise ValueError(f"X lacks {len(missing)} used feature(s): {missing}")


def _finite_values(X: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    try:
        values = X.loc[:, list(names)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"used features must be numeric: {exc}") from exc
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"row {X.index[r]!r} has a non-finite value ({values[r, c]}) in feature {names[c]!r}; drop or repair "
            "such rows before fit/transform (no silent fill)"
        )
    return values
