"""Occlusion explanations: exact on a hand-built linear ONNX model, deterministic, real feature names, one ORT call.

The tiny model is ``softmax(W . image)`` with BUY weights on four known cells only, so every cell's occlusion effect
can be worked out by hand (baseline 0.5 in scaled units):

- A (weight +2.0, pixel 1.0), B (+1.0, pixel 1.0), C (-1.5, pixel 0.0), D (+1.0, pixel 0.0); BUY logit 3.0,
  SELL/HOLD logits 0.
- occluding A -> logit 2.0, B -> 2.5, C -> 2.25, D -> 3.5; any other cell -> 3.0 (no change).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tradeops.deploy.explain import BASELINE, Attribution, explain, explain_full
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import CLASSES
from tradeops.features.transform import ImageTransform
from tradeops.model.onnx_runtime import OnnxPredictor
from tradeops.model.package import SignalBundle

SIDE = 15
CELLS = SIDE * SIDE
# cell index -> (BUY weight, scaled pixel value)
A, B, C, D = 3 * SIDE + 7, 0, 14 * SIDE + 14, 8 * SIDE + 2
WEIGHTS = {A: (2.0, 1.0), B: (1.0, 1.0), C: (-1.5, 0.0), D: (1.0, 0.0)}


def _linear_onnx(w: np.ndarray) -> bytes:
    """``probabilities = softmax(flatten(image) @ w)``, input ``image`` (N, 1, SIDE, SIDE)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, SIDE, SIDE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(w.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _bundle() -> SignalBundle:
    """230 input features in a shuffled order; the image uses 225 of them in another order, fitted on [0, 10]."""
    rng = np.random.default_rng(7)
    names = [f"feat_{i:03d}" for i in range(CELLS + 5)]
    inputs = list(rng.permutation(names))
    selected = list(rng.permutation(names)[:CELLS])
    fit = pd.DataFrame(rng.uniform(0, 10, size=(50, len(inputs))), columns=inputs)
    fit.iloc[0] = 0.0
    fit.iloc[1] = 10.0
    transform = ImageTransform(side=SIDE, feature_names=selected).fit(fit)
    w = np.zeros((CELLS, 3))
    for cell, (weight, _) in WEIGHTS.items():
        w[cell, 0] = weight
    meta = {"name": "linear", "feature_set_version": "test"}
    return SignalBundle(meta, transform, OnnxPredictor(_linear_onnx(w)))


def _row(bundle: SignalBundle) -> np.ndarray:
    """A feature row whose pixels are 0.5 except the four weighted cells (0 or 1); raw = 10 * pixel."""
    pixels = np.full(CELLS, BASELINE)
    for cell, (_, pixel) in WEIGHTS.items():
        pixels[cell] = pixel
    position = {n: i for i, n in enumerate(bundle.feature_names)}
    row = np.full(len(bundle.feature_names), 123.0)  # unused inputs: any finite value
    for cell, name in enumerate(bundle.layout.selected):
        row[position[name]] = 10.0 * pixels[cell]
    return row


def _p(logit: float) -> float:
    return float(np.exp(logit) / (np.exp(logit) + 2.0))


@pytest.fixture(scope="module")
def bundle() -> SignalBundle:
    return _bundle()


def test_attributions_equal_the_hand_worked_probability_drops(bundle):
    got = explain(bundle, _row(bundle), top_k=5)
    p0 = _p(3.0)
    want = [(A, p0 - _p(2.0)), (C, p0 - _p(2.25)), (B, p0 - _p(2.5)), (D, p0 - _p(3.5))]
    assert [a.cell for a in got[:4]] == [divmod(c, SIDE) for c, _ in want]
    for a, (_, drop) in zip(got, want):
        assert a.attribution == pytest.approx(drop, abs=1e-6)
    assert got[3].attribution < 0  # D pushes away from BUY: occluding it raises p_BUY
    assert got[4].attribution == 0.0  # every other cell is irrelevant


def test_names_are_the_layouts_feature_names_for_each_cell(bundle):
    full = explain_full(bundle, _row(bundle))
    assert full.features == bundle.layout.selected
    for a in explain(bundle, _row(bundle), top_k=CELLS):
        r, c = a.cell
        assert a.feature == bundle.layout.selected[r * SIDE + c]
        assert a.feature in bundle.feature_names
    assert [a.feature for a in explain(bundle, _row(bundle), top_k=1)] == [bundle.layout.selected[A]]


def test_the_most_important_cell_changes_the_probability_most_when_its_feature_is_neutralised(bundle):
    """Independent of the batched occlusion: set one raw feature to its training midpoint and re-score."""
    row = _row(bundle)
    base = bundle.score(row.reshape(1, -1)).proba[0, 0]
    position = {n: i for i, n in enumerate(bundle.feature_names)}
    layout = bundle.layout

    def change(cell: int) -> float:
        moved = row.copy()
        moved[position[layout.selected[cell]]] = (layout.data_min[cell] + layout.data_max[cell]) / 2
        return float(base - bundle.score(moved.reshape(1, -1)).proba[0, 0])

    top = explain(bundle, row, top_k=CELLS)
    first = top[0].cell[0] * SIDE + top[0].cell[1]
    changes = {cell: change(cell) for cell in range(CELLS)}
    assert abs(changes[first]) == max(abs(v) for v in changes.values())
    for a in top:
        assert a.attribution == pytest.approx(changes[a.cell[0] * SIDE + a.cell[1]], abs=1e-6)


def test_top_k_is_ordered_by_magnitude_with_ties_by_cell_index(bundle):
    got = explain(bundle, _row(bundle), top_k=CELLS)
    assert len(got) == CELLS
    mags = [abs(a.attribution) for a in got]
    assert mags == sorted(mags, reverse=True)
    zeros = [a.cell[0] * SIDE + a.cell[1] for a in got if a.attribution == 0.0]
    assert zeros == sorted(zeros) and len(zeros) == CELLS - 4
    assert len(explain(bundle, _row(bundle), top_k=3)) == 3
    assert len(explain(bundle, _row(bundle), top_k=10_000)) == CELLS


def test_deterministic_for_the_same_input_and_a_freshly_loaded_bundle(bundle):
    row = _row(bundle) + np.random.default_rng(1).normal(0, 1, len(bundle.feature_names))
    first = explain(bundle, row, top_k=20)
    assert explain(bundle, row, top_k=20) == first
    assert explain(_bundle(), row, top_k=20) == first


def test_target_defaults_to_the_predicted_class_and_attributions_sum_to_zero_over_classes(bundle):
    row = _row(bundle)
    default = explain_full(bundle, row)
    assert default.target == "BUY" and default.probability == pytest.approx(_p(3.0), abs=1e-6)
    per_class = [explain_full(bundle, row, target=t) for t in CLASSES]
    assert [e.target for e in per_class] == list(CLASSES)
    total = sum(e.attributions for e in per_class)
    np.testing.assert_allclose(total, 0.0, atol=1e-6)  # probabilities sum to one, so do their drops
    sell = explain(bundle, row, top_k=1, target="SELL")[0]
    assert sell.cell == divmod(A, SIDE) and sell.attribution < 0


def test_one_batched_onnxruntime_call_with_every_occluded_image(bundle):
    calls: list[tuple[int, ...]] = []
    real = bundle.predictor

    class Counting:
        def run(self, images):
            calls.append(images.shape)
            return real.run(images)

    spy = SignalBundle(bundle.meta, bundle.layout, Counting())
    explain(spy, _row(bundle), top_k=3)
    assert calls == [(CELLS + 1, 1, SIDE, SIDE)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"top_k": 0}, UsageError, r"^top_k: \[positive_int\]"),
        ({"top_k": True}, UsageError, r"^top_k: "),
        ({"top_k": 1.5}, UsageError, r"^top_k: "),
        ({"top_k": 3, "target": "BUYY"}, UsageError, r"^target: \[class\]"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_field(bundle, kwargs, error, match):
    with pytest.raises(error, match=match):
        explain(bundle, _row(bundle), **kwargs)


def test_a_wrong_shape_or_non_finite_row_is_refused(bundle):
    with pytest.raises(UsageError, match=r"^row: \[shape\]"):
        explain(bundle, _row(bundle)[:-1], top_k=3)
    with pytest.raises(UsageError, match=r"^row: \[shape\]"):
        explain(bundle, _row(bundle).reshape(1, -1), top_k=3)
    row = _row(bundle)
    row[list(bundle.feature_names).index(bundle.layout.selected[B])] = np.nan
    with pytest.raises(TradeopsError, match="not finite"):
        explain(bundle, row, top_k=3)


def test_explain_imports_neither_torch_nor_onnx():
    code = "import sys; import tradeops.deploy.explain; print(sorted(m for m in ('torch', 'onnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_registered_champion_is_explained_with_its_real_feature_names(trained_ibm):
    from tradeops.data import store as st
    from tradeops.features.store import FeatureSet, read_features
    from tradeops.model.serving import load_registered

    settings, outcome = trained_ibm
    bundle = load_registered(settings, outcome.name, "champion")
    fs = FeatureSet.from_preset("cnn-ta")
    frame = read_features(st.lake_for(settings), fs, ["IBM"]).dropna(subset=fs.names)
    row = frame.iloc[-1][bundle.feature_names].to_numpy(dtype=np.float64)
    got = explain(bundle, row, top_k=10)
    assert len(got) == 10 and all(isinstance(a, Attribution) for a in got)
    assert {a.feature for a in got} <= set(fs.names)
    assert explain(bundle, row, top_k=10) == got
    full = explain_full(bundle, row)
    assert full.target == bundle.score(row.reshape(1, -1)).signals[0]
    # the top cell is the one whose occlusion moves the explained probability the most
    assert abs(got[0].attribution) == pytest.approx(np.abs(full.attributions).max())
