"""Rank features by ANOVA F and mutual information, and keep the ``n`` best.

Call :func:`select_features` on the rows of the training window only (the caller guarantees it, e.g. with
``Fold.masks(...).train``): selection is a fitted step and must never see validation or test dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_selection import f_classif, mutual_info_classif

from tradeops.features.image import decode_float, encode_float

__all__ = ["SCORE_COLUMNS", "SelectionResult", "select_features"]

#: Columns of ``SelectionResult.scores`` in order.
SCORE_COLUMNS = ("f_score", "f_rank", "mi", "mi_rank", "mean_rank", "combined_rank", "usable", "selected")


@dataclass(frozen=True, eq=False)
class SelectionResult:
    """Outcome of :func:`select_features`.

    ``names``: the selected features in the input (definitions) column order. ``scores``: one row per input feature,
    indexed by name, in input order, with columns ``f_score`` (ANOVA F), ``f_rank``, ``mi`` (mutual information,
    nats), ``mi_rank`` (rank 1 = best, ties averaged), ``mean_rank`` (mean of the two ranks), ``combined_rank``
    (unique final position, 1 = best), ``usable`` (False for constant / all-NaN features) and ``selected``.
    """

    names: tuple[str, ...]
    scores: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (plain lists; non-finite floats encoded as ``None`` / ``"inf"`` / ``"-inf"``)."""
        columns: dict[str, list[Any]] = {}
        for col in SCORE_COLUMNS:
            series = self.scores[col]
            if col in ("usable", "selected"):
                columns[col] = [bool(v) for v in series]
            elif col == "combined_rank":
                columns[col] = [int(v) for v in series]
            else:
                columns[col] = [encode_float(v) for v in series]
        return {"names": list(self.names), "features": [str(i) for i in self.scores.index], "scores": columns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectionResult:
        """Inverse of :meth:`to_dict`."""
        try:
            features = [str(f) for f in data["features"]]
            raw = data["scores"]
            scores = pd.DataFrame(index=pd.Index(features, name="feature"))
            for col in SCORE_COLUMNS:
                values = raw[col]
                if len(values) != len(features):
                    raise ValueError(f"scores column {col!r} has {len(values)} values for {len(features)} features")
                if col in ("usable", "selected"):
                    scores[col] = np.asarray(values, dtype=bool)
                elif col == "combined_rank":
                    scores[col] = np.asarray(values, dtype=np.int64)
                else:
                    scores[col] = np.asarray([decode_float(v) for v in values], dtype=np.float64)
            names = tuple(str(n) for n in data["names"])
        except KeyError as exc:
            raise ValueError(f"selection dict lacks key {exc}") from exc
        return cls(names=names, scores=scores)


def select_features(
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    n: int = 225,
    *,
    random_state: int = 0,
) -> SelectionResult:
    """Select the ``n`` best features of the training rows ``X`` for class labels ``y``.

    Scoring: ``sklearn.feature_selection.f_classif`` (F) and ``mutual_info_classif`` (MI, ``discrete_features=False``,
    ``random_state`` fixed, 3 neighbours), each ranked best-first with ties averaged. Combination rule: sort by the
    mean of the two ranks, ties broken by the F rank, then by feature name; this order is ``combined_rank``
    (deterministic for a given ``X``, ``y`` and ``random_state``).

    Rows: rows with a missing label, or with NaN/inf in any usable feature, are dropped before scoring. Features
    that are all NaN/inf, or constant on the scored rows, are unusable: they get the worst ranks and never beat a
    usable one. ``n`` larger than the number of usable features is a ``ValueError``.

    Order: ``names`` keeps the input (definitions) column order of the selected columns, not the score order, so the
    image built from them stays grouped by indicator. ``y`` is aligned by position; a Series must share ``X``'s
    index.
    """
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"X must be a pandas DataFrame with named columns, got {type(X).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    names = [str(c) for c in X.columns]
    if len(set(names)) != len(names):
        dupes = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"X has duplicated column names: {dupes}")
    if X.shape[1] == 0 or X.shape[0] == 0:
        raise ValueError(f"X is empty ({X.shape[0]} rows x {X.shape[1]} columns)")
    labels = _labels(y, X)

    try:
        values = X.to_numpy(dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be numeric: {exc}") from exc
    finite = np.isfinite(values)
    labelled = ~pd.isna(labels)
    usable = finite[labelled].any(axis=0)
    rows = labelled & finite[:, usable].all(axis=1)
    if not rows.any():
        worst = names[int(np.argmin(np.where(usable, finite.sum(axis=0), np.iinfo(np.int64).max)))]
        raise ValueError(
            f"no row of X has a label and finite values in every usable feature; feature {worst!r} has the most "
            "NaN/inf values (drop indicator warm-up rows first)"
        )
    Xr = values[rows]
    yr = np.asarray(labels[rows])
    # A feature constant on the scored rows carries no information (and makes F undefined).
    with np.errstate(invalid="ignore"):
        usable &= np.ptp(np.where(np.isfinite(Xr), Xr, 0.0), axis=0) > 0
    n_usable = int(usable.sum())
    if n > n_usable:
        raise ValueError(
            f"cannot select n={n} features: only {n_usable} of {len(names)} are usable "
            f"({len(names) - n_usable} constant or all NaN/inf)"
        )
    if len(np.unique(yr)) < 2:
        raise ValueError(f"y needs at least 2 classes on the {int(rows.sum())} scored rows, got {np.unique(yr)}")

    f_score = np.full(len(names), np.nan)
    mi = np.full(len(names), np.nan)
    Xu = Xr[:, usable]
    with np.errstate(divide="ignore", invalid="ignore"):
        f_score[usable] = f_classif(Xu, yr)[0]
    # An F of NaN (zero variance everywhere) is no evidence; +inf (perfect separation) is the best evidence.
    f_score[usable] = np.where(np.isnan(f_score[usable]), 0.0, f_score[usable])
    mi[usable] = mutual_info_classif(Xu, yr, discrete_features=False, n_neighbors=3, random_state=random_state)

    scores = pd.DataFrame({"f_score": f_score, "mi": mi}, index=pd.Index(names, name="feature"))
    scores["f_rank"] = scores["f_score"].rank(ascending=False, method="average", na_option="bottom")
    scores["mi_rank"] = scores["mi"].rank(ascending=False, method="average", na_option="bottom")
    scores["mean_rank"] = (scores["f_rank"] + scores["mi_rank"]) / 2.0
    scores["usable"] = usable
    order = sorted(
        range(len(names)),
        key=lambda i: (not usable[i], scores["mean_rank"].iat[i], scores["f_rank"].iat[i], names[i]),
    )
    combined = np.empty(len(names), dtype=np.int64)
    combined[order] = np.arange(1, len(names) + 1)
    scores["combined_rank"] = combined
    scores["selected"] = combined <= n
    scores = scores[list(SCORE_COLUMNS)]
    selected = tuple(name for name, keep in zip(names, scores["selected"], strict=True) if keep)
    return SelectionResult(names=selected, scores=scores)


def _labels(y: pd.Series | np.ndarray, X: pd.DataFrame) -> np.ndarray:
    if isinstance(y, pd.Series):
        if not y.index.equals(X.index):
            raise ValueError("y is a Series whose index differs from X.index; align them first")
        arr = y.to_numpy()
    else:
        arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != len(X):
        raise ValueError(f"y must be 1-D with {len(X)} labels (one per row of X), got shape {arr.shape}")
    return arr
