"""Indicator values against TA-Lib / slow references, scale-freeness, order, warm-up, versioning, validation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import FrozenInstanceError

import numpy as np
import pandas as pd
import pytest
import talib

from tradeops.features.definitions import (
    CNN_TA_INDICATORS,
    PRESETS,
    THESIS_EXTRA_INDICATORS,
    FeatureDef,
    cnn_ta_definitions,
    definitions_for,
    feature_set_version,
    indicator_definitions,
    min_window,
    thesis_definitions,
    warmup_rows,
)
from tradeops.features.indicators import compute_features, hull_moving_average
from tradeops.features.labels import LABEL_COLUMN, LABEL_KNOWN_AT_COLUMN

PAPER_ORDER = ["rsi", "willr", "wma", "ema", "sma", "hma", "tema", "cci", "cmo", "macd", "ppo", "roc", "cmf", "dx",
               "sar"]  # fmt: skip


def make_bars(rows: int = 160, seed: int = 7, level: float = 40.0) -> pd.DataFrame:
    """Small deterministic OHLCV fixture with one high == low bar and a short zero-volume stretch."""
    rng = np.random.default_rng(seed)
    close = level * np.exp(np.cumsum(rng.normal(0.0, 0.02, rows)))
    open_ = close * np.exp(rng.normal(0.0, 0.01, rows))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, rows))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, rows))
    volume = rng.uniform(1e5, 5e6, rows).round()
    if rows > 100:
        open_[40] = high[40] = low[40] = close[40]
        volume[90:93] = 0.0
    idx = pd.bdate_range("2021-01-04", periods=rows)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return make_bars()


def _arrays(b: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(b[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume"))


def _bbands(c: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return talib.BBANDS(c, n, 2.0, 2.0, 0)


# Expected feature = TA-Lib called directly, then the documented scaling.
REFERENCE = {
    "RSI": lambda o, h, l, c, v, n: talib.RSI(c, n) / 50 - 1,
    "WILLR": lambda o, h, l, c, v, n: talib.WILLR(h, l, c, n) / 100,
    "WMA": lambda o, h, l, c, v, n: (c - talib.WMA(c, n)) / c,
    "EMA": lambda o, h, l, c, v, n: (c - talib.EMA(c, n)) / c,
    "SMA": lambda o, h, l, c, v, n: (c - talib.SMA(c, n)) / c,
    "TEMA": lambda o, h, l, c, v, n: (c - talib.TEMA(c, n)) / c,
    "CCI": lambda o, h, l, c, v, n: talib.CCI(h, l, c, n) / 100,
    "CMO": lambda o, h, l, c, v, n: talib.CMO(c, n) / 100,
    "MACD": lambda o, h, l, c, v, n: (talib.EMA(c, n) - talib.EMA(c, 2 * n)) / c,
    "PPO": lambda o, h, l, c, v, n: talib.EMA(c, n) / talib.EMA(c, 2 * n) - 1,
    "ROC": lambda o, h, l, c, v, n: talib.ROCP(c, n),
    "DX": lambda o, h, l, c, v, n: talib.DX(h, l, c, n) / 100,
    "SAR": lambda o, h, l, c, v, n: (talib.SAR(h, l, 0.2 / n, 2.0 / n) - c) / c,
    "MFI": lambda o, h, l, c, v, n: talib.MFI(h, l, c, v, n) / 50 - 1,
    "BBP": lambda o, h, l, c, v, n: (c - _bbands(c, n)[2]) / (_bbands(c, n)[0] - _bbands(c, n)[2]),
    "BBW": lambda o, h, l, c, v, n: (_bbands(c, n)[0] - _bbands(c, n)[2]) / _bbands(c, n)[1],
    "ADX": lambda o, h, l, c, v, n: talib.ADX(h, l, c, n) / 100,
    "NATR": lambda o, h, l, c, v, n: talib.ATR(h, l, c, n) / c,
    "AROONOSC": lambda o, h, l, c, v, n: talib.AROONOSC(h, l, n) / 100,
    "TRIX": lambda o, h, l, c, v, n: talib.TRIX(c, n) / 100,
    "ULTOSC": lambda o, h, l, c, v, n: talib.ULTOSC(h, l, c, n, 2 * n, 4 * n) / 50 - 1,
}


def _assert_same(actual: np.ndarray, expected: np.ndarray, atol: float = 1e-12) -> None:
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=atol, equal_nan=True)


def test_every_registered_indicator_has_a_reference_here() -> None:
    # HMA, CMF and VOLZ are composed by us and checked against slow references below.
    assert set(REFERENCE) | {"HMA", "CMF", "VOLZ"} == set(CNN_TA_INDICATORS + THESIS_EXTRA_INDICATORS)


@pytest.mark.parametrize("indicator", sorted(REFERENCE))
@pytest.mark.parametrize("n", [6, 13, 20])
def test_indicator_matches_talib(bars: pd.DataFrame, indicator: str, n: int) -> None:
    (defn,) = indicator_definitions([indicator], [n])
    got = compute_features(bars, [defn])[defn.name].to_numpy()
    _assert_same(got, REFERENCE[indicator](*_arrays(bars), n))


def _slow_wma(x: np.ndarray, p: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    weights = np.arange(1, p + 1, dtype=float)  # oldest weight 1 ... newest weight p
    for t in range(p - 1, len(x)):
        win = x[t - p + 1 : t + 1]
        if not np.isnan(win).any():
            out[t] = float((win * weights).sum() / weights.sum())
    return out


@pytest.mark.parametrize("n", [4, 6, 9, 15, 16, 20])
def test_hma_matches_slow_reference(bars: pd.DataFrame, n: int) -> None:
    c = bars["close"].to_numpy()
    raw = 2 * _slow_wma(c, n // 2) - _slow_wma(c, n)
    hma = _slow_wma(raw, math.isqrt(n))
    _assert_same(hull_moving_average(c, n), hma, atol=1e-9)
    (defn,) = indicator_definitions(["HMA"], [n])
    _assert_same(compute_features(bars, [defn])[defn.name].to_numpy(), (c - hma) / c, atol=1e-11)
    assert np.isnan(hma).sum() == n + math.isqrt(n) - 2 == warmup_rows(defn)


def _slow_cmf(b: pd.DataFrame, n: int) -> np.ndarray:
    o, h, l, c, v = _arrays(b)
    out = np.full(len(c), np.nan)
    for t in range(n - 1, len(c)):
        mfv = vol = 0.0
        for k in range(t - n + 1, t + 1):
            clv = ((c[k] - l[k]) - (h[k] - c[k])) / (h[k] - l[k]) if h[k] != l[k] else 0.0
            mfv += clv * v[k]
            vol += v[k]
        out[t] = mfv / vol if vol != 0 else 0.0
    return out


@pytest.mark.parametrize("n", [2, 6, 13, 20])
def test_cmf_matches_slow_reference(bars: pd.DataFrame, n: int) -> None:
    (defn,) = indicator_definitions(["CMF"], [n])
    _assert_same(compute_features(bars, [defn])[defn.name].to_numpy(), _slow_cmf(bars, n), atol=1e-10)


def test_cmf_hand_computed_and_degenerate_cases() -> None:
    idx = pd.bdate_range("2024-01-01", periods=5)
    b = pd.DataFrame(
        {
            "open": [10.0, 10, 10, 10, 10],
            "high": [12.0, 11, 10, 11, 11],
            "low": [8.0, 9, 10, 9, 9],
            "close": [11.0, 9, 10, 10, 10],
            "volume": [100.0, 300, 50, 0, 0],
        },
        index=idx,
    )
    (defn,) = indicator_definitions(["CMF"], [2])
    got = compute_features(b, [defn])[defn.name].to_numpy()
    # MFV: day1 clv=(3-1)/4=0.5 -> 50; day2 clv=(0-2)/2=-1 -> -300; day3 high==low -> 0; day4/5 no volume
    np.testing.assert_allclose(got, [np.nan, (50 - 300) / 400, -300 / 350, 0.0, 0.0], equal_nan=True)


def test_volume_zscore_matches_slow_reference_and_flat_volume_is_zero(bars: pd.DataFrame) -> None:
    v = bars["volume"].to_numpy()
    n = 10
    expected = np.full(len(v), np.nan)
    for t in range(n - 1, len(v)):
        w = v[t - n + 1 : t + 1]
        expected[t] = (v[t] - w.mean()) / w.std()
    (defn,) = indicator_definitions(["VOLZ"], [n])
    _assert_same(compute_features(bars, [defn])[defn.name].to_numpy(), expected, atol=1e-6)
    flat = bars.assign(volume=1e6)
    got = compute_features(flat, [defn])[defn.name].to_numpy()
    assert np.all(got[n - 1 :] == 0.0)


def test_bollinger_on_constant_close_is_neutral() -> None:
    idx = pd.bdate_range("2024-01-01", periods=30)
    b = pd.DataFrame({"open": 5.0, "high": 5.0, "low": 5.0, "close": 5.0, "volume": 1e6}, index=idx)
    defs = indicator_definitions(["BBP", "BBW"], [6])
    f = compute_features(b, defs)
    assert (f["bbp_6"].iloc[5:] == 0.5).all()
    assert (f["bbw_6"].iloc[5:] == 0.0).all()


def test_hand_computed_sma_roc_willr() -> None:
    idx = pd.bdate_range("2024-01-01", periods=7)
    close = np.array([10.0, 11, 12, 13, 14, 15, 9])
    b = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1e3}, index=idx)
    f = compute_features(b, indicator_definitions(["SMA", "ROC", "WILLR"], [6]))
    assert f["sma_6"].iloc[5] == pytest.approx((15 - 12.5) / 15)
    assert f["sma_6"].iloc[6] == pytest.approx((9 - 74 / 6) / 9)
    assert f["roc_6"].iloc[6] == pytest.approx(9 / 10 - 1)
    assert np.isnan(f["roc_6"].iloc[5])
    # highest high over days 1..6 = 16, lowest low = 8: -(16 - 9)/(16 - 8)
    assert f["willr_6"].iloc[6] == pytest.approx(-7 / 8)


def test_macd_and_ppo_converge_to_talib_functions() -> None:
    b = make_bars(rows=400, seed=3)
    c = b["close"].to_numpy()
    n = 12
    f = compute_features(b, indicator_definitions(["MACD", "PPO"], [n]))
    macd_line = talib.MACD(c, n, 2 * n, 9)[0] / c
    ppo = talib.PPO(c, n, 2 * n, 1) / 100
    np.testing.assert_allclose(f["macd_12"].to_numpy()[-100:], macd_line[-100:], atol=1e-9)
    np.testing.assert_allclose(f["ppo_12"].to_numpy()[-100:], ppo[-100:], atol=1e-9)


@pytest.mark.parametrize("preset", PRESETS)
def test_features_are_scale_free(preset: str) -> None:
    b = make_bars(rows=200, seed=11)
    scaled = b.copy()
    scaled[["open", "high", "low", "close"]] *= 7.3
    defs = definitions_for(preset)
    f1 = compute_features(b, defs).to_numpy()
    f2 = compute_features(scaled, defs).to_numpy()
    np.testing.assert_array_equal(np.isnan(f1), np.isnan(f2))
    np.testing.assert_allclose(f2, f1, rtol=0, atol=1e-9, equal_nan=True)


def test_cnn_ta_order_is_the_papers() -> None:
    defs = cnn_ta_definitions()
    assert len(defs) == 225
    assert [d.name for d in defs] == [f"{ind}_{n}" for ind in PAPER_ORDER for n in range(6, 21)]
    assert [d.indicator for d in defs[::15]] == list(CNN_TA_INDICATORS)


def test_thesis_pool_extends_cnn_ta_without_its_duplicate() -> None:
    thesis = thesis_definitions()
    assert len(thesis) == 23 * 15 == 345
    assert thesis[:210] == [d for d in cnn_ta_definitions() if d.indicator != "CMO"]
    names = {d.indicator for d in thesis}
    assert {"MFI", "BBP", "BBW"} <= names
    assert len({d.name for d in thesis}) == len(thesis)


def test_windows_are_sorted_and_validated() -> None:
    assert [d.window for d in cnn_ta_definitions([9, 7])[:2]] == [7, 9]
    with pytest.raises(ValueError, match="duplicates"):
        cnn_ta_definitions([7, 7])
    with pytest.raises(ValueError, match="empty"):
        cnn_ta_definitions([])
    with pytest.raises(ValueError, match="HMA: window 3"):
        cnn_ta_definitions([3])


@pytest.mark.parametrize("preset", PRESETS)
def test_output_frame_shape_dtype_and_warmup(bars: pd.DataFrame, preset: str) -> None:
    defs = definitions_for(preset)
    f = compute_features(bars, defs)
    assert list(f.columns) == [d.name for d in defs]
    assert f.index.equals(bars.index)
    assert (f.dtypes == np.float64).all()
    for d in defs:
        col = f[d.name].to_numpy()
        w = warmup_rows(d)
        assert np.isnan(col[:w]).all(), d.name
        assert not np.isnan(col[w:]).any(), d.name
    assert LABEL_COLUMN not in f.columns and LABEL_KNOWN_AT_COLUMN not in f.columns


def test_short_and_empty_series() -> None:
    defs = cnn_ta_definitions()
    short = make_bars(rows=5)
    f = compute_features(short, defs)
    for d in defs:
        assert f[d.name].isna().sum() == min(5, warmup_rows(d)), d.name
    empty = compute_features(make_bars(rows=5).iloc[:0], defs)
    assert empty.shape == (0, 225)


def test_feature_set_version_stable_and_sensitive() -> None:
    defs = cnn_ta_definitions()
    v = feature_set_version(defs, label_window=11)
    assert len(v) == 16 and int(v, 16) >= 0
    assert v == feature_set_version(cnn_ta_definitions(), label_window=11)
    assert v != feature_set_version(cnn_ta_definitions(range(6, 20)), label_window=11)
    assert v != feature_set_version(cnn_ta_definitions([*range(6, 20), 21]), label_window=11)
    assert v != feature_set_version(defs, label_window=13)
    assert v != feature_set_version(defs)
    assert v != feature_set_version(list(reversed(defs)), label_window=11)
    assert feature_set_version(defs, a=1, b="x") == feature_set_version(defs, b="x", a=1)
    with pytest.raises(ValueError, match="unsupported type"):
        feature_set_version(defs, when=object())


def test_feature_set_version_is_the_same_in_another_process() -> None:
    code = (
        "from tradeops.features.definitions import thesis_definitions, feature_set_version;"
        "print(feature_set_version(thesis_definitions(), preset='thesis', w=[1, 2.5]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == feature_set_version(thesis_definitions(), preset="thesis", w=[1, 2.5])


def test_unknown_preset_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="cnn-ta, thesis"):
        definitions_for("paper")


def test_feature_def_is_frozen_and_reserves_label_names() -> None:
    d = cnn_ta_definitions()[0]
    with pytest.raises(FrozenInstanceError):
        d.window = 7  # type: ignore[misc]
    with pytest.raises(ValueError, match="reserved"):
        FeatureDef("label_x", "RSI", 6, "f", "u", "d")
    with pytest.raises(ValueError, match="window"):
        FeatureDef("rsi_0", "RSI", 0, "f", "u", "d")


@pytest.mark.parametrize("indicator", CNN_TA_INDICATORS + THESIS_EXTRA_INDICATORS)
def test_every_indicator_computes_at_its_minimum_window(bars: pd.DataFrame, indicator: str) -> None:
    n = min_window(indicator)
    (defn,) = indicator_definitions([indicator], [n])
    col = compute_features(bars, [defn])[defn.name].to_numpy()
    assert not np.isnan(col[warmup_rows(defn) :]).any()
    if n > 1:
        with pytest.raises(ValueError, match="minimum"):
            indicator_definitions([indicator], [n - 1])


def test_compute_rejects_unknown_indicator_and_duplicates(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown indicator 'FOO'"):
        compute_features(bars, [FeatureDef("foo_6", "FOO", 6, "f", "u", "d")])
    d = cnn_ta_definitions()[0]
    with pytest.raises(ValueError, match="duplicate"):
        compute_features(bars, [d, d])
    with pytest.raises(ValueError, match="below the minimum"):
        compute_features(bars, [FeatureDef("hma_2", "HMA", 2, "f", "u", "d")])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.drop(columns=["volume"]), r"missing columns \['volume'\]"),
        (lambda b: b.iloc[::-1], "strictly increasing"),
        (lambda b: b.set_axis(b.index.where(np.arange(len(b)) != 5, b.index[4])), "strictly increasing"),
        (lambda b: b.reset_index(drop=True), "DatetimeIndex"),
        (lambda b: b.assign(close=b["close"].where(np.arange(len(b)) != 7, 0.0)), r"close = 0.0 on 2021-01-13"),
        (lambda b: b.assign(low=b["low"].where(np.arange(len(b)) != 7, -1.0)), "rule: prices > 0"),
        (lambda b: b.assign(high=b["high"].where(np.arange(len(b)) != 7)), "high is missing"),
        (lambda b: b.assign(volume=b["volume"].where(np.arange(len(b)) != 7, -5.0)), "volume >= 0"),
        (lambda b: b.assign(open="x"), "must be numeric"),
    ],
)
def test_invalid_bars_fail_loudly(bars: pd.DataFrame, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        compute_features(mutate(bars), cnn_ta_definitions([6]))


def test_error_names_the_ticker(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="ticker AAPL: "):
        compute_features(bars.drop(columns=["open"]), cnn_ta_definitions([6]), ticker="AAPL")
