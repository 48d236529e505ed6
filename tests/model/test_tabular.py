"""LightGBM baseline: learns, is deterministic, takes images or flat features, always three classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tradeops.model.tabular import LGBMSignalClassifier

SIDE = 15


def test_fits_and_predicts_with_early_stopping(data) -> None:
    X, y, X_val, y_val = data
    clf = LGBMSignalClassifier(n_estimators=100, early_stopping_rounds=5).fit(X, y, X_val, y_val)
    proba = clf.predict_proba(X_val)
    assert proba.shape == (len(X_val), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(clf.predict(X_val), proba.argmax(axis=1))
    assert clf.score(X_val, y_val) >= 0.95
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.n_features_in_ == SIDE * SIDE and 1 <= clf.best_iteration_ <= 100
    # the informative pixels (the two bright corners) carry the gain
    importance = clf.feature_importances_.reshape(SIDE, SIDE)
    corners = importance[:5, :5].sum() + importance[-5:, -5:].sum()
    assert importance.shape == (SIDE, SIDE) and corners > 0.9 * importance.sum()
    np.testing.assert_allclose(clf.class_weight_, len(y) / (3 * np.bincount(y)))


def test_without_validation_builds_all_trees(data) -> None:
    X, y, _, _ = data
    clf = LGBMSignalClassifier(n_estimators=15).fit(X, y)
    assert clf.best_iteration_ == 15 and clf.booster_.current_iteration() == 15


def test_deterministic(data) -> None:
    X, y, X_val, y_val = data
    a = LGBMSignalClassifier(n_estimators=40).fit(X, y, X_val, y_val)
    b = clone(a).fit(X, y, X_val, y_val)
    np.testing.assert_array_equal(a.predict_proba(X_val), b.predict_proba(X_val))
    assert a.booster_.model_to_string() == b.booster_.model_to_string()


def test_images_and_flat_features_are_the_same_input(data) -> None:
    X, y, X_val, _ = data
    images = LGBMSignalClassifier(n_estimators=20).fit(X, y)
    flat = LGBMSignalClassifier(n_estimators=20).fit(X.reshape(len(X), -1), y)
    np.testing.assert_array_equal(images.predict_proba(X_val), flat.predict_proba(X_val.reshape(len(X_val), -1)))
    np.testing.assert_array_equal(images.predict_proba(X_val), images.predict_proba(X_val.reshape(len(X_val), -1)))


def test_three_columns_even_when_a_class_is_missing_from_training(data) -> None:
    X, y, X_val, _ = data
    keep = y != 1
    clf = LGBMSignalClassifier(n_estimators=10).fit(X[keep], y[keep])
    assert clf.predict_proba(X_val).shape == (len(X_val), 3)
    assert clf.class_weight_[1] == 0.0


def test_bad_inputs_are_rejected(data) -> None:
    X, y, X_val, y_val = data
    clf = LGBMSignalClassifier(n_estimators=5)
    with pytest.raises(ValueError, match="2-D"):
        clf.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="class id 5"):
        clf.fit(X, np.full(len(y), 5))
    with pytest.raises(ValueError, match="labels for"):
        clf.fit(X, y[:10])
    with pytest.raises(ValueError, match="both X_val and y_val"):
        clf.fit(X, y, X_val)
    inf = X.reshape(len(X), -1).astype(np.float64)
    inf[7, 0] = np.inf
    with pytest.raises(ValueError, match="row 7"):
        clf.fit(inf, y)
    with pytest.raises(ValueError, match="class_weight"):
        LGBMSignalClassifier(class_weight="auto").fit(X, y)
    with pytest.raises(ValueError, match="n_estimators"):
        LGBMSignalClassifier(n_estimators=0).fit(X, y)
    with pytest.raises(NotFittedError):
        LGBMSignalClassifier().predict(X)
    fitted = clf.fit(X, y)
    with pytest.raises(ValueError, match="fitted on 225"):
        fitted.predict(np.zeros((3, 10)))
