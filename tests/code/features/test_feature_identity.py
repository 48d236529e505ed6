"""Feature-set identity follows the computation: what is hashed, what is not, and the duplicated indicators."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from tradeops.features.definitions import (
    CNN_TA_INDICATORS,
    EQUIVALENT_INDICATORS,
    FEATURE_SET_SCHEMA,
    THESIS_INDICATORS,
    FeatureDef,
    cnn_ta_definitions,
    definitions_for,
    equivalent_feature,
    feature_set_version,
    impl_version,
    indicator_definitions,
    thesis_definitions,
)
from tradeops.features.indicators import compute_features

TOL = 1e-9  # TA-Lib computes in float64; the RSI/CMO rescalings differ by ~1e-15


def sample_bars(ticker: str = "IBM") -> pd.DataFrame:
    """Adjusted OHLCV of a bundled sample ticker (prices x Adj Close/Close, volume / that factor)."""
    with resources.files("tradeops.sample_data").joinpath(f"{ticker}.csv").open() as fh:
        raw = pd.read_csv(fh, parse_dates=["Date"], index_col="Date")
    factor = raw["Adj Close"] / raw["Close"]
    return pd.DataFrame(
        {
            "open": raw["Open"] * factor,
            "high": raw["High"] * factor,
            "low": raw["Low"] * factor,
            "close": raw["Adj Close"],
            "volume": raw["Volume"] / factor,
        }
    )


def random_walk_bars(rows: int = 1500, seed: int = 3) -> pd.DataFrame:
    """Synthetic daily bars: log-normal close walk, open/high/low around it, random volume."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, rows)))
    open_ = close * np.exp(rng.normal(0.0, 0.005, rows))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, rows))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, rows))
    volume = rng.uniform(1e5, 3e6, rows).round()
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=pd.bdate_range("2010-01-04", periods=rows),
    )


BARS = {"IBM": sample_bars, "random_walk": random_walk_bars}


def identical_pairs(frame: pd.DataFrame, tol: float = TOL) -> list[tuple[str, str]]:
    """Column pairs equal within ``tol`` on every row where all columns are finite (past warm-up)."""
    x = frame.dropna().to_numpy()
    cols = list(frame.columns)
    head = x[:50]  # candidates from the first complete rows, then checked on every row
    out = []
    for i in range(x.shape[1] - 1):
        near = i + 1 + np.flatnonzero(np.abs(head[:, i + 1 :] - head[:, [i]]).max(axis=0) < tol)
        out += [(cols[i], cols[j]) for j in near if np.abs(x[:, j] - x[:, i]).max() < tol]
    return out


# --- what the version hashes -----------------------------------------------------------------------------------


def test_description_formula_and_unit_text_do_not_change_the_version() -> None:
    defs = cnn_ta_definitions()
    v = feature_set_version(defs, preset="cnn-ta")
    reworded = [
        replace(d, formula=d.formula + " (reworded)", unit="other unit", description="edited text") for d in defs
    ]
    assert feature_set_version(reworded, preset="cnn-ta") == v


def test_impl_version_bump_changes_the_version() -> None:
    defs = cnn_ta_definitions()
    v = feature_set_version(defs, preset="cnn-ta")
    bumped = [replace(d, impl_version=d.impl_version + 1) if d.indicator == "HMA" else d for d in defs]
    assert feature_set_version(bumped, preset="cnn-ta") != v
    one = list(defs)
    one[0] = replace(one[0], impl_version=2)
    assert feature_set_version(one, preset="cnn-ta") != v


def test_order_window_name_preset_and_schema_change_the_version() -> None:
    defs = cnn_ta_definitions()
    v = feature_set_version(defs, preset="cnn-ta")
    swapped = [defs[1], defs[0], *defs[2:]]
    assert feature_set_version(swapped, preset="cnn-ta") != v
    assert feature_set_version(cnn_ta_definitions(range(6, 20)), preset="cnn-ta") != v
    rewindowed = [replace(defs[0], window=defs[0].window + 100), *defs[1:]]
    assert feature_set_version(rewindowed, preset="cnn-ta") != v
    renamed = [replace(defs[0], name="rsi_six"), *defs[1:]]
    assert feature_set_version(renamed, preset="cnn-ta") != v
    assert feature_set_version(defs, preset="thesis") != v
    assert FEATURE_SET_SCHEMA.endswith("/2")


