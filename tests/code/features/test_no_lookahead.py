"""Property tests: no feature reads a bar after its date; labels look exactly h days ahead and no further."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeops.features.definitions import PRESETS, definitions_for
from tradeops.features.indicators import compute_features
from tradeops.features.labels import LABEL_COLUMN, LABEL_KNOWN_AT_COLUMN, label_known_at, label_sezer

DEFS = {preset: definitions_for(preset) for preset in PRESETS}


def random_bars(rng: np.random.Generator, rows: int, level: float, vol: float, flat_from: int | None) -> np.ndarray:
    """(rows, 5) OHLCV with high >= max(open, close), low <= min(open, close), prices > 0, volume >= 0."""
    close = level * np.exp(np.cumsum(rng.normal(0.0, vol, rows)))
    open_ = close * np.exp(rng.normal(0.0, vol / 2, rows))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, vol, rows))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, vol, rows))
    volume = rng.lognormal(12.0, 1.0, rows).round()
    if flat_from is not None:  # a halted stretch: no movement, no volume
        stop = min(rows, flat_from + 25)
        open_[flat_from:stop] = high[flat_from:stop] = low[flat_from:stop] = close[flat_from:stop] = close[flat_from]
        volume[flat_from:stop] = 0.0
    return np.column_stack([open_, high, low, close, volume])


@st.composite
def series_with_cut(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """A bar series, a copy whose bars after ``cut`` are replaced by unrelated ones, and ``cut`` (a row number)."""
    rows = draw(st.integers(120, 300))
    cut = draw(st.integers(0, rows - 2))
    seed, seed_tail = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    level = draw(st.sampled_from([0.05, 3.0, 150.0, 40_000.0]))
    vol = draw(st.sampled_from([0.001, 0.02, 0.1]))
    flat_from = draw(st.one_of(st.none(), st.integers(0, rows - 1)))
    base = random_bars(np.random.default_rng(seed), rows, level, vol, flat_from)
    tail = random_bars(
        np.random.default_rng(seed_tail), rows, level * draw(st.sampled_from([0.5, 1.0, 3.0])), vol, None
    )
    changed = base.copy()
    changed[cut + 1 :] = tail[cut + 1 :]
    idx = pd.bdate_range("2010-01-04", periods=rows)
    cols = ["open", "high", "low", "close", "volume"]
    return pd.DataFrame(base, index=idx, columns=cols), pd.DataFrame(changed, index=idx, columns=cols), cut


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(series_with_cut())
def test_features_up_to_t_ignore_later_bars(case: tuple[pd.DataFrame, pd.DataFrame, int]) -> None:
    base, changed, cut = case
    for preset, defs in DEFS.items():
        full = compute_features(base, defs).to_numpy()
        other = compute_features(changed, defs).to_numpy()
        truncated = compute_features(base.iloc[: cut + 1], defs).to_numpy()
        # exact equality, NaN positions included (assert_array_equal treats NaN == NaN)
        np.testing.assert_array_equal(other[: cut + 1], full[: cut + 1], err_msg=f"preset {preset}")
        np.testing.assert_array_equal(truncated, full[: cut + 1], err_msg=f"preset {preset}")


@SETTINGS
@given(series_with_cut(), st.sampled_from([3, 5, 11, 21]))
def test_labels_up_to_t_minus_h_ignore_later_bars(case: tuple[pd.DataFrame, pd.DataFrame, int], window: int) -> None:
    base, changed, cut = case
    h = (window - 1) // 2
    a = label_sezer(base["close"], window)
    b = label_sezer(changed["close"], window)
    settled = slice(0, max(cut - h + 1, 0))  # dates <= t - h
    pd.testing.assert_series_equal(a.iloc[settled], b.iloc[settled])
    known = label_known_at(base.index, window)
    cut_date = base.index[cut]
    assert (known.iloc[settled] <= cut_date).all()
    # labels of the last h dates up to the cut may differ, and none of them is known at the cut
    assert (known.iloc[max(cut - h + 1, 0) : cut + 1].dropna() > cut_date).all()


def test_label_columns_are_never_feature_names() -> None:
    reserved = {LABEL_COLUMN, LABEL_KNOWN_AT_COLUMN}
    for defs in DEFS.values():
        names = {d.name for d in defs}
        assert not names & reserved
        assert not any(n.lower().startswith("label") for n in names)
