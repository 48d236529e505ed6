"""The serving seam: registered model -> verified bundle -> signals, without torch, onnx or scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from tradeops.data import store as st
from tradeops.errors import TradeopsError
from tradeops.features.store import FeatureSet, read_features
from tradeops.model.package import FeatureSetMismatch, SignalBundle
from tradeops.model.serving import ModelNotFound, load_registered

pytestmark = pytest.mark.slow  # trains models or starts processes; `pytest -m 'not slow'` skips

# scipy is not listed: MLflow itself imports it (mlflow.models), and MLflow is a declared requirement.
HEAVY = ("torch", "onnx", "onnxscript", "sklearn", "lightgbm", "optuna")


@pytest.fixture(scope="module")
def champion(trained_ibm) -> SignalBundle:
    settings, out = trained_ibm
    return load_registered(settings, out.name, "champion")


@pytest.fixture(scope="module")
def rows(trained_ibm) -> pd.DataFrame:
    settings, _ = trained_ibm
    fs = FeatureSet.from_preset("cnn-ta")
    return read_features(st.lake_for(settings), fs, ["IBM"]).dropna().tail(50).reset_index(drop=True)


def test_load_registered_resolves_alias_and_version_to_the_same_verified_bundle(trained_ibm, champion):
    settings, out = trained_ibm
    by_version = load_registered(settings, out.name, out.version)
    assert champion.model_name == out.name and champion.model_version == out.version
    assert by_version.meta["onnx_sha256"] == champion.meta["onnx_sha256"]
    assert champion.feature_set_version == FeatureSet.from_preset("cnn-ta").version


def test_load_registered_names_a_missing_alias_or_version(trained_ibm):
    settings, out = trained_ibm
    with pytest.raises(ModelNotFound, match="no version 99"):
        load_registered(settings, out.name, "99")
    with pytest.raises(ModelNotFound, match="no alias 'nonexistent'"):
        load_registered(settings, out.name, "nonexistent")


def test_load_registered_refuses_another_feature_set(trained_ibm):
    settings, out = trained_ibm
    with pytest.raises(FeatureSetMismatch):
        load_registered(
            settings, out.name, "champion", expected_feature_set_version=FeatureSet.from_preset("thesis").version
        )


def test_fast_score_equals_the_frame_path_and_the_golden_set(champion, rows):
    frame = champion.predict_frame(rows)
    fast = champion.score(rows[champion.feature_names].to_numpy(dtype=np.float64))
    np.testing.assert_array_equal(frame[["p_BUY", "p_SELL", "p_HOLD"]].to_numpy(), fast.proba.astype(np.float64))
    assert list(frame["signal"]) == list(fast.signals)
    one = champion.score_features(rows.iloc[0][champion.feature_names].to_dict())
    np.testing.assert_array_equal(one.proba[0], fast.proba[0])


def test_a_row_with_nan_is_refused_not_scored(champion, rows):
    bad = rows[champion.feature_names].to_numpy(dtype=np.float64)
    bad[3, 7] = np.nan
    with pytest.raises(TradeopsError, match=f"row 3: feature '{champion.feature_names[7]}'"):
        champion.score(bad)


def test_serving_rows_with_a_missing_feature_are_a_feature_set_mismatch(champion, rows):
    features = rows.iloc[0][champion.feature_names].to_dict()
    features.pop(champion.feature_names[0])
    with pytest.raises(FeatureSetMismatch, match=champion.feature_names[0]):
        champion.score_features(features)


def test_scaling_every_price_leaves_the_online_signal_unchanged(trained_ibm, champion, tmp_path):
    """Features are scale-free: the same bars x 7.3 give the same signal (a behavioural test of the bundle)."""
    from tradeops.deploy.scoring import score_online

    settings, _ = trained_ibm
    lake = st.lake_for(settings)
    fs = FeatureSet.from_preset("cnn-ta")
    bars = lake.read_bars(["IBM"])
    scaled = st.Lake(str(tmp_path / "lake"))
    priced = bars.copy()
    for c in ("open", "high", "low", "close", "adj_open", "adj_high", "adj_low", "adj_close"):
        priced[c] = priced[c] * 7.3
    scaled.upsert(st.BARS, priced, {"operation": "test"})
    a = score_online(lake, fs, champion, "IBM", "2012-06-01")
    b = score_online(scaled, fs, champion, "IBM", "2012-06-01")
    assert a.as_of == b.as_of == "2012-06-01"
    assert a.signal == b.signal
    np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)


def test_score_online_says_which_model_and_feature_set(trained_ibm, champion):
    from tradeops.deploy.scoring import score_online

    settings, out = trained_ibm
    result = score_online(st.lake_for(settings), FeatureSet.from_preset("cnn-ta"), champion, "IBM", "2012-06-03")
    assert result.as_of == "2012-06-01"  # a Sunday: the features of the last close before it
    assert result.model == out.name and result.version == out.version
    assert result.signal in ("BUY", "SELL", "HOLD")
    assert abs(sum(result.probabilities.values()) - 1) < 1e-5


def _run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_serving_path_imports_no_torch_onnx_or_sklearn(trained_ibm, rows, tmp_path):
    settings, out = trained_ibm
    rows.to_parquet(tmp_path / "rows.parquet")
    got = _run(f"""
        import json, sys
        import pandas as pd
        from tradeops.config import load_settings
        from tradeops.deploy.scoring import score_frame
        from tradeops.model.serving import load_registered
        bundle = load_registered(load_settings(home={str(settings.home)!r}), {out.name!r}, "champion")
        results = score_frame(bundle, pd.read_parquet({str(tmp_path / "rows.parquet")!r}))
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        print(json.dumps({{"heavy": loaded, "n": len(results)}}))
    """)
    assert got == {"heavy": [], "n": len(rows)}


def test_registered_pyfunc_loads_and_predicts_from_its_declared_requirements(trained_ibm, rows, tmp_path):
    """Every installed distribution outside the pyfunc's declared requirements (and what they depend on) is made
    unimportable in a fresh interpreter; loading and predicting must still work and give the bundle's outputs."""
    settings, out = trained_ibm
    rows.to_parquet(tmp_path / "rows.parquet")
    got = _run(f"""
        import importlib.abc, importlib.metadata as md, json, re, sys
        import mlflow.artifacts, yaml
        from tradeops.config import load_settings
        from tradeops.model import registry as reg

        settings = load_settings(home={str(settings.home)!r})
        reg.configure_mlflow(settings)
        uri = "models:/{out.name}/{out.version}"
        reqs = open(mlflow.artifacts.download_artifacts(uri) + "/requirements.txt").read().split()
        declared = [re.split("[=<>!~ ;]", r)[0].lower() for r in reqs if r and not r.startswith("-")]

        def norm(name):
            return re.sub("[-_.]+", "-", name).lower()

        allowed, todo = set(), [norm(d) for d in declared]
        while todo:
            d = todo.pop()
            if d in allowed:
                continue
            allowed.add(d)
            try:
                requires = md.requires(d) or []
            except md.PackageNotFoundError:
                continue
            todo += [norm(re.split("[ ;<>=!~\\[(]", r)[0]) for r in requires if "extra ==" not in r]
        allowed |= {{"tradeops", "pyyaml", "pydantic", "pydantic-settings", "pydantic-core", "typing-extensions",
                    "annotated-types", "typing-inspection", "python-dotenv"}}  # the config loader of this test
        owners = md.packages_distributions()
        blocked = {{m for m, dists in owners.items() if not any(norm(d) in allowed for d in dists)}}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in blocked:
                    raise ImportError(f"{{name}} is not among the pyfunc's declared requirements")
                return None

        early = {{m.split(".")[0] for m in sys.modules}} & {{"torch", "onnx", "sklearn", "onnxscript"}}
        if early:
            raise SystemExit(f"{{early}} imported before the blocker")
        sys.meta_path.insert(0, Block())
        import mlflow.pyfunc, pandas as pd
        model = mlflow.pyfunc.load_model(uri)
        pred = model.predict(pd.read_parquet({str(tmp_path / "rows.parquet")!r}).drop(columns=["ticker", "date"]))
        print(json.dumps({{"declared": sorted(declared), "blocked_torch": "torch" in blocked,
                          "p": pred[["p_BUY", "p_SELL", "p_HOLD"]].to_numpy().tolist()}}))
    """)
    assert got["declared"] == ["mlflow", "numpy", "onnxruntime", "pandas"]
    assert got["blocked_torch"]
    want = load_registered(settings, out.name, out.version).predict_frame(rows)
    np.testing.assert_allclose(got["p"], want[["p_BUY", "p_SELL", "p_HOLD"]].to_numpy(), atol=1e-7)
