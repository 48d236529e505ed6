"""CNN-TA: layer sizes, both training recipes, bit-for-bit determinism, oversampling, early stopping, validation,
state round trip and the caller's RNG left untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tradeops.model.cnn import (
    CNNTA,
    CNNClassifier,
    balanced_class_weights,
    conv_output_sides,
    oversample_indices,
)

SIDE = 15


def fast(**params: object) -> CNNClassifier:
    return CNNClassifier(**({"epochs": 4, "batch_size": 64} | params))


# -- architecture --------------------------------------------------------------------------------------------


def test_layer_sizes_follow_valid_padding_15_13_11_5() -> None:
    assert conv_output_sides(15) == (13, 11, 5)
    net = CNNTA()
    x = torch.zeros(4, 1, SIDE, SIDE)
    conv1, conv2 = net.features[0], net.features[2]
    assert conv1(x).shape == (4, 32, 13, 13)
    assert conv2(conv1(x)).shape == (4, 64, 11, 11)
    assert net.features(x).shape == (4, 64, 5, 5)
    assert net.classifier[1].in_features == 64 * 5 * 5 and net.classifier[1].out_features == 128
    assert net(x).shape == (4, 3)
    small = CNNTA(side=9, filters1=4, filters2=8, dense=16)
    assert small(torch.zeros(2, 1, 9, 9)).shape == (2, 3) and small.classifier[1].in_features == 8 * 2 * 2
    with pytest.raises(ValueError, match="side must be >= 6"):
        CNNTA(side=5)
    with pytest.raises(ValueError, match="dropout_conv"):
        CNNTA(dropout_conv=1.0)


# -- training ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", ["paper", "default"])
def test_both_recipes_learn_a_learnable_task(recipe: str, data) -> None:
    X, y, X_val, y_val = data
    seen: list[int] = []
    clf = fast(recipe=recipe, epochs=5).fit(X, y, X_val, y_val, on_epoch=lambda epoch, record: seen.append(epoch))
    losses = [r["train_loss"] for r in clf.history_]
    assert losses[-1] < 0.7 * losses[0]
    assert clf.score(X_val, y_val) >= 0.9
    assert seen == [r["epoch"] for r in clf.history_] == list(range(1, len(clf.history_) + 1))
    assert set(clf.history_[0]) == {"epoch", "train_loss", "val_loss", "val_macro_f1", "val_accuracy"}
    assert not clf.model_.training
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.n_features_in_ == SIDE * SIDE and clf.image_shape_ == (1, SIDE, SIDE)
    proba = clf.predict_proba(X_val)
    assert proba.shape == (len(X_val), 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X_val), proba.argmax(axis=1))


def test_recipes_resolve_to_the_documented_settings(data) -> None:
    X, y, X_val, y_val = data
    paper = CNNClassifier(recipe="paper", epochs=1).fit(X, y)
    p = paper.recipe_params_
    assert (p["optimizer"], p["lr"], p["batch_size"], p["loss"], p["early_stopping"]) == (
        "Adadelta",
        1.0,
        1024,
        "cross_entropy",
        None,
    )
    assert p["oversampled_counts"] == [int(np.bincount(y).max())] * 3
    assert paper.best_epoch_ == 1 and set(paper.history_[0]) == {"epoch", "train_loss"}  # no validation given
    default = CNNClassifier(epochs=1).fit(X, y, X_val, y_val)
    d = default.recipe_params_
    assert (d["optimizer"], d["lr"], d["weight_decay"], d["batch_size"], d["early_stopping"]) == (
        "AdamW",
        1e-3,
        1e-4,
        256,
        "val_macro_f1",
    )
    np.testing.assert_allclose(d["class_weight"], len(y) / (3 * np.bincount(y)))
    assert CNNClassifier(recipe="paper")._resolve()["epochs"] == 200
    assert CNNClassifier()._resolve()["epochs"] == 100


@pytest.mark.parametrize("recipe", ["paper", "default"])
def test_same_seed_is_bit_identical_and_another_seed_differs(recipe: str, data) -> None:
    X, y, X_val, y_val = data
    a = fast(recipe=recipe).fit(X, y, X_val, y_val)
    torch.manual_seed(12345)  # the caller's global RNG must not matter
    b = clone(a).fit(X, y, X_val, y_val)
    assert a.weights_sha256() == b.weights_sha256()
    assert a.state_dict_bytes() == b.state_dict_bytes()
    np.testing.assert_array_equal(a.predict_proba(X_val), b.predict_proba(X_val))
    np.testing.assert_array_equal(a.predict(X_val), b.predict(X_val))
    assert a.history_ == b.history_
    c = fast(recipe=recipe, seed=1).fit(X, y, X_val, y_val)
    assert c.weights_sha256() != a.weights_sha256()
    assert not np.array_equal(c.predict_proba(X_val), a.predict_proba(X_val))


def test_fit_leaves_global_rng_and_deterministic_flag_untouched(data) -> None:
    X, y, X_val, y_val = data
    torch.manual_seed(7)
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    flag = torch.are_deterministic_algorithms_enabled()
    grad = torch.is_grad_enabled()
    fast(epochs=2).fit(X, y, X_val, y_val)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.are_deterministic_algorithms_enabled() == flag
    assert torch.is_grad_enabled() == grad


def test_fit_works_under_no_grad(data) -> None:
    X, y, X_val, y_val = data
    reference = fast(epochs=2).fit(X, y, X_val, y_val)
    with torch.no_grad():
        inside = fast(epochs=2).fit(X, y, X_val, y_val)
    assert inside.weights_sha256() == reference.weights_sha256()


def test_early_stopping_restores_the_best_epoch() -> None:
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(300, 1, SIDE, SIDE)).astype(np.float32)
    y = rng.choice(3, size=300)
    X_val = rng.uniform(size=(150, 1, SIDE, SIDE)).astype(np.float32)
    y_val = rng.choice(3, size=150)  # labels are noise: validation F1 wanders, so patience runs out
    clf = fast(epochs=40, patience=2, dropout_conv=0.0, dropout_dense=0.0).fit(X, y, X_val, y_val)
    history = clf.history_
    assert len(history) < 40 and len(history) == clf.best_epoch_ + 2
    best = history[clf.best_epoch_ - 1]
    assert max((r["val_macro_f1"], -r["val_loss"]) for r in history) == (best["val_macro_f1"], -best["val_loss"])
    pred = clf.predict(X_val)
    from sklearn.metrics import accuracy_score, f1_score

    assert f1_score(y_val, pred, labels=[0, 1, 2], average="macro", zero_division=0) == best["val_macro_f1"]
    assert accuracy_score(y_val, pred) == best["val_accuracy"]
    # training is deterministic, so a run that simply ends at the best epoch has exactly the restored weights
    ended = clone(clf).set_params(epochs=clf.best_epoch_, patience=100).fit(X, y, X_val, y_val)
    assert ended.weights_sha256() == clf.weights_sha256()


# -- sampling and weights ------------------------------------------------------------------------------------


def test_oversampling_balances_by_duplication_deterministically() -> None:
    y = np.array([2] * 20 + [0] * 6 + [1] * 3 + [2] * 5)
    idx = oversample_indices(y, seed=0)
    counts = np.bincount(y[idx], minlength=3)
    assert counts.tolist() == [25, 25, 25]
    assert set(idx.tolist()) == set(range(len(y)))  # nothing dropped
    rows_0 = np.flatnonzero(y == 0)
    per_row = np.bincount(idx, minlength=len(y))
    assert set(per_row[rows_0].tolist()) <= {4, 5} and per_row[rows_0].sum() == 25  # 25 = 4 * 6 + 1 extra
    assert (per_row[y == 2] == 1).all()  # the majority class is untouched
    np.testing.assert_array_equal(idx, oversample_indices(y, seed=0))
    assert any(not np.array_equal(oversample_indices(y, seed=s), idx) for s in range(1, 5))
    assert np.all(np.diff(idx) >= 0)
    # an absent class stays absent; an exact multiple needs no draw
    two = np.array([2, 2, 2, 2, 0, 0])
    assert np.bincount(two[oversample_indices(two, seed=9)], minlength=3).tolist() == [4, 0, 4]
    with pytest.raises(ValueError, match="empty"):
        oversample_indices(np.array([], dtype=int))


def test_balanced_class_weights() -> None:
    y = np.array([0] * 10 + [1] * 20 + [2] * 70)
    np.testing.assert_allclose(balanced_class_weights(y), [100 / 30, 100 / 60, 100 / 210])
    np.testing.assert_allclose(balanced_class_weights(np.array([2, 2, 1, 1])), [0.0, 4 / 6, 4 / 6])


# -- validation ----------------------------------------------------------------------------------------------


def test_default_recipe_needs_validation_data(data) -> None:
    X, y, X_val, y_val = data
    with pytest.raises(ValueError, match="X_val and y_val"):
        fast().fit(X, y)
    with pytest.raises(ValueError, match="both X_val and y_val"):
        fast(recipe="paper").fit(X, y, X_val)


@pytest.mark.parametrize(
    ("X_shape", "dtype", "message"),
    [
        ((10, SIDE, SIDE), np.float32, "shape"),
        ((10, 3, SIDE, SIDE), np.float32, "shape"),
        ((10, 1, SIDE, SIDE - 1), np.float32, "shape"),
        ((10, 1, 5, 5), np.float32, "side must be >= 6"),
        ((0, 1, SIDE, SIDE), np.float32, "no rows"),
        ((10, 1, SIDE, SIDE), np.int64, "float"),
    ],
)
def test_bad_images_are_rejected(X_shape, dtype, message) -> None:
    X = np.zeros(X_shape, dtype=dtype)
    with pytest.raises(ValueError, match=message):
        CNNClassifier(recipe="paper", epochs=1).fit(X, np.zeros(X_shape[0], dtype=int))


def test_bad_values_and_labels_are_rejected(data) -> None:
    X, y, _, _ = data
    paper = CNNClassifier(recipe="paper", epochs=1)
    nan = X.copy()
    nan[5, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="row 5 has a non-finite"):
        paper.fit(nan, y)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        paper.fit(X * 3, y)
    with pytest.raises(ValueError, match="class id 3"):
        paper.fit(X, np.where(np.arange(len(y)) == 4, 3, y))
    with pytest.raises(ValueError, match="labels for"):
        paper.fit(X, y[:-1])
    with pytest.raises(ValueError, match="class ids"):
        paper.fit(X, np.array(["BUY"] * len(y)))
    with pytest.raises(ValueError, match="recipe"):
        CNNClassifier(recipe="fast").fit(X, y)
    with pytest.raises(ValueError, match="epochs"):
        CNNClassifier(recipe="paper", epochs=0).fit(X, y)
    with pytest.raises(NotFittedError):
        CNNClassifier().predict(X)
    fitted = paper.fit(X, y)
    with pytest.raises(ValueError, match="side 9"):
        fitted.predict(np.zeros((2, 1, 9, 9), dtype=np.float32))


# -- persistence ---------------------------------------------------------------------------------------------


def test_state_round_trip_predicts_identically(data) -> None:
    X, y, X_val, y_val = data
    clf = fast(filters1=8, filters2=16, dense=32).fit(X, y, X_val, y_val)
    state = clf.get_state()
    back = CNNClassifier.from_state(state)
    assert back.get_params() == clf.get_params()
    assert back.weights_sha256() == clf.weights_sha256()
    np.testing.assert_array_equal(back.predict_proba(X_val), clf.predict_proba(X_val))
    assert back.history_ == clf.history_ and back.best_epoch_ == clf.best_epoch_
    assert back.recipe_params_ == clf.recipe_params_ and not back.model_.training

    tampered = dict(state, fitted=dict(state["fitted"], weights_sha256="0" * 64))
    with pytest.raises(ValueError, match="weights_sha256"):
        CNNClassifier.from_state(tampered)
    wrong_arch = dict(state, params=dict(state["params"], dense=64))
    with pytest.raises(ValueError, match="architecture"):
        CNNClassifier.from_state(wrong_arch)
    with pytest.raises(ValueError, match="format"):
        CNNClassifier.from_state({"format": "something else"})
