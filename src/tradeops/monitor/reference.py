"""The training reference stored with each model: what drift monitoring compares served traffic with.

Built once at training time from the model's fit rows (raw, unscaled feature values) and its test-window
predictions; saved next to the bundle as ``reference.npz`` (arrays) + ``reference.json`` (names, mixes, window).

Class order everywhere (``class_mix``/``test_signal_mix`` keys, ``test_proba`` columns) is
:data:`tradeops.features.labels.CLASSES` = BUY, SELL, HOLD, the order of ``tradeops.model.package.PROBA_COLUMNS``
(``p_BUY``, ``p_SELL``, ``p_HOLD``).

PSI bins: ``bin_edges[j]`` are the ``bins + 1`` quantiles (0, 1/bins, ..., 1; linear interpolation) of feature ``j``'s
finite fit values. A value ``x`` falls in bin ``k`` = number of interior edges ``<= x`` (``searchsorted(...,
side="right")``), so values outside the reference range fall in the outer bins. Tied or constant features give
duplicate edges; the bins between two equal edges are empty for ANY data (``[c, c)``), so duplicates need no special
case: those bins have share 0 in both reference and current and add 0 to PSI (a constant feature keeps all its mass
in the bin at or above the constant). :func:`bin_counts` is the one binning rule; :mod:`tradeops.monitor.drift` uses
it for current rows, so current rows equal to the fit rows give PSI exactly 0.

Files are deterministic: the same inputs and seed give byte-identical files. ``np.savez_compressed`` is: its zip
entries are opened by name, which stamps zipfile's fixed 1980-01-01 time, not the clock (a test guards it); arrays
are written in a fixed order and the JSON with sorted keys.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradeops.errors import TradeopsError
from tradeops.features.labels import CLASSES

NPZ_NAME = "reference.npz"
JSON_NAME = "reference.json"
FORMAT = 1
_ARRAYS = ("sample", "bin_edges", "bin_share", "test_proba")
_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class TrainingReference:
    """Fit-row sample and PSI bins per feature, fit class mix, and the test window's predicted mix/probabilities.

    ``sample``: (n, f) float32, a uniform subsample of the fit rows in ``feature_names`` order, rows in fit order.
    ``bin_edges``: (f, bins + 1) float64; ``bin_share``: (f, bins) float64 share of fit rows per bin (rows sum to 1).
    ``class_mix``/``test_signal_mix``: share per class (keys in CLASSES order, missing labels not counted).
    ``test_proba``: (m, 3) float32, columns BUY, SELL, HOLD. ``window``: ``{"fit": "A..B", "test": "C..D"}``.
    """

    feature_names: tuple[str, ...]
    sample: np.ndarray
    bin_edges: np.ndarray
    bin_share: np.ndarray
    class_mix: dict[str, float]
    test_signal_mix: dict[str, float]
    test_proba: np.ndarray
    window: dict[str, str]

    @property
    def bins(self) -> int:
        return int(self.bin_share.shape[1])


def bin_counts(edges: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows per PSI bin for every feature: ``(counts (f, bins) int64, finite (f,) int64)``.

    ``edges`` (f, bins + 1) as in :class:`TrainingReference`; ``values`` (n, f). A value falls in bin ``k`` = the
    number of interior edges ``<= value``; NaN/inf values are not counted (``finite`` is the number counted per
    feature). Counts "value >= edge" per interior edge in row chunks, so float32 values stay float32 (compared with
    each edge rounded up to float32, which is exact for float32 values) and no float64 copy of ``values`` is made.
    """
    f, bins = edges.shape[0], edges.shape[1] - 1
    if values.ndim != 2 or values.shape[1] != f:
        raise TradeopsError(f"PSI: [shape] values have shape {values.shape}, the reference {f} features")
    interior = np.asarray(edges, dtype=np.float64)[:, 1:-1]
    as32 = values.dtype == np.float32
    thresholds = np.ascontiguousarray((_ceil_float32(interior) if as32 else interior).T)  # (bins - 1, f)
    ge = np.zeros((bins - 1, f), dtype=np.int64)
    finite = np.zeros(f, dtype=np.int64)
    for start in range(0, values.shape[0], _CHUNK_ROWS):
        block = values[start : start + _CHUNK_ROWS]
        if not as32 and block.dtype != np.float64:
            block = block.astype(np.float64)
        ok = np.isfinite(block)
        finite += np.count_nonzero(ok, axis=0)
        if not ok.all():  # +inf is >= every edge: take it back out of every "value >= edge" count
            ge -= np.count_nonzero(np.isposinf(block), axis=0)[None, :]
        for k in range(bins - 1):
            ge[k] += np.count_nonzero(block >= thresholds[k], axis=0)
    counts = np.empty((f, bins), dtype=np.int64)
    counts[:, 0] = finite - ge[0]
    counts[:, 1:-1] = (ge[:-1] - ge[1:]).T
    counts[:, -1] = ge[-1]
    return counts, finite