def test_version_is_the_same_in_another_process() -> None:
    code = (
        "from tradeops.features.definitions import definitions_for, feature_set_version;"
        "print(*(feature_set_version(definitions_for(p), preset=p) for p in ('cnn-ta', 'thesis')))"
    )
    for seed in ("1", "98765"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        here = [feature_set_version(definitions_for(p), preset=p) for p in ("cnn-ta", "thesis")]
        assert out.stdout.split() == here


def test_preset_versions_are_pinned() -> None:
    # A failure here means every stored features_<version> table and trained bundle stops matching: intended only
    # after an impl bump or a schema change; then update these values and say so in the change.
    assert feature_set_version(definitions_for("cnn-ta"), preset="cnn-ta") == "a9671e99d2680d3a"
    assert feature_set_version(definitions_for("thesis"), preset="thesis") == "2e169a1700d12c6a"


def test_definitions_carry_the_registry_impl_version() -> None:
    for d in thesis_definitions() + cnn_ta_definitions():
        assert d.impl_version == impl_version(d.indicator) >= 1


def test_stale_impl_version_is_refused_by_compute_features() -> None:
    d = cnn_ta_definitions([6])[0]
    stale = replace(d, impl_version=d.impl_version + 1)
    with pytest.raises(ValueError, match="impl_version 2 is not the current implementation 1 of RSI"):
        compute_features(random_walk_bars(rows=30), [stale])


@pytest.mark.parametrize("bad", [0, -1, True, 1.0, "1"])
def test_feature_def_rejects_bad_impl_version(bad: object) -> None:
    with pytest.raises(ValueError, match="impl_version must be a positive int"):
        FeatureDef("rsi_6", "RSI", 6, "f", "u", "d", bad)  # type: ignore[arg-type]


# --- duplicated indicators -------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", list(BARS))
def test_cmo_equals_rescaled_rsi_on_real_shaped_bars(source: str) -> None:
    bars = BARS[source]()
    defs = indicator_definitions(["RSI", "CMO"], range(2, 31))
    f = compute_features(bars, defs)
    for n in range(2, 31):
        rsi, cmo = f[f"rsi_{n}"].to_numpy(), f[f"cmo_{n}"].to_numpy()
        np.testing.assert_array_equal(np.isnan(rsi), np.isnan(cmo))
        ok = ~np.isnan(rsi)
        assert ok.sum() > len(bars) - 40 and np.ptp(rsi[ok]) > 0.5
        assert np.max(np.abs(rsi[ok] - cmo[ok])) < TOL, n


def test_equivalence_table_is_documented_in_the_registry() -> None:
    assert EQUIVALENT_INDICATORS == {"CMO": ("RSI", "CMO/100 = RSI/50 - 1 under Wilder smoothing")}
    cmo = next(d for d in cnn_ta_definitions([9]) if d.name == "cmo_9")
    assert equivalent_feature(cmo) == ("rsi_9", "CMO/100 = RSI/50 - 1 under Wilder smoothing")
    assert "CMO/100 = RSI/50 - 1" in cmo.description
    assert equivalent_feature(cnn_ta_definitions([9])[0]) is None


@pytest.mark.parametrize("source", list(BARS))
def test_cnn_ta_duplicates_are_exactly_the_equivalence_table(source: str) -> None:
    # cnn-ta keeps the paper's 15 indicators, so it holds the RSI/CMO pairs and no other duplicates.
    f = compute_features(BARS[source](), cnn_ta_definitions())
    expected = [(f"rsi_{n}", f"cmo_{n}") for n in range(6, 21)]
    assert identical_pairs(f) == expected


@pytest.mark.parametrize("source", list(BARS))
def test_thesis_pool_has_no_identical_columns(source: str) -> None:
    f = compute_features(BARS[source](), thesis_definitions())
    assert len(f.dropna()) > 1000
    assert identical_pairs(f) == []


def test_thesis_pool_is_cnn_ta_without_duplicates_plus_extras() -> None:
    thesis = thesis_definitions()
    assert len(thesis) == 23 * 15 == 345
    assert "CMO" not in THESIS_INDICATORS and "RSI" in THESIS_INDICATORS
    assert thesis[: 14 * 15] == [d for d in cnn_ta_definitions() if d.indicator not in EQUIVALENT_INDICATORS]
    assert [d.indicator for d in thesis[::15]] == list(THESIS_INDICATORS)
    assert set(CNN_TA_INDICATORS) - set(THESIS_INDICATORS) == set(EQUIVALENT_INDICATORS)
