"""Classification metrics on hand-made examples, slices, and leakage-safe volatility regimes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeops.features.labels import CLASSES
from tradeops.model.evaluate import (
    SLICE_COLUMNS,
    assign_regime,
    classification_metrics,
    confusion_table,
    evaluate_slices,
    fit_vol_thresholds,
    realized_volatility,
    volatility_regime,
)

BUY, SELL, HOLD = 0, 1, 2


def closes(values: list[float] | np.ndarray, start: str = "2020-01-01") -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.bdate_range(start, periods=len(values)), name="close")


def random_walk(n: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    # volatility that changes over time so regimes are not all the same
    sigma = np.where(np.arange(n) % 60 < 30, 0.005, 0.03)
    return closes(100 * np.exp(np.cumsum(rng.normal(0, sigma))))


# --------------------------------------------------------------------------------------------------------------------
# classification_metrics
# --------------------------------------------------------------------------------------------------------------------


def test_confusion_matrix_rows_are_true_class_columns_predicted() -> None:
    # three true BUYs: two predicted SELL, one HOLD; one true SELL predicted SELL
    m = classification_metrics([BUY, BUY, BUY, SELL], [SELL, SELL, HOLD, SELL])
    assert m["confusion_matrix"] == [[0, 2, 1], [0, 1, 0], [0, 0, 0]]
    assert all(isinstance(v, int) for row in m["confusion_matrix"] for v in row)
    assert m["classes"] == list(CLASSES)


def test_per_class_metrics_by_hand() -> None:
    y_true = [BUY, BUY, BUY, SELL, SELL, HOLD, HOLD, HOLD, HOLD, HOLD]
    y_pred = [BUY, BUY, HOLD, SELL, BUY, HOLD, HOLD, HOLD, SELL, BUY]
    m = classification_metrics(y_true, y_pred)
    # BUY: predicted 4 times, 2 right; 3 true BUYs -> P 2/4, R 2/3
    assert m["precision_BUY"] == pytest.approx(2 / 4)
    assert m["recall_BUY"] == pytest.approx(2 / 3)
    assert m["f1_BUY"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # SELL: predicted 2 times, 1 right; 2 true -> P 1/2, R 1/2, F1 1/2
    assert (m["precision_SELL"], m["recall_SELL"], m["f1_SELL"]) == pytest.approx((0.5, 0.5, 0.5))
    # HOLD: predicted 4 times, 3 right; 5 true -> P 3/4, R 3/5
    assert m["precision_HOLD"] == pytest.approx(3 / 4)
    assert m["recall_HOLD"] == pytest.approx(3 / 5)
    f1_hold = 2 * 0.75 * 0.6 / (0.75 + 0.6)
    f1 = [2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), 0.5, f1_hold]
    assert (m["support_BUY"], m["support_SELL"], m["support_HOLD"]) == (3, 2, 5)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * f1[0] + 2 * f1[1] + 5 * f1[2]) / 10)
    assert m["per_class"]["HOLD"] == {
        "precision": pytest.approx(0.75),
        "recall": pytest.approx(0.6),
        "f1": pytest.approx(f1_hold),
        "support": 5,
    }
    json.dumps(m, allow_nan=False)


def test_never_predicted_class_has_precision_zero_and_absent_class_counts_in_macro() -> None:
    m = classification_metrics([BUY, HOLD, HOLD], [HOLD, HOLD, HOLD])
    assert m["precision_BUY"] == 0.0 and m["recall_BUY"] == 0.0  # never predicted: a real 0, not an error
    assert m["precision_SELL"] == 0.0 and m["f1_SELL"] == 0.0 and m["support_SELL"] == 0
    f1_hold = 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0)
    assert m["macro_f1"] == pytest.approx(f1_hold / 3)  # averaged over all three classes


def test_class_names_and_ids_give_the_same_metrics() -> None:
    ids = classification_metrics(np.array([0, 1, 2, 2]), pd.Series([0, 2, 2, 1], dtype="Int8"))
    names = classification_metrics(["BUY", "SELL", "HOLD", "HOLD"], ["BUY", "HOLD", "HOLD", "SELL"])
    assert ids == names


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        ([], [], "empty"),
        ([0, 1], [0], "length"),
        ([0, 3], [0, 1], "unknown class id 3"),
        ([0, 1.5], [0, 1], "unknown class id"),
        ([0, np.nan], [0, 1], "missing class at position 1"),
        ([0, 1], [0, None], "y_pred has a missing class"),
        ([True, False], [0, 1], "booleans"),
        (["BUY", "buy"], [0, 1], "unknown class 'buy'"),
        (["BUY", 1], [0, 1], "mixes class names and ids"),
        ("BUY", "BUY", "1-D"),
        (np.zeros((2, 2)), np.zeros((2, 2)), "1-D"),
    ],
)
def test_bad_input_raises_a_clear_value_error(y_true, y_pred, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred)


def test_confusion_table_renders_names_in_class_order() -> None:
    text = confusion_table([[5, 1, 0], [2, 7, 1], [0, 0, 12]])
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].split()[-4:] == ["BUY", "SELL", "HOLD", "total"]
    assert lines[1].split() == ["BUY", "5", "1", "0", "6"]
    assert lines[2].split() == ["SELL", "2", "7", "1", "10"]
    assert lines[3].split() == ["HOLD", "0", "0", "12", "12"]
    assert "true" in lines[0] and "pred" in lines[0]


@pytest.mark.parametrize(
    "cm", [[[1, 2], [3, 4]], [[1, 2, 3]] * 2, [[1, -1, 0]] * 3, [[1.5, 0, 0]] * 3, [["a"] * 3] * 3]
)
def test_confusion_table_rejects_non_count_matrices(cm) -> None:
    with pytest.raises(ValueError, match="confusion matrix"):
        confusion_table(cm)


# --------------------------------------------------------------------------------------------------------------------
# evaluate_slices
# --------------------------------------------------------------------------------------------------------------------


def slice_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ["AAA", "AAA", "AAA", "BBB", "BBB", "BBB"],
            "date": pd.to_datetime(
                ["2020-12-30", "2020-12-31", "2021-01-04", "2020-12-31", "2021-01-04", "2021-01-05"]
            ),
            "y_true": [BUY, SELL, HOLD, HOLD, HOLD, BUY],
            "y_pred": [BUY, SELL, HOLD, BUY, HOLD, HOLD],
        }
    )


def row(out: pd.DataFrame, slice_: str, value) -> pd.Series:
    hit = out[(out["slice"] == slice_) & (out["value"] == value)]
    assert len(hit) == 1, out
    return hit.iloc[0]


def test_slices_by_ticker_and_derived_year() -> None:
    out = evaluate_slices(slice_frame())
    assert list(out.columns) == list(SLICE_COLUMNS)
    assert list(zip(out["slice"], out["value"], strict=True)) == [
        ("ticker", "AAA"),
        ("ticker", "BBB"),
        ("year", 2020),
        ("year", 2021),
    ]  # vol_regime absent from the frame: skipped
    aaa = row(out, "ticker", "AAA")
    assert aaa["n"] == 3 and aaa["accuracy"] == 1.0
    assert aaa["f1_BUY"] == 1.0 and aaa["f1_SELL"] == 1.0 and aaa["f1_HOLD"] == 1.0
    assert aaa["macro_f1"] == 1.0
    bbb = row(out, "ticker", "BBB")  # true HOLD HOLD BUY, pred BUY HOLD HOLD
    assert bbb["n"] == 3 and bbb["accuracy"] == pytest.approx(1 / 3)
    assert bbb["recall_BUY"] == 0.0 and bbb["f1_BUY"] == 0.0
    assert bbb["f1_HOLD"] == pytest.approx(0.5)  # P 1/2, R 1/2
    assert bbb["recall_SELL"] == 0.0 and bbb["f1_SELL"] == 0.0  # no SELL in this slice: 0, counted in macro
    assert bbb["macro_f1"] == pytest.approx(0.5 / 3)
    y2020 = row(out, "year", 2020)  # AAA 12-30, AAA 12-31, BBB 12-31
    assert y2020["n"] == 3 and y2020["accuracy"] == pytest.approx(2 / 3)
    assert row(out, "year", 2021)["n"] == 3


def test_slices_match_classification_metrics_of_the_subset() -> None:
    frame = slice_frame()
    frame["vol_regime"] = ["low", "high", "unknown", "low", "low", "high"]
    out = evaluate_slices(frame, by=("vol_regime", "ticker"))
    assert list(out["slice"]) == ["vol_regime"] * 3 + ["ticker"] * 2
    assert list(out["value"][:3]) == ["high", "low", "unknown"]
    sub = frame[frame["vol_regime"] == "low"]
    m = classification_metrics(sub["y_true"], sub["y_pred"])
    got = row(out, "vol_regime", "low")
    for col in SLICE_COLUMNS[2:]:
        assert got[col] == pytest.approx(m[col])


def test_slices_use_an_existing_year_column_and_custom_label_columns() -> None:
    frame = slice_frame().rename(columns={"y_true": "label", "y_pred": "signal"}).drop(columns="date")
    frame["year"] = [2019] * 6
    out = evaluate_slices(frame, y_true="label", y_pred="signal", by=["year"])
    assert len(out) == 1 and out.iloc[0]["value"] == 2019 and out.iloc[0]["n"] == 6


def test_slices_year_from_string_dates() -> None:
    frame = slice_frame()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    out = evaluate_slices(frame, by=["year"])
    assert list(out["value"]) == [2020, 2021]


@pytest.mark.parametrize(
    ("change", "by", "match"),
    [
        (lambda f: f.drop(columns="y_pred"), ("ticker",), "no column 'y_pred'"),
        (lambda f: f.drop(columns="ticker"), ("ticker",), "cannot slice by 'ticker'"),
        (lambda f: f.drop(columns="date"), ("year",), "'year' or a 'date' column"),
        (lambda f: f.assign(ticker=["AAA", None, "AAA", "BBB", "BBB", "BBB"]), ("ticker",), "missing value"),
        (lambda f: f.iloc[:0], ("ticker",), "empty frame"),
        (lambda f: f, ("vol_regime",), "none of the slicing columns"),
        (lambda f: f, (), "no slicing column"),
        (lambda f: f, "ticker", "sequence of column names"),
        (lambda f: f.assign(y_true=[0, 1, 2, 2, 2, 5]), ("ticker",), "unknown class id 5"),
    ],
)
def test_slices_fail_loudly(change, by, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate_slices(change(slice_frame()), by=by)


# --------------------------------------------------------------------------------------------------------------------
# volatility regimes
# --------------------------------------------------------------------------------------------------------------------


def test_realized_volatility_by_hand_and_warm_up() -> None:
    close = closes([100.0, 101.0, 99.0, 102.0, 102.0])
    vol = realized_volatility(close, window=3)
    assert vol.iloc[:3].isna().all()  # needs 3 returns -> 4 closes
    r = np.diff(np.log(close.to_numpy()))
    assert vol.iloc[3] == pytest.approx(np.std(r[0:3], ddof=1))
    assert vol.iloc[4] == pytest.approx(np.std(r[1:4], ddof=1))
    assert vol.index.equals(close.index)


def test_realized_volatility_reads_no_future_bar() -> None:
    close = random_walk(120)
    base = realized_volatility(close, window=10)
    changed = close.copy()
    changed.iloc[80:] *= 1.7
    after = realized_volatility(changed, window=10)
    pd.testing.assert_series_equal(base.iloc[:80], after.iloc[:80])


def test_warm_up_is_unknown() -> None:
    close = random_walk(60)
    regime = volatility_regime(close, window=20, train_index=close.index[:40])
    assert list(regime.iloc[:20]) == ["unknown"] * 20
    assert set(regime.iloc[20:]) <= {"low", "mid", "high"}
    assert regime.name == "vol_regime"


def test_assign_regime_boundaries() -> None:
    vol = pd.Series([np.nan, 0.01, 0.02, 0.025, 0.03, 0.04])
    got = list(assign_regime(vol, (0.02, 0.03)))
    assert got == ["unknown", "low", "low", "mid", "mid", "high"]


def test_fit_thresholds_are_training_quantiles_ignoring_warm_up() -> None:
    vol = pd.Series([np.nan, np.nan, 1.0, 2.0, 3.0, 4.0, 100.0, 200.0], index=pd.bdate_range("2020-01-01", periods=8))
    lo, hi = fit_vol_thresholds(vol, train_index=vol.index[:6])
    assert (lo, hi) == pytest.approx(tuple(np.quantile([1.0, 2.0, 3.0, 4.0], [1 / 3, 2 / 3])))
    assert fit_vol_thresholds(vol.iloc[:6]) == (lo, hi)  # same as passing only the training rows
    assert fit_vol_thresholds(vol, train_index=vol.index[:6], quantiles=(0.25, 0.75)) == pytest.approx(
        tuple(np.quantile([1.0, 2.0, 3.0, 4.0], [0.25, 0.75]))
    )


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=10, max_value=80),
    data=st.data(),
)
def test_vol_thresholds_ignore_values_outside_the_training_index(n: int, data: st.DataObject) -> None:
    index = pd.bdate_range("2020-01-01", periods=n)
    finite = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
    vol = pd.Series(data.draw(st.lists(finite, min_size=n, max_size=n)), index=index)
    train = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    train_index = index[sorted(train)]
    outside = np.setdiff1d(np.arange(n), train)
    changed = vol.copy()
    noise = data.draw(st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=len(outside), max_size=len(outside)))
    changed.iloc[outside] = noise
    changed.iloc[outside[: len(outside) // 2]] = np.nan  # warm-up-like gaps outside training don't matter either
    assert fit_vol_thresholds(changed, train_index=train_index) == fit_vol_thresholds(vol, train_index=train_index)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    train_end=st.integers(min_value=30, max_value=90),
    factor=st.floats(min_value=0.2, max_value=5.0),
)
def test_regime_on_training_dates_ignores_prices_after_training(seed: int, train_end: int, factor: float) -> None:
    close = random_walk(120, seed=seed)
    train_index = close.index[:train_end]
    changed = close.copy()
    rng = np.random.default_rng(seed)
    changed.iloc[train_end:] = changed.iloc[train_end:] * factor * np.exp(rng.normal(0, 0.1, 120 - train_end))
    vol, vol_changed = realized_volatility(close, 10), realized_volatility(changed, 10)
    thresholds = fit_vol_thresholds(vol, train_index=train_index)
    assert fit_vol_thresholds(vol_changed, train_index=train_index) == thresholds
    base = volatility_regime(close, 10, train_index=train_index)
    after = volatility_regime(changed, 10, train_index=train_index)
    pd.testing.assert_series_equal(base.iloc[:train_end], after.iloc[:train_end])


def test_volatility_regime_with_given_thresholds_equals_fitted_path() -> None:
    close = random_walk(200, seed=3)
    train_index = close.index[:120]
    thresholds = fit_vol_thresholds(realized_volatility(close, 20), train_index=train_index)
    a = volatility_regime(close, 20, thresholds=thresholds)
    b = volatility_regime(close, 20, train_index=train_index)
    pd.testing.assert_series_equal(a, b)
    assert {"low", "mid", "high"} <= set(a)


def test_volatility_regime_refuses_to_fit_on_the_whole_series() -> None:
    close = random_walk(50)
    with pytest.raises(ValueError, match="exactly one of thresholds"):
        volatility_regime(close)
    with pytest.raises(ValueError, match="exactly one of thresholds"):
        volatility_regime(close, thresholds=(0.01, 0.02), train_index=close.index[:30])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: realized_volatility(c.reset_index(drop=True)), "DatetimeIndex"),
        (lambda c: realized_volatility(c.iloc[::-1]), "strictly increasing"),
        (lambda c: realized_volatility(c.where(c.index != c.index[5])), "finite and > 0"),
        (lambda c: realized_volatility(c * 0), "finite and > 0"),
        (lambda c: realized_volatility(c, window=1), "window"),
        (lambda c: realized_volatility(c.to_frame()), "pandas Series"),
        (lambda c: fit_vol_thresholds(realized_volatility(c, 20), train_index=c.index[:10]), "no volatility value"),
        (lambda c: fit_vol_thresholds(realized_volatility(c), quantiles=(0.6, 0.3)), "0 < low < high < 1"),
        (
            lambda c: fit_vol_thresholds(realized_volatility(c), train_index=pd.bdate_range("1999-01-01", periods=2)),
            "not in vol's index",
        ),
        (lambda c: assign_regime(realized_volatility(c), (0.03, 0.01)), "lo <= hi"),
        (lambda c: assign_regime(realized_volatility(c), (np.nan, 0.01)), "finite"),
    ],
)
def test_volatility_inputs_fail_loudly(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(random_walk(60))