def _ceil_float32(x: np.ndarray) -> np.ndarray:
    """The smallest float32 >= each float64 value: for a float32 ``v``, ``v >= x`` exactly when ``v >= result``."""
    with np.errstate(over="ignore"):
        out = x.astype(np.float32)
    low = out.astype(np.float64) < x
    out[low] = np.nextafter(out[low], np.float32(np.inf))
    return out


def build_reference(
    fit_features: pd.DataFrame,
    fit_labels: pd.Series,
    test_signals: pd.Series,
    test_proba: np.ndarray,
    *,
    bins: int,
    rows: int,
    seed: int,
    window: dict[str, str],
) -> TrainingReference:
    """The reference of one trained model (pure). ``fit_labels``: class names (NA allowed, not counted) per fit row;
    ``test_signals``/``test_proba``: the model's signal and (BUY, SELL, HOLD) probabilities per test-window row.
    ``bins``: PSI quantile bins; ``rows``: most fit rows kept in ``sample`` (a seeded uniform subsample beyond)."""
    if bins < 2:
        raise TradeopsError(f"reference: [bins] must be >= 2, got {bins}")
    if rows < 1:
        raise TradeopsError(f"reference: [rows] must be >= 1, got {rows}")
    names = tuple(str(c) for c in fit_features.columns)
    if len(set(names)) != len(names):
        raise TradeopsError("reference: [features] fit feature names are not unique")
    n = len(fit_features)
    if n == 0 or not names:
        raise TradeopsError(f"reference: [fit rows] need at least one fit row and feature, got {n} x {len(names)}")
    if len(fit_labels) != n:
        raise TradeopsError(f"reference: [labels] {len(fit_labels)} fit labels for {n} fit rows")
    try:
        x = fit_features.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise TradeopsError(f"reference: [features] fit features must be numeric ({exc})") from None
    finite = np.isfinite(x)
    empty = np.flatnonzero(~finite.any(axis=0))
    if empty.size:
        bad = names[int(empty[0])]
        raise TradeopsError(f"reference: [features] feature {bad!r} has no finite value in the fit rows")
    proba = np.asarray(test_proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(CLASSES):
        raise TradeopsError(f"reference: [test_proba] shape {proba.shape}, expected (m, {len(CLASSES)}) = {CLASSES}")
    if len(test_signals) != proba.shape[0]:
        raise TradeopsError(f"reference: [test window] {len(test_signals)} signals but {proba.shape[0]} proba rows")

    q = np.linspace(0.0, 1.0, bins + 1)
    edges = np.nanquantile(np.where(finite, x, np.nan), q, axis=0).T  # (f, bins + 1)
    counts, total = bin_counts(edges, x)
    share = counts / total[:, None]
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(n, size=rows, replace=False)) if n > rows else np.arange(n)
    return TrainingReference(
        feature_names=names,
        sample=np.ascontiguousarray(x[keep], dtype=np.float32),
        bin_edges=np.ascontiguousarray(edges, dtype=np.float64),
        bin_share=np.ascontiguousarray(share, dtype=np.float64),
        class_mix=class_shares(fit_labels, "reference: fit labels"),
        test_signal_mix=class_shares(test_signals, "reference: test signals"),
        test_proba=np.ascontiguousarray(proba, dtype=np.float32),
        window={str(k): str(v) for k, v in window.items()},
    )


