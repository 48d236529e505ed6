"""Drift monitors: PSI, KS, the domain classifier, data/prediction drift metrics and staleness on synthetic data."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from tradeops.config import MonitorConfig
from tradeops.errors import TradeopsError
from tradeops.features.labels import CLASSES
from tradeops.monitor import drift
from tradeops.monitor.reference import TrainingReference, build_reference

CFG = MonitorConfig()
WINDOW = {"fit": "2010-01-04..2011-12-30", "test": "2012-01-03..2012-06-29"}


def reference(fit: np.ndarray, *, bins: int = 10, rows: int = 2000, m: int = 300, seed: int = 0) -> TrainingReference:
    rng = np.random.default_rng(seed + 100)
    frame = pd.DataFrame(fit, columns=[f"x{j}" for j in range(fit.shape[1])])
    labels = pd.Series(rng.choice(CLASSES, size=len(frame), p=[0.2, 0.2, 0.6]))
    proba = rng.dirichlet([1.0, 1.0, 3.0], size=m)
    signals = pd.Series(np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)])
    return build_reference(frame, labels, signals, proba, bins=bins, rows=rows, seed=seed, window=WINDOW)


def normal(n: int, f: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, f))


# --- PSI ---------------------------------------------------------------------------------------------------------


def test_psi_is_near_zero_on_the_same_distribution():
    ref = reference(normal(5000, 4, 0))
    value = drift.psi(ref.bin_edges, ref.bin_share, normal(5000, 4, 1))
    assert value.shape == (4,)
    assert np.all(value < 0.02)  # sampling noise only: ~ (bins - 1) * (1/n + 1/m) = 0.0036


def test_psi_is_large_on_a_mean_shift_and_on_a_variance_change():
    ref = reference(normal(5000, 3, 0))
    cur = normal(5000, 3, 1)
    shifted = drift.psi(ref.bin_edges, ref.bin_share, cur + 1.0)  # +1 sd
    wider = drift.psi(ref.bin_edges, ref.bin_share, cur * 2.0)  # sd x 2, same mean
    assert np.all(shifted > 0.7)
    assert np.all(wider > 0.4)


def test_psi_outer_bins_and_hand_worked_value():
    edges = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    share = np.full((1, 4), 0.25)
    current = np.array([[-100.0], [-100.0], [100.0], [100.0]])  # far outside the reference range
    eps = 1e-4
    expected = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + 2 * (eps - 0.25) * math.log(eps / 0.25)
    assert drift.psi(edges, share, current, eps=eps)[0] == pytest.approx(expected, rel=1e-12)
    inside = np.array([[0.5], [1.5], [2.5], [3.5]])
    assert drift.psi(edges, share, inside)[0] == 0.0


def test_psi_excludes_nonfinite_values_per_feature():
    ref = reference(normal(3000, 2, 0))
    cur = normal(1000, 2, 1)
    base = drift.psi(ref.bin_edges, ref.bin_share, cur)
    dirty = np.vstack([cur, [[np.nan, 0.0]], [[np.inf, 0.0]], [[-np.inf, 0.0]]])
    got = drift.psi(ref.bin_edges, ref.bin_share, dirty)
    assert got[0] == pytest.approx(base[0], rel=1e-12)  # feature 0: the extra rows are all non-finite
    assert got[1] != base[1]  # feature 1: three more finite zeros change its shares
    empty = cur.copy()
    empty[:, 1] = np.nan
    got = drift.psi(ref.bin_edges, ref.bin_share, empty)
    assert got[0] == pytest.approx(base[0]) and np.isnan(got[1])


def test_psi_of_a_constant_feature_is_zero_when_unchanged_and_large_when_moved():
    fit = normal(1000, 2, 0)
    fit[:, 1] = 3.0
    ref = reference(fit)
    cur = normal(1000, 2, 1)
    cur[:, 1] = 3.0
    assert drift.psi(ref.bin_edges, ref.bin_share, cur)[1] == 0.0
    cur[:, 1] = 2.0
    assert drift.psi(ref.bin_edges, ref.bin_share, cur)[1] > 5.0


def test_psi_float32_current_equals_float64():
    ref = reference(normal(3000, 3, 0))
    cur = normal(2000, 3, 1).astype(np.float32)
    np.testing.assert_array_equal(
        drift.psi(ref.bin_edges, ref.bin_share, cur), drift.psi(ref.bin_edges, ref.bin_share, cur.astype(np.float64))
    )


@settings(max_examples=40, deadline=None)
@given(
    fit=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 60), st.integers(1, 4)),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
    bins=st.integers(2, 12),
    cur_seed=st.integers(0, 2**16),
)
def test_psi_is_nonnegative_and_zero_on_the_fit_rows(fit, bins, cur_seed):
    ref = reference(fit, bins=bins, m=5)
    assert np.all(np.abs(drift.psi(ref.bin_edges, ref.bin_share, fit)) <= 1e-9)
    rng = np.random.default_rng(cur_seed)
    other = fit[rng.integers(0, len(fit), size=len(fit))] * rng.choice([1.0, 2.0, -1.0])
    assert np.all(drift.psi(ref.bin_edges, ref.bin_share, other) >= 0.0)


# --- KS ----------------------------------------------------------------------------------------------------------


def test_ks_matches_scipy_and_excludes_nonfinite_values():
    a, b = normal(500, 2, 0), normal(800, 2, 1)
    b[:, 1] += 0.5
    b[3, 0] = np.nan
    b[4, 0] = np.inf
    stat, p = drift.ks(a, b)
    ok = np.isfinite(b[:, 0])
    want0 = stats.ks_2samp(a[:, 0], b[ok, 0])
    want1 = stats.ks_2samp(a[:, 1], b[:, 1])
    assert (stat[0], p[0]) == pytest.approx((want0.statistic, want0.pvalue))
    assert (stat[1], p[1]) == pytest.approx((want1.statistic, want1.pvalue))
    assert p[0] > 0.05 and p[1] < 1e-10


def test_ks_is_nan_for_a_feature_without_finite_values():
    b = normal(100, 2, 1)
    b[:, 1] = np.nan
    stat, p = drift.ks(normal(100, 2, 0), b)
    assert np.isfinite(stat[0]) and np.isnan(stat[1]) and np.isnan(p[1])


# --- domain classifier -------------------------------------------------------------------------------------------


def test_domain_auc_is_about_half_on_one_distribution_and_high_on_a_shift():
    ref, cur = normal(1500, 20, 0), normal(1500, 20, 1)
    same = drift.domain_auc(ref, cur, sample=1500, seed=0)
    assert 0.4 <= same <= 0.6
    cur[:, :3] += 1.5  # three of 20 features moved by 1.5 sd
    assert drift.domain_auc(ref, cur, sample=1500, seed=0) > 0.8


def test_domain_auc_is_deterministic_for_a_seed_and_tolerates_nonfinite_values():
    ref, cur = normal(600, 5, 0), normal(900, 5, 1)
    cur[::7, 2] = np.nan
    cur[::11, 3] = np.inf
    a = drift.domain_auc(ref, cur, sample=400, seed=3)
    assert a == drift.domain_auc(ref, cur, sample=400, seed=3)
    assert 0.0 <= a <= 1.0


# --- data_drift --------------------------------------------------------------------------------------------------


def test_data_drift_metrics_on_a_shift_in_three_of_twenty_features():
    ref = reference(normal(4000, 20, 0))
    cur = normal(3000, 20, 1)
    cur[:, [2, 5, 11]] += 1.0
    cur[:10, 7] = np.nan  # 10 of 60,000 values
    out = {m.name: m for m in drift.data_drift("m", ref, cur, cfg=CFG, window="w")}
    assert list(out) == list(drift.DATA_METRICS)
    assert out["data.nonfinite_rate"].value == pytest.approx(10 / 60_000)
    assert out["data.psi_drifted_share"].value == pytest.approx(3 / 20)
    assert out["data.psi_max"].value > 0.7
    assert 3 / 20 <= out["data.ks_drifted_share"].value <= 4 / 20
    assert out["data.domain_auc"].value > 0.8
    ev = out["data.psi_max"].evidence
    assert {t["feature"] for t in ev["top_features"][:3]} == {"x2", "x5", "x11"}
    assert len(ev["top_features"]) == 10
    assert all(t["ks_pvalue"] < 1e-10 for t in ev["top_features"][:3])
    assert ev["n_current"] == 3000 and ev["n_reference"] == 2000
    assert ev["thresholds"] == {"psi": CFG.psi_threshold, "ks_pvalue": CFG.ks_pvalue}
    assert all(m.window == "w" and m.reason is None for m in out.values())


def test_data_drift_on_the_same_distribution_flags_nothing():
    ref = reference(normal(4000, 10, 0))
    out = {m.name: m.value for m in drift.data_drift("m", ref, normal(3000, 10, 1), cfg=CFG, window="w")}
    assert out["data.psi_drifted_share"] == 0.0 and out["data.psi_max"] < 0.05
    assert out["data.ks_drifted_share"] <= 0.1
    assert 0.4 <= out["data.domain_auc"] <= 0.6
    assert out["data.nonfinite_rate"] == 0.0


def test_data_drift_with_too_few_rows_is_missing_with_the_counts():
    ref = reference(normal(1000, 3, 0), rows=500)
    out = drift.data_drift("m", ref, normal(29, 3, 1), cfg=CFG, window="w")
    assert [m.name for m in out] == list(drift.DATA_METRICS)
    for m in out:
        assert m.value is None and "29 current feature rows < 30" in m.reason and "500 rows" in m.reason


def test_data_drift_leaves_out_a_feature_without_enough_finite_values():
    ref = reference(normal(1000, 3, 0))
    cur = normal(200, 3, 1)
    cur[:, 0] += 2.0
    cur[5:, 0] = np.nan  # only 5 finite values left in the drifted feature
    out = {m.name: m for m in drift.data_drift("m", ref, cur, cfg=CFG, window="w")}
    assert out["data.psi_drifted_share"].value == 0.0
    assert out["data.psi_max"].evidence["excluded_features"] == ["x0"]
    assert out["data.nonfinite_rate"].value == pytest.approx(195 / 600)


def test_data_drift_refuses_rows_of_another_width():
    ref = reference(normal(500, 3, 0))
    with pytest.raises(TradeopsError, match=r"shape \(40, 4\), the reference 3 features"):
        drift.data_drift("m", ref, normal(40, 4, 1), cfg=CFG, window="w")


# --- prediction_drift --------------------------------------------------------------------------------------------


def test_prediction_drift_signal_mix_psi_hand_worked_and_proba_ks():
    ref = reference(normal(500, 2, 0), m=400)
    e = np.array([ref.test_signal_mix[c] for c in CLASSES])
    signals = ["BUY"] * 50 + ["SELL"] * 10 + ["HOLD"] * 40
    a = np.array([0.5, 0.1, 0.4])
    expected = float(np.sum((a - np.maximum(e, 1e-4)) * np.log(a / np.maximum(e, 1e-4))))
    proba = np.random.default_rng(5).dirichlet([3.0, 1.0, 1.0], size=100)
    out = {m.name: m for m in drift.prediction_drift("m", ref, signals, proba, window="w")}
    assert out["predictions.signal_mix_psi"].value == pytest.approx(expected, rel=1e-12)
    assert out["predictions.signal_mix_psi"].evidence["served_mix"] == {"BUY": 0.5, "SELL": 0.1, "HOLD": 0.4}
    want = max(stats.ks_2samp(ref.test_proba[:, i].astype(np.float64), proba[:, i]).statistic for i in range(3))
    assert out["predictions.proba_ks_max"].value == pytest.approx(want)
    assert set(out["predictions.proba_ks_max"].evidence["per_class"]) == set(CLASSES)


def test_prediction_drift_is_near_zero_for_the_test_window_itself():
    ref = reference(normal(500, 2, 0), m=400)
    signals = [c for c in CLASSES for _ in range(round(ref.test_signal_mix[c] * 400))]
    out = {m.name: m.value for m in drift.prediction_drift("m", ref, signals, ref.test_proba, window="w")}
    assert out["predictions.signal_mix_psi"] == pytest.approx(0.0, abs=1e-12)
    assert out["predictions.proba_ks_max"] == 0.0


def test_prediction_drift_with_too_few_rows_says_why():
    ref = reference(normal(500, 2, 0))
    out = drift.prediction_drift("m", ref, ["BUY"] * 10, np.full((10, 3), 1 / 3), window="w")
    assert [m.value for m in out] == [None, None]
    assert "10 served signals < 30" in out[0].reason
    assert "10 served probability rows" in out[1].reason
    empty = drift.prediction_drift("m", ref, [], np.empty((0, 3)), window="w")
    assert [m.value for m in empty] == [None, None]


def test_prediction_drift_refuses_an_unknown_signal():
    ref = reference(normal(500, 2, 0))
    with pytest.raises(TradeopsError, match="unknown class 'UP'"):
        drift.prediction_drift("m", ref, ["BUY"] * 40 + ["UP"], np.full((41, 3), 1 / 3), window="w")


# --- staleness ---------------------------------------------------------------------------------------------------


def test_staleness_counts_sessions_over_weekends_and_holidays():
    friday, monday = date(2012, 6, 29), date(2012, 7, 2)
    assert drift.staleness("m", {"IBM": friday}, monday).value == 1.0  # the weekend is not stale
    # 2012-07-04 (Wednesday) is a holiday: bar of Tuesday the 3rd, as of Thursday the 5th -> one session (the 5th)
    assert drift.staleness("m", {"IBM": date(2012, 7, 3)}, date(2012, 7, 5)).value == 1.0
    assert drift.staleness("m", {"IBM": monday}, monday).value == 0.0
    assert drift.staleness("m", {"IBM": date(2012, 7, 6)}, monday).value == 0.0


def test_staleness_is_the_worst_ticker_with_evidence_per_ticker():
    m = drift.staleness(
        "m", {"IBM": date(2012, 7, 6), "AAPL": date(2012, 6, 29), "MSFT": date(2012, 7, 9)}, date(2012, 7, 9)
    )
    assert m.value == 5.0  # Jul 2, 3, 5, 6, 9
    assert m.evidence["worst_ticker"] == "AAPL"
    assert m.evidence["tickers"]["IBM"] == {"last_bar": "2012-07-06", "sessions": 1}
    assert m.evidence["tickers"]["MSFT"]["sessions"] == 0


def test_staleness_without_bars_is_missing_with_a_reason():
    m = drift.staleness("m", {}, date(2012, 7, 9))
    assert m.value is None and "no stored bars" in m.reason
