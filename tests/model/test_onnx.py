"""ONNX export: parity with torch, dynamic batch, probabilities in the graph, quiet offline export, clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

from tradeops.model.cnn import CNNClassifier
from tradeops.model.onnx_export import OnnxPredictor, check_parity, export_onnx

SIDE = 15


@pytest.fixture(scope="module")
def fitted() -> tuple[CNNClassifier, bytes]:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(200, 1, SIDE, SIDE)).astype(np.float32)
    y = rng.choice(3, size=200)
    clf = CNNClassifier(recipe="paper", epochs=2, batch_size=64).fit(X, y)
    return clf, export_onnx(clf)


@pytest.mark.parametrize("n_rows", [1, 37])
def test_parity_with_torch_on_any_batch_size(fitted, n_rows: int) -> None:
    clf, model = fitted
    predictor = OnnxPredictor(model)
    X = np.random.default_rng(n_rows).uniform(size=(n_rows, 1, SIDE, SIDE)).astype(np.float32)
    assert check_parity(clf, predictor, X, atol=1e-5) < 1e-5
    proba = predictor.predict_proba(X)
    assert proba.shape == (n_rows, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(predictor.predict(X), clf.predict(X))


def test_graph_signature_and_metadata(fitted) -> None:
    clf, model = fitted
    proto = onnx.load_from_string(model)
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert inp.name == "image" and out.name == "probabilities"
    in_dims = inp.type.tensor_type.shape.dim
    assert in_dims[0].dim_param and [d.dim_value for d in in_dims[1:]] == [1, SIDE, SIDE]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.type.tensor_type.shape.dim[1].dim_value == 3
    assert "Softmax" in {node.op_type for node in proto.graph.node}
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18
    meta = OnnxPredictor(model).metadata
    assert meta["tradeops.classes"] == "BUY,SELL,HOLD" and meta["tradeops.side"] == str(SIDE)
    assert meta["tradeops.weights_sha256"] == clf.weights_sha256()


def test_export_writes_the_file_quietly(fitted, tmp_path, capfd) -> None:
    clf, _ = fitted
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = export_onnx(clf, path)
    out, err = capfd.readouterr()
    assert path.read_bytes() == data
    assert (out, err) == ("", "") and [str(w.message) for w in caught] == []


def test_parity_failure_and_bad_inputs_are_errors(fitted) -> None:
    _, model = fitted
    predictor = OnnxPredictor(model)
    rng = np.random.default_rng(2)
    X = rng.uniform(size=(5, 1, SIDE, SIDE)).astype(np.float32)
    other = CNNClassifier(recipe="paper", epochs=1, seed=5).fit(
        rng.uniform(size=(50, 1, SIDE, SIDE)).astype(np.float32), rng.choice(3, size=50)
    )
    with pytest.raises(ValueError, match="parity failed"):
        check_parity(other, predictor, X)  # a differently seeded network is not this graph
    with pytest.raises(ValueError, match="atol"):
        check_parity(other, predictor, X, atol=-1.0)
    with pytest.raises(ValueError, match="shape"):
        predictor.predict_proba(X[:, 0])
    with pytest.raises(ValueError, match="float"):
        predictor.predict_proba(X.astype(np.int32))
    with pytest.raises(ValueError, match="ONNX model"):
        OnnxPredictor(b"not a model")
    with pytest.raises(ValueError, match="CNNClassifier"):
        export_onnx(object())  # type: ignore[arg-type]


def test_large_calls_use_the_multi_threaded_session_with_identical_outputs(fitted) -> None:
    import pickle

    from tradeops.model.onnx_runtime import WIDE_ROWS

    _, onnx_bytes = fitted
    narrow, wide = OnnxPredictor(onnx_bytes, batch_threads=1), OnnxPredictor(onnx_bytes, batch_threads=2)
    assert narrow._wide is narrow.session and wide._wide is not wide.session
    X = np.random.default_rng(3).random((WIDE_ROWS + 68, 1, 15, 15), dtype=np.float32)
    np.testing.assert_array_equal(narrow.predict_proba(X), wide.predict_proba(X))
    np.testing.assert_array_equal(wide.run(X[: WIDE_ROWS - 1]), narrow.run(X[: WIDE_ROWS - 1]))
    again = pickle.loads(pickle.dumps(wide))
    assert again._batch_threads == 2 and again._wide is not again.session
    with pytest.raises(ValueError, match="batch_threads must be an int >= 0"):
        OnnxPredictor(onnx_bytes, batch_threads=-1)
