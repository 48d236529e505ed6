"""Feature selection by combined F / mutual-information rank."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeops.features.selection import SCORE_COLUMNS, SelectionResult, select_features


def frame(n_rows: int = 400, n_noise: int = 8, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Noise columns plus 'signal' (shifted by class) and 'weak' (slightly shifted); classes 0/1/2."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n_rows)
    cols = {f"noise_{i}": rng.normal(size=n_rows) for i in range(n_noise)}
    cols["signal"] = y * 2.0 + rng.normal(scale=0.5, size=n_rows)
    cols["weak"] = y * 0.4 + rng.normal(size=n_rows)
    X = pd.DataFrame(cols)
    return X[sorted(X.columns, key=lambda c: (c != "noise_3", c))], y  # registry order: not alphabetical


def test_informative_columns_outrank_noise() -> None:
    X, y = frame()
    res = select_features(X, y, n=2)
    assert set(res.names) == {"signal", "weak"}
    s = res.scores
    assert s.loc["signal", "combined_rank"] == 1 and s.loc["weak", "combined_rank"] == 2
    assert s.loc["signal", "f_rank"] == 1 and s.loc["signal", "mi_rank"] == 1
    assert list(s.columns) == list(SCORE_COLUMNS)
    assert list(s.index) == list(X.columns)
    assert sorted(s["combined_rank"]) == list(range(1, X.shape[1] + 1))
    assert s["selected"].sum() == 2


def test_constant_and_nan_columns_rank_last_and_cannot_be_selected() -> None:
    X, y = frame()
    X.insert(0, "constant", 3.0)
    X.insert(1, "all_nan", np.nan)
    X.insert(2, "all_inf", np.inf)
    res = select_features(X, y, n=X.shape[1] - 3)
    s = res.scores
    assert not s.loc[["constant", "all_nan", "all_inf"], "usable"].any()
    assert set(s.nlargest(3, "combined_rank").index) == {"constant", "all_nan", "all_inf"}
    assert not s.loc[["constant", "all_nan", "all_inf"], "selected"].any()
    assert (s.loc[~s["usable"], "f_rank"] > s.loc[s["usable"], "f_rank"].max()).all()
    assert (s.loc[~s["usable"], "mi_rank"] > s.loc[s["usable"], "mi_rank"].max()).all()
    with pytest.raises(ValueError, match=r"n=11 features: only 10 of 13 are usable"):
        select_features(X, y, n=11)


def test_rows_with_nan_or_inf_are_dropped_before_scoring() -> None:
    X, y = frame()
    dirty = X.copy()
    dirty.loc[[5, 17], "noise_1"] = [np.nan, np.inf]
    expected = select_features(X.drop(index=[5, 17]), y[np.r_[0:5, 6:17, 18 : len(y)]], n=3)
    got = select_features(dirty, y, n=3)
    pd.testing.assert_frame_equal(got.scores, expected.scores)
    # a feature constant once the dirty rows are gone is unusable
    dirty["flat_after_drop"] = 1.0
    dirty.loc[5, "flat_after_drop"] = 9.0
    assert not select_features(dirty, y, n=3).scores.loc["flat_after_drop", "usable"]


def test_deterministic_for_a_fixed_random_state() -> None:
    X, y = frame()
    a = select_features(X, y, n=4, random_state=7)
    b = select_features(X.copy(), y.copy(), n=4, random_state=7)
    assert a.names == b.names
    pd.testing.assert_frame_equal(a.scores, b.scores)


def test_ties_break_by_f_rank_then_name() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 50)
    base = rng.normal(size=150) + y
    X = pd.DataFrame({"b_copy": base, "a_copy": base, "c_noise": rng.normal(size=150)})
    s = select_features(X, y, n=1).scores
    assert s.loc["a_copy", "combined_rank"] == 1 and s.loc["b_copy", "combined_rank"] == 2


def test_selected_names_keep_input_order() -> None:
    X, y = frame(n_noise=3)
    res = select_features(X, y, n=4)
    assert res.names == tuple(c for c in X.columns if c in set(res.names))
    ranked = tuple(res.scores.sort_values("combined_rank").index[:4])
    assert set(ranked) == set(res.names) and ranked != res.names


def test_input_errors() -> None:
    X, y = frame()
    with pytest.raises(ValueError, match=r"n=100 features: only 10 of 10"):
        select_features(X, y, n=100)
    with pytest.raises(ValueError, match="positive integer"):
        select_features(X, y, n=0)
    with pytest.raises(ValueError, match="one per row"):
        select_features(X, y[:-1], n=2)
    with pytest.raises(ValueError, match="index differs"):
        select_features(X, pd.Series(y, index=X.index + 1), n=2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        select_features(X, np.zeros(len(X)), n=2)
    with pytest.raises(ValueError, match="DataFrame"):
        select_features(X.to_numpy(), y, n=2)


def test_series_labels_and_missing_labels() -> None:
    X, y = frame()
    labels = pd.Series(np.array(["BUY", "SELL", "HOLD"], dtype=object)[y], index=X.index)
    labels.iloc[:10] = None  # unlabelled tail rows are dropped like NaN rows
    res = select_features(X, labels, n=2)
    assert set(res.names) == {"signal", "weak"}


def test_round_trip_dict() -> None:
    X, y = frame()
    X["constant"] = 0.0
    res = select_features(X, y, n=3)
    back = SelectionResult.from_dict(res.to_dict())
    assert back.names == res.names
    pd.testing.assert_frame_equal(back.scores, res.scores, check_names=False)
