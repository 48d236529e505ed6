"""Helpers of the monitoring chain tests: settings over a copied home, prediction-log rows injected for chosen
dates and signals (through the service's own log writer)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from tradeops.config import Settings, load_settings

NAME = "cnn-ta-IBM"


def home_settings(home: Path, base: Settings, **monitor) -> Settings:
    model = base.model.model_dump()
    return load_settings(home=home, model=model, monitor=monitor or None)


def inject(
    engine,
    days: Sequence[date],
    signals: Sequence[str],
    *,
    features: np.ndarray,
    version: str = "1",
    challenger: Sequence[str | None] | None = None,
    ticker: str = "IBM",
    model: str = NAME,
) -> int:
    """Write one answered request per day into the prediction log (the service's own table and writer)."""
    from tradeops.deploy.predlog import PredictionLog, PredictionRecord

    proba = {"BUY": 0.2, "SELL": 0.2, "HOLD": 0.6}
    with PredictionLog(engine) as log:
        for i, (d, s) in enumerate(zip(days, signals, strict=True)):
            ch = challenger[i] if challenger is not None else None
            log.write(
                PredictionRecord(
                    request_id=uuid.uuid4().hex,
                    received_at=datetime(d.year, d.month, d.day, 21, 0, tzinfo=UTC),
                    ticker=ticker,
                    as_of=d,
                    input_kind="as_of",
                    input_hash=uuid.uuid4().hex,
                    features=features[i % len(features)].astype("float64").tolist(),
                    model=model,
                    champion_version=version,
                    champion_signal=s,
                    champion_proba={**proba, s: 0.9},
                    challenger_version=None if ch is None else "2",
                    challenger_signal=ch,
                    challenger_proba=None if ch is None else {**proba, ch: 0.9},
                    answered_by="champion",
                    routing_mode="shadow",
                    halted=False,
                    latency_ms=1.0,
                    key_id=None,
                    status=200,
                )
            )
    return len(days)
