"""Feature row -> image, the serving half of :class:`~tradeops.features.transform.ImageTransform` (numpy only).

Training fits an ``ImageTransform`` (scikit-learn estimator, feature selection) and saves it as JSON; serving loads
that JSON into an :class:`ImageLayout`, which applies exactly the same scaling without importing scikit-learn, so
the serving path needs only numpy, pandas and onnxruntime. Both call :func:`scale_to_images`, the one
implementation of the arithmetic.

Scaling: ``(x - data_min) / (data_max - data_min)`` clipped to ``[0, 1]``; a feature constant on the fit rows maps
to ``0.5``. Pixel ``(r, c)`` is selected feature ``r * side + c``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = "tradeops.features.ImageTransform"
FORMAT_VERSION = 1


def encode_float(value: float) -> float | str | None:
    """A float as JSON-safe data: finite as is, NaN as ``None``, infinities as ``"inf"`` / ``"-inf"``."""
    v = float(value)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def decode_float(value: float | str | None) -> float:
    """Inverse of :func:`encode_float`."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        if value not in ("inf", "-inf"):
            raise ValueError(f"unexpected float encoding {value!r}")
        return math.inf if value == "inf" else -math.inf
    return float(value)


def canonical_fingerprint(state: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of a transform's saved state (what the bundle records)."""
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_state_header(state: object, what: str = "ImageTransform state") -> None:
    """Raise ``ValueError`` unless ``state`` is a mapping with this module's transform format and version."""
    if not isinstance(state, Mapping) or state.get("format") != FORMAT:
        raise ValueError(f"not an {what} (format must be {FORMAT!r})")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported format_version {state.get('format_version')!r}, expected {FORMAT_VERSION}")


def scale_to_images(values: np.ndarray, data_min: np.ndarray, data_max: np.ndarray, side: int) -> np.ndarray:
    """Min-max scale ``values`` ``(n, side*side)`` (float64, finite) to float32 images ``(n, 1, side, side)``."""
    span = data_max - data_min
    constant = span == 0
    # A serving value far outside the fitted range can overflow to +-inf here; the clip maps it to 0 or 1 as for
    # any out-of-range value, so the overflow is expected, not an error.
    with np.errstate(over="ignore"):
        scaled = (values - data_min) / np.where(constant, 1.0, span)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    if constant.any():
        scaled[:, constant] = 0.5
    return scaled.astype(np.float32).reshape(len(values), 1, side, side)


@dataclass(frozen=True)
class ImageLayout:
    """A fitted transform as serving needs it: input feature order, which of them make the image, their min/max.

    ``feature_names`` are the model's input features (``feature_names_in_``), ``pixel_index[k]`` the position in
    that list of pixel ``k``'s feature.
    """

    feature_names: tuple[str, ...]
    selected: tuple[str, ...]
    pixel_index: np.ndarray
    data_min: np.ndarray
    data_max: np.ndarray
    side: int
    fingerprint: str
    name_set: frozenset[str] = frozenset()

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ImageLayout:
        """Build from the JSON state an ``ImageTransform`` saved (``to_dict``); a wrong or unfitted state raises."""
        check_state_header(state)
        fitted = state.get("fitted")
        if not isinstance(fitted, Mapping):
            raise ValueError("the transform was saved before it was fitted")
        side = int(state["params"]["side"])
        names = tuple(str(f) for f in fitted["feature_names_in_"])
        selected = tuple(str(f) for f in fitted["selected_"])
        data_min = np.asarray([decode_float(v) for v in fitted["data_min_"]], dtype=np.float64)
        data_max = np.asarray([decode_float(v) for v in fitted["data_max_"]], dtype=np.float64)
        if not len(selected) == len(data_min) == len(data_max) == side * side:
            raise ValueError(f"fitted state has {len(selected)} features for a {side} x {side} image")
        position = {n: i for i, n in enumerate(names)}
        missing = [f for f in selected if f not in position]
        if missing:
            raise ValueError(f"selected features not among the input features: {missing[:5]}")
        index = np.asarray([position[f] for f in selected], dtype=np.intp)
        return cls(names, selected, index, data_min, data_max, side, canonical_fingerprint(state), frozenset(names))

    @classmethod
    def from_transform(cls, transform: Any) -> ImageLayout:
        """From a fitted ``ImageTransform`` (or anything with its ``to_dict``)."""
        return cls.from_state(transform.to_dict())

    def images(self, features: np.ndarray) -> np.ndarray:
        """Images of feature rows ``(n, len(feature_names))`` in ``feature_names`` order; a NaN/inf in a used
        feature is a ``ValueError`` naming the row and the feature."""
        values = np.asarray(features, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.feature_names):
            raise ValueError(f"expected rows of {len(self.feature_names)} features, got shape {values.shape}")
        used = values[:, self.pixel_index]
        finite = np.isfinite(used)
        if not finite.all():
            row, col = (int(x[0]) for x in np.nonzero(~finite))
            raise ValueError(f"row {row}: feature {self.selected[col]!r} is {used[row, col]!r} (not finite)")
        return scale_to_images(used, self.data_min, self.data_max, self.side)

    def vector(self, features: Mapping[str, float]) -> np.ndarray:
        """One feature row from a name -> value mapping, in model order; missing or extra names raise."""
        if len(features) != len(self.feature_names) or not self.name_set.issuperset(features):
            self._raise_names(list(features))
        try:
            return np.fromiter(
                (features[n] for n in self.feature_names), dtype=np.float64, count=len(self.feature_names)
            )
        except KeyError:
            self._raise_names(list(features))
            raise

    def _raise_names(self, columns: Sequence[str]) -> None:
        have = set(columns)
        missing = [n for n in self.feature_names if n not in have]
        extra = [c for c in columns if c not in self.name_set]
        raise KeyError(
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"extra {extra[:5]}{'...' if len(extra) > 5 else ''}"
        )

    def column_order(self, columns: Sequence[str]) -> list[str]:
        """The model's feature columns; raises ``KeyError`` naming missing/extra ones among ``columns``."""
        if len(columns) != len(self.feature_names) or set(columns) != self.name_set:
            self._raise_names(columns)
        return list(self.feature_names)
