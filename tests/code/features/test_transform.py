"""ImageTransform: fitted on the training window only, clipped, laid out row-major, saved as JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tradeops.features.splits import walk_forward
from tradeops.features.transform import ImageTransform, to_png

SIDE = 15
INDICATORS = [f"ind{r:02d}" for r in range(SIDE)]
CNN_TA = [f"{ind}_{w}" for ind in INDICATORS for w in range(6, 6 + SIDE)]  # indicator-major, windows 6..20


def features(n_rows: int = 60, seed: int = 0, columns: list[str] = CNN_TA) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2010-01-04", periods=n_rows, name="date")
    return pd.DataFrame(rng.normal(size=(n_rows, len(columns))), index=idx, columns=columns)


def test_shape_dtype_and_row_major_layout() -> None:
    X = features()
    # feature k takes values k at row 0 and k + 1000 at row 1 -> after scaling, row 0 is all 0, row 1 all 1
    X.iloc[0] = np.arange(SIDE * SIDE)
    X.iloc[1] = np.arange(SIDE * SIDE) + 1000
    X.iloc[2:] = np.arange(SIDE * SIDE) + 500 + np.arange(SIDE * SIDE) / 1000.0
    t = ImageTransform(feature_names=CNN_TA).fit(X)
    img = t.transform(X)
    assert img.shape == (len(X), 1, SIDE, SIDE) and img.dtype == np.float32
    assert (img[0] == 0).all() and (img[1] == 1).all()
    flat = X.iloc[2].to_numpy()
    for r in range(SIDE):
        for c in range(SIDE):
            k = r * SIDE + c
            expected = (flat[k] - X.iloc[:, k].min()) / (X.iloc[:, k].max() - X.iloc[:, k].min())
            assert img[2, 0, r, c] == pytest.approx(expected, abs=1e-6)
            assert t.selected_[k] == f"{INDICATORS[r]}_{6 + c}"  # row = indicator, column = window 6 + c


def test_test_values_outside_training_range_are_clipped() -> None:
    X = features()
    train, test = X.iloc[:40], X.iloc[40:].copy()
    test.iloc[0] = 1e6
    test.iloc[1] = -1e6
    t = ImageTransform(feature_names=CNN_TA).fit(train)
    img = t.transform(test)
    assert (img[0] == 1).all() and (img[1] == 0).all()
    assert img.min() >= 0 and img.max() <= 1
    np.testing.assert_array_equal(t.data_min_, train.min().to_numpy())
    np.testing.assert_array_equal(t.data_max_, train.max().to_numpy())


def test_constant_training_feature_maps_to_half() -> None:
    X = features()
    X[CNN_TA[7]] = 2.5
    t = ImageTransform(feature_names=CNN_TA).fit(X)
    serving = X.copy()
    serving[CNN_TA[7]] = [-10.0, 2.5, 99.0] * (len(X) // 3)
    img = t.transform(serving)
    assert (img[:, 0, 0, 7] == 0.5).all()


def test_all_columns_default_and_fixed_list_subset() -> None:
    X = features()
    assert ImageTransform().fit(X).selected_ == tuple(CNN_TA)
    wide = X.assign(extra_a=1.0, extra_b=2.0)
    t = ImageTransform(feature_names=CNN_TA[::-1]).fit(wide)
    assert t.feature_names_in_ == tuple(wide.columns) and t.selected_ == tuple(CNN_TA[::-1])
    np.testing.assert_array_equal(
        t.transform(wide)[:, 0].reshape(len(X), -1),
        ImageTransform(feature_names=CNN_TA).fit(X).transform(X)[:, 0].reshape(len(X), -1)[:, ::-1],
    )
    with pytest.raises(ValueError, match="needs 225"):
        ImageTransform().fit(wide)
    with pytest.raises(ValueError, match="has 3 names"):
        ImageTransform(feature_names=CNN_TA[:3]).fit(X)
    with pytest.raises(ValueError, match="not both"):
        ImageTransform(feature_names=CNN_TA, select=True).fit(X, np.zeros(len(X)))


def test_missing_or_extra_columns_are_refused() -> None:
    X = features()
    t = ImageTransform(feature_names=CNN_TA).fit(X)
    with pytest.raises(ValueError, match=r"missing \['ind03_9'\], extra \[\]"):
        t.transform(X.drop(columns="ind03_9"))
    with pytest.raises(ValueError, match=r"lacks 1 used feature\(s\): \['ind03_9'\]"):
        t.transform(X.drop(columns="ind03_9"), strict=False)
    with pytest.raises(ValueError, match=r"missing \[\], extra \['new_feature'\]"):
        t.transform(X.assign(new_feature=0.0))
    with pytest.raises(ValueError, match="different order"):
        t.transform(X[X.columns[::-1]])
    # non-strict: extra or reordered columns are fine as long as the used ones are present
    np.testing.assert_array_equal(
        t.transform(X.assign(new_feature=0.0)[X.columns[::-1].tolist() + ["new_feature"]], strict=False), t.transform(X)
    )


def test_nan_errors_name_row_and_feature() -> None:
    X = features()
    t = ImageTransform(feature_names=CNN_TA).fit(X)
    bad = X.copy()
    bad.loc[X.index[4], "ind02_11"] = np.nan
    bad.loc[X.index[9], "ind00_6"] = np.nan
    with pytest.raises(ValueError, match=r"row Timestamp\('2010-01-08 00:00:00'\) .* feature 'ind02_11'"):
        t.transform(bad)
    with pytest.raises(ValueError, match="'ind02_11'"):
        ImageTransform(feature_names=CNN_TA).fit(bad)
    inf = X.copy()
    inf.iloc[0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        t.transform(inf)


def test_not_fitted_and_clone() -> None:
    t = ImageTransform(side=3, select=True, n_select=9, random_state=4)
    with pytest.raises(NotFittedError):
        t.transform(features())
    assert clone(t).get_params() == t.get_params()
    assert ImageTransform.from_dict(t.to_dict()).get_params() == t.get_params()


def test_json_round_trip_gives_identical_output(tmp_path) -> None:
    X = features(seed=3)
    X[CNN_TA[0]] = 1.0  # constant feature survives the round trip
    t = ImageTransform(feature_names=CNN_TA).fit(X.iloc[:40])
    path = t.save(tmp_path / "transform.json")
    data = json.loads(path.read_text())
    assert data["fitted"]["selected_"] == CNN_TA
    back = ImageTransform.load(path)
    np.testing.assert_array_equal(back.transform(X), t.transform(X))
    assert back.fingerprint() == t.fingerprint()
    np.testing.assert_array_equal(back.data_min_, t.data_min_)


def test_round_trip_with_selection(tmp_path) -> None:
    X, y = labelled(120, 20, seed=2)
    t = ImageTransform(side=3, select=True, random_state=1).fit(X, y)
    back = ImageTransform.load(t.save(tmp_path / "t.json"))
    assert back.selection_.names == t.selection_.names == t.selected_
    pd.testing.assert_frame_equal(back.selection_.scores, t.selection_.scores, check_names=False)
    np.testing.assert_array_equal(back.transform(X), t.transform(X))
    assert back.fingerprint() == t.fingerprint()


def test_from_dict_rejects_foreign_or_inconsistent_state() -> None:
    t = ImageTransform(feature_names=CNN_TA).fit(features())
    with pytest.raises(ValueError, match="format"):
        ImageTransform.from_dict({"format": "pickle"})
    data = t.to_dict()
    data["fitted"]["data_min_"] = data["fitted"]["data_min_"][:-1]
    with pytest.raises(ValueError, match="224 minima"):
        ImageTransform.from_dict(data)


def test_fingerprint_changes_with_fitted_state() -> None:
    X = features()
    a = ImageTransform(feature_names=CNN_TA).fit(X.iloc[:40])
    b = ImageTransform(feature_names=CNN_TA).fit(X.iloc[:41])
    c = ImageTransform(feature_names=CNN_TA).fit(X.iloc[:40])
    assert len(a.fingerprint()) == 64
    assert a.fingerprint() == c.fingerprint() != b.fingerprint()
    unfitted = ImageTransform(feature_names=CNN_TA)
    assert unfitted.fingerprint() != a.fingerprint()
    # same scaling, but the serving contract (all input columns) differs
    wider = X.assign(extra=0.0)
    assert ImageTransform(feature_names=CNN_TA).fit(wider.iloc[:40]).fingerprint() != a.fingerprint()


def test_to_png_writes_upscaled_grayscale(tmp_path) -> None:
    img = ImageTransform(feature_names=CNN_TA).fit(features()).transform(features())[0]
    path = to_png(img, tmp_path / "day.png", scale=4)
    with Image.open(path) as png:
        assert png.mode == "L" and png.size == (SIDE * 4, SIDE * 4)
        pixels = np.asarray(png)
    np.testing.assert_array_equal(pixels[::4, ::4], np.rint(img[0].astype(np.float64) * 255).astype(np.uint8))
    assert (pixels[1::4, 2::4] == pixels[::4, ::4]).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_png(img * 2, tmp_path / "bad.png")


def labelled(n_rows: int, n_features: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of which f00..f02 carry the class (y in {0, 1, 2}) and the rest is noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n_rows)
    X = pd.DataFrame(
        rng.normal(size=(n_rows, n_features)),
        columns=[f"f{i:02d}" for i in range(n_features)],
        index=pd.bdate_range("2004-01-01", periods=n_rows),
    )
    for i in range(3):
        X.iloc[:, i] += y * (3 - i)
    return X, y


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=hnp.arrays(np.float64, (40, 9), elements=st.floats(-1e6, 1e6, allow_nan=False)),
    split=st.integers(5, 35),
    row=st.integers(0, 39),
    new=st.floats(-1e9, 1e9, allow_nan=False),
)
def test_property_fitted_state_depends_on_training_rows_only(values, split, row, new) -> None:
    cols = [f"f{i}" for i in range(9)]
    X = pd.DataFrame(values, columns=cols)
    train = np.arange(len(X)) < split
    t = ImageTransform(side=3).fit(X[train])
    np.testing.assert_array_equal(t.data_min_, values[train].min(axis=0))
    np.testing.assert_array_equal(t.data_max_, values[train].max(axis=0))
    changed = X.copy()
    if not train[row]:
        changed.iloc[row] = new  # any non-training row: the fitted state must not move
        assert ImageTransform(side=3).fit(changed[train]).fingerprint() == t.fingerprint()
    out = t.transform(changed)
    assert out.shape == (40, 1, 3, 3) and out.min() >= 0 and out.max() <= 1


DATES = pd.bdate_range("2001-01-01", periods=700)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), shift=st.floats(-50, 50), scale=st.floats(0.1, 100))
def test_property_selection_and_scaling_never_see_test_dates(seed, shift, scale) -> None:
    """Fit on a walk-forward fold's train mask; rewriting every non-train row leaves the fitted state unchanged."""
    rng = np.random.default_rng(seed)
    n_feat = 14
    y = rng.integers(0, 3, len(DATES))
    X = pd.DataFrame(rng.normal(size=(len(DATES), n_feat)), index=DATES, columns=[f"f{i:02d}" for i in range(n_feat)])
    X.iloc[:, :4] += y[:, None] * rng.uniform(0.2, 2.0, 4)
    lka = pd.Series(DATES).shift(-5)
    fold = walk_forward(DATES, test_days=100, min_train_days=200, train_years=1)[0]
    masks = fold.masks(DATES, lka)
    fitted = ImageTransform(side=3, select=True, random_state=0).fit(X[masks.train], y[masks.train])
    # the test period changes regime completely (labels and values); nothing fitted may move
    X2, y2 = X.copy(), y.copy()
    other = ~masks.train
    X2.loc[other] = X2.loc[other] * scale + shift
    X2.loc[other, "f13"] = y[other] * 100.0  # a feature that is perfect on test rows only
    y2[other] = (y2[other] + 1) % 3
    refit = ImageTransform(side=3, select=True, random_state=0).fit(X2[masks.train], y2[masks.train])
    assert refit.fingerprint() == fitted.fingerprint()
    assert refit.selected_ == fitted.selected_
    np.testing.assert_array_equal(fitted.data_min_, X.loc[masks.train, list(fitted.selected_)].min().to_numpy())
    assert fitted.selection_ is not None and set(fitted.selection_.scores.index) == set(X.columns)
    assert X.index[masks.train].max() < fold.val_start
