"""Scoring: feature rows (or a ticker and a trading date) in, signals out. Pure functions over a loaded bundle.

What the service, the simulator and training's evaluation all call. Imports neither torch nor onnx: a bundle is
scored with onnxruntime. Time convention: ``as_of`` is a trading date; the signal for ``as_of`` uses bars dated
``<= as_of`` only (the features of that close).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

from tradeops.data.store import Lake
from tradeops.features.labels import CLASSES
from tradeops.features.store import FeatureSet, online_features
from tradeops.model.package import FeatureSetMismatch, Scores, SignalBundle


@dataclass(frozen=True)
class SignalResult:
    """One scored row: the signal, the class probabilities and which model and feature set produced them."""

    signal: str
    probabilities: dict[str, float]
    model: str
    version: str | None
    feature_set: str
    ticker: str | None = None
    as_of: str | None = None  # ISO trading date of the features' close

    def to_dict(self) -> dict:
        return asdict(self)


def _iso(d: date | pd.Timestamp | str | None) -> str | None:
    return None if d is None else pd.Timestamp(d).date().isoformat()


def to_results(
    bundle: SignalBundle,
    scores: Scores,
    *,
    tickers: Sequence[str | None] | None = None,
    dates: Sequence[date | pd.Timestamp | str | None] | None = None,
) -> list[SignalResult]:
    """Wrap scores with the bundle's identity (name, registered version, feature-set version)."""
    n = len(scores.proba)
    tickers = list(tickers) if tickers is not None else [None] * n
    dates = list(dates) if dates is not None else [None] * n
    signals = scores.signals
    proba = scores.proba.astype(np.float64)
    return [
        SignalResult(
            signal=str(signals[i]),
            probabilities=dict(zip(CLASSES, proba[i].tolist())),
            model=bundle.model_name,
            version=bundle.model_version,
            feature_set=bundle.feature_set_version,
            ticker=tickers[i],
            as_of=_iso(dates[i]),
        )
        for i in range(n)
    ]


def score_features(
    bundle: SignalBundle, features: Mapping[str, float], *, ticker: str | None = None, as_of: date | str | None = None
) -> SignalResult:
    """One feature row given as ``{name: value}`` (names must be exactly the model's feature set)."""
    return to_results(bundle, bundle.score_features(features), tickers=[ticker], dates=[as_of])[0]


def score_matrix(
    bundle: SignalBundle,
    features: np.ndarray,
    *,
    tickers: Sequence[str | None] | None = None,
    dates: Sequence[date | str | None] | None = None,
) -> list[SignalResult]:
    """Rows ``(n, n_features)`` in the bundle's feature order."""
    return to_results(bundle, bundle.score(features), tickers=tickers, dates=dates)


def score_frame(bundle: SignalBundle, frame: pd.DataFrame) -> list[SignalResult]:
    """A frame with the model's feature columns (and optionally ``ticker``, ``date``)."""
    names = bundle.check_columns(list(frame.columns))
    return score_matrix(
        bundle,
        frame[names].to_numpy(dtype=np.float64),
        tickers=frame["ticker"].tolist() if "ticker" in frame else None,
        dates=frame["date"].tolist() if "date" in frame else None,
    )


def score_online(
    lake: Lake, fs: FeatureSet, bundle: SignalBundle, ticker: str, as_of: date | pd.Timestamp | str
) -> SignalResult:
    """The signal for ``ticker`` at the close of ``as_of``, computed from the stored bars through the training
    feature code (:func:`~tradeops.features.store.online_features`); refuses a feature set the model was not
    trained on."""
    if fs.version != bundle.feature_set_version:
        raise FeatureSetMismatch(
            f"model {bundle.model_name} was trained on feature set "
            f"{bundle.feature_set_version}; {fs.version} ({fs.preset}) was asked for"
        )
    vec = online_features(lake, fs, ticker, as_of=pd.Timestamp(as_of))
    row = vec.values.reindex(bundle.feature_names).to_numpy(dtype=np.float64).reshape(1, -1)
    return score_matrix(bundle, row, tickers=[ticker], dates=[vec.date])[0]