def class_shares(values: pd.Series | Sequence[str], what: str) -> dict[str, float]:
    """Share of each class (CLASSES order) among the non-missing ``values``; :class:`TradeopsError` naming ``what``
    for an unknown class or when none is present."""
    s = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    present = s[s.notna()].astype(str)
    if present.empty:
        raise TradeopsError(f"{what}: [classes] no class present (need at least one of {', '.join(CLASSES)})")
    unknown = ~present.isin(CLASSES).to_numpy()
    if unknown.any():
        k = int(np.flatnonzero(unknown)[0])
        raise TradeopsError(f"{what}: [classes] unknown class {present.iloc[k]!r} (valid: {', '.join(CLASSES)})")
    counts = present.value_counts()
    return {c: float(counts.get(c, 0)) / len(present) for c in CLASSES}


def save_reference(ref: TrainingReference, directory: Path) -> None:
    """Write ``reference.npz`` and ``reference.json`` into ``directory`` (created if needed); byte-identical for the
    same reference."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(  # the order of _ARRAYS
        buf,
        sample=np.ascontiguousarray(ref.sample),
        bin_edges=np.ascontiguousarray(ref.bin_edges),
        bin_share=np.ascontiguousarray(ref.bin_share),
        test_proba=np.ascontiguousarray(ref.test_proba),
    )
    meta = {
        "format": FORMAT,
        "classes": list(CLASSES),
        "feature_names": list(ref.feature_names),
        "bins": ref.bins,
        "class_mix": ref.class_mix,
        "test_signal_mix": ref.test_signal_mix,
        "window": ref.window,
    }
    _write_atomic(directory / NPZ_NAME, buf.getvalue())
    _write_atomic(directory / JSON_NAME, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_reference(directory: Path) -> TrainingReference:
    """Read what :func:`save_reference` wrote; :class:`TradeopsError` naming the file when absent or corrupt."""
    directory = Path(directory)
    npz_path, json_path = directory / NPZ_NAME, directory / JSON_NAME
    for p in (json_path, npz_path):
        if not p.is_file():
            raise TradeopsError(f"{p}: training reference file is missing")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
        if meta.get("classes") != list(CLASSES):
            raise ValueError(f"classes {meta.get('classes')!r}, expected {list(CLASSES)}")
        names = tuple(str(n) for n in meta["feature_names"])
        class_mix = _mix(meta["class_mix"], "class_mix")
        signal_mix = _mix(meta["test_signal_mix"], "test_signal_mix")
        window = {str(k): str(v) for k, v in dict(meta["window"]).items()}
        bins = int(meta["bins"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TradeopsError(f"{json_path}: corrupt training reference ({type(exc).__name__}: {exc})") from None
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {name: np.asarray(z[name]) for name in _ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise TradeopsError(f"{npz_path}: corrupt training reference ({type(exc).__name__}: {exc})") from None
    f = len(names)
    expected = {
        "sample": (2, lambda s: s[1] == f),
        "bin_edges": (2, lambda s: s == (f, bins + 1)),
        "bin_share": (2, lambda s: s == (f, bins)),
        "test_proba": (2, lambda s: s[1] == len(CLASSES)),
    }
    for name, (ndim, ok) in expected.items():
        shape = arrays[name].shape
        if arrays[name].ndim != ndim or not ok(shape):
            raise TradeopsError(
                f"{npz_path}: corrupt training reference ([{name}] shape {shape} does not fit {f} features, "
                f"{bins} bins, {len(CLASSES)} classes)"
            )
    return TrainingReference(
        feature_names=names,
        sample=arrays["sample"].astype(np.float32, copy=False),
        bin_edges=arrays["bin_edges"].astype(np.float64, copy=False),
        bin_share=arrays["bin_share"].astype(np.float64, copy=False),
        class_mix=class_mix,
        test_signal_mix=signal_mix,
        test_proba=arrays["test_proba"].astype(np.float32, copy=False),
        window=window,
    )


def _mix(value: Any, what: str) -> dict[str, float]:
    if not isinstance(value, Mapping) or set(value) != set(CLASSES):
        raise ValueError(f"{what} must map {', '.join(CLASSES)} to shares")
    out = {c: float(value[c]) for c in CLASSES}
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in out.values()):
        raise ValueError(f"{what} shares must be in [0, 1]")
    return out
